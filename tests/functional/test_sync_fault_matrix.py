"""The sync under faults: one table of DRS faults, then the faults that are not DRS's.

Each matrix row injects one fault into one scope (FAULTED) after a clean first sync, while
every scope loses one server in DRS. The row says what the faulted scope must become; every
other scope must complete as if nothing happened. Everything goes through real boto3
clients against moto and the DRS simulator (faults injected on the wire).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from inventory_sync import store as store_module
from inventory_sync.deadline import Deadline
from inventory_sync.models import SyncSettings
from scripts.local.drs_simulator import _DEFAULT_FAULT_MESSAGES, Fault
from scripts.local.moto_server import BATCH_WRITE_ITEM, LocalMotoServer, MotoFault
from shared.exceptions import InvalidParameterError
from shared.messages import reader_message
from tests.support.lambda_context import FakeLambdaContext
from tests.support.world import HUB, REGIONS, TARGET_A, TARGET_B, World

FAULTED = (TARGET_A, "us-west-2")
ALL_SCOPES = [(account, region) for account in (HUB, TARGET_A, TARGET_B) for region in REGIONS]
SERVERS_PER_SCOPE = 4  # 3 left after one vanishes: two pages at page size 2
SMALL_PAGES = 2
YEAR_2100 = 4102444800  # 2100-01-01T00:00:00Z


def settings(**overrides: Any) -> SyncSettings:
    """The world's default settings (no deadline reserve) with `overrides`."""
    base: dict[str, Any] = {"max_concurrency": 4, "page_size": 25, "deadline_reserve_seconds": 0}
    return SyncSettings(**{**base, **overrides})


def build_fleet(
    world: World, per_scope: int = SERVERS_PER_SCOPE
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """`per_scope` on-premises servers in every scope."""
    return {scope: world.add_servers(*scope, per_scope, ec2_fraction=0.0) for scope in ALL_SCOPES}


def scope_snapshot(world: World, account: str, region: str) -> list[dict[str, Any]]:
    """The raw DynamoDB items of one scope, for byte-for-byte comparison."""
    return [
        item
        for item in world.raw_items(world.tables.inventory)
        if item.get("accountId", {}).get("S") == account
        and item.get("region", {}).get("S") == region
    ]


def items_by_scope(world: World) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """The inventory read once, grouped by (accountId, region); items without them under
    ("", "")."""
    grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for arn, item in world.inventory().items():
        scope = (item.get("accountId", ""), item.get("region", ""))
        grouped.setdefault(scope, {})[arn] = item
    return grouped


def failures_by_scope(summary: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["accountId"], f["region"]): f for f in summary["failures"]}


@pytest.fixture
def no_batch_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store still retries unprocessed items, but without sleeping between attempts."""

    class _NoJitter:
        @staticmethod
        def uniform(low: float, high: float) -> float:
            return 0.0

    monkeypatch.setattr(store_module, "random", _NoJitter)


@pytest.fixture
def longest_batch_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's backoff between unprocessed-item retries draws its longest wait each time."""

    class _LongestWaits:
        @staticmethod
        def uniform(low: float, high: float) -> float:
            return high

    monkeypatch.setattr(store_module, "random", _LongestWaits)


# --- the matrix --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One fault in FAULTED and what it must make of that scope."""

    fault: Fault
    status: str
    error_code: str
    overrides: dict[str, Any] = field(default_factory=dict)  # SyncSettings of the second run
    max_describe_calls: int | None = None  # bound on DescribeSourceServers in FAULTED


