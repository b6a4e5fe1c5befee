"""sync_source_server_inventory through real boto3 against moto and the DRS simulator."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import boto3
import pytest

from inventory_sync.exceptions import SyncFailedError
from inventory_sync.models import SyncSettings
from tests.support.lambda_context import FakeLambdaContext
from tests.support.world import (
    EXTERNAL_ID,
    HUB,
    REGIONS,
    TARGET_A,
    TARGET_B,
    CallLog,
    World,
    role_arn,
)


def build_fleet(world: World) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Hub + 2 targets x 3 regions; >1 page in the hub's us-east-1; same-account and
    cross-origin-account EC2 servers; one server whose instance does not exist."""
    hub_instances = world.launch_instances(HUB, "us-east-1", 20)
    b_instances = world.launch_instances(TARGET_B, "us-west-2", 4)
    # The relationship is declared by an operator in the registry, never read from DRS data.
    world.invoke("update_target_account", accountId=TARGET_A, ec2SourceAccountIds=[TARGET_B])
    fleet = {
        (HUB, "us-east-1"): world.add_servers(
            HUB, "us-east-1", 60, ec2_instance_ids=hub_instances, ec2_fraction=20 / 60
        ),
        (HUB, "us-west-2"): world.add_servers(HUB, "us-west-2", 5, ec2_fraction=0.0),
        # TARGET_A replicates EC2 instances that live in TARGET_B (cross-account DR), and
        # one whose instance is gone (a synthetic id that exists in no EC2).
        (TARGET_A, "us-east-1"): world.add_servers(
            TARGET_A, "us-east-1", 10, ec2_instance_ids=b_instances, ec2_fraction=0.5
        ),
        (TARGET_A, "eu-west-1"): world.add_servers(TARGET_A, "eu-west-1", 3, ec2_fraction=0.0),
        (TARGET_B, "us-west-2"): world.add_servers(TARGET_B, "us-west-2", 7, ec2_fraction=0.0),
    }
    return fleet


def test_full_fleet_is_written_once_with_the_right_scope_and_enrichment(world: World) -> None:
    fleet = build_fleet(world)
    log = CallLog()

    summary = world.sync(log)

    assert summary["status"] == "SUCCEEDED", summary["failures"]
    total = sum(len(servers) for servers in fleet.values())
    inventory = world.inventory()
    assert len(inventory) == total
    for (account, region), servers in fleet.items():
        for server in servers:
            item = inventory[server["arn"]]
            assert (item["accountId"], item["region"]) == (account, region)
            assert item["sourceServerID"] == server["sourceServerID"]
            assert item["lastSyncTime"] == summary["startedAt"]
            assert "deletedAt" not in item
    counts = summary["counts"]
    assert counts["scopes"] == 9
    assert counts["scopesByStatus"] == {"ACTIVE": 9}
    assert counts["serversSeen"] == counts["serversWritten"] == counts["serversNew"] == total

    # Same-account enrichment: hub servers carry their hub instance's details.
    hub_ec2 = [
        inventory[s["arn"]] for s in fleet[(HUB, "us-east-1")] if "ec2" in inventory[s["arn"]]
    ]
    assert len(hub_ec2) == 20
    ec2 = world.client("ec2", HUB, "us-east-1")
    reservations = ec2.describe_instances()["Reservations"]
    real = {i["InstanceId"]: i for r in reservations for i in r["Instances"]}
    for item in hub_ec2:
        instance = real[item["sourceInstanceId"]]
        assert item["ec2"]["instanceId"] == instance["InstanceId"]
        assert item["ec2"]["vpcId"] == instance["VpcId"]
        assert item["ec2"]["privateIp"] == instance["PrivateIpAddress"]
        assert item["ec2"]["tags"] == {"Owner": f"team-{HUB}"}

    # Cross-origin-account enrichment: TARGET_A's servers read from TARGET_B's EC2.
    a_items = [inventory[s["arn"]] for s in fleet[(TARGET_A, "us-east-1")]]
    cross = [item for item in a_items if "ec2" in item]
    assert len(cross) == 4
    assert all(item["sourceAccountId"] == TARGET_B for item in cross)
    assert all(item["ec2"]["tags"] == {"Owner": f"team-{TARGET_B}"} for item in cross)
    # The fifth EC2-origin server's instance is gone: written anyway, miss counted.
    missing = [item for item in a_items if "sourceInstanceId" in item and "ec2" not in item]
    assert len(missing) == 1
    assert counts["ec2Enriched"] == 24
    assert counts["ec2NotFound"] == 1

    # Region status: one item per scope, ACTIVE, counts as listed.
    status = world.region_status()
    assert set(status) == {(a, r) for a in (HUB, TARGET_A, TARGET_B) for r in REGIONS}
    for scope, item in status.items():
        assert item["status"] == "ACTIVE"
        assert item["serverCount"] == len(fleet.get(scope, []))
        assert item["lastSuccessTime"] == item["lastSyncTime"] == summary["startedAt"]


