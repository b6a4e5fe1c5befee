"""The dry run's plan as pure data: which fields a change names, and the plan's bounds (the
worst case stays far below Lambda's 6 MB response limit)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from inventory_sync.changes import KINDS, MAX_FIELDS, bounded, changed_fields, empty_kinds
from inventory_sync.models import Scope, ScopeOutcome, ScopeStatus
from inventory_sync.records import content_digest, inventory_item
from inventory_sync.report import MAX_PLAN_SCOPES, MAX_PLAN_SERVER_BYTES, _dry_run_plan
from inventory_sync.sweep import SweepResult
from scripts.local import fleet

SCOPE = Scope("111122223333", "us-east-1")
NOW = fleet.DEFAULT_NOW.timestamp()


def _item(server: dict[str, Any]) -> dict[str, Any]:
    digest = content_digest(server, SCOPE, None, NOW)
    return inventory_item(server, SCOPE, "2026-01-01T00:00:00.000Z", None, digest)


def _server() -> dict[str, Any]:
    (server,) = fleet.generate_fleet(SCOPE.account_id, SCOPE.region, 1, seed=3, ec2_fraction=0.0)
    return server


def test_a_replication_state_change_names_the_state_and_the_raw_record_key() -> None:
    server = _server()
    changed = json.loads(json.dumps(server))
    changed["dataReplicationInfo"]["dataReplicationState"] = "STALLED"

    fields = changed_fields(_item(server), _item(changed), NOW)

    assert fields == ["replicationState", "drs.dataReplicationInfo"]


def test_bookkeeping_is_no_change() -> None:
    server = _server()
    stored = _item(server)
    stored["lastSyncTime"] = "2025-01-01T00:00:00.000Z"
    stored["contentDigest"] = "something else"
    stored["expiresAt"] = Decimal(1)

    assert changed_fields(stored, _item(server), NOW) == []


def test_a_volatile_figure_that_moved_is_not_named_beside_a_real_change() -> None:
    server = _server()
    changed = json.loads(json.dumps(server))
    changed["dataReplicationInfo"]["etaDateTime"] = "2030-01-01T00:00:00Z"  # volatile
    changed["tags"] = {**changed.get("tags", {}), "owner": "b"}

    assert changed_fields(_item(server), _item(changed), NOW) == ["tags", "drs.tags"]


def test_tags_and_a_new_attribute_are_named() -> None:
    server = _server()
    changed = json.loads(json.dumps(server))
    changed["tags"] = {**changed.get("tags", {}), "owner": "b"}
    new = _item(changed)
    new["ec2"] = {"instanceId": "i-0123456789abcdef0"}

    assert changed_fields(_item(server), new, NOW) == ["ec2", "tags", "drs.tags"]


def _entry(n: int, hostname: str) -> dict[str, Any]:
    arn = f"arn:aws:drs:us-east-1:111122223333:source-server/s-{n:017x}"
    return {
        "sourceServerArn": arn,
        "sourceServerID": f"s-{n:017x}",
        "hostname": hostname,
        "fields": ["\u00e9" * 48] * MAX_FIELDS,
    }


def test_the_worst_plan_is_bounded_and_its_totals_count_everything() -> None:
    # GIVEN more scopes than a plan lists, each with every kind full of the largest entries
    # (every character escaped in JSON)
    outcomes = []
    for index in range(MAX_PLAN_SCOPES + 50):
        outcome = ScopeOutcome(Scope(f"{index:012d}", "us-east-1"), ScopeStatus.ACTIVE)
        entries = [_entry(n, "\u00e9" * 255) for n in range(50)]
        outcome.plan = {kind: bounded(entries, 1000) for kind in KINDS}
        outcomes.append(outcome)
    sweep = SweepResult(unregistered={Scope("999999999999", "eu-west-1"): 7})
    sweep.planned = {Scope("999999999999", "eu-west-1"): (7, [_entry(1, "gone")])}

    plan = _dry_run_plan(outcomes, sweep, 50)

    size = len(json.dumps(plan))
    assert size < MAX_PLAN_SERVER_BYTES + 200_000 < 6 * 2**20 // 2
    assert len(plan["scopes"]) == MAX_PLAN_SCOPES
    assert plan["moreScopes"] == 51  # 250 target scopes + the unregistered one, minus 200
    assert plan["totals"] == {
        kind: 1000 * len(outcomes) + (7 if kind == "softDeleted" else 0) for kind in KINDS
    }
    for scope in plan["scopes"]:
        for kind in KINDS:
            listed = scope[kind]
            assert listed["count"] == len(listed["servers"]) + listed["more"]
    listed_servers = [
        s for scope in plan["scopes"] for kind in KINDS for s in scope[kind]["servers"]
    ]
    assert 0 < len(listed_servers) <= 1000


def test_an_unregistered_accounts_scope_is_listed_as_such() -> None:
    gone = Scope("999999999999", "eu-west-1")
    sweep = SweepResult(unregistered={gone: 2})
    sweep.planned = {gone: (2, [_entry(1, "a"), _entry(2, "b")])}

    plan = _dry_run_plan([], sweep, 1)

    (scope,) = plan["scopes"]
    assert scope["unregistered"] is True
    assert scope["softDeleted"]["count"] == 2
    assert [s["hostname"] for s in scope["softDeleted"]["servers"]] == ["a"]
    assert scope["softDeleted"]["more"] == 1
    assert {kind: scope[kind] for kind in KINDS if kind != "softDeleted"} == {
        kind: v for kind, v in empty_kinds().items() if kind != "softDeleted"
    }