MATRIX = {
    "throttled": Row(Fault("ThrottlingException"), "THROTTLED", "ThrottlingException"),
    "access-denied": Row(Fault("AccessDeniedException"), "ACCESS_DENIED", "AccessDeniedException"),
    "internal-error": Row(Fault("InternalServerException"), "ERROR", "InternalServerException"),
    "uninitialized-with-live-items": Row(
        Fault("UninitializedAccountException"), "ERROR", "UninitializedAccountException"
    ),
    "unrecognized-client-with-live-items": Row(
        Fault("UnrecognizedClientException"), "ERROR", "UnrecognizedClientException"
    ),
    "uninitialized-after-page-1": Row(
        Fault("UninitializedAccountException", operation="DescribeSourceServers", skip=1),
        "ERROR",
        "UninitializedAccountException",
        overrides={"page_size": SMALL_PAGES},
    ),
    "missing-items": Row(Fault(kind="missing_items"), "ERROR", "MalformedResponse"),
    "items-not-list": Row(Fault(kind="items_not_list"), "ERROR", "MalformedResponse"),
    "repeat-token": Row(
        Fault(kind="repeat_token"),
        "ERROR",
        "PaginationLoop",
        overrides={"page_size": SMALL_PAGES},
        max_describe_calls=3,
    ),
    "endless-pages": Row(
        Fault(kind="endless_pages"),
        "ERROR",
        "PaginationLoop",
        overrides={"page_size": SMALL_PAGES, "max_pages": 5},
        max_describe_calls=5 + 1,
    ),
}


@pytest.mark.parametrize("row", list(MATRIX.values()), ids=list(MATRIX))
def test_fault_in_one_scope_fails_only_that_scope(world: World, row: Row) -> None:
    # GIVEN a clean first sync of a small fleet
    fleet = build_fleet(world)
    first = world.sync()
    assert first["status"] == "SUCCEEDED", first["failures"]
    # ... then every scope lost a server in DRS, and FAULTED answers with the row's fault
    for scope, servers in fleet.items():
        world.simulator.remove_source_server(*scope, servers[0]["sourceServerID"])
    world.simulator.set_fault(*FAULTED, row.fault)
    world.simulator.reset_counts()
    before = scope_snapshot(world, *FAULTED)
    assert len(before) == SERVERS_PER_SCOPE

    # WHEN the next sync runs
    summary = world.sync(settings=settings(**row.overrides))

    # THEN FAULTED is the run's one failure, with the row's status and error code
    assert summary["status"] == "PARTIAL"
    failures = failures_by_scope(summary)
    assert set(failures) == {FAULTED}, summary["failures"]
    assert failures[FAULTED]["status"] == row.status
    assert failures[FAULTED]["errorCode"] == row.error_code
    # ... whose message is the sync's own or the code's, never what DRS said
    assert not any(
        text in failures[FAULTED]["message"] for text in _DEFAULT_FAULT_MESSAGES.values()
    )
    # ... its items are byte-for-byte as they were: the vanished server is not soft-deleted
    assert scope_snapshot(world, *FAULTED) == before
    # ... its status row is this run's, and its data is not fresh
    status = world.region_status()
    row_status = status[FAULTED]
    assert row_status["status"] == row.status
    assert row_status["errorCode"] == row.error_code
    assert row_status["errorMessage"] == reader_message(row.error_code, row.status)
    assert row_status["runId"] == summary["runId"]
    assert row_status["lastSyncTime"] == summary["startedAt"]
    assert row_status["lastSuccessTime"] == first["startedAt"]
    if row.max_describe_calls is not None:
        calls = world.simulator.request_count("DescribeSourceServers", *FAULTED)
        assert calls <= row.max_describe_calls
    # ... and every other scope completed: its vanished server soft-deleted, the rest fresh
    inventory = items_by_scope(world)
    for scope, servers in fleet.items():
        if scope == FAULTED:
            continue
        assert status[scope]["status"] == "ACTIVE", scope
        assert status[scope]["runId"] == summary["runId"]
        assert status[scope]["lastSuccessTime"] == summary["startedAt"]
        items = inventory[scope]
        assert items[servers[0]["arn"]]["deletedAt"] == summary["startedAt"], scope
        for server in servers[1:]:
            assert "deletedAt" not in items[server["arn"]]
        assert world.unconfirmed(summary, *scope) == [], scope
    assert summary["counts"]["serversSoftDeleted"] == len(ALL_SCOPES) - 1, summary
    assert world.lease() is None


