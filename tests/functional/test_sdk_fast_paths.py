"""The sync's shortcuts through botocore internals (inventory_sync.sdk_fast_paths): each
gives what botocore's documented path gives, is off outside the tested botocore range or
with the kill switch, and fails closed when botocore stops honouring it."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore
import pytest
from botocore.config import Config
from botocore.serialize import JSONSerializer

from inventory_sync import sdk_fast_paths
from inventory_sync.deadline import Deadline
from inventory_sync.exceptions import SyncFailedError
from inventory_sync.models import Scope, SyncSettings
from inventory_sync.params import parse_sync_params
from inventory_sync.records import inventory_item
from inventory_sync.sdk_fast_paths import (
    JSON_LISTING,
    KILL_SWITCH_ENV,
    TESTED_BOTOCORE,
    WIRE_BATCH_WRITES,
    FastPaths,
)
from inventory_sync.store import to_attribute_map
from inventory_sync.sync import SyncRun
from scripts.local import fleet
from scripts.local.drs_simulator import DrsSimulator
from shared.aws import ClientFactory, make_config
from shared.config import TableNames
from tests.functional.test_inventory_sync import small_fleet
from tests.support.drs import drs_client
from tests.support.world import World


def test_fast_parsing_equals_botocore_parsing(drs_simulator: DrsSimulator) -> None:
    servers = fleet.generate_fleet(
        "123456789012",
        "us-east-1",
        40,
        ec2_fraction=0.5,
        extended_fraction=0.25,
        staging_account_ids=["999988887777"],
    )
    drs_simulator.add_source_servers("123456789012", "us-east-1", servers)
    plain = drs_client(drs_simulator.endpoint)
    fast = drs_client(drs_simulator.endpoint)
    on = FastPaths.detect({})
    assert on.use_json_listing(fast) is True
    assert on.use_json_listing(fast) is True  # idempotent: a second install changes nothing

    for page_size in (7, 40):
        expected = plain.describe_source_servers(maxResults=page_size)
        got = fast.describe_source_servers(maxResults=page_size)
        assert got["items"] == expected["items"]
        assert got.get("nextToken") == expected.get("nextToken")
        assert len(got["items"]) == page_size


def _batch_client(capture: list[Any]) -> Any:
    client = boto3.client("dynamodb", config=Config(parameter_validation=False))
    client.meta.events.register(
        "before-send.dynamodb.BatchWriteItem",
        lambda request, **_: capture.append(json.loads(request.body)),
    )
    return client


def test_wire_form_batch_writes_match_botocores_serializer(tables: TableNames) -> None:
    scope = Scope("123456789012", "us-east-1")
    servers = fleet.generate_fleet(
        scope.account_id,
        scope.region,
        10,
        ec2_fraction=0.5,
        extended_fraction=0.2,
        staging_account_ids=["999988887777"],
    )
    items = [
        inventory_item(
            s,
            scope,
            "2026-11-26T08:00:00.000Z",
            {"instanceId": "i-1", "securityGroupIds": ["sg-1"], "tags": {}},
            "digest",
        )
        for s in servers
    ]
    requests = {tables.inventory: [{"PutRequest": {"Item": to_attribute_map(i)}} for i in items]}
    generic_bodies: list[Any] = []
    wire_bodies: list[Any] = []
    generic = _batch_client(generic_bodies)
    wire = _batch_client(wire_bodies)
    assert FastPaths.detect({}).use_wire_batch_writes(wire) is True
    assert FastPaths.detect({}).use_wire_batch_writes(wire) is True  # kept from a last run

    generic.batch_write_item(RequestItems=requests)
    stored_generic = _scan(tables.inventory)
    for item in items:
        generic.delete_item(
            TableName=tables.inventory, Key={"sourceServerArn": {"S": item["sourceServerArn"]}}
        )
    wire.batch_write_item(RequestItems=requests)

    assert wire_bodies == generic_bodies
    assert _scan(tables.inventory) == stored_generic
    assert len(stored_generic) == 10


def test_a_validating_client_is_left_alone(moto_endpoint: str) -> None:
    assert FastPaths.detect({}).use_wire_batch_writes(boto3.client("dynamodb")) is False


def _scan(table: str) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: item["sourceServerArn"]["S"])


@pytest.mark.parametrize("switch", ["off", "OFF", "0", "false", "no"])
def test_the_kill_switch_turns_every_fast_path_off(switch: str, moto_endpoint: str) -> None:
    paths = FastPaths.detect({KILL_SWITCH_ENV: switch})
    assert not paths.enabled and KILL_SWITCH_ENV in paths.reason
    client = boto3.client("dynamodb", config=Config(parameter_validation=False))
    assert paths.use_wire_batch_writes(client) is False
    assert type(client._serializer) is JSONSerializer  # botocore's own, untouched
    drs = boto3.client("drs", region_name="us-east-1")
    assert paths.use_json_listing(drs) is False


@pytest.mark.parametrize("version", ["1.43.10", "1.44.0", "2.0.0", "1.43", "dev"])
def test_an_untested_botocore_gets_the_documented_path(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(botocore, "__version__", version)
    paths = FastPaths.detect({})
    assert paths.enabled is False
    assert version in paths.reason


def test_the_tested_range_holds_the_pinned_botocore() -> None:
    # The Lambda package bundles the pinned botocore; the tests run it: both are in range.
    paths = FastPaths.detect({})
    assert paths.enabled, paths.reason
    low, high = TESTED_BOTOCORE
    assert low <= tuple(int(p) for p in botocore.__version__.split(".")) < high


def test_with_the_kill_switch_the_sync_gives_the_same_inventory(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_fleet(world)
    fast = world.sync()
    fast_items = _inventory(world)
    monkeypatch.setenv(KILL_SWITCH_ENV, "off")
    table = boto3.resource("dynamodb").Table(world.tables.inventory)
    for arn in fast_items:  # rewrite everything through the documented paths
        table.delete_item(Key={"sourceServerArn": arn})
    slow = world.sync()
    assert fast["status"] == slow["status"] == "SUCCEEDED"
    slow_items = _inventory(world)
    assert slow_items.keys() == fast_items.keys() and len(slow_items) > 0
    for arn, item in slow_items.items():
        assert item["drs"] == fast_items[arn]["drs"]
        assert item["contentDigest"] == fast_items[arn]["contentDigest"]


def test_a_botocore_that_drops_the_items_fails_closed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a synced inventory, and a botocore that no longer merges customized_response_dict
    # (the fast path takes `items` out of the body and they never reach the result)
    small_fleet(world)
    assert world.sync()["status"] == "SUCCEEDED"
    before = _inventory(world)

    def taken_and_lost(response_dict: dict[str, Any], **_: Any) -> None:
        if response_dict.get("status_code") == 200:
            body = json.loads(response_dict["body"] or b"{}")
            body.pop("items", None)
            response_dict["body"] = json.dumps(body).encode()

    monkeypatch.setattr(sdk_fast_paths, "_parse_items_with_json", taken_and_lost)
    # WHEN the sync runs
    with pytest.raises(SyncFailedError) as failed:
        world.sync()
    # THEN no scope with servers is read as empty: each is MalformedResponse, nothing deleted
    summary = failed.value.summary
    assert summary["counts"]["serversSoftDeleted"] == 0
    assert {f["errorCode"] for f in summary["failures"]} == {"MalformedResponse"}
    assert _inventory(world) == before


def test_the_run_logs_the_sdk_and_its_fast_paths(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    small_fleet(world)
    with caplog.at_level(logging.INFO):
        world.sync()
    planned = [record for record in caplog.records if record.getMessage() == "sync planned"]
    assert len(planned) == 1
    assert planned[0].botocoreVersion == botocore.__version__  # type: ignore[attr-defined]
    assert planned[0].fastPaths == [JSON_LISTING, WIRE_BATCH_WRITES]  # type: ignore[attr-defined]


def test_only_a_client_of_its_own_gets_the_wire_serializer(world: World) -> None:
    small_fleet(world)
    factory = ClientFactory(world.pool(), config=make_config(max_pool_connections=8))
    run = SyncRun(
        parse_sync_params({}),
        factory,
        SyncSettings(max_concurrency=2, deadline_reserve_seconds=0),
        Deadline(60),
        lambda: datetime.now(UTC),
    )
    shared = factory.client("dynamodb", factory.home_region, validate=False)
    assert shared is run.dynamodb
    assert type(shared._serializer) is JSONSerializer
    assert run.store._batch_client is not shared
    assert type(run.store._batch_client._serializer).__name__ == "_WireFormBatchWrites"


def _inventory(world: World) -> dict[str, dict[str, Any]]:
    return world.inventory()
