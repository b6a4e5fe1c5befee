"""The sync's parameters: strict, parsed once into a SyncRequest (pure, no AWS)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from inventory_sync.params import OPERATION, PARAMS, SyncRequest, parse_sync_params
from shared.exceptions import InvalidParameterError
from tests.support.strict import FULLWIDTH_ZERO, look_alikes, with_digits

HUB = "123456789012"
TARGET = "111122223333"


def refused(params: dict[str, Any]) -> str:
    with pytest.raises(InvalidParameterError) as raised:
        parse_sync_params(params)
    return str(raised.value)


def deeply_nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def test_the_schedules_event_is_a_full_run() -> None:
    request = parse_sync_params({})
    assert request == SyncRequest(
        account_ids=None, regions=None, dry_run=False, confirm_deletions=frozenset()
    )
    assert not request.narrowed


def test_every_parameter_is_parsed_sorted_and_without_duplicates() -> None:
    request = parse_sync_params(
        {
            "accountIds": [TARGET, HUB, TARGET],
            "regions": ["us-west-2", "us-east-1", "us-west-2"],
            "dryRun": True,
            "confirmDeletions": [
                {"accountId": TARGET, "region": "us-east-1"},
                {"region": "us-east-1", "accountId": TARGET},
            ],
        }
    )
    assert request.account_ids == (TARGET, HUB)  # sorted: "1111..." < "1234..."
    assert request.regions == ("us-east-1", "us-west-2")
    assert request.dry_run is True
    assert request.confirm_deletions == frozenset({(TARGET, "us-east-1")})
    assert request.narrowed


@pytest.mark.parametrize(
    "region", ["us-east-1", "ap-southeast-3", "il-central-1", "us-gov-west-1", "cn-north-1"]
)
def test_region_names_of_every_partition_are_accepted(region: str) -> None:
    assert parse_sync_params({"regions": [region]}).regions == (region,)


@pytest.mark.parametrize("bad", look_alikes(TARGET))
def test_account_ids_are_ascii_digits_in_full(bad: str) -> None:
    message = refused({"accountIds": [HUB, bad]})
    assert "accountIds" in message and "12 digits" in message


@pytest.mark.parametrize(
    "bad",
    [
        "us-east-1\n",
        with_digits("us-east-1", FULLWIDTH_ZERO),
        "US-EAST-1",
        "us-east-1 ",
        "useast1",
        "mars-1",
        "us-east-1a",
        "",
    ],
)
def test_regions_are_region_names_in_full(bad: str) -> None:
    message = refused({"regions": [bad]})
    assert "regions" in message and "AWS region name" in message


@pytest.mark.parametrize("value", [None, "true", "false", 1, 0, [], {}, [True]])
def test_dry_run_is_a_boolean_and_null_is_refused(value: Any) -> None:
    assert "dryRun must be boolean" in refused({"dryRun": value})


@pytest.mark.parametrize("name", ["accountIds", "regions", "confirmDeletions"])
def test_a_list_given_must_not_be_empty(name: str) -> None:
    assert f"{name} must hold at least one item" in refused({name: []})


@pytest.mark.parametrize("name", ["accountIds", "regions", "confirmDeletions"])
@pytest.mark.parametrize("value", [None, HUB, {"accountId": HUB}, 123456789012, True])
def test_lists_must_be_lists_and_null_is_not_all(name: str, value: Any) -> None:
    assert f"{name} must be list" in refused({name: value})


@pytest.mark.parametrize(
    "value",
    [
        [123456789012],
        [None],
        [[HUB]],
        [deeply_nested(5000)],
        [{"accountId": HUB}],
    ],
)
def test_list_items_of_the_wrong_type_are_refused(value: Any) -> None:
    message = refused({"accountIds": value})
    assert "every item of accountIds must be string" in message


def test_deeply_nested_junk_is_refused_without_recursing() -> None:
    for params in (
        {"dryRun": deeply_nested(100_000)},
        {"accountIds": deeply_nested(100_000)},
        {"confirmDeletions": [{"accountId": deeply_nested(100_000), "region": "us-east-1"}]},
    ):
        assert len(refused(params)) < 1000


@pytest.mark.parametrize(
    ("confirmation", "reason"),
    [
        ({"accountId": HUB}, "missing required parameter region"),
        ({"region": "us-east-1"}, "missing required parameter accountId"),
        ({"accountId": HUB, "region": "us-east-1", "force": True}, "unknown parameter"),
        ({"accountId": HUB + "\n", "region": "us-east-1"}, "12 digits"),
        ({"accountId": HUB, "region": "us-east-1\n"}, "AWS region name"),
        ({"accountId": None, "region": "us-east-1"}, "accountId must be string, got null"),
        ({"accountId": int(HUB), "region": "us-east-1"}, "accountId must be string"),
        ({}, "missing required parameter"),
    ],
)
def test_each_confirmation_is_exactly_an_account_and_a_region(
    confirmation: dict[str, Any], reason: str
) -> None:
    good = {"accountId": TARGET, "region": "us-west-2"}
    message = refused({"confirmDeletions": [good, confirmation]})
    assert "confirmDeletions[1]" in message
    assert re.search(reason, message)


@pytest.mark.parametrize("item", ["123456789012/us-east-1", [HUB, "us-east-1"], None])
def test_confirmations_must_be_objects(item: Any) -> None:
    assert "every item of confirmDeletions must be object" in refused({"confirmDeletions": [item]})


def test_an_unknown_parameter_lists_the_valid_ones() -> None:
    message = refused({"dryrun": True})
    assert "'dryrun'" in message
    for name in PARAMS:
        assert name in message


def test_long_lists_of_refused_items_are_capped() -> None:
    bad = [f"{n:011d}" for n in range(500)]  # 11 digits each
    message = refused({"accountIds": bad})
    assert "... and 490 more" in message
    assert message.count("'0000000") == 10


def test_huge_strings_are_refused_by_length_and_not_echoed() -> None:
    message = refused({"accountIds": ["1" * 1_000_000]})
    assert "at most" in message and len(message) < 500


def test_too_many_items_are_refused() -> None:
    message = refused({"regions": ["us-east-1"] * 101})
    assert "regions may hold at most 100 items" in message


def test_the_operation_name_is_the_schedules() -> None:
    assert OPERATION == "sync_source_server_inventory"
