"""Checks of parameter *values* (types are checked by `shared.operations.check_params`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import botocore.session

from shared.exceptions import InvalidParameterError

ACCOUNT_ID = re.compile(r"^\d{12}$")
# aws (us-east-1, ap-southeast-3, il-central-1), aws-us-gov (us-gov-west-1), aws-cn, isolated.
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
SOURCE_SERVER_ID = re.compile(r"^s-[0-9a-zA-Z]{17}$")
SOURCE_SERVER_ARN = re.compile(
    r"^arn:[\w-]+:drs:[a-z0-9-]+:\d{12}:source-server/s-[0-9a-zA-Z]{17}$"
)
MAX_TAG_KEY = 128  # AWS tag limits
MAX_TAG_VALUE = 256
MAX_TAGS = 50


def check_account_id(operation: str, value: str | None) -> None:
    if value is not None and not ACCOUNT_ID.match(value):
        raise InvalidParameterError(f"{operation}: accountId must be 12 digits, got {value!r}")


def check_region(operation: str, value: str | None) -> None:
    if value is not None and not REGION.match(value):
        raise InvalidParameterError(
            f"{operation}: region must be an AWS region name such as us-east-1, got {value!r}"
        )


def check_non_empty(operation: str, params: Mapping[str, Any], *names: str) -> None:
    """Empty strings would silently match everything (hostname) or nothing (tags)."""
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and not value.strip():
            raise InvalidParameterError(f"{operation}: {name} must not be empty")


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
            f"got {value!r}"
        )


def check_source_server_id(operation: str, value: str | None) -> None:
    if value is not None and not SOURCE_SERVER_ID.match(value):
        raise InvalidParameterError(
            f"{operation}: sourceServerID must look like s-0123456789abcdef0, got {value!r}"
        )


def check_source_server_arn(operation: str, value: str | None) -> None:
    if value is not None and not SOURCE_SERVER_ARN.match(value):
        raise InvalidParameterError(
            f"{operation}: sourceServerArn must look like "
            f"arn:aws:drs:REGION:ACCOUNT:source-server/s-0123456789abcdef0, got {value!r}"
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
                f"{operation}: tag {key!r} must have a string value of at most "
                f"{MAX_TAG_VALUE} characters, got {type(value).__name__}"
            )
    return dict(tags)