# --- "no DRS here" that is the truth ---------------------------------------------------------


def test_uninitialized_scope_without_items_is_healthy_not_initialized(world: World) -> None:
    # GIVEN a scope that never held servers answers UninitializedAccountException
    for scope in ALL_SCOPES:
        if scope != FAULTED:
            world.add_servers(*scope, 2, ec2_fraction=0.0)
    world.fault(*FAULTED, "UninitializedAccountException")

    # WHEN its first-ever sync runs
    summary = world.sync()

    # THEN that is a true answer: healthy, fresh, not a failure
    assert summary["status"] == "SUCCEEDED", summary["failures"]
    assert summary["failures"] == []
    assert summary["counts"]["scopesByStatus"] == {"ACTIVE": 8, "NOT_INITIALIZED": 1}
    row = world.region_status()[FAULTED]
    assert row["status"] == "NOT_INITIALIZED"
    assert row["runId"] == summary["runId"]
    assert row["lastSuccessTime"] == summary["startedAt"]
    assert row["serverCount"] == 0


# --- region status that cannot be written ------------------------------------------------------


@pytest.mark.parametrize(
    "fault_kwargs",
    [
        {"kind": "unprocessed"},
        {"kind": "error", "error_code": "ProvisionedThroughputExceededException"},
    ],
    ids=["unprocessed", "throttled"],
)
def test_status_that_cannot_be_written_makes_the_run_partial(
    world: World, moto_server: LocalMotoServer, no_batch_backoff: None, fault_kwargs: dict
) -> None:
    # GIVEN every region-status BatchWriteItem fails
    fleet = build_fleet(world, per_scope=2)
    moto_server.set_fault(
        MotoFault(
            service="dynamodb",
            operation="BatchWriteItem",
            table_name=world.tables.region_status,
            count=None,
            **fault_kwargs,
        )
    )

    # WHEN the sync runs
    summary = world.sync()

    # THEN every scope was listed and written, but the run says its status is not recorded
    assert summary["status"] == "PARTIAL", summary["failures"]
    assert summary["counts"]["statusWriteFailed"] > 0
    assert summary["failures"], "status that was not written must be reported"
    for failure in summary["failures"]:
        assert failure["errorCode"] == "StatusWriteFailed"
        assert failure["statusRecorded"] is False
    inventory = world.inventory()
    assert {server["arn"] for servers in fleet.values() for server in servers} <= set(inventory)
    assert world.lease() is None


def test_status_items_that_stay_unprocessed_make_the_run_partial(
    world: World, moto_server: LocalMotoServer, no_batch_backoff: None
) -> None:
    # GIVEN region-status BatchWriteItem leaves half of each request unprocessed, every time:
    # after the store's retries, some status items are still not written
    fleet = build_fleet(world, per_scope=2)
    moto_server.set_fault(
        MotoFault(
            service="dynamodb",
            operation="BatchWriteItem",
            table_name=world.tables.region_status,
            kind="unprocessed",
            fraction=0.5,
            count=None,
        )
    )

    summary = world.sync()
    moto_server.clear_faults()

    unrecorded = {scope for scope in ALL_SCOPES if scope not in world.region_status()}
    assert unrecorded, "the fault should leave some status unwritten"
    assert summary["status"] == "PARTIAL", summary["failures"]
    assert summary["counts"]["statusWriteFailed"] == len(unrecorded)
    failures = failures_by_scope(summary)
    assert set(failures) == unrecorded
    for failure in failures.values():
        assert failure["errorCode"] == "StatusWriteFailed"
        assert failure["statusRecorded"] is False
    inventory = world.inventory()
    assert {server["arn"] for servers in fleet.values() for server in servers} <= set(inventory)
    assert world.lease() is None