def test_call_counts_are_the_minimum(world: World) -> None:
    fleet = build_fleet(world)
    log = CallLog()

    summary = world.sync(log)

    # DescribeSourceServers: exactly the pages each scope needs (1 for an empty scope).
    for account in (HUB, TARGET_A, TARGET_B):
        for region in REGIONS:
            servers = len(fleet.get((account, region), []))
            pages = max(1, math.ceil(servers / world.page_size))
            # a full last page needs one more (empty) page to learn there is no more
            assert world.simulator.request_count("DescribeSourceServers", account, region) == pages
    assert summary["counts"]["apiCalls"]["describeSourceServers"] == world.simulator.request_count(
        "DescribeSourceServers"
    )

    # One AssumeRole per target account, each with its externalId.
    assert sorted(call["RoleArn"] for call in log.assume_roles) == [
        role_arn(TARGET_A),
        role_arn(TARGET_B),
    ]
    assert all(call["ExternalId"] == EXTERNAL_ID for call in log.assume_roles)

    # DescribeInstances: batched per origin, never per instance.
    # Origins: hub/us-east-1 (20), TARGET_B/us-west-2 (4), TARGET_A/us-east-1 (the lost one)
    assert log.calls["DescribeInstances"] == 3
    for call in log.describe_instances:
        assert "InstanceIds" not in call
        (id_filter,) = call["Filters"]
        assert id_filter["Name"] == "instance-id"
    assert sorted(len(c["Filters"][0]["Values"]) for c in log.describe_instances) == [1, 4, 20]

    # DynamoDB upserts in batches of 25.
    total = sum(len(servers) for servers in fleet.values())
    scopes_with_servers = len(fleet)
    assert log.calls["BatchWriteItem"] <= math.ceil(total / 25) + scopes_with_servers + 1


def test_second_run_with_nothing_changed_makes_the_same_calls_and_adds_nothing(
    world: World,
) -> None:
    build_fleet(world)
    first_log, second_log = CallLog(), CallLog()
    first = world.sync(first_log)
    before = world.inventory()
    second = world.sync(second_log)
    after = world.inventory()

    # The same reads of DRS, STS and EC2; no inventory write at all: the only BatchWriteItems
    # left are region status, written as scopes finish (at most one batch per scope).
    first_calls, second_calls = dict(first_log.calls), dict(second_log.calls)
    first_calls.pop("BatchWriteItem")
    second_batches = second_calls.pop("BatchWriteItem")
    assert first_calls == second_calls
    assert second_batches <= 9
    assert second["counts"]["serversWritten"] == 0
    assert second["counts"]["serversUnchanged"] == first["counts"]["serversWritten"] > 0
    assert second["counts"]["serversNew"] == 0
    assert second["counts"]["serversSoftDeleted"] == 0
    assert after == before  # every item exactly as the first run wrote it
    # ...and the second run is the one that confirmed them: their scopes say so.
    status = world.region_status()
    assert {row["lastSuccessTime"] for row in status.values()} == {second["startedAt"]}
    assert first["startedAt"] < second["startedAt"]


