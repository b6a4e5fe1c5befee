"""Invariant, over generated fleets and failures: soft-deletion happens only inside a scope
whose listing completed, and only to servers that scope no longer lists."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory_sync.exceptions import SyncFailedError
from shared.config import (
    INVENTORY_TABLE_ENV,
    REGION_STATUS_TABLE_ENV,
    SYNC_LEASE_TABLE_ENV,
    TARGET_ACCOUNTS_TABLE_ENV,
)
from tests.support.aws import create_tables_from_template
from tests.support.world import EXTERNAL_ID, HUB, TARGET_A, World, role_arn

SCOPES = [(a, r) for a in (HUB, TARGET_A) for r in ("us-east-1", "eu-west-1")]
FAULTS = [
    None,
    "ThrottlingException",
    "AccessDeniedException",
    "UninitializedAccountException",
    "InternalServerException",
]
_runs = itertools.count()

scope_plan = st.fixed_dictionaries(
    {
        "servers": st.integers(min_value=0, max_value=4),
        "fault": st.sampled_from(FAULTS),
        "remove": st.sets(st.integers(min_value=0, max_value=3), max_size=3),
    }
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plans=st.fixed_dictionaries({scope: scope_plan for scope in SCOPES}))
def test_soft_delete_only_inside_completed_scopes(
    world: World, monkeypatch: pytest.MonkeyPatch, plans
) -> None:
    # Fresh tables and simulator for each example (fixtures are per test, not per example).
    names = create_tables_from_template(f"prop{next(_runs)}")
    monkeypatch.setenv(INVENTORY_TABLE_ENV, names.inventory)
    monkeypatch.setenv(REGION_STATUS_TABLE_ENV, names.region_status)
    monkeypatch.setenv(TARGET_ACCOUNTS_TABLE_ENV, names.target_accounts)
    monkeypatch.setenv(SYNC_LEASE_TABLE_ENV, names.sync_lease)
    monkeypatch.setenv("DRS_REGIONS", "us-east-1,eu-west-1")
    world.tables = names
    world.simulator.reset()
    world.invoke(
        "add_target_account",
        accountId=TARGET_A,
        roleArn=role_arn(TARGET_A),
        externalId=EXTERNAL_ID,
        skipConnectionTest=True,
    )

    fleet = {
        scope: world.add_servers(*scope, plans[scope]["servers"], ec2_fraction=0.0)
        for scope in SCOPES
    }
    world.sync()
    removed = set()
    for scope, plan in plans.items():
        for index in plan["remove"]:
            if index < len(fleet[scope]):
                server = fleet[scope][index]
                world.simulator.remove_source_server(*scope, server["sourceServerID"])
                removed.add(server["arn"])
        if plan["fault"]:
            world.fault(*scope, plan["fault"])

    # "Not initialised" contradicts the first run, which listed every scope ACTIVE (empty
    # ones too): it is a failure now, like the other faults.
    healthy = [p for p in plans.values() if p["fault"] is None]
    if healthy:
        summary = world.sync()
    else:
        with pytest.raises(SyncFailedError) as raised:
            world.sync()
        summary = raised.value.summary

    inventory = world.inventory()
    assert len(inventory) == sum(len(servers) for servers in fleet.values())
    for scope, servers in fleet.items():
        completed = plans[scope]["fault"] is None
        for server in servers:
            item = inventory[server["arn"]]
            assert (item["accountId"], item["region"]) == scope
            expected_deleted = completed and server["arn"] in removed
            assert ("deletedAt" in item) is expected_deleted, (scope, plans[scope])
            assert ("expiresAt" in item) is expected_deleted
    completed_removed = sum(
        1
        for scope, servers in fleet.items()
        if plans[scope]["fault"] is None
        for server in servers
        if server["arn"] in removed
    )
    assert summary["counts"]["serversSoftDeleted"] == completed_removed
