"""The sync and the refresh write the same items: whichever read DRS later wins, whatever
order their writes land in. The race is made deterministic with a held DynamoDB request."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from inventory_sync.models import SyncSettings
from inventory_sync.refresh import refresh_source_servers
from scripts.local.moto_server import LocalMotoServer, MotoFault
from shared.aws import ClientFactory, make_config
from tests.support.world import HUB, World

SCOPE = (HUB, "us-east-1")
SETTINGS = SyncSettings(max_concurrency=4, page_size=25, deadline_reserve_seconds=0)
HELD_SECONDS = 4.0


def _set_state(world: World, server_id: str, state: str) -> None:
    world.simulator.set_replication_state(*SCOPE, server_id, state)


def _refresh(world: World, server_id: str) -> dict[str, Any]:
    factory = ClientFactory(world.pool(), config=make_config(max_pool_connections=8))
    params = {"accountId": SCOPE[0], "region": SCOPE[1], "sourceServerIDs": [server_id]}
    return refresh_source_servers(params, None, factory=factory, settings=SETTINGS)


# The refresh's read either differs from the stored item (it writes) or matches it (the
# stored item is what the sync read before: the refresh only stamps its read time on it).
@pytest.mark.parametrize("recovered", ["PAUSED", "CONTINUOUS"])
def test_a_refresh_between_the_syncs_read_and_its_write_is_not_undone(
    world: World, moto_server: LocalMotoServer, recovered: str
) -> None:
    # GIVEN one synced server, whose replication then stalls
    (server,) = world.add_servers(*SCOPE, 1, ec2_fraction=0.0)
    arn, server_id = server["arn"], server["sourceServerID"]
    assert world.sync()["status"] == "SUCCEEDED"
    _set_state(world, server_id, "STALLED")
    # ... and the sync's write of that stored server is held in flight
    moto_server.set_fault(
        MotoFault(
            service="dynamodb",
            operation="PutItem",
            table_name=world.tables.inventory,
            kind="hang",
            hang_seconds=HELD_SECONDS,
            count=1,
        )
    )
    outcome: dict[str, Any] = {}
    sync = threading.Thread(target=lambda: outcome.update(world.sync(settings=SETTINGS)))
    sync.start()
    _wait_until_held(moto_server)

    # WHEN DRS changes again and a refresh reads that (after the sync's read)
    _set_state(world, server_id, recovered)
    refreshed = _refresh(world, server_id)
    sync.join(timeout=60)
    assert not sync.is_alive()

    # THEN the sync's older read, landing last, does not undo the refresh's newer one
    assert refreshed["status"] == "SUCCEEDED", refreshed
    assert world.inventory()[arn]["replicationState"] == recovered
    assert outcome["counts"]["serversKeptNewer"] == 1, outcome
    assert outcome["counts"]["serversWritten"] == 0, outcome
    assert outcome["status"] == "SUCCEEDED", outcome["failures"]


def test_a_sync_keeps_an_item_written_from_a_read_after_it_started(world: World) -> None:
    # GIVEN a stored item stamped later than the next sync's start (a refresh that read DRS
    # after the run began, as the scope index shows it)
    (server,) = world.add_servers(*SCOPE, 1, ec2_fraction=0.0)
    arn, server_id = server["arn"], server["sourceServerID"]
    world.sync()
    _set_state(world, server_id, "STALLED")
    assert _refresh(world, server_id)["counts"]["written"] == 1
    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    boto3.client("dynamodb").update_item(
        TableName=world.tables.inventory,
        Key={"sourceServerArn": {"S": arn}},
        UpdateExpression="SET lastSyncTime = :t",
        ExpressionAttributeValues={":t": {"S": later}},
    )

    # WHEN DRS changes again and the sync runs
    _set_state(world, server_id, "CONTINUOUS")
    summary = world.sync(settings=SETTINGS)

    # THEN the sync neither writes the item nor calls it unchanged: kept, and counted so
    assert summary["counts"]["serversKeptNewer"] == 1, summary
    assert summary["counts"]["serversWritten"] == 0
    item = world.inventory()[arn]
    assert (item["replicationState"], item["lastSyncTime"]) == ("STALLED", later)


def _wait_until_held(moto_server: LocalMotoServer, timeout: float = 30.0) -> None:
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        if not moto_server.faults():  # the one-shot fault fired: its request is held
            time.sleep(0.2)  # the held request is in; its hang runs for HELD_SECONDS
            return
        time.sleep(0.05)
    pytest.fail("the sync's PutItem never arrived")