def small_fleet(world: World) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """A few on-premises servers in every scope: cheap, and every scope has items to lose."""
    return {
        (account, region): world.add_servers(account, region, 3, ec2_fraction=0.0)
        for account in (HUB, TARGET_A, TARGET_B)
        for region in REGIONS
    }


def scope_snapshot(world: World, account: str, region: str) -> list[dict[str, Any]]:
    """The raw DynamoDB items of one scope: compared byte for byte."""
    return [
        item
        for item in world.raw_items(world.tables.inventory)
        if item["accountId"]["S"] == account and item["region"]["S"] == region
    ]


def test_faults_mark_their_scopes_and_leave_their_items_untouched(world: World) -> None:
    fleet = small_fleet(world)
    assert world.sync()["status"] == "SUCCEEDED"
    # GIVEN every scope lost a server in DRS, and four kinds of failure
    for (account, region), servers in fleet.items():
        world.simulator.remove_source_server(account, region, servers[0]["sourceServerID"])
    world.fault(TARGET_A, "us-west-2", "ThrottlingException")
    world.fault(TARGET_A, "eu-west-1", "AccessDeniedException")
    world.fault(HUB, "us-west-2", "UninitializedAccountException")
    world.denied_roles.add(role_arn(TARGET_B))
    failed_scopes = [(TARGET_A, "us-west-2"), (TARGET_A, "eu-west-1"), (HUB, "us-west-2")] + [
        (TARGET_B, region) for region in REGIONS
    ]
    before = {scope: scope_snapshot(world, *scope) for scope in failed_scopes}

    # WHEN the next sync runs
    summary = world.sync()

    # THEN it is PARTIAL, the failures say why, by error code
    assert summary["status"] == "PARTIAL"
    failures = {(f["accountId"], f["region"]): f for f in summary["failures"]}
    assert failures[(TARGET_A, "us-west-2")]["status"] == "THROTTLED"
    assert failures[(TARGET_A, "us-west-2")]["errorCode"] == "ThrottlingException"
    assert failures[(TARGET_A, "eu-west-1")]["status"] == "ACCESS_DENIED"
    assert failures[(TARGET_A, "eu-west-1")]["errorCode"] == "AccessDeniedException"
    for region in REGIONS:
        assert failures[(TARGET_B, region)]["status"] == "ACCESS_DENIED"
        assert failures[(TARGET_B, region)]["errorCode"] == "AssumeRoleFailed"
    # "not initialised" from a scope that holds servers contradicts the inventory: a failure
    assert failures[(HUB, "us-west-2")]["status"] == "ERROR"
    assert failures[(HUB, "us-west-2")]["errorCode"] == "UninitializedAccountException"
    assert len(failures) == 6
    status = world.region_status()
    assert status[(HUB, "us-west-2")]["status"] == "ERROR"
    assert status[(TARGET_A, "us-west-2")]["status"] == "THROTTLED"
    assert status[(TARGET_A, "us-west-2")]["serverCount"] == 3  # last known count stands
    # The failed account was never read with the hub's credentials.
    for region in REGIONS:
        assert world.simulator.request_count("DescribeSourceServers", TARGET_B, region) == 1

    # Items of failed and uninitialised scopes: byte-for-byte unchanged.
    for scope in failed_scopes:
        assert scope_snapshot(world, *scope) == before[scope], scope
    # Every other scope completed: its vanished server is soft-deleted, the rest fresh.
    completed = [scope for scope in fleet if scope not in failed_scopes]
    assert len(completed) == 3
    for account, region in completed:
        items = world.scope_items(account, region)
        gone = items[fleet[(account, region)][0]["arn"]]
        assert gone["deletedAt"] == summary["startedAt"]
        kept = [i for arn, i in items.items() if arn != gone["sourceServerArn"]]
        assert world.unconfirmed(summary, account, region) == []
        assert all("deletedAt" not in i for i in kept) and len(kept) == 2
    assert summary["counts"]["serversSoftDeleted"] == 3