def test_a_run_that_finished_early_spends_its_spare_time_on_a_throttled_status_table(
    world: World, moto_server: LocalMotoServer, longest_batch_backoff: None
) -> None:
    # GIVEN no reserve after the deadline (the tightest setting), a run with time to spare,
    # and a status table that leaves its first five requests unprocessed while the jitter
    # draws its longest waits: the last status writes need ~1.6 s of retries
    build_fleet(world, per_scope=2)
    moto_server.set_fault(
        MotoFault(
            service="dynamodb",
            operation="BatchWriteItem",
            table_name=world.tables.region_status,
            kind="unprocessed",
            count=5,
        )
    )

    # WHEN the sync runs (no Lambda context: its whole budget is ahead of it)
    summary = world.sync(settings=settings(deadline_reserve_seconds=0))
    moto_server.clear_faults()

    # THEN the retries ran in the run's spare time: every status recorded, nothing refused
    assert summary["status"] == "SUCCEEDED", summary["failures"]
    assert summary["counts"]["statusWriteFailed"] == 0
    rows = world.region_status()
    assert set(rows) == set(ALL_SCOPES)
    assert {row["runId"] for row in rows.values()} == {summary["runId"]}
    assert world.lease() is None


def test_a_status_flush_still_retrying_when_the_run_ends_is_not_left_behind(
    world: World, moto_server: LocalMotoServer, longest_batch_backoff: None
) -> None:
    # GIVEN one scope that finishes at once while the others take ~1.5 s, and a status table
    # whose first six requests come back unprocessed with the longest waits (~3 s of
    # retries): the background flush of that first scope is still retrying when the run
    # is done (a fresh-clone CI run returned SUCCEEDED with that scope's row missing)
    build_fleet(world, per_scope=2)
    world.simulator.set_latency(1500)
    world.simulator.set_latency(1, account_id=ALL_SCOPES[0][0], region=ALL_SCOPES[0][1])
    moto_server.set_fault(
        MotoFault(
            service="dynamodb",
            operation="BatchWriteItem",
            table_name=world.tables.region_status,
            kind="unprocessed",
            count=6,
        )
    )

    # WHEN the sync runs
    summary = world.sync(settings=settings(deadline_reserve_seconds=0))
    rows = world.region_status()  # read at once: what is there when the invocation returns
    moto_server.clear_faults()

    # THEN every scope's row is there, from this run, or the run says which is not
    unrecorded = {
        (f["accountId"], f["region"]) for f in summary["failures"] if not f["statusRecorded"]
    }
    for scope in ALL_SCOPES:
        row = rows.get(scope)
        recorded = row is not None and row["runId"] == summary["runId"]
        assert recorded != (scope in unrecorded), (scope, row, summary["failures"])
    assert summary["counts"]["statusWriteFailed"] == len(unrecorded)


# --- a hung call and the Lambda deadline -----------------------------------------------------

HANG_TIMEOUT_MS = 6000
# A hung DRS scope beside eight healthy ones: the healthy scopes list, write and soft-delete
# before the deadline with room to spare on a loaded machine (a fresh-clone CI run finished
# only five of eight in 4 s); the hang (60 s) outlasts the deadline all the same.
DRS_HANG_TIMEOUT_MS = 12000
HANG_SETTINGS = {"deadline_reserve_seconds": 2}


@pytest.fixture
def call_outlives_its_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung call that its connect/read timeouts do not end (a server trickling bytes keeps
    every read under the timeout): the clients keep the world's 30 s read timeout, so only
    the run's deadline can end the wait. The supervisor must abandon it."""
    monkeypatch.setattr(Deadline, "client_config", lambda self, base: base)


