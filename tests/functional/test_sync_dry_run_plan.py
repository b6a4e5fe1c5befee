"""The dry run's plan: which servers a real run would add, change (which fields),
soft-delete, revive or hold, per scope and bounded, with totals; and nothing written."""

from __future__ import annotations

import copy
from typing import Any

from inventory_sync.models import SyncSettings
from scripts.local import fleet
from tests.support.world import HUB, TARGET_A, TARGET_B, World

CHANGING = (HUB, "us-east-1")
GUARDED = (TARGET_A, "eu-west-1")
QUIET = (TARGET_A, "us-east-1")
LIMIT = 2


def _settings(world: World, plan_limit: int = LIMIT) -> SyncSettings:
    return SyncSettings(
        max_concurrency=4,
        page_size=world.page_size,
        deadline_reserve_seconds=0,
        plan_limit=plan_limit,
    )


def _scopes(plan: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s["accountId"], s["region"]): s for s in plan["scopes"]}


def _ids(kind: dict[str, Any]) -> list[str]:
    return [server["sourceServerID"] for server in kind["servers"]]


def _replace(world: World, scope: tuple[str, str], server_id: str, change: Any) -> None:
    """Let DRS list `server_id` of `scope` changed by `change(record)`."""
    (record,) = [
        s for s in world.simulator.source_servers(*scope) if s["sourceServerID"] == server_id
    ]
    record = copy.deepcopy(record)
    change(record)
    world.simulator.add_source_servers(*scope, [record])


def _stalled(record: dict[str, Any]) -> None:
    record["dataReplicationInfo"]["dataReplicationState"] = "STALLED"


def _retagged(record: dict[str, Any]) -> None:
    record["tags"] = {**record.get("tags", {}), "owner": "someone-else"}


def test_a_dry_run_plan_names_each_server_and_what_would_change(world: World) -> None:
    # GIVEN an estate synced once: a scope with servers to change, lose and win back, a
    # scope whose mass disappearance the guard holds, one that stays quiet, and an account
    # that is about to leave the registry
    servers = world.add_servers(*CHANGING, 8, ec2_fraction=0.0)
    guarded = world.add_servers(*GUARDED, 30, ec2_fraction=0.0)
    world.add_servers(*QUIET, 3, ec2_fraction=0.0)
    leaving = world.add_servers(TARGET_B, "us-west-2", 4, ec2_fraction=0.0)
    assert world.sync()["status"] == "SUCCEEDED"
    revenant = servers[7]
    world.simulator.remove_source_server(*CHANGING, revenant["sourceServerID"])
    assert world.sync()["counts"]["serversSoftDeleted"] == 1

    # WHEN DRS changes: one server stalls, one is retagged, one vanishes, the soft-deleted
    # one comes back, three are new; 20 of 30 vanish in the guarded scope; B is deleted
    ids = sorted(s["sourceServerID"] for s in servers[:7])
    stalled, retagged, vanished = ids[0], ids[1], ids[2]
    _replace(world, CHANGING, stalled, _stalled)
    _replace(world, CHANGING, retagged, _retagged)
    world.simulator.remove_source_server(*CHANGING, vanished)
    world.simulator.add_source_servers(*CHANGING, [revenant])
    new = fleet.generate_fleet(*CHANGING, 3, start_index=100, seed=7, ec2_fraction=0.0)
    world.simulator.add_source_servers(*CHANGING, new)
    for server in guarded[:20]:
        world.simulator.remove_source_server(*GUARDED, server["sourceServerID"])
    world.invoke("delete_target_account", accountId=TARGET_B)
    tables = (world.tables.inventory, world.tables.region_status, world.tables.target_accounts)
    before = {table: world.raw_items(table) for table in tables}

    # THEN the dry run plans it, server by server, and writes nothing
    summary = world.sync(settings=_settings(world), dryRun=True)

    for table in tables:
        assert world.raw_items(table) == before[table], table
    plan = summary["plan"]
    scopes = _scopes(plan)
    assert QUIET not in scopes  # no change: not listed

    changing = scopes[CHANGING]
    new_ids = sorted(s["sourceServerID"] for s in new)
    assert changing["added"]["count"] == 3
    assert _ids(changing["added"]) == new_ids[:LIMIT]
    assert changing["added"]["more"] == 1
    assert changing["added"]["servers"][0]["hostname"]
    assert {s["sourceServerID"]: s["fields"] for s in changing["changed"]["servers"]} == {
        stalled: ["replicationState", "drs.dataReplicationInfo"],
        retagged: ["tags", "drs.tags"],
    }
    assert changing["changed"] == {**changing["changed"], "count": 2, "more": 0}
    assert _ids(changing["softDeleted"]) == [vanished]
    assert changing["softDeleted"]["servers"][0]["hostname"]
    assert _ids(changing["revived"]) == [revenant["sourceServerID"]]
    assert changing["held"] == {"count": 0, "servers": [], "more": 0}

    held = scopes[GUARDED]
    assert held["held"]["count"] == 20
    assert _ids(held["held"]) == sorted(s["sourceServerID"] for s in guarded[:20])[:LIMIT]
    assert held["held"]["more"] == 18
    assert held["softDeleted"]["count"] == 0

    gone = scopes[(TARGET_B, "us-west-2")]
    assert gone["unregistered"] is True
    assert gone["softDeleted"]["count"] == 4 and gone["softDeleted"]["more"] == 2
    assert _ids(gone["softDeleted"]) == sorted(s["sourceServerID"] for s in leaving)[:LIMIT]
    assert all(s["hostname"] for s in gone["softDeleted"]["servers"])

    assert plan["totals"] == {"added": 3, "changed": 2, "softDeleted": 5, "revived": 1, "held": 20}
    assert plan["moreScopes"] == 0
    counts = summary["counts"]
    assert plan["totals"]["softDeleted"] == counts["serversSoftDeleted"]
    assert plan["totals"]["held"] == counts["serversHeld"]
    assert plan["totals"]["added"] == counts["serversNew"]
    assert plan["totals"]["revived"] == counts["serversRevived"]


def test_an_unchanged_estate_plans_nothing(world: World) -> None:
    world.add_servers(*QUIET, 3, ec2_fraction=0.0)
    world.sync()

    plan = world.sync(dryRun=True)["plan"]

    assert plan == {
        "totals": {"added": 0, "changed": 0, "softDeleted": 0, "revived": 0, "held": 0},
        "scopes": [],
        "moreScopes": 0,
    }