def test_throttling_is_retried_by_botocore_then_succeeds(world: World) -> None:
    world.add_servers(HUB, "us-east-1", 4, ec2_fraction=0.0)
    world.fault(HUB, "us-east-1", "ThrottlingException", count=2)
    summary = world.sync(regions=["us-east-1"], accountIds=[HUB])
    assert summary["status"] == "SUCCEEDED"
    assert world.simulator.request_count("DescribeSourceServers", HUB, "us-east-1") == 3
    assert len(world.scope_items(HUB, "us-east-1")) == 4


def test_every_scope_failing_is_failed_and_the_invocation_fails(world: World) -> None:
    small_fleet(world)
    world.sync()
    world.fault(None, None, "AccessDeniedException")
    before = world.raw_items(world.tables.inventory)

    with pytest.raises(SyncFailedError) as raised:
        world.invoke("sync_source_server_inventory")

    summary = raised.value.summary
    assert summary["status"] == "FAILED"
    assert len(summary["failures"]) == 9
    assert "FAILED" in str(raised.value) and "AccessDeniedException" in str(raised.value)
    # status was recorded before failing, the inventory is untouched, the lease released
    assert {item["status"] for item in world.region_status().values()} == {"ACCESS_DENIED"}
    assert world.raw_items(world.tables.inventory) == before
    assert world.lease() is None


def test_soft_delete_is_scoped_happens_once_and_a_returning_server_is_revived(world: World) -> None:
    fleet = small_fleet(world)
    world.sync()
    victim = fleet[(TARGET_A, "eu-west-1")][1]
    world.simulator.remove_source_server(TARGET_A, "eu-west-1", victim["sourceServerID"])

    first = world.sync()
    deleted = world.inventory()[victim["arn"]]
    assert deleted["deletedAt"] == first["startedAt"]
    assert int(deleted["expiresAt"]) > 0
    assert first["counts"]["serversSoftDeleted"] == 1
    others = [i for arn, i in world.inventory().items() if arn != victim["arn"]]
    assert all("deletedAt" not in item for item in others)

    second = world.sync()
    again = world.inventory()[victim["arn"]]
    assert (again["deletedAt"], again["expiresAt"]) == (deleted["deletedAt"], deleted["expiresAt"])
    assert second["counts"]["serversSoftDeleted"] == 0

    world.simulator.add_source_servers(TARGET_A, "eu-west-1", [victim])
    third = world.sync()
    revived = world.inventory()[victim["arn"]]
    assert "deletedAt" not in revived and "expiresAt" not in revived
    assert revived["lastSyncTime"] == third["startedAt"]
    assert third["counts"]["serversRevived"] == 1


def test_an_item_written_after_the_run_started_is_never_soft_deleted(world: World) -> None:
    small_fleet(world)
    world.sync()
    # GIVEN an item a newer run wrote (its lastSyncTime is later than this run's start)
    # in a scope whose DRS listing does not contain it
    table = world.inventory()
    newer = dict(next(iter(world.scope_items(HUB, "us-east-1").values())))
    newer["sourceServerArn"] = newer["sourceServerArn"][:-1] + "f"
    newer["sourceServerID"] = newer["sourceServerArn"].rsplit("/", 1)[1]
    newer["lastSyncTime"] = "2999-01-01T00:00:00.000Z"
    boto3.resource("dynamodb").Table(world.tables.inventory).put_item(Item=newer)
    assert newer["sourceServerArn"] not in table

    world.sync()

    assert "deletedAt" not in world.inventory()[newer["sourceServerArn"]]


def test_unregistered_account_items_are_soft_deleted_by_a_full_run_only(world: World) -> None:
    fleet = small_fleet(world)
    world.sync()
    world.invoke("delete_target_account", accountId=TARGET_B)

    narrowed = world.sync(regions=["us-east-1"])
    assert all("deletedAt" not in i for i in world.inventory().values())
    assert narrowed["counts"]["unregisteredAccountsSwept"] == []

    full = world.sync()
    inventory = world.inventory()
    for (account, _), servers in fleet.items():
        for server in servers:
            assert ("deletedAt" in inventory[server["arn"]]) is (account == TARGET_B)
    assert full["counts"]["unregisteredAccountsSwept"] == [TARGET_B]
    assert full["counts"]["serversSoftDeleted"] == 9
    assert full["status"] == "SUCCEEDED"
    assert not any(account == TARGET_B for account, _ in world.region_status())


