"""The sync's invariants, over generated fleets and fault schedules (hypothesis).

Each example: a clean first run over 2 accounts x 2 regions (0-6 servers per scope, small
pages so listings span pages), then servers removed and added in DRS, faults armed (DRS
errors and malformed answers per scope, DynamoDB `unprocessed` batches on the inventory or
region-status table, sometimes a hung DRS call with a 3 s Lambda deadline), and a second
run. After it, whatever the faults did:

a. no server DRS still lists is soft-deleted;
b. a scope whose listing failed, or that was SKIPPED, left its items byte-for-byte as they
   were, and no scope ever wrote an item of another scope;
c. every scope has a status row with the run's runId, or the run reports it unrecorded;
d. SUCCEEDED means every scope healthy and every write landed (the full expected state);
   every scope the run calls healthy really is synced;
e. the lease is released when the invocation returns;
f. a server removed in DRS from a scope that completed healthily is soft-deleted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from inventory_sync.exceptions import SyncFailedError
from inventory_sync.models import SyncSettings
from scripts.local.drs_simulator import Fault
from scripts.local.moto_server import LocalMotoServer, MotoFault
from shared.config import (
    INVENTORY_TABLE_ENV,
    REGION_STATUS_TABLE_ENV,
    SYNC_LEASE_TABLE_ENV,
    TARGET_ACCOUNTS_TABLE_ENV,
)
from tests.support.aws import create_tables_from_template
from tests.support.lambda_context import FakeLambdaContext
from tests.support.world import EXTERNAL_ID, HUB, TARGET_A, World, role_arn

REGIONS = ("us-east-1", "eu-west-1")
SCOPES = [(a, r) for a in (HUB, TARGET_A) for r in REGIONS]
DRS_ERRORS = [
    "UninitializedAccountException",
    "ThrottlingException",
    "AccessDeniedException",
    "InternalServerException",
    "UnrecognizedClientException",
]
MALFORMED_KINDS = ["missing_items", "items_not_list", "repeat_token", "endless_pages"]
HEALTHY = {"ACTIVE", "NOT_INITIALIZED", "REGION_NOT_ENABLED"}
# Failures that happen after a complete listing: the scope legitimately wrote what DRS listed.
WRITE_STAGE_CODES = {"InventoryWriteFailed", "StatusWriteFailed", "MassDeletionHeld"}
SOFT_DELETE = ("deletedAt", "expiresAt")
PAGE_SIZE = 2  # listings of up to 6 servers span pages, so `skip` fails a later page
_runs = itertools.count()

error_fault = st.builds(
    Fault,
    error_code=st.sampled_from(DRS_ERRORS),
    count=st.sampled_from([None, 1, 2, 5]),
    skip=st.integers(min_value=0, max_value=2),
)
malformed_fault = st.builds(
    Fault,
    kind=st.sampled_from(MALFORMED_KINDS),
    count=st.sampled_from([None, 1]),
    skip=st.integers(min_value=0, max_value=2),
)
scope_plan = st.fixed_dictionaries(
    {
        "servers": st.integers(min_value=0, max_value=6),
        "remove": st.sets(st.integers(min_value=0, max_value=5), max_size=4),
        "add": st.integers(min_value=0, max_value=2),
        "fault": st.one_of(st.none(), st.none(), error_fault, malformed_fault),
    }
)
dynamodb_fault = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "table": st.sampled_from(["inventory", "region_status"]),
            "count": st.sampled_from([1, 3, 8, None]),
            "skip": st.integers(min_value=0, max_value=3),
            "fraction": st.sampled_from([0.3, 0.5, 1.0]),
        }
    ),
)
# One example in five: one scope's DescribeSourceServers hangs and Lambda leaves 3 s.
hung_scope = st.one_of(
    st.none(), st.none(), st.none(), st.none(), st.sampled_from(range(len(SCOPES)))
)


@dataclass
class Example:
    """What the example did to the world, to judge the second run by."""

    fleet: dict[tuple[str, str], list[dict[str, Any]]]  # every server ever created, by scope
    in_drs: dict[tuple[str, str], set[str]]  # ARNs DRS lists before run 2
    removed: dict[tuple[str, str], set[str]]  # ARNs removed from DRS before run 2


def _fresh_tables(world: World, monkeypatch: pytest.MonkeyPatch, moto: LocalMotoServer) -> None:
    names = create_tables_from_template(f"inv{next(_runs)}")
    monkeypatch.setenv(INVENTORY_TABLE_ENV, names.inventory)
    monkeypatch.setenv(REGION_STATUS_TABLE_ENV, names.region_status)
    monkeypatch.setenv(TARGET_ACCOUNTS_TABLE_ENV, names.target_accounts)
    monkeypatch.setenv(SYNC_LEASE_TABLE_ENV, names.sync_lease)
    monkeypatch.setenv("DRS_REGIONS", ",".join(REGIONS))
    world.tables = names
    world.simulator.reset()
    moto.clear_faults()
    world.invoke(
        "add_target_account",
        accountId=TARGET_A,
        roleArn=role_arn(TARGET_A),
        externalId=EXTERNAL_ID,
        skipConnectionTest=True,
    )


def _sync(world: World, **kwargs: Any) -> dict[str, Any]:
    """The run's summary, whether the invocation returned it or failed with it."""
    try:
        return world.sync(**kwargs)
    except SyncFailedError as exc:
        return exc.summary


