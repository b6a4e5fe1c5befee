"""The change feed's request building: entry shape, entry size as EventBridge counts it, and
batches that respect PutEvents' 10-entry and 256 KB limits. Pure: no client."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from change_feed import (
    DETAIL_TYPES,
    MAX_ENTRIES,
    MAX_REQUEST_BYTES,
    SOURCE,
    Change,
    batches,
    entry,
    entry_size,
)

ARN = "arn:aws:drs:us-east-1:111111111111:source-server/s-1234567890abcdef0"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def change(kind: str = "Changed", fields: tuple[str, ...] = ("replicationState",)) -> Change:
    return Change.of_item(
        kind,  # type: ignore[arg-type]
        {"sourceServerArn": ARN, "accountId": "111111111111", "region": "us-east-1"},
        origin_key="runId",
        origin="run-1",
        fields=fields,
    )


def test_an_entry_carries_the_documented_schema() -> None:
    made = entry(change(), "proj-inventory-dev", NOW)

    assert made["EventBusName"] == "proj-inventory-dev"
    assert made["Source"] == SOURCE == "drs-orchestration.inventory"
    assert made["DetailType"] == DETAIL_TYPES["Changed"] == "DRS Inventory Server Changed"
    assert made["Resources"] == [ARN]
    assert made["Time"] == NOW
    assert json.loads(made["Detail"]) == {
        "accountId": "111111111111",
        "region": "us-east-1",
        "sourceServerArn": ARN,
        "sourceServerID": "s-1234567890abcdef0",  # from the ARN when the item has none
        "changedFields": ["replicationState"],
        "runId": "run-1",
    }


def test_a_refresh_change_names_its_event_and_its_own_time() -> None:
    observed = datetime(2026, 12, 3, 11, 59, tzinfo=UTC)
    refreshed = Change(
        "Removed", "111111111111", "us-east-1", ARN, "s-1", (), "eventId", "ev-9", observed
    )

    made = entry(refreshed, "bus", NOW)

    assert json.loads(made["Detail"])["eventId"] == "ev-9"
    assert "runId" not in json.loads(made["Detail"])
    assert made["Time"] == observed


def test_entry_size_is_aws_arithmetic_time_14_bytes_and_utf8_lengths() -> None:
    made = {
        "EventBusName": "not counted",
        "Source": "src",
        "DetailType": "type",
        "Detail": '{"h":"é"}',  # é is 2 bytes in UTF-8
        "Resources": ["arn:1", "arn:22"],
        "Time": NOW,
    }

    assert entry_size(made) == 14 + 3 + 4 + 10 + 5 + 6
    assert entry_size({**made, "Time": None}) == 3 + 4 + 10 + 5 + 6


def test_batches_hold_at_most_ten_entries() -> None:
    entries = [entry(change(), "bus", NOW) for _ in range(25)]

    sizes = [len(batch) for batch in batches(entries)]

    assert sizes == [10, 10, 5]


def test_batches_stay_under_the_request_size_limit() -> None:
    # Entries of ~100 KB: two fit under 256 KB, a third would not.
    big = [entry(change(fields=("x" * 100_000,)), "bus", NOW) for _ in range(5)]

    grouped = list(batches(big))

    assert [len(batch) for batch in grouped] == [2, 2, 1]
    assert all(sum(entry_size(e) for e in batch) < MAX_REQUEST_BYTES for batch in grouped)


def test_an_entry_too_large_to_send_alone_is_handed_back_not_sent() -> None:
    small = entry(change(), "bus", NOW)
    huge = entry(change(fields=("x" * MAX_REQUEST_BYTES,)), "bus", NOW)
    refused: list[dict] = []

    grouped = list(batches([small, huge, small], on_oversize=refused.append))

    assert grouped == [[small, small]]
    assert refused == [huge]


@given(st.lists(st.integers(min_value=0, max_value=120_000), max_size=40))
def test_batches_keep_order_and_every_limit(field_lengths: list[int]) -> None:
    entries = [entry(change(fields=("f" * n,)), "bus", NOW) for n in field_lengths]
    dropped: list[dict] = []

    grouped = list(batches(entries, on_oversize=dropped.append))

    assert [e for batch in grouped for e in batch] == [e for e in entries if e not in dropped]
    for batch in grouped:
        assert 1 <= len(batch) <= MAX_ENTRIES
        assert sum(entry_size(e) for e in batch) < MAX_REQUEST_BYTES