def test_narrowed_run_touches_only_its_scopes(world: World) -> None:
    fleet = small_fleet(world)
    world.sync()
    for (account, region), servers in fleet.items():
        world.simulator.remove_source_server(account, region, servers[0]["sourceServerID"])
    before = world.raw_items(world.tables.inventory)

    summary = world.sync(accountIds=[TARGET_A], regions=["eu-west-1"])

    assert summary["counts"]["scopes"] == 1
    assert summary["counts"]["serversSoftDeleted"] == 1
    changed = [i for i in world.raw_items(world.tables.inventory) if i not in before]
    assert {(i["accountId"]["S"], i["region"]["S"]) for i in changed} == {(TARGET_A, "eu-west-1")}


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"accountIds": ["999999999999"]}, "valid accountIds"),
        ({"regions": ["ap-mars-1"]}, "valid regions"),
        ({"regions": ["mars-north-1"]}, "region"),
        ({"regions": "us-east-1"}, "must be list"),
        ({"dryRun": "yes"}, "must be boolean"),
    ],
)
def test_bad_parameters_are_refused_and_write_nothing(world: World, params, reason) -> None:
    small_fleet(world)
    with pytest.raises(Exception, match=reason) as raised:
        world.invoke("sync_source_server_inventory", **params)
    assert type(raised.value).__name__ == "InvalidParameterError"
    assert world.raw_items(world.tables.inventory) == []
    assert world.region_status() == {}


def test_overlapping_runs_the_second_is_skipped(world: World) -> None:
    small_fleet(world)
    world.simulator.set_latency(150)  # every DRS call is slow: the first run takes a while
    first: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: first.update(world.sync()))
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while world.lease() is None and runner.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert world.lease() is not None, "the first run never took the lease"

        second = world.sync()
    finally:
        runner.join(timeout=60)

    assert second["status"] == "SKIPPED"
    assert first["runId"] in second["skippedBecause"]
    assert second["counts"]["scopes"] == 0
    assert first["status"] == "SUCCEEDED"
    assert world.lease() is None
    # The skipped run listed nothing: every DRS call belongs to the first run.
    assert world.simulator.request_count("DescribeSourceServers") == 9


def test_dry_runs_hold_a_lease_of_their_own(world: World) -> None:
    small_fleet(world)
    world.sync()
    world.put_lease("someone-else", {"N": str(int(time.time()) + 600)})
    assert world.sync()["status"] == "SKIPPED"
    # A running sync does not block a dry run, and the dry run leaves no lease behind...
    assert world.sync(dryRun=True)["status"] == "SUCCEEDED"
    assert world.lease("inventory-sync-dry-run") is None
    # ...but a second dry run while one runs is SKIPPED: dry runs cannot fan out unbounded.
    world.put_lease("another-dry-run", {"N": str(int(time.time()) + 600)}, "inventory-sync-dry-run")
    skipped = world.sync(dryRun=True)
    assert skipped["status"] == "SKIPPED"
    assert "another-dry-run" in skipped["skippedBecause"]


