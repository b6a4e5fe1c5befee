"""The local moto server's capacity meter and fast DynamoDB paths, through real boto3 clients.

Each server runs in its own process (`python -m scripts.local.moto_server`), as the benchmark
runs it: the fast paths patch moto process-wide, and must not leak into this test process.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from scripts.bench.processes import clean_env, moto_server
from scripts.local.moto_server import MotoControl

TABLE = "capacity-test"
RANGED = "capacity-ranged"
INDEX = "by-scope"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A plain moto server and one with --fast-dynamodb --capacity --manual-gc, each in its
    own process."""
    logs: Path = tmp_path_factory.mktemp("moto-logs")
    env = clean_env()
    with (
        moto_server(logs / "plain", env, {}) as (_, plain),
        moto_server(logs / "fast", env, {}, fast_dynamodb=True, capacity=True, manual_gc=True) as (
            _,
            fast,
        ),
    ):
        yield {"plain": plain, "fast": fast}


def _client(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )


def _create_tables(client: Any, table: str = TABLE, ranged: str = RANGED) -> None:
    key = [{"AttributeName": "pk", "KeyType": "HASH"}]
    scope_index = {
        "IndexName": INDEX,
        "KeySchema": [
            {"AttributeName": "acct", "KeyType": "HASH"},
            {"AttributeName": "reg", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }
    slim_index = {
        "IndexName": "slim",
        "KeySchema": [{"AttributeName": "acct", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["state"]},
    }
    client.create_table(
        TableName=table,
        KeySchema=key,
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "acct", "reg")
        ],
        GlobalSecondaryIndexes=[scope_index, slim_index],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=ranged,
        KeySchema=[*key, {"AttributeName": "n", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def test_capacity_of_a_put_a_batch_and_an_update(servers: dict[str, str]) -> None:
    client = _client(servers["fast"])
    control = MotoControl(servers["fast"])
    _create_tables(client)
    control.reset_capacity()

    # A put of a small item in both indexes: table 1, by-scope 1, slim 1 (all under 1 KB).
    client.put_item(
        TableName=TABLE,
        Item={"pk": {"S": "p0"}, "acct": {"S": "a"}, "reg": {"S": "r"}, "state": {"S": "OK"}},
    )
    # A batch of 3 items of 2 + 2 + (4 + 1) + (3 + 1) + (4 + 1500) = 1517 bytes each:
    # table 3 x 2; by-scope (ALL) 3 x 2; slim (pk + acct: 9 bytes) 3 x 1.
    client.batch_write_item(
        RequestItems={
            TABLE: [
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": f"p{i}"},
                            "acct": {"S": "a"},
                            "reg": {"S": "r"},
                            "blob": {"S": "x" * 1500},
                        }
                    }
                }
                for i in range(1, 4)
            ]
        }
    )
    # An update of p1's blob: table max(1517, 1517) -> 2; by-scope changed -> 2; slim
    # unchanged (blob is not projected) -> 0.
    client.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "p1"}},
        UpdateExpression="SET #blob = :b",
        ExpressionAttributeNames={"#blob": "blob"},
        ExpressionAttributeValues={":b": {"S": "y" * 1500}},
    )
    # A put whose condition fails: charged for the larger of stored (20 B) and sent -> 1;
    # no index changes.
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(
            TableName=TABLE,
            Item={"pk": {"S": "p0"}, "acct": {"S": "b"}, "reg": {"S": "r"}},
            ConditionExpression="attribute_not_exists(pk)",
        )
    # A Query of the four by-scope entries: (2 + 2 + 5 + 4 + 7) = 20 + 3 x 1517 = 4571
    # bytes -> 2 x 4 KB, eventually consistent -> 1.0.
    page = client.query(
        TableName=TABLE,
        IndexName=INDEX,
        KeyConditionExpression="acct = :a AND reg = :r",
        ExpressionAttributeValues={":a": {"S": "a"}, ":r": {"S": "r"}},
        ProjectionExpression="pk",
    )
    assert page["Count"] == 4
    # A consistent GetItem of p0 (20 bytes): 1.0.
    client.get_item(TableName=TABLE, Key={"pk": {"S": "p0"}}, ConsistentRead=True)

    usage = control.capacity()["tables"][TABLE]
    assert usage["tableWriteUnits"] == 1 + 6 + 2 + 1
    assert usage["indexWriteUnits"] == {INDEX: 1 + 6 + 2, "slim": 1 + 3}
    assert usage["writeUnits"] == 10 + 9 + 4
    assert usage["itemsWritten"] == 5  # the failed put wrote nothing
    assert usage["indexReadUnits"] == {INDEX: 1.0}
    assert usage["tableReadUnits"] == 1.0
    assert usage["requests"] == {
        "PutItem": 2,
        "BatchWriteItem": 1,
        "UpdateItem": 1,
        "Query": 1,
        "GetItem": 1,
    }
    assert usage["unmeteredRequests"] == {}

    control.reset_capacity()
    assert control.capacity()["tables"] == {}


