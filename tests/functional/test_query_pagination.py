"""Pagination over result sets larger than one DynamoDB page (1 MB), written by the real sync.

DynamoDB (and moto) cut a Query/Scan page at 1 MB, so a listing of more than 1 MB must loop
on LastEvaluatedKey inside one call and hand out honest tokens across calls. moto's cost is
per attribute value (several ms for each ~400-value DRS record), so the fleet reaches 1 MB
with few, large servers: each has a replication error whose `rawError` holds 60,000
characters (the model allows 65,536), about 62 KB per inventory item. The real sync lists
them from the DRS simulator and writes them; nothing is written around it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import inventory_queries.paging
from inventory_sync import sync_source_server_inventory
from scripts.local import fleet
from scripts.local.drs_simulator import DrsSimulator
from scripts.local.moto_server import LocalMotoServer
from shared.config import TableNames
from tests.conftest import HUB_ACCOUNT_ID
from tests.functional.test_query_handler import (
    EAST,
    WEST,
    ApiCalls,
    invoke,
    module_environment,
    point_at,
    record_api_calls,
)
from tests.support.handlers import load_handler
from tests.support.lambda_context import FakeLambdaContext

query_handler = load_handler("query-handler")

HUB = HUB_ACCOUNT_ID
EAST_SERVERS = 24
WEST_SERVERS = 8
ONE_MB = 1_000_000
RAW_ERROR_CHARS = 60_000


def _big_server(region: str, index: int) -> dict[str, Any]:
    """A stalled or disconnected server carrying a long raw replication error."""
    state = "STALLED" if index % 2 else "DISCONNECTED"
    record = fleet.make_source_server(
        HUB,
        region,
        index=index,
        seed=9,
        replication_state=state,
        tags={"DRGroup": f"group-{index % 3}", "Environment": "prod"},
    )
    log = "".join(
        f"{line:06d} replication agent: connection reset by peer\n" for line in range(2000)
    )
    record["dataReplicationInfo"]["dataReplicationError"] = {
        "error": "UNSTABLE_NETWORK",
        "rawError": log[:RAW_ERROR_CHARS],
    }
    return record


@dataclass(frozen=True)
class BigInventory:
    endpoint: str
    tables: TableNames
    servers: dict[str, dict[str, Any]]  # arn -> DRS record
    summary: dict[str, Any]

    def arns(self, region: str | None = None) -> set[str]:
        return {arn for arn in self.servers if region is None or f":{region}:" in arn}


@pytest.fixture(scope="module")
def big_inventory(moto_server: LocalMotoServer) -> Iterator[BigInventory]:
    with (
        pytest.MonkeyPatch.context() as env,
        DrsSimulator(sts_endpoint=moto_server.endpoint) as simulator,
    ):
        tables = module_environment(env, moto_server, simulator.endpoint, f"{EAST},{WEST}")
        servers: dict[str, dict[str, Any]] = {}
        for region, count in ((EAST, EAST_SERVERS), (WEST, WEST_SERVERS)):
            records = [_big_server(region, i) for i in range(count)]
            simulator.add_source_servers(HUB, region, records)
            servers.update({record["arn"]: record for record in records})
        summary = sync_source_server_inventory({})
        yield BigInventory(moto_server.endpoint, tables, servers, summary)


@pytest.fixture(autouse=True)
def big_inventory_env(
    big_inventory: BigInventory, monkeypatch: pytest.MonkeyPatch, _no_real_aws: None
) -> None:
    point_at(monkeypatch, big_inventory.endpoint, big_inventory.tables)


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> ApiCalls:
    return record_api_calls(monkeypatch)


def _pages(operation: str, **params: Any) -> list[dict[str, Any]]:
    results = []
    token = None
    while True:
        result = invoke(operation, **params, **({"nextToken": token} if token else {}))
        results.append(result)
        token = result["nextToken"]
        if token is None:
            return results
        assert len(results) < 50


def _reads(api_calls: ApiCalls) -> list[str]:
    return [operation for _, operation in api_calls.operations]


def test_the_sync_wrote_more_than_one_megabyte_per_scope(big_inventory: BigInventory) -> None:
    assert big_inventory.summary["status"] == "SUCCEEDED"
    assert big_inventory.summary["counts"]["serversWritten"] == EAST_SERVERS + WEST_SERVERS
    listed = invoke("list_source_servers", accountId=HUB, region=EAST, limit=1000)
    assert len(json.dumps(listed["items"])) > ONE_MB


def test_one_call_reads_every_dynamodb_page_of_a_large_scope(
    big_inventory: BigInventory, api_calls: ApiCalls
) -> None:
    # GIVEN a scope of more than 1 MB  WHEN it is listed with room for every item
    result = invoke("list_source_servers", accountId=HUB, region=EAST, limit=1000)

    # THEN one call followed LastEvaluatedKey across DynamoDB's 1 MB pages and ended
    assert {item["sourceServerArn"] for item in result["items"]} == big_inventory.arns(EAST)
    assert len(result["items"]) == EAST_SERVERS and result["nextToken"] is None
    assert _reads(api_calls).count("Query") >= 2
    # ... then read the whole items (the index lacks `drs`) by key, in one request.
    assert _reads(api_calls).count("BatchGetItem") == 1
    assert set(_reads(api_calls)) == {"Query", "BatchGetItem"}


@pytest.mark.parametrize(
    ("params", "region"),
    [
        ({"accountId": HUB, "region": EAST, "limit": 10}, EAST),  # scope index Query
        ({"limit": 12}, None),  # table Scan
        ({"region": WEST, "limit": 3}, WEST),  # Scan with a region filter
    ],
)
def test_tokens_walk_a_large_listing_without_gaps_or_repeats(
    big_inventory: BigInventory, params: dict[str, Any], region: str | None
) -> None:
    pages = _pages("list_source_servers", **params)
    arns = [item["sourceServerArn"] for page in pages for item in page["items"]]
    assert len(arns) == len(set(arns))
    assert set(arns) == big_inventory.arns(region)
    assert all(len(page["items"]) == params["limit"] for page in pages[:-1])


def test_filtered_pages_stay_full_across_dynamodb_pages(big_inventory: BigInventory) -> None:
    expected = {
        arn
        for arn, record in big_inventory.servers.items()
        if record["dataReplicationInfo"]["dataReplicationState"] == "STALLED"
    }
    pages = _pages("list_source_servers", replicationState="STALLED", limit=5)
    arns = [item["sourceServerArn"] for page in pages for item in page["items"]]
    assert len(arns) == len(set(arns)) and set(arns) == expected
    assert all(len(page["items"]) == 5 for page in pages[:-1])


def test_resolving_tags_in_a_large_scope_pages_too(big_inventory: BigInventory) -> None:
    expected = {
        arn
        for arn, record in big_inventory.servers.items()
        if record["tags"]["DRGroup"] == "group-1" and f":{EAST}:" in arn
    }
    pages = _pages(
        "resolve_servers_by_tags",
        accountId=HUB,
        region=EAST,
        tags={"DRGroup": "group-1"},
        limit=3,
    )
    arns = [arn for page in pages for arn in (i["sourceServerArn"] for i in page["items"])]
    assert len(arns) == len(set(arns)) and set(arns) == expected
    assert all(page["fresh"] for page in pages)


def test_the_response_budget_cuts_pages_before_lambdas_limit(
    big_inventory: BigInventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a budget of 200 KB (in Lambda: 5 MB, under the 6 MB response limit)
    monkeypatch.setattr(inventory_queries.paging, "MAX_RESPONSE_BYTES", 200_000)

    pages = _pages("list_source_servers", accountId=HUB, region=EAST, limit=1000)

    # THEN every page fits, pages are cut short with a token, and together they are complete
    assert len(pages) == -(-EAST_SERVERS // 3)  # three ~62 KB items fit in 200 KB
    assert all(len(json.dumps(page["items"])) <= 200_000 for page in pages)
    arns = [item["sourceServerArn"] for page in pages for item in page["items"]]
    assert len(arns) == len(set(arns)) and set(arns) == big_inventory.arns(EAST)


def test_near_the_deadline_a_page_ends_early_with_a_token(
    big_inventory: BigInventory, api_calls: ApiCalls
) -> None:
    # GIVEN an invocation with less time left than the reserve
    def call(token: str | None) -> dict[str, Any]:
        event = {"operation": "list_source_servers", "limit": 1000}
        if token:
            event["nextToken"] = token
        return query_handler.handle_direct_invocation(event, FakeLambdaContext(timeout_ms=1000))

    # WHEN the whole table is listed
    first = call(None)

    # THEN each call reads one DynamoDB page and hands back a token; tokens complete it
    assert first["nextToken"] and len(first["items"]) < EAST_SERVERS + WEST_SERVERS
    assert _reads(api_calls) == ["Scan"]
    arns = [item["sourceServerArn"] for item in first["items"]]
    token = first["nextToken"]
    while token:
        page = call(token)
        arns += [item["sourceServerArn"] for item in page["items"]]
        token = page["nextToken"]
    assert len(arns) == len(set(arns)) and set(arns) == big_inventory.arns()