def _hung_drs_run(world: World) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    """A clean sync, then FAULTED's DRS hangs and every scope loses a server; the second
    sync runs with a 6 s Lambda context. Returns its summary, wall time and FAULTED's items
    from before it."""
    fleet = build_fleet(world, per_scope=2)
    world.sync()
    for scope, servers in fleet.items():
        world.simulator.remove_source_server(*scope, servers[0]["sourceServerID"])
    # The simulator ends the hang when the test stops it.
    world.simulator.set_fault(*FAULTED, Fault(kind="hang", hang_seconds=60))
    before = scope_snapshot(world, *FAULTED)
    started = time.monotonic()
    summary = world.sync(
        context=FakeLambdaContext(timeout_ms=DRS_HANG_TIMEOUT_MS),
        settings=settings(**HANG_SETTINGS),
    )
    return summary, time.monotonic() - started, before


def test_hung_drs_call_returns_in_time_and_leaves_the_scope_untouched(world: World) -> None:
    summary, elapsed, before = _hung_drs_run(world)

    assert elapsed < DRS_HANG_TIMEOUT_MS / 1000, f"returned after {elapsed:.1f}s"
    assert summary["status"] == "PARTIAL"
    assert set(failures_by_scope(summary)) == {FAULTED}
    assert scope_snapshot(world, *FAULTED) == before
    row = world.region_status()[FAULTED]
    assert row["runId"] == summary["runId"]
    assert row["status"] != "ACTIVE"
    assert world.lease() is None
    assert summary["counts"]["serversSoftDeleted"] == len(ALL_SCOPES) - 1, summary


def test_a_hung_drs_call_past_its_timeouts_is_abandoned_at_the_deadline(
    world: World, call_outlives_its_timeouts: None
) -> None:
    summary, elapsed, before = _hung_drs_run(world)

    assert elapsed < DRS_HANG_TIMEOUT_MS / 1000, f"returned after {elapsed:.1f}s"
    failure = failures_by_scope(summary)[FAULTED]
    assert (failure["status"], failure["errorCode"]) == ("SKIPPED", "DeadlineReached")
    row = world.region_status()[FAULTED]
    assert (row["status"], row["errorCode"], row["runId"]) == (
        "SKIPPED",
        "DeadlineReached",
        summary["runId"],
    )
    assert scope_snapshot(world, *FAULTED) == before
    assert world.lease() is None
    failure = failures_by_scope(summary)[FAULTED]
    assert (failure["status"], failure["errorCode"]) == ("SKIPPED", "DeadlineReached")
    row = world.region_status()[FAULTED]
    assert (row["status"], row["errorCode"]) == ("SKIPPED", "DeadlineReached")


INVENTORY_HANG_SECONDS = 4.0


def _hung_inventory_write_run(
    world: World, moto_server: LocalMotoServer, hang_seconds: float = INVENTORY_HANG_SECONDS
) -> tuple[dict[str, Any], float]:
    """Only FAULTED holds servers (so only it writes items); every inventory BatchWriteItem
    hangs. Returns the sync's summary and wall time, after the held requests completed."""
    world.add_servers(*FAULTED, 2, ec2_fraction=0.0)
    moto_server.set_fault(
        MotoFault(
            service="dynamodb",
            operation=BATCH_WRITE_ITEM,
            table_name=world.tables.inventory,
            kind="hang",
            hang_seconds=hang_seconds,
        )
    )
    started = time.monotonic()
    try:
        summary = world.sync(
            context=FakeLambdaContext(timeout_ms=HANG_TIMEOUT_MS),
            settings=settings(**HANG_SETTINGS),
        )
        elapsed = time.monotonic() - started
    finally:
        moto_server.clear_faults()
        # moto processes a held request when its hang ends: let that happen in this test,
        # not inside the next one's freshly made tables (sleeping for the hang was not enough:
        # the hang starts when the request arrives, after `started`, and a write landing in
        # the next test's table made its servers "unchanged" there).
        assert moto_server.wait_for_held_requests(timeout=hang_seconds + 30)
    return summary, elapsed


