"""The narrowing a fan-out needs: shards of the estate run side by side, a sweep-only run
finishes them. Shards + sweep must leave the inventory exactly as one full run does."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from inventory_sync.lease import SYNC_LEASE
from shared.exceptions import InvalidParameterError
from tests.functional.test_inventory_sync import small_fleet
from tests.support.world import HUB, TARGET_A, TARGET_B, World

CONTENT = ("sourceServerArn", "accountId", "region", "contentDigest", "drs", "tags")


def _content(world: World) -> dict[str, dict[str, Any]]:
    """The inventory without run times: what a run decides, not when it ran."""
    return {
        arn: {k: v for k, v in item.items() if k in CONTENT} | {"live": "deletedAt" not in item}
        for arn, item in world.inventory().items()
    }


def test_shards_and_a_sweep_give_what_one_full_run_gives(world: World) -> None:
    # GIVEN an estate synced once, then changed: servers gone, one account deregistered
    fleet = small_fleet(world)
    assert world.sync()["status"] == "SUCCEEDED"
    for (account, region), servers in fleet.items():
        world.simulator.remove_source_server(account, region, servers[0]["sourceServerID"])
    world.invoke("delete_target_account", accountId=TARGET_B)
    world.add_servers(HUB, "us-east-1", 2, ec2_fraction=0.0)

    # WHEN one world runs a full sync, and the same changes are fanned out as two shards
    # plus a sweep-only run
    before = world.inventory()
    full = world.sync()
    after_full = _content(world)
    table = world.tables.inventory
    _restore(world, table, before)
    shard_1 = world.sync(accountIds=[HUB], shard="batch-1")
    shard_2 = world.sync(accountIds=[TARGET_A], shard="batch-2")
    swept = world.sync(sweepOnly=True)

    # THEN the fan-out leaves the inventory exactly as the full run did
    assert full["status"] == shard_1["status"] == shard_2["status"] == swept["status"]
    assert full["status"] == "SUCCEEDED"
    assert _content(world) == after_full
    assert swept["counts"]["scopes"] == 0
    assert swept["counts"]["apiCalls"]["describeSourceServers"] == 0
    assert swept["counts"]["unregisteredAccountsSwept"] == [TARGET_B]
    assert shard_1["counts"]["unregisteredAccountsSwept"] == []  # shards never sweep


def _restore(world: World, table: str, items: dict[str, dict[str, Any]]) -> None:
    resource = boto3.resource("dynamodb").Table(table)
    current = world.inventory()
    with resource.batch_writer() as batch:
        for arn in set(current) - set(items):
            batch.delete_item(Key={"sourceServerArn": arn})
        for item in items.values():
            batch.put_item(Item=item)


def test_a_shard_holds_its_own_lease(world: World) -> None:
    small_fleet(world)
    # GIVEN shard batch-1 running (its lease held), and a full run's lease held too
    world.put_lease("batch-1-run", {"N": str(int(time.time()) + 600)}, f"{SYNC_LEASE}#batch-1")
    # WHEN shard batch-2 starts, it runs; a second batch-1 is SKIPPED
    assert world.sync(accountIds=[TARGET_A], shard="batch-2")["status"] == "SUCCEEDED"
    assert world.lease(f"{SYNC_LEASE}#batch-2") is None  # released
    skipped = world.sync(accountIds=[HUB], shard="batch-1")
    assert skipped["status"] == "SKIPPED" and "batch-1-run" in skipped["skippedBecause"]
    # ... and a sweep-only run takes the shared lease: a full run holding it makes it wait
    world.put_lease("full-run", {"N": str(int(time.time()) + 600)})
    assert world.sync(sweepOnly=True)["status"] == "SKIPPED"


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"shard": "batch-1"}, "accountIds"),
        ({"shard": "Batch_1", "accountIds": [HUB]}, "shard"),
        ({"shard": "", "accountIds": [HUB]}, "shard"),
        ({"shard": "x" * 33, "accountIds": [HUB]}, "shard"),
        ({"sweepOnly": True, "accountIds": [HUB]}, "accountIds"),
        ({"sweepOnly": True, "regions": ["us-east-1"]}, "regions"),
        ({"sweepOnly": True, "shard": "a", "accountIds": [HUB]}, "shard"),
        ({"sweepOnly": "yes"}, "sweepOnly"),
    ],
)
def test_fan_out_parameters_are_strict(world: World, params: dict[str, Any], names: str) -> None:
    with pytest.raises(InvalidParameterError, match=names):
        world.sync(**params)
    assert world.inventory() == {}
