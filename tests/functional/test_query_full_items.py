"""Account listings read the scope index, then the whole items by key.

The scope index holds every inventory attribute but the raw DRS record `drs`, so
`list_source_servers` with accountId completes the page it collected from the index with
BatchGetItem (at most 100 keys a request). These tests run it against moto through the real
boto3 clients:

  HUB/EAST   130 servers written by the real sync (a page of them takes two BatchGetItem
             requests)
  BIG/EAST   60 items of about 330 KB each, written with the sync's own transform (the
             sync cannot list such records: DRS fields are capped at 64 KB): one page of
             them is more than BatchGetItem's 16 MB answer, so DynamoDB (and moto) leave
             keys unprocessed, and they must be asked for again
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

import inventory_queries.paging
import inventory_queries.reader
from inventory_queries.exceptions import InventoryReadIncompleteError
from inventory_sync import sync_source_server_inventory
from inventory_sync.models import Scope
from inventory_sync.records import inventory_item
from scripts.local import fleet
from scripts.local.drs_simulator import DrsSimulator
from scripts.local.moto_server import LocalMotoServer
from shared.config import TableNames
from tests.conftest import HUB_ACCOUNT_ID
from tests.functional.test_query_handler import (
    EAST,
    ApiCalls,
    invoke,
    module_environment,
    point_at,
    record_api_calls,
)

HUB = HUB_ACCOUNT_ID
BIG = "444455556666"
HUB_SERVERS = 130
BIG_SERVERS = 60
BIG_RAW_ERROR_CHARS = 330_000
BATCH_GET_ANSWER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Inventory:
    endpoint: str
    tables: TableNames
    hub_arns: set[str]
    big_arns: set[str]


def _big_item(index: int, sync_time: str) -> dict[str, Any]:
    record = fleet.make_source_server(BIG, EAST, index=index, seed=5)
    record["dataReplicationInfo"]["dataReplicationError"] = {
        "error": "UNSTABLE_NETWORK",
        "rawError": f"{index:04d}" + "r" * BIG_RAW_ERROR_CHARS,
    }
    return inventory_item(record, Scope(BIG, EAST), sync_time, None)


@pytest.fixture(scope="module")
def inventory(moto_server: LocalMotoServer) -> Iterator[Inventory]:
    with (
        pytest.MonkeyPatch.context() as env,
        DrsSimulator(sts_endpoint=moto_server.endpoint) as simulator,
    ):
        tables = module_environment(env, moto_server, simulator.endpoint, EAST)
        records = [fleet.make_source_server(HUB, EAST, index=i, seed=4) for i in range(HUB_SERVERS)]
        simulator.add_source_servers(HUB, EAST, records)
        summary = sync_source_server_inventory({})
        assert summary["status"] == "SUCCEEDED", summary

        sync_time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        big = [_big_item(i, sync_time) for i in range(BIG_SERVERS)]
        assert "drsTruncated" not in big[0]
        table = boto3.resource("dynamodb", region_name=EAST).Table(tables.inventory)
        with table.batch_writer() as writer:
            for item in big:
                writer.put_item(Item=item)
        yield Inventory(
            moto_server.endpoint,
            tables,
            {record["arn"] for record in records},
            {item["sourceServerArn"] for item in big},
        )


@pytest.fixture(autouse=True)
def inventory_env(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch, _no_real_aws: None
) -> None:
    point_at(monkeypatch, inventory.endpoint, inventory.tables)


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> ApiCalls:
    return record_api_calls(monkeypatch)


def _batch_gets(api_calls: ApiCalls) -> list[list[Any]]:
    """The keys of every BatchGetItem request, in request order."""
    return [
        [key for request in params["RequestItems"].values() for key in request["Keys"]]
        for _, operation, params in api_calls.calls
        if operation == "BatchGetItem"
    ]


def _index_order(inventory: Inventory, account_id: str) -> list[str]:
    """The ARNs of one account's items in the scope index's order (read directly)."""
    dynamodb = boto3.session.Session().resource("dynamodb", region_name=EAST)
    query = dynamodb.Table(inventory.tables.inventory).query
    request: dict[str, Any] = {
        "IndexName": inventory_queries.reader.SCOPE_INDEX,
        "KeyConditionExpression": Key("accountId").eq(account_id),
        "ProjectionExpression": "sourceServerArn",
    }
    arns: list[str] = []
    while True:
        page = query(**request)
        arns += [item["sourceServerArn"] for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return arns
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _whole(arn: str) -> dict[str, Any]:
    return invoke("get_source_server", sourceServerArn=arn, includeDeleted=True)["item"]


@pytest.mark.parametrize("limit", [1, 100, 101, 1000])
def test_one_batch_get_per_hundred_items_of_the_page(
    inventory: Inventory, api_calls: ApiCalls, limit: int
) -> None:
    # WHEN a page of `limit` servers of the 130-server scope is listed
    result = invoke("list_source_servers", accountId=HUB, region=EAST, limit=limit)

    # THEN the index page is read whole by key in ceil(page / 100) requests of <= 100 keys
    page = len(result["items"])
    assert page == min(limit, HUB_SERVERS)
    batches = _batch_gets(api_calls)
    assert len(batches) == math.ceil(page / 100)
    assert all(len(keys) <= 100 for keys in batches)
    assert sum(len(keys) for keys in batches) == page
    assert all("drs" in item for item in result["items"])


def test_a_whole_account_listing_pages_through_every_server_with_its_record(
    inventory: Inventory,
) -> None:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        params = {"nextToken": token} if token else {}
        result = invoke("list_source_servers", accountId=HUB, limit=60, **params)
        items += result["items"]
        token = result["nextToken"]
        if token is None:
            break
    arns = [item["sourceServerArn"] for item in items]
    assert len(arns) == len(set(arns)) and set(arns) == inventory.hub_arns
    for item in items[::13]:
        assert item == _whole(item["sourceServerArn"])


class DeleteAfterIndexRead:
    """After the first Query answer (an index page) reaches the reader's client, delete one
    item from the table, as TTL would between the reader's two reads. The item is put back
    by `restore`, so the module's inventory is unchanged for the next test."""

    def __init__(self, table_name: str, arn: str) -> None:
        # A session of its own: this client's calls are neither hooked nor recorded.
        self._table = (
            boto3.session.Session().resource("dynamodb", region_name=EAST).Table(table_name)
        )
        self._arn = arn
        self.deleted: dict[str, Any] | None = None

    def __call__(self, **_: Any) -> None:
        if self.deleted is None:
            answer = self._table.delete_item(
                Key={"sourceServerArn": self._arn}, ReturnValues="ALL_OLD"
            )
            self.deleted = answer["Attributes"]

    def restore(self) -> None:
        if self.deleted is not None:
            self._table.put_item(Item=self.deleted)