def test_hung_inventory_write_returns_in_time_and_records_the_scope(
    world: World, moto_server: LocalMotoServer
) -> None:
    summary, elapsed = _hung_inventory_write_run(world, moto_server)

    assert elapsed < HANG_TIMEOUT_MS / 1000, f"returned after {elapsed:.1f}s"
    assert summary["status"] == "PARTIAL"
    assert set(failures_by_scope(summary)) == {FAULTED}
    row = world.region_status()[FAULTED]
    assert row["runId"] == summary["runId"]
    assert row["status"] != "ACTIVE"
    assert row.get("lastSuccessTime") is None  # never confirmed
    assert world.lease() is None


def test_a_hung_inventory_write_past_its_timeouts_is_abandoned_at_the_deadline(
    world: World, moto_server: LocalMotoServer, call_outlives_its_timeouts: None
) -> None:
    summary, elapsed = _hung_inventory_write_run(world, moto_server, hang_seconds=8.0)

    assert elapsed < HANG_TIMEOUT_MS / 1000, f"returned after {elapsed:.1f}s"
    failure = failures_by_scope(summary)[FAULTED]
    assert (failure["status"], failure["errorCode"]) == ("SKIPPED", "DeadlineReached")
    assert world.region_status()[FAULTED]["runId"] == summary["runId"]
    assert world.lease() is None
    failure = failures_by_scope(summary)[FAULTED]
    assert (failure["status"], failure["errorCode"]) == ("SKIPPED", "DeadlineReached")


# --- the lease ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expires",
    [None, {"S": "2030-01-01T00:00:00Z"}, {"N": str(YEAR_2100)}],
    ids=["no-expiry", "string-expiry", "year-2100"],
)
def test_a_lease_without_a_valid_expiry_is_taken_over(world: World, expires: Any) -> None:
    world.add_servers(HUB, "us-east-1", 2, ec2_fraction=0.0)
    world.put_lease("stale-run", expires)

    summary = world.sync()

    assert summary["status"] == "SUCCEEDED", summary
    assert world.lease() is None


def test_a_valid_lease_makes_the_run_skipped(world: World) -> None:
    world.add_servers(HUB, "us-east-1", 2, ec2_fraction=0.0)
    world.put_lease("running-run", {"N": str(int(time.time()) + 600)})

    summary = world.sync()

    assert summary["status"] == "SKIPPED"
    assert "running-run" in summary["skippedBecause"]
    assert world.simulator.request_count("DescribeSourceServers") == 0
    assert world.lease()["runId"]["S"] == "running-run"


def test_a_lease_that_cannot_be_released_expires_before_the_next_schedule(
    world: World, moto_server: LocalMotoServer
) -> None:
    world.add_servers(HUB, "us-east-1", 2, ec2_fraction=0.0)
    moto_server.set_fault(
        MotoFault(
            service="dynamodb",
            operation="DeleteItem",
            table_name=world.tables.sync_lease,
            error_code="InternalServerError",
            count=None,
        )
    )

    started = time.time()
    summary = world.sync(context=FakeLambdaContext(timeout_ms=900_000))

    assert summary["status"] == "SUCCEEDED", summary["failures"]
    lease = world.lease()
    assert lease is not None and lease["runId"]["S"] == summary["runId"]
    assert int(lease["leaseExpiresAt"]["N"]) <= started + 900


# --- bad records -------------------------------------------------------------------------------


def _arn(account: str, region: str, server_id: str) -> str:
    return f"arn:aws:drs:{region}:{account}:source-server/{server_id}"


