"""Parameter specs and value checks of the queries.

Types, formats and lengths are declared per parameter as `shared.operations.Field`s (the
FIELD_* constants below) and checked by `check_params`; what a Field cannot say is checked
here: a region must be one this deployment syncs, a replicationState one DRS defines, a tag
map within AWS's limits. Identifiers are matched in full and in ASCII (`shared.validation`),
so "123456789012\\n" or Arabic-Indic digits are refused rather than silently matching nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import botocore.session

from shared.config import drs_regions
from shared.exceptions import InvalidParameterError
from shared.operations import Field
from shared.pagination import MAX_TOKEN_LENGTH
from shared.validation import (
    ACCOUNT_ID,
    REGION,
    SOURCE_SERVER_ARN,
    SOURCE_SERVER_ID,
    TextFormat,
    listed,
    shown,
)

MAX_TAG_KEY = 128  # AWS tag limits
MAX_TAG_VALUE = 256
MAX_TAGS = 50
MAX_HOSTNAME = 255  # a DNS name is at most 253 characters; DRS reports it as given
MAX_REPLICATION_STATE = 64

FIELD_ACCOUNT_ID = Field((str,), pattern=ACCOUNT_ID)
FIELD_REGION = Field((str,), pattern=REGION)
FIELD_SOURCE_SERVER_ARN = Field((str,), pattern=SOURCE_SERVER_ARN)
FIELD_SOURCE_SERVER_ID = Field((str,), pattern=SOURCE_SERVER_ID)
FIELD_REPLICATION_STATE = Field((str,), max_length=MAX_REPLICATION_STATE)
FIELD_TAG_KEY = Field((str,), non_empty=True, max_length=MAX_TAG_KEY)
FIELD_TAG_VALUE = Field((str,), max_length=MAX_TAG_VALUE)
FIELD_HOSTNAME = Field((str,), non_empty=True, max_length=MAX_HOSTNAME)
FIELD_TAGS = Field((dict,), non_empty=True, max_items=MAX_TAGS)
FIELD_NEXT_TOKEN = Field((str,), non_empty=True, max_length=MAX_TOKEN_LENGTH)


def _check_format(operation: str, name: str, value: str | None, text: TextFormat) -> None:
    if value is not None and not text.matches(value):
        raise InvalidParameterError(
            f"{operation}: {name} must be {text.description}, got {shown(value)}"
        )


def check_account_id(operation: str, value: str | None) -> None:
    _check_format(operation, "accountId", value, ACCOUNT_ID)


def check_region(operation: str, value: str | None) -> None:
    """A region name's syntax (any partition); see `check_configured_region` for membership."""
    _check_format(operation, "region", value, REGION)


def check_configured_region(
    operation: str, value: str | None, configured: Sequence[str] | None = None
) -> None:
    """A region filter must be a region this deployment syncs (`configured`, default the
    DRS_REGIONS of the function environment): any other region holds no inventory, and an
    empty answer would read as "no servers there" rather than "you asked the wrong place"."""
    if value is None:
        return
    check_region(operation, value)
    regions = drs_regions() if configured is None else configured
    if value not in regions:
        raise InvalidParameterError(
            f"{operation}: region {value} is not a DRS region this deployment syncs; "
            f"valid regions: {listed(regions)}"
        )


def check_source_server_id(operation: str, value: str | None) -> None:
    _check_format(operation, "sourceServerID", value, SOURCE_SERVER_ID)


def check_source_server_arn(operation: str, value: str | None) -> None:
    _check_format(operation, "sourceServerArn", value, SOURCE_SERVER_ARN)


@cache
def replication_states() -> tuple[str, ...]:
    """DRS's DataReplicationState values, from botocore's DRS model (not a copied list)."""
    model = botocore.session.get_session().get_service_model("drs")
    shape: Any = model.shape_for("DataReplicationState")  # a StringShape: has `enum`
    return tuple(shape.enum)


def check_replication_state(operation: str, value: str | None) -> None:
    if value is not None and value not in replication_states():
        raise InvalidParameterError(
            f"{operation}: replicationState must be one of {', '.join(replication_states())}, "
            f"got {shown(value)}"
        )


def check_tag_map(operation: str, tags: Mapping[Any, Any]) -> dict[str, str]:
    """A non-empty map of tag key -> value (both strings, AWS lengths); returned as a dict."""
    if not tags:
        raise InvalidParameterError(f"{operation}: tags must hold at least one key -> value")
    if len(tags) > MAX_TAGS:
        raise InvalidParameterError(f"{operation}: tags may hold at most {MAX_TAGS} keys")
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY:
            raise InvalidParameterError(
                f"{operation}: every tag key must be a string of 1-{MAX_TAG_KEY} characters"
            )
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise InvalidParameterError(
                f"{operation}: tag {shown(key)} must have a string value of at most "
                f"{MAX_TAG_VALUE} characters, got {shown(value)}"
            )
    return dict(tags)