def test_deadline_skips_unstarted_scopes_and_deletes_nothing_there(world: World) -> None:
    fleet = small_fleet(world)
    world.sync()
    for (account, region), servers in fleet.items():
        world.simulator.remove_source_server(account, region, servers[0]["sourceServerID"])
    before = world.raw_items(world.tables.inventory)
    world.simulator.reset_counts()
    world.simulator.set_latency(800)
    # One scope at a time, 0.8 s per DRS call (under the 1 s read timeout a 5 s run gets),
    # and 5 s left: only the first scopes start (planning on a loaded machine has taken most
    # of a second: the run still starts one).
    settings = SyncSettings(max_concurrency=1, page_size=25, deadline_reserve_seconds=0)

    summary = world.sync(context=FakeLambdaContext(timeout_ms=5000), settings=settings)

    by_status = summary["counts"]["scopesByStatus"]
    assert 1 <= by_status.get("ACTIVE", 0) < 9
    assert by_status["SKIPPED"] == 9 - by_status["ACTIVE"]
    assert summary["status"] == "PARTIAL"
    skipped = {
        (f["accountId"], f["region"])
        for f in summary["failures"]
        if f["status"] == "SKIPPED" and f["errorCode"] == "DeadlineReached"
    }
    assert len(skipped) == by_status["SKIPPED"]
    for account, region in skipped:
        # not started, or stopped with its first page in flight when the deadline came
        assert world.simulator.request_count("DescribeSourceServers", account, region) <= 1
        snapshot = [
            i for i in before if (i["accountId"]["S"], i["region"]["S"]) == (account, region)
        ]
        assert scope_snapshot(world, account, region) == snapshot
        assert world.region_status()[(account, region)]["status"] == "SKIPPED"
    assert summary["counts"]["serversSoftDeleted"] == by_status["ACTIVE"]


def test_dry_run_reports_and_leaves_every_table_byte_for_byte_unchanged(world: World) -> None:
    fleet = small_fleet(world)
    world.sync()
    world.simulator.remove_source_server(
        HUB, "us-east-1", fleet[(HUB, "us-east-1")][0]["sourceServerID"]
    )
    world.add_servers(TARGET_A, "us-west-2", 2, ec2_fraction=0.0)
    world.invoke("delete_target_account", accountId=TARGET_B)
    tables = (world.tables.inventory, world.tables.region_status, world.tables.target_accounts)
    before = {table: world.raw_items(table) for table in tables}

    summary = world.sync(dryRun=True)

    assert summary["dryRun"] is True
    assert summary["counts"]["serversNew"] == 2
    assert summary["counts"]["serversSoftDeleted"] == 1 + 9  # vanished + unregistered account
    assert summary["counts"]["unregisteredAccountsSwept"] == [TARGET_B]
    for table in tables:
        assert world.raw_items(table) == before[table], table


def test_an_origin_account_named_by_drs_data_alone_is_never_read(world: World) -> None:
    # GIVEN instances in the hub and in TARGET_B, and TARGET_A's DRS claiming servers that
    # originate there (the target account controls that data); no relationship registered
    hub_instances = world.launch_instances(HUB, "us-east-1", 2)
    b_instances = world.launch_instances(TARGET_B, "us-east-1", 2)
    claimed = {**hub_instances, **b_instances}
    servers = world.add_servers(
        TARGET_A, "us-east-1", 4, ec2_instance_ids=claimed, ec2_fraction=1.0
    )
    log = CallLog()

    # WHEN the sync runs
    summary = world.sync(log)

    # THEN neither the hub's nor B's instance details reach A's items, and nothing was read
    assert summary["status"] == "SUCCEEDED", summary["failures"]
    assert summary["counts"]["ec2OriginRefused"] == 4
    assert summary["counts"]["ec2Enriched"] == 0
    items = world.scope_items(TARGET_A, "us-east-1")
    assert len(items) == 4 and all("ec2" not in item for item in items.values())
    assert log.describe_instances == []
    assert {s["sourceCloudProperties"]["originAccountID"] for s in servers} == {HUB, TARGET_B}

    # WHEN an operator declares B as an EC2 source of A, B's instances are read with B's role;
    # the hub's never are (the hub's credentials serve the hub's own servers only)
    world.invoke("update_target_account", accountId=TARGET_A, ec2SourceAccountIds=[TARGET_B, HUB])
    second = world.sync()
    assert second["counts"]["ec2Enriched"] == 2
    assert second["counts"]["ec2OriginRefused"] == 2
    enriched = {
        item["ec2"]["instanceId"]
        for item in world.scope_items(TARGET_A, "us-east-1").values()
        if "ec2" in item
    }
    assert enriched == set(b_instances)