def test_a_server_deleted_between_the_index_and_the_table_read_is_left_out(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the first page of a listing, and its second server expiring right after the
    # index was read
    before = invoke("list_source_servers", accountId=HUB, region=EAST, limit=20)["items"]
    victim = before[1]["sourceServerArn"]
    api_calls = record_api_calls(monkeypatch)
    deleter = DeleteAfterIndexRead(inventory.tables.inventory, victim)
    boto3.DEFAULT_SESSION.events.register("after-call.dynamodb.Query", deleter)
    try:
        # WHEN the same page is listed, then every page after it
        first = invoke("list_source_servers", accountId=HUB, region=EAST, limit=20)
        token, rest = first["nextToken"], []
        while token:
            page = invoke(
                "list_source_servers", accountId=HUB, region=EAST, limit=20, nextToken=token
            )
            rest += page["items"]
            token = page["nextToken"]
    finally:
        deleter.restore()

    # THEN the vanished server is left out (no error), the others keep their order, and the
    # token resumes after the page as before: nothing is skipped or repeated
    assert deleter.deleted is not None
    assert [i["sourceServerArn"] for i in first["items"]] == [
        i["sourceServerArn"] for i in before if i["sourceServerArn"] != victim
    ]
    assert first["items"] == [item for item in before if item["sourceServerArn"] != victim]
    arns = [item["sourceServerArn"] for item in first["items"] + rest]
    assert len(arns) == len(set(arns)) and set(arns) == inventory.hub_arns - {victim}
    assert "BatchGetItem" in [operation for _, operation in api_calls.operations]


def test_keys_dynamodb_leaves_unprocessed_are_asked_for_again(
    inventory: Inventory, api_calls: ApiCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a response budget that holds a page of 60 items of ~330 KB (Lambda's does not)
    monkeypatch.setattr(inventory_queries.paging, "MAX_RESPONSE_BYTES", 64_000_000)

    # WHEN the page is listed: its whole items exceed BatchGetItem's 16 MB answer
    result = invoke("list_source_servers", accountId=BIG, limit=100)

    # THEN DynamoDB answered part of the keys, the rest were asked for again, and the page
    # holds every item whole, in the index's order
    batches = _batch_gets(api_calls)
    assert len(batches) >= 2
    assert len(batches[0]) == BIG_SERVERS > len(batches[1])
    items = result["items"]
    assert {item["sourceServerArn"] for item in items} == inventory.big_arns
    assert result["nextToken"] is None
    assert sum(len(str(item["drs"])) for item in items) > BATCH_GET_ANSWER_BYTES
    assert [item["sourceServerArn"] for item in items] == _index_order(inventory, BIG)
    for item in items[::7]:
        assert item == _whole(item["sourceServerArn"])


def test_keys_still_unprocessed_after_the_retries_fail_the_call(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a single BatchGetItem attempt allowed, and an answer DynamoDB must cut at 16 MB
    monkeypatch.setattr(inventory_queries.paging, "MAX_RESPONSE_BYTES", 64_000_000)
    monkeypatch.setattr(inventory_queries.reader, "BATCH_GET_MAX_ATTEMPTS", 1)

    # THEN the listing fails, typed, rather than return a page missing servers that exist
    with pytest.raises(InventoryReadIncompleteError, match="unprocessed"):
        invoke("list_source_servers", accountId=BIG, limit=100)