def test_bad_records_are_skipped_and_counted_never_their_scope(world: World) -> None:
    fleet = build_fleet(world, per_scope=3)
    first = world.sync()
    scope = (HUB, "us-east-1")
    other = (TARGET_A, "eu-west-1")
    victim = fleet[other][0]
    victim_before = scope_snapshot(world, *other)
    normal = fleet[scope]
    # GIVEN one scope's listing holds, next to its normal servers, records that are bad
    no_arn_id, no_id_id, big_float_id = (f"s-{n:017x}" for n in range(1, 4))
    bad = [
        {"sourceServerID": no_arn_id, "tags": {"bad": "no arn"}},
        {"arn": _arn(*scope, no_id_id), "tags": {"bad": "no sourceServerID"}},
        {
            "arn": _arn(*scope, big_float_id),
            "sourceServerID": big_float_id,
            "sourceProperties": {"ramBytes": 1e200},
        },
        # another scope's server, with content that would overwrite its item
        {**victim, "tags": {"overwritten": "yes"}},
    ]
    duplicate = dict(normal[1])
    world.simulator.add_raw_records(*scope, [*bad, duplicate])

    # WHEN the sync runs
    summary = world.sync()

    # THEN every normal server is written, the bad ones counted, the scope healthy
    assert summary["status"] == "SUCCEEDED", summary["failures"]
    assert world.region_status()[scope]["status"] == "ACTIVE"
    counts = summary["counts"]
    assert counts["recordsRejected"] == len(bad)
    assert counts["recordsDuplicate"] == 1
    items = items_by_scope(world)[scope]
    assert set(items) == {server["arn"] for server in normal}
    assert world.unconfirmed(summary, *scope) == []
    inventory = world.inventory()
    for server_id in (no_id_id, big_float_id):
        assert _arn(*scope, server_id) not in inventory
    # ... and the other scope's item is its own listing's, never the foreign record's
    assert scope_snapshot(world, *other) != [] and "overwritten" not in str(
        scope_snapshot(world, *other)
    )
    assert inventory[victim["arn"]]["accountId"] == other[0]
    assert inventory[victim["arn"]]["region"] == other[1]
    assert inventory[victim["arn"]].get("tags", {}).get("overwritten") is None
    assert len(victim_before) == len(scope_snapshot(world, *other))
    assert first["status"] == "SUCCEEDED"


def test_a_record_with_a_41_digit_number_is_rejected(world: World) -> None:
    world.add_servers(HUB, "us-east-1", 2, ec2_fraction=0.0)
    server_id = "s-" + "e" * 17
    world.simulator.add_raw_records(
        HUB,
        "us-east-1",
        [
            {
                "arn": _arn(HUB, "us-east-1", server_id),
                "sourceServerID": server_id,
                "sourceProperties": {"cpus": [{"cores": 10**40}]},
            }
        ],
    )

    summary = world.sync()

    assert summary["status"] == "SUCCEEDED", summary["failures"]
    assert summary["counts"]["recordsRejected"] == 1
    assert _arn(HUB, "us-east-1", server_id) not in world.inventory()


# --- the mass-deletion guard -------------------------------------------------------------------

GUARDED = (TARGET_A, "eu-west-1")


def test_mass_deletion_is_held_until_confirmed(world: World) -> None:
    servers = world.add_servers(*GUARDED, 30, ec2_fraction=0.0)
    first = world.sync()
    assert first["status"] == "SUCCEEDED"
    vanishing = servers[:20]
    for server in vanishing:
        world.simulator.remove_source_server(*GUARDED, server["sourceServerID"])
    before = scope_snapshot(world, *GUARDED)

    # A dry run shows the soft-deletes held
    dry = world.sync(dryRun=True)
    assert dry["counts"]["serversHeld"] == 20
    (planned,) = [s for s in dry["plan"]["scopes"] if (s["accountId"], s["region"]) == GUARDED]
    assert planned["held"]["count"] == 20
    assert planned["softDeleted"]["count"] == 0
    assert scope_snapshot(world, *GUARDED) == before

    # A real run holds them: a failure, nothing soft-deleted, not fresh
    held = world.sync()
    assert held["status"] == "PARTIAL"
    failure = failures_by_scope(held)[GUARDED]
    assert failure["errorCode"] == "MassDeletionHeld"
    assert held["counts"]["serversHeld"] == 20
    assert held["counts"]["serversSoftDeleted"] == 0
    assert all("deletedAt" not in item for item in items_by_scope(world)[GUARDED].values())
    row = world.region_status()[GUARDED]
    assert row["lastSuccessTime"] == first["startedAt"]
    assert row["errorCode"] == "MassDeletionHeld"

    # A confirmation outside a narrowed run is refused
    confirm = [{"accountId": GUARDED[0], "region": GUARDED[1]}]
    with pytest.raises(InvalidParameterError):
        world.sync(accountIds=[HUB], confirmDeletions=confirm)
    with pytest.raises(InvalidParameterError):
        world.sync(regions=["us-east-1"], confirmDeletions=confirm)

    # A confirmed run soft-deletes them
    confirmed = world.sync(confirmDeletions=confirm)
    assert confirmed["status"] == "SUCCEEDED", confirmed["failures"]
    assert confirmed["counts"]["serversSoftDeleted"] == 20
    items = items_by_scope(world)[GUARDED]
    assert {arn for arn, item in items.items() if "deletedAt" in item} == {
        s["arn"] for s in vanishing
    }
    assert world.region_status()[GUARDED]["lastSuccessTime"] == confirmed["startedAt"]


