"""The wire-form BatchWriteItem serializer sends what botocore's own would, byte for byte
once parsed, and DynamoDB stores the same items."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config

from inventory_sync.models import Scope
from inventory_sync.records import inventory_item
from inventory_sync.store import to_attribute_map, use_wire_form_batch_writes
from scripts.local import fleet


def _client(capture: list[Any]) -> Any:
    client = boto3.client("dynamodb", config=Config(parameter_validation=False))
    client.meta.events.register(
        "before-send.dynamodb.BatchWriteItem",
        lambda request, **_: capture.append(json.loads(request.body)),
    )
    return client


def test_wire_form_batch_writes_match_botocores_serializer(tables) -> None:
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
        )
        for s in servers
    ]
    requests = {tables.inventory: [{"PutRequest": {"Item": to_attribute_map(i)}} for i in items]}
    generic_bodies: list[Any] = []
    wire_bodies: list[Any] = []
    generic = _client(generic_bodies)
    wire = _client(wire_bodies)
    assert use_wire_form_batch_writes(wire) is True

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
    assert use_wire_form_batch_writes(boto3.client("dynamodb")) is False


def _scan(table: str) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: item["sourceServerArn"]["S"])