def _scope_of(item: dict[str, Any]) -> tuple[str, str]:
    return (item["accountId"]["S"], item["region"]["S"])


def _by_scope(raw: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    grouped: dict[tuple[str, str], dict[str, Any]] = {scope: {} for scope in SCOPES}
    for item in raw:
        grouped.setdefault(_scope_of(item), {})[item["sourceServerArn"]["S"]] = item
    return grouped


def _changed_only_to_this_runs_truth(
    scope: tuple[str, str],
    before: dict[str, Any],
    after: dict[str, Any],
    example: Example,
    run_time: str,
) -> None:
    for arn, item in after.items():
        if before.get(arn) == item:
            continue
        if arn in example.in_drs[scope]:
            assert item["lastSyncTime"]["S"] == run_time and "deletedAt" not in item, (scope, arn)
        else:
            assert arn in example.removed[scope], (scope, arn)
            assert item["deletedAt"]["S"] == run_time, (scope, arn)
            assert before[arn] == {k: v for k, v in item.items() if k not in SOFT_DELETE}
    assert set(before) <= set(after), scope


@settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plans=st.fixed_dictionaries({scope: scope_plan for scope in SCOPES}),
    table_fault=dynamodb_fault,
    hung=hung_scope,
)
def test_second_run_keeps_every_invariant(
    world: World,
    moto_server: LocalMotoServer,
    monkeypatch: pytest.MonkeyPatch,
    plans: dict[tuple[str, str], dict[str, Any]],
    table_fault: dict[str, Any] | None,
    hung: int | None,
) -> None:
    # GIVEN fresh tables, a fleet, and a clean first run
    _fresh_tables(world, monkeypatch, moto_server)
    fleet = {
        scope: world.add_servers(*scope, plans[scope]["servers"], ec2_fraction=0.0)
        for scope in SCOPES
    }
    clean = SyncSettings(max_concurrency=4, page_size=PAGE_SIZE, deadline_reserve_seconds=0)
    first = _sync(world, settings=clean)
    assert first["status"] == "SUCCEEDED", first["failures"]
    assert world.lease() is None

    # ... then DRS changes and faults are armed
    example = Example(fleet=fleet, in_drs={}, removed={})
    for scope, plan in plans.items():
        gone = {fleet[scope][i]["arn"] for i in plan["remove"] if i < len(fleet[scope])}
        # Added before removing: the helper numbers new servers after the ones DRS holds.
        fleet[scope] = fleet[scope] + world.add_servers(*scope, plan["add"], ec2_fraction=0.0)
        for server in fleet[scope]:
            if server["arn"] in gone:
                world.simulator.remove_source_server(*scope, server["sourceServerID"])
        example.removed[scope] = gone
        example.in_drs[scope] = {s["arn"] for s in fleet[scope]} - gone
        if plan["fault"] is not None:
            world.simulator.set_fault(*scope, plan["fault"])
    context = None
    second_settings = SyncSettings(
        max_concurrency=4, page_size=PAGE_SIZE, max_pages=20, deadline_reserve_seconds=0
    )
    if hung is not None:
        world.simulator.set_fault(*SCOPES[hung], Fault(kind="hang", hang_seconds=8))
        context = FakeLambdaContext(timeout_ms=3000)
        second_settings = SyncSettings(
            max_concurrency=4, page_size=PAGE_SIZE, max_pages=20, deadline_reserve_seconds=1
        )
    if table_fault is not None:
        moto_server.set_fault(
            MotoFault(
                service="dynamodb",
                operation="BatchWriteItem",
                table_name=getattr(world.tables, table_fault["table"]),
                kind="unprocessed",
                count=table_fault["count"],
                skip=table_fault["skip"],
                fraction=table_fault["fraction"],
            )
        )
    inventory_before = _by_scope(world.raw_items(world.tables.inventory))

    # WHEN the second run goes
    summary = _sync(world, context=context, settings=second_settings)
    # What Lambda would have left when the invocation returned (read now, not after this
    # test's own table scans below)
    left_ms = context.get_remaining_time_in_millis() if context is not None else None
    moto_server.clear_faults()

    # THEN
    run_id = summary["runId"]
    inventory_raw = world.raw_items(world.tables.inventory)
    inventory_after = _by_scope(inventory_raw)
    status = world.region_status()
    failures = {(f["accountId"], f["region"]): f for f in summary["failures"]}
    healthy_scopes = {
        scope
        for scope in SCOPES
        if scope not in failures
        or (
            failures[scope]["errorCode"] == "StatusWriteFailed"
            and failures[scope]["status"] in HEALTHY
        )
    }
    context_of_failure = (
        f"run 2 {summary['status']}; failures {summary['failures']}; "
        f"table fault {table_fault}; hung {hung}"
    )

    # e. the lease is released
    assert world.lease() is None, context_of_failure
    assert summary["status"] != "SKIPPED", context_of_failure
    assert summary["counts"]["scopes"] == len(SCOPES)

    # b'. no scope writes another scope's item: every item sits in the scope that made it
    made_in = {s["arn"]: scope for scope, servers in fleet.items() for s in servers}
    for item in inventory_raw:
        arn = item["sourceServerArn"]["S"]
        assert _scope_of(item) == made_in[arn], (arn, context_of_failure)

    for scope in SCOPES:
        items = inventory_after.get(scope, {})
        # a. a server DRS still lists is never soft-deleted
        for arn in example.in_drs[scope]:
            if arn in items:
                assert "deletedAt" not in items[arn], (scope, arn, context_of_failure)

        # b. a scope whose listing failed (or that was SKIPPED) left its items as they were
        failure = failures.get(scope)
        if failure is not None and failure["errorCode"] == "DeadlineReached":
            # A scope stopped mid-write keeps the batches it wrote (BatchWriteItem is not a
            # transaction): whatever changed must be DRS's truth of this run (a listed
            # server upserted, a removed one soft-deleted), never anything else.
            _changed_only_to_this_runs_truth(
                scope, inventory_before.get(scope, {}), items, example, summary["startedAt"]
            )
        elif failure is not None and failure["errorCode"] not in WRITE_STAGE_CODES:
            assert items == inventory_before.get(scope, {}), (scope, context_of_failure)

        # c. a status row with this run's runId, or the run says it has none
        row = status.get(scope)
        recorded = row is not None and row.get("runId") == run_id
        reported_unrecorded = failure is not None and failure.get("statusRecorded") is False
        assert recorded or reported_unrecorded, (scope, row, context_of_failure)
        assert not (recorded and reported_unrecorded), (scope, row, context_of_failure)

        # d (per scope). a scope the run calls healthy is synced: every listed server live
        # and confirmed by this run, its row (if recorded) healthy
        if scope in healthy_scopes:
            # (written by this run, or unchanged and still DRS's truth: see World.unconfirmed)
            unconfirmed = set(
                world.unconfirmed(summary, *scope, status_recorded=not reported_unrecorded)
            )
            for arn in example.in_drs[scope]:
                assert arn in items and "deletedAt" not in items[arn], (scope, arn)
                assert arn not in unconfirmed, (scope, arn, context_of_failure)
            if recorded:
                assert row["status"] in HEALTHY and row.get("errorCode") is None, (scope, row)
                assert row["lastSuccessTime"] == summary["startedAt"], (scope, row)

            # f. a server removed from a scope that completed healthily is soft-deleted
            for arn in example.removed[scope]:
                assert "deletedAt" in items[arn], (scope, arn, context_of_failure)
                assert "expiresAt" in items[arn], (scope, arn, context_of_failure)

    # d. SUCCEEDED only when every scope is healthy and every write landed
    if summary["status"] == "SUCCEEDED":
        assert failures == {}, context_of_failure
        assert healthy_scopes == set(SCOPES)
        for scope in SCOPES:
            row = status[scope]
            assert row["runId"] == run_id and row["status"] in HEALTHY, (scope, row)
            assert row.get("errorCode") is None, (scope, row)
    # ... and a run whose hung scope could not finish is not SUCCEEDED, and it returned
    # before Lambda's deadline
    if hung is not None:
        assert left_ms is not None and left_ms > 0, left_ms
        hung_failure = failures.get(SCOPES[hung])
        assert hung_failure is not None and hung_failure["status"] not in HEALTHY, (
            context_of_failure
        )
        assert summary["status"] != "SUCCEEDED", context_of_failure