# --- no ghosts ---------------------------------------------------------------------------------


def test_items_no_scope_accounts_for_are_swept_or_reported(world: World) -> None:
    build_fleet(world, per_scope=1)
    world.sync()
    table = boto3.resource("dynamodb").Table(world.tables.inventory)
    never_registered = _arn("333333333333", "us-east-1", "s-" + "a" * 17)
    orphan_completed = _arn(HUB, "us-east-1", "s-" + "b" * 17)
    orphan_failed = _arn(*FAULTED, "s-" + "c" * 17)
    unstamped = _arn(HUB, "eu-west-1", "s-" + "d" * 17)
    table.put_item(
        Item={
            "sourceServerArn": never_registered,
            "sourceServerID": "s-" + "a" * 17,
            "accountId": "333333333333",
            "region": "us-east-1",
            "lastSyncTime": "2020-01-01T00:00:00.000Z",
        }
    )
    for arn in (orphan_completed, orphan_failed):
        table.put_item(Item={"sourceServerArn": arn, "sourceServerID": arn[-19:]})
    table.put_item(
        Item={
            "sourceServerArn": unstamped,
            "sourceServerID": unstamped[-19:],
            "accountId": HUB,
            "region": "eu-west-1",
        }
    )
    world.fault(*FAULTED, "AccessDeniedException")

    summary = world.sync()

    inventory = world.inventory()
    assert "deletedAt" in inventory[never_registered], summary  # sweepError, counts
    assert "deletedAt" in inventory[orphan_completed]
    assert "deletedAt" in inventory[unstamped]
    assert "deletedAt" not in inventory[orphan_failed]
    assert summary["counts"]["orphanItemsReported"] == 1
    assert summary["counts"]["unregisteredAccountsSwept"] == ["333333333333"]
    assert summary["status"] == "PARTIAL"
    assert set(failures_by_scope(summary)) == {FAULTED}


# --- true counts -------------------------------------------------------------------------------


def test_served_count_is_what_the_table_holds_when_writes_partly_fail(
    world: World, moto_server: LocalMotoServer, no_batch_backoff: None
) -> None:
    scope = (HUB, "us-east-1")
    world.add_servers(*scope, 30, ec2_fraction=0.0)  # two batches: 25 + 5
    moto_server.set_fault(
        MotoFault(
            service="dynamodb",
            operation="BatchWriteItem",
            table_name=world.tables.inventory,
            kind="unprocessed",
            skip=1,
            count=None,
        )
    )

    summary = world.sync()  # the other scopes are empty: they write nothing
    moto_server.clear_faults()

    in_table = len(items_by_scope(world).get(scope, {}))
    assert 0 < in_table < 30
    assert summary["counts"]["serversWritten"] == in_table
    assert summary["counts"]["serversWriteFailed"] == 30 - in_table
    assert summary["status"] == "PARTIAL"
    assert failures_by_scope(summary)[scope]["errorCode"] == "InventoryWriteFailed"