def _strip(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k not in ("ResponseMetadata", "ConsumedCapacity")}


def _pages(call: Any, **request: Any) -> list[dict[str, Any]]:
    pages = []
    while True:
        page = _strip(call(**request))
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            return pages
        request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def test_fast_paths_answer_what_moto_answers(servers: dict[str, str]) -> None:
    # GIVEN the same items in a plain and a fast server
    plain, fast = _client(servers["plain"]), _client(servers["fast"])
    table, ranged = "equivalence", "equivalence-ranged"
    for client in (plain, fast):
        _create_tables(client, table, ranged)
    rng = random.Random(11)
    items = []
    for i in range(240):
        item = {
            "pk": {"S": f"id-{rng.randrange(10**6):06d}-{i}"},
            "state": {"S": rng.choice(["OK", "BAD"])},
            "size": {"N": str(rng.randrange(10**4))},
            "blob": {"S": "z" * rng.randrange(10, 9000)},
            "tags": {"M": {"env": {"S": rng.choice(["prod", "dev"])}}},
            "bits": {"B": rng.randbytes(8)},
            "flags": {"L": [{"BOOL": True}, {"NULL": True}, {"NS": ["1", "2.5"]}]},
        }
        if i % 7:  # a sparse index: some items have no index key
            item.update(acct={"S": f"a{i % 3}"}, reg={"S": f"r{i % 4}"})
        items.append(item)
    for client in (plain, fast):
        for start in range(0, len(items), 25):
            batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            client.batch_write_item(RequestItems={table: batch})
        for n in range(60):
            client.put_item(TableName=ranged, Item={"pk": {"S": f"k{n % 3}"}, "n": {"N": str(n)}})

    scope = {
        "KeyConditionExpression": "acct = :a AND reg = :r",
        "ExpressionAttributeValues": {":a": {"S": "a1"}, ":r": {"S": "r1"}},
    }
    requests: list[tuple[str, dict[str, Any]]] = [
        ("query", {"TableName": table, "IndexName": INDEX, **scope}),
        ("query", {"TableName": table, "IndexName": INDEX, "Limit": 4, **scope}),
        (
            "query",
            {
                "TableName": table,
                "IndexName": INDEX,
                "ProjectionExpression": "pk, #s, tags.env, bits",
                "ExpressionAttributeNames": {"#s": "state"},
                "ScanIndexForward": False,
                "Limit": 3,
                **scope,
            },
        ),
        (
            "query",
            {
                "TableName": table,
                "IndexName": INDEX,
                "Select": "COUNT",
                "FilterExpression": "attribute_not_exists(gone) AND #s = :ok",
                "ExpressionAttributeNames": {"#s": "state"},
                "KeyConditionExpression": "acct = :a AND begins_with(reg, :p)",
                "ExpressionAttributeValues": {
                    ":a": {"S": "a2"},
                    ":p": {"S": "r"},
                    ":ok": {"S": "OK"},
                },
            },
        ),
        (
            "query",
            {
                "TableName": table,
                "IndexName": "slim",
                "KeyConditionExpression": "acct = :a",
                "ExpressionAttributeValues": {":a": {"S": "a0"}},
                "Limit": 5,
            },
        ),
        (
            "query",
            {
                "TableName": table,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": items[5]["pk"]},
            },
        ),
        (
            "query",
            {
                "TableName": ranged,
                "KeyConditionExpression": "pk = :p AND n BETWEEN :lo AND :hi",
                "ExpressionAttributeValues": {
                    ":p": {"S": "k1"},
                    ":lo": {"N": "10"},
                    ":hi": {"N": "40"},
                },
                "Limit": 4,
                "ScanIndexForward": False,
            },
        ),
        ("scan", {"TableName": table}),
        ("scan", {"TableName": table, "Limit": 17, "ProjectionExpression": "pk, acct"}),
        (
            "scan",
            {
                "TableName": table,
                "FilterExpression": "#s = :bad",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": {":bad": {"S": "BAD"}},
                "ConsistentRead": True,
            },
        ),
        ("scan", {"TableName": ranged, "Limit": 7}),
    ]

    # WHEN both answer every request, every page
    # THEN the answers are the same, page for page
    for operation, request in requests:
        expected = _pages(getattr(plain, operation), **request)
        answered = _pages(getattr(fast, operation), **request)
        assert answered == expected, (operation, request)
    # AND after items move between partitions, leave them and join them, the indexes agree
    movers = [item for item in items if "acct" in item][:3]
    for client in (plain, fast):
        client.update_item(
            TableName=table,
            Key={"pk": movers[0]["pk"]},
            UpdateExpression="SET acct = :a, reg = :r",
            ExpressionAttributeValues={":a": {"S": "a1"}, ":r": {"S": "r1"}},
        )
        client.update_item(
            TableName=table, Key={"pk": movers[1]["pk"]}, UpdateExpression="REMOVE acct"
        )
        client.delete_item(TableName=table, Key={"pk": movers[2]["pk"]})
        client.put_item(
            TableName=table,
            Item={"pk": {"S": "new-one"}, "acct": {"S": "a1"}, "reg": {"S": "r1"}},
        )
    for operation, request in requests[:5]:
        expected = _pages(getattr(plain, operation), **request)
        assert _pages(getattr(fast, operation), **request) == expected, (operation, request)
    # AND after an update grows an item in place, pages still break where moto breaks them
    # (the fast paths' cached sizes follow the update)
    for client in (plain, fast):
        client.update_item(
            TableName=table,
            Key={"pk": items[0]["pk"]},
            UpdateExpression="SET #b = :b",
            ExpressionAttributeNames={"#b": "blob"},
            ExpressionAttributeValues={":b": {"S": "w" * 300_000}},
        )
    assert _pages(fast.scan, TableName=table) == _pages(plain.scan, TableName=table)
    # AND the meter sized every fast Query and Scan (nothing fell back unmetered)
    usage = MotoControl(servers["fast"]).capacity()["tables"][table]
    assert usage["unmeteredRequests"] == {}


def test_full_collections_run_only_when_asked(servers: dict[str, str]) -> None:
    # GIVEN the fast server (--manual-gc) after enough requests for young collections
    client, control = _client(servers["fast"]), MotoControl(servers["fast"])
    control.reset_stats()
    for _ in range(200):
        client.list_tables()

    # THEN no full collection ran on its own; asked for, one runs under moto's lock
    assert "2" not in control.gc_pauses()["collections"]
    collected = control.collect_garbage()
    assert collected["seconds"] >= 0 and collected["collected"] >= 0
    assert control.gc_pauses()["collections"]["2"] >= 1
