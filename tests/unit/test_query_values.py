"""DynamoDB values -> JSON, parameter value checks and expression placeholders (pure)."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from inventory_queries.expressions import Expressions
from inventory_queries.jsonable import to_json_value
from inventory_queries.params import (
    check_region,
    check_replication_state,
    check_source_server_arn,
    check_tag_map,
    replication_states,
)
from inventory_sync.records import dynamodb_safe
from shared.exceptions import InvalidParameterError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    # Beyond 2**53 an integral float is not the int DynamoDB stores exactly; DRS's big
    # numbers (bytes) are ints, so floats are drawn where both agree.
    | st.floats(allow_nan=False, allow_infinity=False, width=64).filter(
        lambda f: f == 0 or 1e-100 < abs(f) < 1e15
    )
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4),
    max_leaves=20,
)


def test_decimals_become_ints_or_floats() -> None:
    converted = to_json_value({"n": Decimal("12"), "f": Decimal("1.5"), "big": Decimal("1E+3")})
    assert converted == {"n": 12, "f": 1.5, "big": 1000}
    assert isinstance(converted["n"], int) and isinstance(converted["big"], int)


def test_sets_and_binary_become_json() -> None:
    converted = to_json_value(
        {"ss": {"b", "a"}, "ns": {Decimal(3), Decimal(1)}, "bin": Binary(b"\x00\x01")}
    )
    assert converted == {"ss": ["a", "b"], "ns": [1, 3], "bin": "AAE="}
    json.dumps(converted)


@given(json_values)
def test_a_value_round_trips_through_dynamodb(value: Any) -> None:
    # What the sync stores (dynamodb_safe + TypeSerializer) comes back as the same JSON value.
    stored = TypeSerializer().serialize(dynamodb_safe(value))
    read = to_json_value(TypeDeserializer().deserialize(stored))
    assert read == value
    assert json.loads(json.dumps(read)) == read
    if isinstance(value, float) and not value.is_integer():
        assert math.isclose(read, value)


@pytest.mark.parametrize("region", ["us-east-1", "ap-southeast-3", "us-gov-west-1", "il-central-1"])
def test_real_region_names_pass(region: str) -> None:
    check_region("op", region)


@pytest.mark.parametrize("region", ["US-EAST-1", "us-east", "mars", "us-east-1a", ""])
def test_other_strings_are_not_regions(region: str) -> None:
    with pytest.raises(InvalidParameterError, match="region"):
        check_region("op", region)


def test_replication_states_come_from_the_drs_model() -> None:
    assert {"CONTINUOUS", "STALLED", "INITIAL_SYNC"} <= set(replication_states())
    check_replication_state("op", "CONTINUOUS")
    with pytest.raises(InvalidParameterError, match="CONTINUOUS"):
        check_replication_state("op", "HEALTHY")


def test_source_server_arn_shape() -> None:
    check_source_server_arn(
        "op", "arn:aws-us-gov:drs:us-gov-west-1:123456789012:source-server/s-0123456789abcdef0"
    )
    with pytest.raises(InvalidParameterError):
        check_source_server_arn("op", "arn:aws:drs:us-east-1:123456789012:recovery-instance/i-1")


def test_tag_map_limits() -> None:
    assert check_tag_map("op", {"k": ""}) == {"k": ""}  # an empty value is a valid tag value
    with pytest.raises(InvalidParameterError, match="at most 50"):
        check_tag_map("op", {f"k{n}": "v" for n in range(51)})
    with pytest.raises(InvalidParameterError, match="1-128"):
        check_tag_map("op", {"k" * 129: "v"})
    with pytest.raises(InvalidParameterError, match="at most 256"):
        check_tag_map("op", {"k": "v" * 257})


def test_expressions_use_placeholders_for_every_name_and_value() -> None:
    expressions = Expressions()
    expressions.key(f"{expressions.path('accountId')} = {expressions.value('123456789012')}")
    tag = expressions.path("tags", "aws:cloudformation:stack-name")
    expressions.filter(f"attribute_exists({tag})")
    expressions.filter(f"{expressions.path('region')} = {expressions.value('us-east-1')}")
    args = expressions.request_args()
    assert args["KeyConditionExpression"] == "#n0 = :v0"
    assert args["FilterExpression"] == "attribute_exists(#n1.#n2) AND #n3 = :v1"
    assert args["ExpressionAttributeNames"] == {
        "#n0": "accountId",
        "#n1": "tags",
        "#n2": "aws:cloudformation:stack-name",
        "#n3": "region",
    }
    assert args["ExpressionAttributeValues"] == {":v0": "123456789012", ":v1": "us-east-1"}


def test_a_repeated_name_reuses_its_placeholder_and_no_clause_means_no_arguments() -> None:
    expressions = Expressions()
    assert expressions.request_args() == {}
    assert expressions.path("tags", "a") == "#n0.#n1"
    assert expressions.path("ec2", "tags", "a") == "#n2.#n0.#n1"
