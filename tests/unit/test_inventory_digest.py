"""Which DRS changes make the sync rewrite an item (records.content_digest, refresh_due).

A healthy server's volatile figures move on every poll; rewriting its item for that would
cost a write per server per run. They count only when they cross a band that matters.
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory_sync.models import Scope
from inventory_sync.records import (
    LAG_BANDS_SECONDS,
    content_digest,
    duration_seconds,
    inventory_item,
    refresh_due,
)

SCOPE = Scope("111122223333", "us-east-1")
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
NOW_EPOCH = NOW.timestamp()
GIB = 2**30


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def server(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sourceServerID": "s-1234567890abcdef0",
        "arn": "arn:aws:drs:us-east-1:111122223333:source-server/s-1234567890abcdef0",
        "tags": {"Application": "billing"},
        "dataReplicationInfo": {
            "dataReplicationState": "CONTINUOUS",
            "lagDuration": "PT2S",
            "etaDateTime": iso(NOW + timedelta(minutes=5)),
            "replicatedDisks": [
                {
                    "deviceName": "/dev/sda",
                    "totalStorageBytes": 100 * GIB,
                    "replicatedStorageBytes": 100 * GIB,
                    "rescannedStorageBytes": 0,
                    "backloggedStorageBytes": 0,
                }
            ],
        },
        "lifeCycle": {
            "addedToServiceDateTime": "2026-01-01T00:00:00Z",
            "elapsedReplicationDuration": "P30DT4H",
            "lastSeenByServiceDateTime": iso(NOW - timedelta(seconds=30)),
        },
        "sourceProperties": {
            "lastUpdatedDateTime": iso(NOW - timedelta(minutes=3)),
            "identificationHints": {"hostname": "db01"},
        },
    }
    for path, value in changes.items():
        target = record
        *parents, leaf = path.split("__")
        for name in parents:
            target = target[int(name)] if isinstance(target, list) else target[name]
        target[leaf] = value
    return record


def digest(record: dict[str, Any], ec2: dict[str, Any] | None = None) -> str:
    return content_digest(record, SCOPE, ec2, NOW_EPOCH)


BASE = digest(server())


@pytest.mark.parametrize(
    "changes",
    [
        {"dataReplicationInfo__lagDuration": "PT41S"},
        {"dataReplicationInfo__etaDateTime": iso(NOW + timedelta(hours=3))},
        {"dataReplicationInfo__replicatedDisks__0__backloggedStorageBytes": 20 * 2**20},
        {"dataReplicationInfo__replicatedDisks__0__replicatedStorageBytes": 100 * GIB - 5},
        {"dataReplicationInfo__replicatedDisks__0__rescannedStorageBytes": 4 * GIB},
        {"lifeCycle__elapsedReplicationDuration": "P30DT4H15M"},
        {"lifeCycle__lastSeenByServiceDateTime": iso(NOW - timedelta(minutes=20))},
        {"sourceProperties__lastUpdatedDateTime": iso(NOW)},
    ],
    ids=lambda changes: next(iter(changes)).rsplit("__", 1)[-1],
)
def test_a_volatile_figure_moving_inside_its_band_is_no_change(changes: dict[str, Any]) -> None:
    assert digest(server(**changes)) == BASE


@pytest.mark.parametrize(
    "changes",
    [
        {"dataReplicationInfo__dataReplicationState": "STALLED"},
        {"tags": {"Application": "billing", "Owner": "dba"}},
        {"dataReplicationInfo__lagDuration": "PT2M"},  # crosses 1 minute
        {"dataReplicationInfo__lagDuration": "P1DT1S"},  # crosses a day
        {"dataReplicationInfo__replicatedDisks__0__backloggedStorageBytes": 2 * GIB},
        {"dataReplicationInfo__replicatedDisks__0__replicatedStorageBytes": 50 * GIB},
        {"dataReplicationInfo__replicatedDisks__0__totalStorageBytes": 200 * GIB},
        {"lifeCycle__lastSeenByServiceDateTime": iso(NOW - timedelta(hours=2))},
        {"sourceProperties__identificationHints": {"hostname": "db02"}},
        {"dataReplicationInfo__lagDuration": "soon"},  # unreadable: the raw value counts
    ],
    ids=lambda changes: next(iter(changes)).rsplit("__", 1)[-1],
)
def test_a_change_that_matters_changes_the_digest(changes: dict[str, Any]) -> None:
    assert digest(server(**changes)) != BASE


def test_the_ec2_summary_and_the_scope_are_content() -> None:
    record = server()
    assert digest(record, {"instanceId": "i-1", "privateIp": "10.0.0.1"}) != BASE
    assert content_digest(record, Scope("111122223333", "eu-west-1"), None, NOW_EPOCH) != BASE


def test_the_digest_is_stored_and_does_not_change_the_record() -> None:
    record = server()
    before = copy.deepcopy(record)
    item = inventory_item(record, SCOPE, iso(NOW), None, BASE)
    assert item["contentDigest"] == BASE
    assert record == before and item["drs"] == before  # the volatile figures as DRS gave them


@given(
    lag=st.integers(0, LAG_BANDS_SECONDS[0] - 1),
    backlog=st.integers(0, 64 * 2**20 - 1),
    seen=st.integers(0, 3_599),
    eta=st.integers(1, 100_000),
)
def test_any_healthy_poll_is_no_change(lag: int, backlog: int, seen: int, eta: int) -> None:
    moved = server(
        dataReplicationInfo__lagDuration=f"PT{lag}S",
        dataReplicationInfo__etaDateTime=iso(NOW + timedelta(seconds=eta)),
        lifeCycle__lastSeenByServiceDateTime=iso(NOW - timedelta(seconds=seen)),
    )
    moved["dataReplicationInfo"]["replicatedDisks"][0]["backloggedStorageBytes"] = backlog
    assert digest(moved) == BASE


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT3S", 3), ("PT1.5S", 1.5), ("P12DT4H5M6S", 1_051_506), ("P1D", 86_400), ("PT0S", 0)],
)
def test_durations_are_read_as_drs_writes_them(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["P", "PT", "3S", "", None, 12, "PT-1S"])
def test_an_unreadable_duration_is_none(text: Any) -> None:
    assert duration_seconds(text) is None


INTERVAL, REFRESH = 900, 21_600  # 24 runs per refresh


def test_each_item_is_refreshed_once_per_refresh_interval_spread_over_the_runs() -> None:
    # GIVEN 2,400 items all written by one run, a day ago
    arns = [f"arn:aws:drs:us-east-1:111122223333:source-server/s-{n:017x}" for n in range(2400)]
    last = dict.fromkeys(arns, iso(NOW - timedelta(days=1)))
    start = (int(NOW_EPOCH) // INTERVAL) * INTERVAL + 7
    due_per_run: list[int] = []
    refreshed: Counter[str] = Counter()
    # WHEN 1 + 48 scheduled runs find them unchanged (two refresh intervals after the first)
    for run in range(49):
        now = start + run * INTERVAL
        due = [arn for arn in arns if refresh_due(arn, last[arn], now, INTERVAL, REFRESH)]
        for arn in due:
            last[arn] = iso(datetime.fromtimestamp(now, UTC))
        if run > 0:
            refreshed.update(due)
        due_per_run.append(len(due))
    # THEN the first run refreshes all of them (older than the refresh interval), and from
    # then on each run about 1/24 of the estate, each item exactly twice in 48 runs
    assert due_per_run[0] == len(arns)
    assert sum(due_per_run[1:]) == 2 * len(arns)
    assert set(refreshed.values()) == {2}
    assert max(due_per_run[1:]) <= 2 * len(arns) / 24  # spread, never a burst


def test_refresh_rules_at_the_edges() -> None:
    arn = "arn:aws:drs:us-east-1:111122223333:source-server/s-1"
    just_now = iso(NOW - timedelta(seconds=10))
    long_ago = iso(NOW - timedelta(seconds=REFRESH))
    assert refresh_due(arn, long_ago, NOW_EPOCH, INTERVAL, REFRESH)  # overdue: now
    assert not refresh_due(arn, just_now, NOW_EPOCH, INTERVAL, REFRESH)  # written this slot
    assert not refresh_due(arn, long_ago, NOW_EPOCH, INTERVAL, 0)  # refresh turned off
    assert refresh_due(arn, "yesterday-ish", NOW_EPOCH, INTERVAL, REFRESH)  # unreadable
    assert refresh_due(arn, None, NOW_EPOCH, INTERVAL, REFRESH)
