"""The query-handler through its operation map, on an inventory written by the real sync.

One inventory is built per module (the query-handler never writes, so tests can share it):
the DRS simulator and moto EC2 are seeded, then the data-management-handler's real sync runs
twice, the way the schedule would:

  run 1, two hours ago   every scope listed, except TARGET/WEST (DRS access denied from the
                         start: it never succeeds)
  between the runs       server `gone` leaves DRS; HUB/WEST starts denying access
  run 2, now             `gone` is soft-deleted; HUB/WEST keeps its items and its two-hour-old
                         lastSuccessTime (stale); HUB/EAST and TARGET/EAST are fresh

Afterwards a sync lease item is put in the region-status table (as while a sync runs), so
the tests see that the queries never report it. Then the simulator is stopped: the query-
handler answers from DynamoDB alone.
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.client
import pytest

import shared.aws as shared_aws
from inventory_queries.exceptions import AmbiguousSourceServerError
from inventory_queries.reader import SCOPE_INDEX
from inventory_sync import sync_source_server_inventory
from inventory_sync.lease import SYNC_LEASE, Lease
from scripts.local import fleet
from scripts.local.accounts import account_client, create_cross_account_role
from scripts.local.drs_simulator import ACCESS_DENIED, DrsSimulator, Fault
from scripts.local.moto_server import LocalMotoServer
from shared.config import (
    DRS_REGIONS_ENV,
    INVENTORY_TABLE_ENV,
    REGION_STATUS_TABLE_ENV,
    SYNC_LEASE_TABLE_ENV,
    TARGET_ACCOUNTS_TABLE_ENV,
    TableNames,
)
from shared.exceptions import InvalidParameterError, NotFoundError, UnknownOperationError
from tests.conftest import HUB_ACCOUNT_ID
from tests.support.aws import create_tables_from_template
from tests.support.handlers import load_handler
from tests.support.lambda_context import FakeLambdaContext
from tests.support.strict import look_alikes

query_handler = load_handler("query-handler")
data_handler = load_handler("data-management-handler")

HUB = HUB_ACCOUNT_ID
TARGET = "111122223333"
TARGET_ROLE = f"arn:aws:iam::{TARGET}:role/drs-orchestration-cross-account"
SOURCE = "444455556666"  # a registered account whose EC2 TARGET's DRS replicates
SOURCE_ROLE = f"arn:aws:iam::{SOURCE}:role/drs-orchestration-cross-account"
EAST, WEST = "us-east-1", "us-west-2"
STALE_AGE = timedelta(hours=2)
BAD_IDS = look_alikes(HUB)
CONTRACT_OPERATIONS = {
    "list_source_servers",
    "get_source_server",
    "get_region_status",
    "get_inventory_summary",
    "resolve_servers_by_tags",
}
# The item attributes the contract names (DESIGN.md "Inventory item") that every server has.
ITEM_ATTRIBUTES = {
    "sourceServerArn",
    "sourceServerID",
    "accountId",
    "region",
    "lastSyncTime",
    "hostname",
    "replicationState",
    "lifeCycleState",
    "tags",
    "drs",
}


@dataclass
class Inventory:
    """What the module fixture built: server records by name, and the syncs' summaries."""

    endpoint: str
    tables: TableNames
    servers: dict[str, dict[str, Any]]  # name -> DRS record as served
    scope_of: dict[str, tuple[str, str]]  # name -> (account, region) that lists it
    stale_success_time: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    def arn(self, name: str) -> str:
        return str(self.servers[name]["arn"])

    def arns(self, *names: str) -> set[str]:
        return {self.arn(name) for name in names}


LIVE = {
    "web1",
    "web2",
    "batch",
    "db",
    "nohost",
    "dup",
    "ghost_ec2",
    "west1",
    "west2",
    "west3",
    "dup_target",
    "xacct1",
    "xacct2",
}
DELETED = {"gone"}


def _run_instance(ec2: Any, tags: dict[str, str]) -> dict[str, Any]:
    return fleet.create_ec2_instances(ec2, 1, tags=tags)[0]


def _seed(simulator: DrsSimulator) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
    """The fleet: DRS records (and their EC2 instances in moto), registered in the simulator."""
    ec2 = boto3.client("ec2", region_name=EAST)
    # xacct*: cross-account DR. TARGET's DRS replicates instances of SOURCE, an account the
    # registry declares as TARGET's EC2 source (never the hub: see EC2 enrichment).
    source_ec2 = account_client("ec2", SOURCE, EAST)
    instances = {
        "web1": _run_instance(ec2, {"Name": "web-1", "Team": "payments", "DRGroup": "ec2-batch"}),
        "web2": _run_instance(ec2, {"Team": "payments"}),
        "batch": _run_instance(ec2, {"DRGroup": "batch", "Team": "data"}),
        "xacct1": _run_instance(source_ec2, {"DRGroup": "cross-account"}),
        "xacct2": _run_instance(source_ec2, {"DRGroup": "cross-account", "Team": "data"}),
    }

    def server(name: str, account: str, region: str, index: int, **kwargs: Any) -> dict[str, Any]:
        instance = instances.get(name)
        if instance is not None:
            kwargs.setdefault("instance_id", instance["InstanceId"])
            kwargs.setdefault("origin_account_id", SOURCE if name.startswith("xacct") else HUB)
            kwargs.setdefault("origin_region", EAST)
        return fleet.make_source_server(account, region, index=index, seed=4, **kwargs)

    web_tier = {"DRGroup": "web-tier", "Environment": "prod"}
    servers = {
        # DRS says web-tier, EC2 says ec2-batch on the same key: DRS wins.
        "web1": server(
            "web1",
            HUB,
            EAST,
            1,
            tags=web_tier,
            hostname="WEB-Prod-01",
            replication_state="CONTINUOUS",
        ),
        "web2": server(
            "web2",
            HUB,
            EAST,
            2,
            tags=web_tier,
            hostname="web-prod-02",
            replication_state="CONTINUOUS",
        ),
        # No DRGroup on DRS: the EC2 tag fills it in.
        "batch": server(
            "batch",
            HUB,
            EAST,
            3,
            tags={"Environment": "prod"},
            hostname="batch-01",
            replication_state="STALLED",
        ),
        "db": server(
            "db",
            HUB,
            EAST,
            4,
            tags={"DRGroup": "db", "Environment": "prod"},
            hostname="db-prod-01",
            replication_state="INITIAL_SYNC",
        ),
        "gone": server(
            "gone",
            HUB,
            EAST,
            5,
            tags=web_tier,
            hostname="web-prod-03",
            replication_state="CONTINUOUS",
        ),
        "nohost": server(
            "nohost", HUB, EAST, 6, tags={"Environment": "dev"}, replication_state="BACKLOG"
        ),
        "dup": server(
            "dup",
            HUB,
            EAST,
            7,
            tags={"Environment": "dev"},
            hostname="dup-host",
            replication_state="CONTINUOUS",
        ),
        # EC2-origin, but the instance does not exist: written without `ec2`.
        "ghost_ec2": server(
            "ghost_ec2",
            HUB,
            EAST,
            8,
            instance_id="i-0123456789abcdef0",
            tags={"DRGroup": "web-tier", "Environment": "staging"},
            hostname="ghost-01",
            replication_state="DISCONNECTED",
        ),
        "xacct1": server(
            "xacct1", TARGET, EAST, 1, tags={}, hostname="xacct-01", replication_state="CONTINUOUS"
        ),
        "xacct2": server(
            "xacct2",
            TARGET,
            EAST,
            2,
            tags={"Team": "ops"},
            hostname="xacct-02",
            replication_state="CONTINUOUS",
        ),
    }
    for index in (1, 2, 3):
        servers[f"west{index}"] = server(
            f"west{index}",
            HUB,
            WEST,
            index,
            tags={"DRGroup": "west"},
            hostname=f"west-0{index}",
            replication_state="CONTINUOUS",
        )
    # The same sourceServerID listed by another account: only the ARN tells them apart.
    dup_arn = servers["dup"]["arn"].replace(f":{HUB}:", f":{TARGET}:")
    servers["dup_target"] = {**servers["dup"], "arn": dup_arn}
    del servers["nohost"]["sourceProperties"]["identificationHints"]["hostname"]
    del servers["nohost"]["sourceProperties"]["identificationHints"]["fqdn"]

    scope_of: dict[str, tuple[str, str]] = {}
    for name, record in servers.items():
        account = TARGET if name in ("xacct1", "xacct2", "dup_target") else HUB
        region = WEST if name.startswith("west") else EAST
        scope_of[name] = (account, region)
        simulator.add_source_servers(account, region, [record])
    return servers, scope_of


def module_environment(
    env: pytest.MonkeyPatch, moto_server: LocalMotoServer, drs_endpoint: str, regions: str
) -> TableNames:
    """For a module-scoped fixture: reset moto, set the whole AWS/function environment on
    `env` and create the tables. (Module fixtures run before the per-test autouse ones.)"""
    endpoint = moto_server.endpoint
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MOTO_ACCOUNT_ID"):
        env.delenv(name, raising=False)
    env.setenv("AWS_ACCESS_KEY_ID", "testing")
    env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    env.setenv("AWS_DEFAULT_REGION", EAST)
    env.setenv("AWS_CONFIG_FILE", "/dev/null")
    env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    env.setenv("AWS_ENDPOINT_URL", endpoint)
    env.setenv("AWS_ENDPOINT_URL_DRS", drs_endpoint)
    env.setenv(DRS_REGIONS_ENV, regions)
    tables = create_tables_from_template("test")
    env.setenv(INVENTORY_TABLE_ENV, tables.inventory)
    env.setenv(REGION_STATUS_TABLE_ENV, tables.region_status)
    env.setenv(TARGET_ACCOUNTS_TABLE_ENV, tables.target_accounts)
    env.setenv(SYNC_LEASE_TABLE_ENV, tables.sync_lease)
    return tables


def point_at(
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
    tables: TableNames,
    regions: str = f"{EAST},{WEST}",
) -> None:
    """For a test: the moto endpoint, table names and DRS_REGIONS a module fixture built with."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv(DRS_REGIONS_ENV, regions)
    monkeypatch.setenv(INVENTORY_TABLE_ENV, tables.inventory)
    monkeypatch.setenv(REGION_STATUS_TABLE_ENV, tables.region_status)
    monkeypatch.setenv(TARGET_ACCOUNTS_TABLE_ENV, tables.target_accounts)
    monkeypatch.setenv(SYNC_LEASE_TABLE_ENV, tables.sync_lease)


@pytest.fixture(scope="module")
def inventory(moto_server: LocalMotoServer) -> Iterator[Inventory]:
    """The module's inventory (see the module docstring), built by two real sync runs."""
    with (
        pytest.MonkeyPatch.context() as env,
        DrsSimulator(sts_endpoint=moto_server.endpoint) as simulator,
    ):
        tables = module_environment(env, moto_server, simulator.endpoint, f"{EAST},{WEST}")
        servers, scope_of = _seed(simulator)
        # The roles the sync assumes (the hub generates the external ids: none is required).
        for account in (SOURCE, TARGET):
            create_cross_account_role(account, HUB, external_id=None)
        # SOURCE is registered (disabled: it has no DRS to sync) as TARGET's EC2 source.
        data_handler.handle_direct_invocation(
            {
                "operation": "add_target_account",
                "accountId": SOURCE,
                "roleArn": SOURCE_ROLE,
                "enabled": False,
            },
            None,
        )
        data_handler.handle_direct_invocation(
            {
                "operation": "add_target_account",
                "accountId": TARGET,
                "roleArn": TARGET_ROLE,
                "ec2SourceAccountIds": [SOURCE],
            },
            None,
        )
        simulator.set_fault(TARGET, WEST, Fault(ACCESS_DENIED))
        then = datetime.now(UTC) - STALE_AGE
        first = sync_source_server_inventory({}, None, clock=lambda: then)

        simulator.remove_source_server(HUB, EAST, servers["gone"]["sourceServerID"])
        simulator.set_fault(HUB, WEST, Fault(ACCESS_DENIED))
        second = data_handler.handle_direct_invocation(
            {"operation": "sync_source_server_inventory"}, FakeLambdaContext()
        )
        # A sync "in progress" holds the lease (in a table of its own, which readers never see).
        lease = Lease(
            boto3.client("dynamodb", region_name=EAST), tables.sync_lease, SYNC_LEASE, "busy"
        )
        now = int(datetime.now(UTC).timestamp())
        assert lease.acquire(now, now + 900, "2099-01-01T00:00:00.000Z")
        built = Inventory(
            moto_server.endpoint, tables, servers, scope_of, first["startedAt"], [first, second]
        )
    yield built


@pytest.fixture(autouse=True)
def inventory_env(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, _no_real_aws: None
) -> None:
    """Point each test at the module's inventory (the autouse conftest fixture unset it)."""
    if "inventory" not in request.fixturenames:
        return
    built: Inventory = request.getfixturevalue("inventory")
    point_at(monkeypatch, built.endpoint, built.tables)


def invoke(operation: str, **params: Any) -> dict[str, Any]:
    """Run one operation through the handler and prove its result is plain JSON."""
    result = query_handler.handle_direct_invocation({"operation": operation, **params}, None)
    assert json.loads(json.dumps(result)) == result
    return result


def listed_arns(**params: Any) -> set[str]:
    result = invoke("list_source_servers", limit=1000, **params)
    assert result["nextToken"] is None
    arns = [item["sourceServerArn"] for item in result["items"]]
    assert len(arns) == len(set(arns))
    return set(arns)


class ApiCalls:
    """Every AWS API call made while installed: botocore's `before-parameter-build` event (it
    carries the API parameters) on the default session, plus a count at
    `BaseClient._make_api_call` that no client can bypass."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.made = 0

    def on_parameter_build(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name, dict(params)))

    @property
    def operations(self) -> list[tuple[str, str]]:
        return [(service, operation) for service, operation, _ in self.calls]


def record_api_calls(monkeypatch: pytest.MonkeyPatch) -> ApiCalls:
    """Install an ApiCalls recorder for the rest of the test (undone by `monkeypatch`)."""
    recorder = ApiCalls()
    session = boto3.session.Session()
    session.events.register("before-parameter-build", recorder.on_parameter_build)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    # The handlers build their clients from the execution environment's pool: give it this
    # session (monkeypatch puts the previous pool back).
    monkeypatch.setattr(shared_aws, "_environment_pool", shared_aws._environment_pool)
    shared_aws.set_environment_pool(shared_aws.ClientPool(lambda credentials=None: session))
    original = botocore.client.BaseClient._make_api_call

    def counting(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        recorder.made += 1
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return recorder


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> ApiCalls:
    return record_api_calls(monkeypatch)


# --- the inventory the tests read ---------------------------------------------------------


def test_the_fixture_inventory_is_what_the_sync_wrote(inventory: Inventory) -> None:
    first, second = inventory.runs
    assert first["status"] == "PARTIAL" and second["status"] == "PARTIAL"
    assert second["counts"]["serversSoftDeleted"] == 1
    assert second["counts"]["ec2Enriched"] == 5 and second["counts"]["ec2NotFound"] == 1
    assert {(f["accountId"], f["region"]) for f in second["failures"]} == {
        (HUB, WEST),
        (TARGET, WEST),
    }


def test_operation_map_holds_the_contract_operations() -> None:
    assert set(query_handler.OPERATIONS) == CONTRACT_OPERATIONS
    assert all(callable(operation) for operation in query_handler.OPERATIONS.values())


def test_unknown_operation_lists_the_valid_ones(inventory: Inventory) -> None:
    with pytest.raises(UnknownOperationError) as raised:
        invoke("sync_source_server_inventory")
    for name in CONTRACT_OPERATIONS:
        assert name in str(raised.value)


def test_lambda_handler_routes_and_returns_plain_json(inventory: Inventory) -> None:
    context = FakeLambdaContext(function_name="aws-drs-orchestration-query-handler-test")
    result = query_handler.lambda_handler(
        {"operation": "get_source_server", "sourceServerArn": inventory.arn("db")}, context
    )
    assert json.loads(json.dumps(result))["item"]["hostname"] == "db-prod-01"


# --- list_source_servers --------------------------------------------------------------------


def test_list_returns_every_live_server_in_the_inventory_item_shape(inventory: Inventory) -> None:
    result = invoke("list_source_servers", limit=1000)
    by_arn = {item["sourceServerArn"]: item for item in result["items"]}
    assert set(by_arn) == inventory.arns(*LIVE)
    for name in LIVE:
        item = by_arn[inventory.arn(name)]
        missing = ITEM_ATTRIBUTES - set(item) - ({"hostname"} if name == "nohost" else set())
        assert not missing, (name, missing)
        assert (item["accountId"], item["region"]) == inventory.scope_of[name]
        assert item["sourceServerID"] == inventory.servers[name]["sourceServerID"]
        assert "deletedAt" not in item
    web1 = by_arn[inventory.arn("web1")]
    assert web1["ec2"]["tags"]["DRGroup"] == "ec2-batch"
    assert web1["tags"] == {"DRGroup": "web-tier", "Environment": "prod"}
    # Numbers come back as JSON ints, not Decimal (and not 12.0).
    ram = web1["drs"]["sourceProperties"]["ramBytes"]
    assert isinstance(ram, int) and ram == inventory.servers["web1"]["sourceProperties"]["ramBytes"]
    assert "ec2" not in by_arn[inventory.arn("ghost_ec2")]


def test_include_deleted_adds_the_soft_deleted_server(inventory: Inventory) -> None:
    result = invoke("list_source_servers", includeDeleted=True, limit=1000)
    by_arn = {item["sourceServerArn"]: item for item in result["items"]}
    assert set(by_arn) == inventory.arns(*LIVE, *DELETED)
    gone = by_arn[inventory.arn("gone")]
    assert gone["deletedAt"].endswith("Z")
    assert isinstance(gone["expiresAt"], int)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"accountId": HUB, "region": EAST},
            {"web1", "web2", "batch", "db", "nohost", "dup", "ghost_ec2"},
        ),
        ({"accountId": TARGET}, {"xacct1", "xacct2", "dup_target"}),
        ({"region": WEST}, {"west1", "west2", "west3"}),
        ({"accountId": TARGET, "region": WEST}, set()),
        ({"replicationState": "STALLED"}, {"batch"}),
        (
            {"replicationState": "CONTINUOUS", "accountId": HUB, "region": EAST},
            {"web1", "web2", "dup"},
        ),
        ({"replicationState": "PAUSED"}, set()),
        # Effective tags: DRS tag wins on a shared key, EC2 tags fill in the rest.
        ({"tagKey": "DRGroup", "tagValue": "web-tier"}, {"web1", "web2", "ghost_ec2"}),
        ({"tagKey": "DRGroup", "tagValue": "ec2-batch"}, set()),
        ({"tagKey": "DRGroup", "tagValue": "batch"}, {"batch"}),
        ({"tagKey": "Team"}, {"web1", "web2", "batch", "xacct2"}),
        ({"tagKey": "Team", "tagValue": "data"}, {"batch"}),  # xacct2: DRS Team=ops wins
        ({"tagKey": "Team", "tagValue": "ops"}, {"xacct2"}),
        ({"tagKey": "Team", "tagValue": "DATA"}, set()),
        ({"hostname": "web-prod"}, {"web1", "web2"}),
        ({"hostname": "WEB-PROD-0"}, {"web1", "web2"}),
        ({"hostname": "web-prod", "includeDeleted": True}, {"web1", "web2", "gone"}),
        ({"hostname": "nothing-like-it"}, set()),
        (
            {"accountId": HUB, "tagKey": "Environment", "tagValue": "dev", "hostname": "dup"},
            {"dup"},
        ),
    ],
)
def test_list_filters(inventory: Inventory, params: dict[str, Any], expected: set[str]) -> None:
    assert listed_arns(**params) == inventory.arns(*expected)


def _all_pages(**params: Any) -> list[list[dict[str, Any]]]:
    pages = []
    token = None
    while True:
        result = invoke("list_source_servers", **params, **({"nextToken": token} if token else {}))
        pages.append(result["items"])
        token = result["nextToken"]
        if token is None:
            return pages
        assert len(pages) < 100


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"accountId": HUB},
        {"accountId": HUB, "region": EAST},
        {"tagKey": "DRGroup"},
        {"accountId": HUB, "region": EAST, "hostname": "-"},
        {"replicationState": "CONTINUOUS", "includeDeleted": True},
    ],
)
def test_pages_are_full_and_add_up_to_the_whole_listing(
    inventory: Inventory, params: dict[str, Any]
) -> None:
    whole = listed_arns(**params)
    pages = _all_pages(limit=2, **params)
    arns = [item["sourceServerArn"] for page in pages for item in page]
    assert len(arns) == len(set(arns)) and set(arns) == whole
    # Honest pages: every page but the last holds `limit` items.
    assert all(len(page) == 2 for page in pages[:-1])
    # Only the data's end can make a page short: ceil(n / 2) pages, or one more that is empty
    # when the last full page could not know that nothing after it matches.
    full_pages = max(1, -(-len(whole) // 2))
    assert len(pages) == full_pages or (len(pages) == full_pages + 1 and pages[-1] == [])


@pytest.mark.parametrize(
    "params",
    [
        {"accountId": HUB},
        {"accountId": HUB, "region": EAST, "tagKey": "DRGroup"},
        {"accountId": HUB, "replicationState": "CONTINUOUS"},
        {"accountId": HUB, "hostname": "-", "includeDeleted": True},
        {"accountId": TARGET, "region": EAST, "tagKey": "Team", "tagValue": "ops"},
    ],
)
def test_account_listings_return_whole_items_as_get_source_server_does(
    inventory: Inventory, params: dict[str, Any]
) -> None:
    # GIVEN a listing through the scope index (accountId), which holds no `drs`, over pages
    pages = _all_pages(limit=2, **params)
    items = [item for page in pages for item in page]

    # THEN every item is the whole inventory item, `drs` included, as read by its key
    assert items
    assert [item["sourceServerArn"] for item in items] == [
        item["sourceServerArn"]
        for item in invoke("list_source_servers", limit=1000, **params)["items"]
    ]
    for item in items:
        whole = invoke(
            "get_source_server", sourceServerArn=item["sourceServerArn"], includeDeleted=True
        )["item"]
        assert item == whole
        assert item["drs"]["arn"] == item["sourceServerArn"]


def test_account_and_region_use_the_scope_index_not_a_scan(
    inventory: Inventory, api_calls: ApiCalls
) -> None:
    invoke("list_source_servers", accountId=HUB, region=EAST)
    invoke("list_source_servers", accountId=TARGET)
    invoke("list_source_servers", region=WEST)
    reads = [(operation, params) for _, operation, params in api_calls.calls]
    # An index page is completed by one read by key (the index lacks `drs`); a scan is not.
    assert [operation for operation, _ in reads] == [
        "Query",
        "BatchGetItem",
        "Query",
        "BatchGetItem",
        "Scan",
    ]
    assert reads[0][1]["IndexName"] == SCOPE_INDEX
    assert reads[2][1]["IndexName"] == SCOPE_INDEX


# --- get_source_server ------------------------------------------------------------------------


def test_get_by_arn(inventory: Inventory) -> None:
    item = invoke("get_source_server", sourceServerArn=inventory.arn("web1"))["item"]
    assert item["sourceServerArn"] == inventory.arn("web1")
    assert (
        item["ec2"]["instanceId"]
        == inventory.servers["web1"]["sourceProperties"]["identificationHints"]["awsInstanceID"]
    )


@pytest.mark.parametrize(
    ("name", "narrowing"),
    [
        ("web1", {}),
        ("west2", {"region": WEST}),
        ("dup", {"accountId": HUB}),
        ("dup_target", {"accountId": TARGET, "region": EAST}),
    ],
)
def test_get_by_id(inventory: Inventory, name: str, narrowing: dict[str, str]) -> None:
    server_id = inventory.servers[name]["sourceServerID"]
    item = invoke("get_source_server", sourceServerID=server_id, **narrowing)["item"]
    assert item["sourceServerArn"] == inventory.arn(name)
    # Whole, with `drs`, also when found through the scope index (accountId), which lacks it.
    assert item == invoke("get_source_server", sourceServerArn=inventory.arn(name))["item"]
    assert item["drs"]["sourceServerID"] == server_id


@pytest.mark.parametrize("narrowing", [{}, {"region": EAST}])
def test_get_by_ambiguous_id_lists_the_matches(
    inventory: Inventory, narrowing: dict[str, str]
) -> None:
    server_id = inventory.servers["dup"]["sourceServerID"]
    with pytest.raises(AmbiguousSourceServerError) as raised:
        invoke("get_source_server", sourceServerID=server_id, **narrowing)
    error = raised.value
    assert isinstance(error, InvalidParameterError)
    assert {m["sourceServerArn"] for m in error.matches} == inventory.arns("dup", "dup_target")
    assert {m["accountId"] for m in error.matches} == {HUB, TARGET}
    for arn in inventory.arns("dup", "dup_target"):
        assert arn in str(error)


def test_get_soft_deleted_needs_include_deleted(inventory: Inventory) -> None:
    arn = inventory.arn("gone")
    server_id = inventory.servers["gone"]["sourceServerID"]
    with pytest.raises(NotFoundError, match=r"soft-deleted .*includeDeleted"):
        invoke("get_source_server", sourceServerArn=arn)
    with pytest.raises(NotFoundError, match="soft-deleted"):
        invoke("get_source_server", sourceServerID=server_id)
    item = invoke("get_source_server", sourceServerArn=arn, includeDeleted=True)["item"]
    assert item["deletedAt"] and item["expiresAt"] > 0
    by_id = invoke("get_source_server", sourceServerID=server_id, includeDeleted=True)["item"]
    assert by_id == item


@pytest.mark.parametrize(
    "params",
    [
        {"sourceServerArn": f"arn:aws:drs:{EAST}:{HUB}:source-server/s-00000000000000000"},
        {"sourceServerID": "s-00000000000000000"},
        {"sourceServerID": "s-00000000000000000", "accountId": HUB, "region": EAST},
    ],
)
def test_get_unknown_server_is_not_found(inventory: Inventory, params: dict[str, str]) -> None:
    with pytest.raises(NotFoundError, match="s-00000000000000000"):
        invoke("get_source_server", **params)


def test_get_by_id_in_the_wrong_scope_is_not_found(inventory: Inventory) -> None:
    server_id = inventory.servers["west1"]["sourceServerID"]
    with pytest.raises(NotFoundError, match=f"account {TARGET}"):
        invoke("get_source_server", sourceServerID=server_id, accountId=TARGET)


# --- get_region_status ------------------------------------------------------------------------


def _scopes(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(scope["accountId"], scope["region"]): scope for scope in result["scopes"]}


def test_region_status_reports_every_scope_with_freshness(inventory: Inventory) -> None:
    result = invoke("get_region_status")
    scopes = _scopes(result)
    assert list(scopes) == [(TARGET, EAST), (TARGET, WEST), (HUB, EAST), (HUB, WEST)]
    assert result["freshnessSeconds"] == 1800
    assert scopes[(HUB, EAST)]["fresh"] is True
    assert scopes[(HUB, EAST)]["status"] == "ACTIVE"
    assert scopes[(HUB, EAST)]["serverCount"] == 7
    assert 0 <= scopes[(HUB, EAST)]["ageSeconds"] < 120
    assert scopes[(TARGET, EAST)]["fresh"] is True

    # Listed two hours ago, denied now: its data is two hours old, so stale.
    stale = scopes[(HUB, WEST)]
    assert stale["fresh"] is False
    assert stale["status"] == "ACCESS_DENIED" and stale["errorCode"] == "AccessDeniedException"
    assert stale["lastSuccessTime"] == inventory.stale_success_time
    assert abs(stale["ageSeconds"] - STALE_AGE.total_seconds()) < 120
    assert stale["serverCount"] == 3

    never = scopes[(TARGET, WEST)]
    assert never["fresh"] is False
    assert never["lastSuccessTime"] is None and never["ageSeconds"] is None


def test_region_status_of_one_account_and_a_freshness_override(inventory: Inventory) -> None:
    result = invoke("get_region_status", accountId=HUB, freshnessSeconds=3 * 3600)
    scopes = _scopes(result)
    assert list(scopes) == [(HUB, EAST), (HUB, WEST)]
    assert result["freshnessSeconds"] == 3 * 3600
    assert scopes[(HUB, EAST)]["fresh"] is True
    # Its last success (two hours ago) is within three hours, but its latest run was denied:
    # what it holds is what DRS said two hours ago, of unknown truth now. Not fresh.
    assert scopes[(HUB, WEST)]["ageSeconds"] < 3 * 3600
    assert scopes[(HUB, WEST)]["fresh"] is False
    assert invoke("get_region_status", accountId="999999999999")["scopes"] == []


def test_the_threshold_override_decides_for_healthy_scopes(inventory: Inventory) -> None:
    # GIVEN the clock two hours ahead  THEN healthy scopes are stale by default, fresh within 3 h
    later = datetime.now(UTC) + STALE_AGE
    status = query_handler.inventory_queries.get_region_status
    by_default = _scopes(status({"accountId": HUB}, clock=lambda: later))
    assert by_default[(HUB, EAST)]["fresh"] is False
    overridden = _scopes(
        status({"accountId": HUB, "freshnessSeconds": 3 * 3600}, clock=lambda: later)
    )
    assert overridden[(HUB, EAST)]["fresh"] is True
    assert overridden[(HUB, WEST)]["fresh"] is False  # its latest run failed


def test_freshness_threshold_comes_from_the_environment(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVENTORY_FRESHNESS_SECONDS", str(3 * 3600))
    result = invoke("get_region_status")
    assert result["freshnessSeconds"] == 3 * 3600
    scopes = _scopes(result)
    assert scopes[(HUB, EAST)]["fresh"] is True
    assert scopes[(HUB, WEST)]["fresh"] is False  # latest run failed: never fresh
    assert scopes[(TARGET, WEST)]["fresh"] is False  # never succeeded: never fresh


# --- get_inventory_summary ----------------------------------------------------------------------


def test_inventory_summary(inventory: Inventory) -> None:
    summary = invoke("get_inventory_summary")
    assert summary["totalServers"] == len(LIVE)
    assert summary["softDeletedServers"] == len(DELETED)
    assert summary["byAccount"] == {TARGET: 3, HUB: 10}
    assert summary["byRegion"] == {EAST: 10, WEST: 3}
    expected_states: dict[str, int] = {}
    for name in LIVE:
        state = inventory.servers[name]["dataReplicationInfo"]["dataReplicationState"]
        expected_states[state] = expected_states.get(state, 0) + 1
    assert summary["byReplicationState"] == expected_states
    assert summary["scopeCount"] == 4
    assert summary["scopesByStatus"] == {"ACCESS_DENIED": 2, "ACTIVE": 2}
    assert summary["freshScopes"] == 2
    assert {(s["accountId"], s["region"]) for s in summary["staleScopes"]} == {
        (HUB, WEST),
        (TARGET, WEST),
    }
    assert summary["oldestLastSuccessTime"] == inventory.stale_success_time
    assert summary["oldestLastSuccessScope"] == {"accountId": HUB, "region": WEST}


def test_inventory_summary_of_one_account(inventory: Inventory) -> None:
    summary = invoke("get_inventory_summary", accountId=TARGET, freshnessSeconds=60)
    assert summary["totalServers"] == 3 and summary["softDeletedServers"] == 0
    assert summary["byAccount"] == {TARGET: 3}
    assert summary["scopeCount"] == 2
    assert summary["freshnessSeconds"] == 60


# --- resolve_servers_by_tags --------------------------------------------------------------------


def _resolve(**params: Any) -> tuple[set[str], dict[str, Any]]:
    result = invoke("resolve_servers_by_tags", **params)
    assert result["count"] == len(result["items"])
    assert result["sourceServerIDs"] == [item["sourceServerID"] for item in result["items"]]
    return {item["sourceServerArn"] for item in result["items"]}, result


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"DRGroup": "web-tier"}, {"web1", "web2", "ghost_ec2"}),  # `gone` is soft-deleted
        ({"DRGroup": "web-tier", "Environment": "prod"}, {"web1", "web2"}),
        ({"DRGroup": "web-tier", "Team": "payments"}, {"web1", "web2"}),  # DRS + EC2 tags
        ({"DRGroup": "ec2-batch"}, set()),  # the EC2 value loses to web1's DRS tag
        ({"DRGroup": "batch"}, {"batch"}),  # no DRS DRGroup: the EC2 tag counts
        ({"Name": "web-1"}, {"web1"}),
        ({"DRGroup": "web-tier", "Environment": "dev"}, set()),
        ({"Nope": "x"}, set()),
    ],
)
def test_resolve_by_tags_in_a_fresh_scope(
    inventory: Inventory, tags: dict[str, str], expected: set[str]
) -> None:
    arns, result = _resolve(accountId=HUB, region=EAST, tags=tags)
    assert arns == inventory.arns(*expected)
    assert result["fresh"] is True and result["scopeStatus"] == "ACTIVE"
    assert result["lastSuccessTime"] == inventory.runs[1]["startedAt"]
    assert result["tags"] == tags
    assert all("drs" not in item for item in result["items"])


def test_resolve_cross_account_servers_by_their_origin_ec2_tags(inventory: Inventory) -> None:
    arns, _ = _resolve(accountId=TARGET, region=EAST, tags={"DRGroup": "cross-account"})
    assert arns == inventory.arns("xacct1", "xacct2")
    arns, _ = _resolve(accountId=TARGET, region=EAST, tags={"Team": "ops"})
    assert arns == inventory.arns("xacct2")  # DRS Team=ops wins over EC2 Team=data


def test_resolve_in_a_stale_scope_says_so(inventory: Inventory) -> None:
    arns, result = _resolve(accountId=HUB, region=WEST, tags={"DRGroup": "west"})
    assert arns == inventory.arns("west1", "west2", "west3")
    assert result["fresh"] is False
    assert result["scopeStatus"] == "ACCESS_DENIED"
    assert result["lastSuccessTime"] == inventory.stale_success_time
    assert result["ageSeconds"] >= STALE_AGE.total_seconds() - 120


def test_resolve_in_a_scope_whose_latest_run_failed_is_not_fresh_within_any_threshold(
    inventory: Inventory,
) -> None:
    _, result = _resolve(
        accountId=HUB, region=WEST, tags={"DRGroup": "west"}, freshnessSeconds=3 * 3600
    )
    assert result["ageSeconds"] < 3 * 3600
    assert (result["fresh"], result["scopeStatus"]) == (False, "ACCESS_DENIED")
    summary = invoke("get_inventory_summary", freshnessSeconds=3 * 3600)
    assert summary["freshScopes"] == 2
    assert (HUB, WEST) in {(s["accountId"], s["region"]) for s in summary["staleScopes"]}


def test_resolve_in_a_never_synced_scope_is_empty_and_not_fresh(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A region deployed into DRS_REGIONS after the module's syncs ran: no sync has reached it.
    monkeypatch.setenv(DRS_REGIONS_ENV, f"{EAST},{WEST},eu-west-1")
    arns, result = _resolve(accountId=HUB, region="eu-west-1", tags={"DRGroup": "web-tier"})
    assert arns == set()
    assert (result["fresh"], result["scopeStatus"], result["lastSuccessTime"]) == (
        False,
        None,
        None,
    )


def test_resolve_pages(inventory: Inventory) -> None:
    tags = {"DRGroup": "web-tier"}
    first = invoke("resolve_servers_by_tags", accountId=HUB, region=EAST, tags=tags, limit=2)
    assert first["count"] == 2 and first["nextToken"]
    second = invoke(
        "resolve_servers_by_tags",
        accountId=HUB,
        region=EAST,
        tags=tags,
        limit=2,
        nextToken=first["nextToken"],
    )
    arns = {item["sourceServerArn"] for item in first["items"] + second["items"]}
    assert arns == inventory.arns("web1", "web2", "ghost_ec2")
    assert second["nextToken"] is None


def test_resolve_across_all_scopes_marks_each_scope_with_its_freshness(
    inventory: Inventory,
) -> None:
    # GIVEN servers tagged DRGroup=west in the hub's us-west-2, whose latest sync failed
    # WHEN a resolution searches every scope
    arns, result = _resolve(allScopes=True, tags={"DRGroup": "west"})

    # THEN it finds them, says their scope is stale, and names every stale scope searched
    assert arns == inventory.arns("west1", "west2", "west3")
    assert result["allScopes"] is True
    assert (result["accountId"], result["region"], result["scopeStatus"]) == (None, None, None)
    assert [(s["accountId"], s["region"], s["fresh"]) for s in result["scopes"]] == [
        (HUB, WEST, False)
    ]
    assert result["scopes"][0]["status"] == "ACCESS_DENIED"
    stale = {(s["accountId"], s["region"]) for s in result["staleScopes"]}
    assert stale == {(HUB, WEST), (TARGET, WEST)}
    assert result["fresh"] is False

    # accountId or region narrow an all-scope search; a fresh answer says so
    arns, result = _resolve(allScopes=True, region=EAST, tags={"DRGroup": "web-tier"})
    assert arns == inventory.arns("web1", "web2", "ghost_ec2")
    assert [(s["accountId"], s["region"], s["fresh"]) for s in result["scopes"]] == [
        (HUB, EAST, True)
    ]
    assert result["staleScopes"] == [] and result["fresh"] is True
    arns, _ = _resolve(allScopes=True, accountId=TARGET, tags={"DRGroup": "cross-account"})
    assert arns == inventory.arns("xacct1", "xacct2")
    arns, _ = _resolve(allScopes=True, accountId=TARGET, tags={"DRGroup": "web-tier"})
    assert arns == set()


def test_resolve_across_all_scopes_pages(inventory: Inventory) -> None:
    found: set[str] = set()
    token = None
    for _ in range(10):
        page = invoke(
            "resolve_servers_by_tags",
            allScopes=True,
            tags={"DRGroup": "web-tier"},
            limit=1,
            **({"nextToken": token} if token else {}),
        )
        found |= {item["sourceServerArn"] for item in page["items"]}
        token = page["nextToken"]
        if token is None:
            break
    assert found == inventory.arns("web1", "web2", "ghost_ec2")
    one_scope = invoke(
        "resolve_servers_by_tags", accountId=HUB, region=EAST, tags={"DRGroup": "web-tier"}, limit=1
    )
    with pytest.raises(InvalidParameterError, match="different filters"):
        invoke(
            "resolve_servers_by_tags",
            allScopes=True,
            accountId=HUB,
            region=EAST,
            tags={"DRGroup": "web-tier"},
            nextToken=one_scope["nextToken"],
        )


@pytest.mark.parametrize(
    ("params", "missing"),
    [
        ({}, "missing required parameters accountId, region, tags;"),
        ({"tags": {"a": "b"}}, "missing required parameters accountId, region;"),
        ({"accountId": HUB}, "missing required parameters region, tags;"),
        ({"allScopes": True}, "missing required parameter tags;"),
        (
            {"allScopes": False, "tags": {"a": "b"}},
            "missing required parameters accountId, region;",
        ),
    ],
)
def test_resolve_names_every_missing_parameter_in_one_error(
    inventory: Inventory, params: dict[str, Any], missing: str
) -> None:
    with pytest.raises(InvalidParameterError) as raised:
        invoke("resolve_servers_by_tags", **params)
    message = str(raised.value)
    assert missing in message
    assert "allScopes: true" in message  # how to search every scope instead


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"allScopes": True, "region": "us-east-9"}, f"valid regions: {EAST}, {WEST}"),
        ({"allScopes": True, "region": "eu-west-1"}, f"valid regions: {EAST}, {WEST}"),
        ({"allScopes": True, "accountId": "12345678901"}, "accountId must be 12 digits"),
        ({"allScopes": "yes"}, "missing required parameters accountId, region"),
        ({"allScopes": None, "accountId": HUB, "region": EAST}, "allScopes must be boolean"),
    ],
)
def test_resolve_refuses_bad_filters_across_all_scopes(
    inventory: Inventory, params: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidParameterError, match=reason):
        invoke("resolve_servers_by_tags", tags={"DRGroup": "west"}, **params)


# --- bad input ----------------------------------------------------------------------------------

VALID_TOKEN_SOURCE = {"operation": "list_source_servers", "limit": 1}

ANY_ARN = f"arn:aws:drs:{EAST}:{HUB}:source-server/s-00000000000000000"
NESTED: Any = "x"
for _ in range(50_000):
    NESTED = [NESTED]


def _token(value: Any) -> str:
    """urlsafe base64 of `value` as JSON: the shape of a real token, with any content."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


# Strict input (DESIGN: ids, regions and ARNs in full and in ASCII, null is not absent,
# every malformed token an InvalidParameterError, free text bounded).
STRICT_REQUESTS = [
    *[
        ("list_source_servers", {"accountId": bad}, "accountId must be 12 digits")
        for bad in BAD_IDS
    ],
    *[("get_region_status", {"accountId": bad}, "accountId must be 12 digits") for bad in BAD_IDS],
    *[("get_inventory_summary", {"accountId": bad}, "12 digits") for bad in BAD_IDS],
    *[
        ("resolve_servers_by_tags", {"accountId": bad, "region": EAST, "tags": {"a": "b"}}, "12")
        for bad in BAD_IDS
    ],
    *[("list_source_servers", {"region": bad}, "AWS region name") for bad in look_alikes(EAST)],
    *[
        ("get_source_server", {"sourceServerArn": bad}, "sourceServerArn must be")
        for bad in look_alikes(ANY_ARN)
    ],
    ("get_source_server", {"sourceServerID": "s-00000000000000000\n"}, "sourceServerID"),
    ("list_source_servers", {"region": "eu-north-9"}, "not a DRS region this deployment syncs"),
    *[
        (
            "get_source_server",
            {"sourceServerID": "s-00000000000000000", "accountId": bad},
            "accountId must be 12 digits",
        )
        for bad in BAD_IDS
    ],
    (
        "get_source_server",
        {"sourceServerID": "s-00000000000000000", "region": "us-east-9"},
        f"region us-east-9 is not a DRS region this deployment syncs; valid regions: {EAST}, "
        f"{WEST}",
    ),
    (
        "list_source_servers",
        {"accountId": HUB, "region": "us-east-9"},
        f"region us-east-9 is not a DRS region this deployment syncs; valid regions: {EAST}, "
        f"{WEST}",
    ),
    ("list_source_servers", {"accountId": None}, "accountId must be string, got null"),
    ("list_source_servers", {"region": None}, "region must be string, got null"),
    ("list_source_servers", {"includeDeleted": None}, "includeDeleted must be boolean, got null"),
    ("list_source_servers", {"limit": None}, "limit must be integer, got null"),
    ("list_source_servers", {"hostname": None}, "hostname must be string, got null"),
    ("get_source_server", {"sourceServerArn": None}, "got null"),
    ("get_region_status", {"freshnessSeconds": None}, "got null"),
    ("resolve_servers_by_tags", {"accountId": HUB, "region": EAST, "tags": None}, "got null"),
    ("list_source_servers", {"hostname": "h" * 256}, "hostname must be at most 255"),
    ("list_source_servers", {"tagKey": "k" * 129}, "tagKey must be at most 128"),
    ("list_source_servers", {"tagKey": "k", "tagValue": "v" * 257}, "tagValue must be at most"),
    ("list_source_servers", {"tagKey": ""}, "tagKey must not be empty"),
    ("list_source_servers", {"replicationState": "C" * 100_000}, "replicationState must be at"),
    (
        "resolve_servers_by_tags",
        {"accountId": HUB, "region": EAST, "tags": {f"k{n}": "v" for n in range(51)}},
        "at most 50",
    ),
    (
        "resolve_servers_by_tags",
        {"accountId": HUB, "region": EAST, "tags": {"a": NESTED}},
        "string value",
    ),
    ("list_source_servers", {"hostname": NESTED}, "hostname must be string, got list"),
]
MALFORMED_TOKENS = [
    7,
    1.5,
    True,
    None,
    [],
    ["eyJr"],
    {"key": {"sourceServerArn": ANY_ARN}},
    NESTED,
    "",
    "A" * 1_000_000,
    "not base64!",
    "eyJ",
    "eyJrZXkiOiAxfQ",
    base64.urlsafe_b64encode(b"\xff\xfe\x00garbage").decode(),
    base64.urlsafe_b64encode(b"[" * 3000).decode(),
    base64.urlsafe_b64encode(b"null").decode(),
    _token({"key": {"sourceServerArn": 5}, "listing": "x"}),
    _token([[[["deep"]]]]),
]


@pytest.mark.parametrize(("operation", "params", "reason"), STRICT_REQUESTS)
def test_input_is_matched_strictly(
    inventory: Inventory, operation: str, params: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidParameterError, match=reason) as raised:
        invoke(operation, **params)
    assert len(str(raised.value)) < 2000  # refused values are shown cut short


def test_a_region_outside_drs_regions_is_refused_not_empty(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployment that syncs two regions  WHEN a query names a third
    monkeypatch.setenv(DRS_REGIONS_ENV, f"{EAST},{WEST}")
    assert listed_arns(region=WEST) == inventory.arns("west1", "west2", "west3")
    for operation, params in (
        ("list_source_servers", {"region": "eu-west-1"}),
        ("list_source_servers", {"accountId": HUB, "region": "eu-west-1"}),
        ("get_source_server", {"sourceServerID": "s-00000000000000000", "region": "eu-west-1"}),
        ("resolve_servers_by_tags", {"accountId": HUB, "region": "eu-west-1", "tags": {"a": "b"}}),
    ):
        # THEN it is refused, naming the valid ones, rather than answering "no servers"
        with pytest.raises(InvalidParameterError, match=f"valid regions: {EAST}, {WEST}"):
            invoke(operation, **params)


@pytest.mark.parametrize("operation", ["list_source_servers", "resolve_servers_by_tags"])
@pytest.mark.parametrize("token", MALFORMED_TOKENS, ids=lambda t: f"{type(t).__name__}")
def test_every_malformed_token_is_an_invalid_parameter(
    inventory: Inventory, operation: str, token: Any
) -> None:
    params: dict[str, Any] = {"accountId": HUB, "region": EAST, "nextToken": token}
    if operation == "resolve_servers_by_tags":
        params["tags"] = {"DRGroup": "web-tier"}
    with pytest.raises(InvalidParameterError, match="nextToken"):
        invoke(operation, **params)


def test_a_forged_token_outside_the_queried_scope_is_an_invalid_parameter(
    inventory: Inventory,
) -> None:
    # GIVEN a real token of a scope index listing, its key moved to another account
    token = invoke("list_source_servers", accountId=HUB, region=EAST, limit=1)["nextToken"]
    decoded = json.loads(base64.urlsafe_b64decode(token))
    decoded["key"]["accountId"] = TARGET
    forged = _token(decoded)
    # THEN it is refused before DynamoDB could answer with a ValidationException
    with pytest.raises(InvalidParameterError, match="nextToken is malformed"):
        invoke("list_source_servers", accountId=HUB, region=EAST, limit=1, nextToken=forged)


BAD_REQUESTS = [
    ("list_source_servers", {"acountId": HUB}, "unknown parameter.*acountId.*valid parameters"),
    ("list_source_servers", {"limit": "10"}, "limit must be integer"),
    ("list_source_servers", {"limit": 0}, "limit must be 1-1000"),
    ("list_source_servers", {"limit": 1001}, "limit must be 1-1000"),
    ("list_source_servers", {"limit": True}, "limit must be integer"),
    ("list_source_servers", {"includeDeleted": "yes"}, "includeDeleted must be boolean"),
    ("list_source_servers", {"accountId": "12345"}, "accountId must be 12 digits"),
    ("list_source_servers", {"region": "mars-1"}, "region must be an AWS region"),
    ("list_source_servers", {"replicationState": "continuous"}, "one of .*CONTINUOUS"),
    ("list_source_servers", {"tagValue": "web-tier"}, "tagValue needs tagKey"),
    ("list_source_servers", {"hostname": " "}, "hostname must not be empty"),
    ("list_source_servers", {"nextToken": "not a token!"}, "nextToken is malformed"),
    ("list_source_servers", {"nextToken": "eyJhIjogMX0="}, "nextToken"),
    ("get_source_server", {}, "exactly one of sourceServerArn or sourceServerID"),
    (
        "get_source_server",
        {"sourceServerID": "s-00000000000000000", "sourceServerArn": ANY_ARN},
        "exactly one",
    ),
    ("get_source_server", {"sourceServerID": "i-0123"}, "sourceServerID must be a DRS source"),
    ("get_source_server", {"sourceServerArn": "arn:aws:ec2:x"}, "sourceServerArn must be a DRS"),
    (
        "get_source_server",
        {
            "sourceServerArn": f"arn:aws:drs:{EAST}:{HUB}:source-server/s-00000000000000000",
            "accountId": HUB,
        },
        "narrow a sourceServerID",
    ),
    ("get_source_server", {"sourceServerID": 7}, "sourceServerID must be string"),
    ("get_region_status", {"accountId": 123456789012}, "accountId must be string"),
    ("get_region_status", {"freshnessSeconds": 0}, "freshnessSeconds must be 1-"),
    ("get_region_status", {"region": EAST}, "unknown parameter.*region"),
    ("get_inventory_summary", {"freshnessSeconds": "1800"}, "freshnessSeconds must be integer"),
    ("get_inventory_summary", {"accountId": "#sync-lease"}, "accountId must be 12 digits"),
    (
        "resolve_servers_by_tags",
        {"accountId": HUB, "region": EAST},
        "missing required parameter tags",
    ),
    (
        "resolve_servers_by_tags",
        {"region": EAST, "tags": {"a": "b"}},
        "missing required parameter accountId",
    ),
    ("resolve_servers_by_tags", {"accountId": HUB, "region": EAST, "tags": {}}, "at least one key"),
    (
        "resolve_servers_by_tags",
        {"accountId": HUB, "region": EAST, "tags": ["DRGroup"]},
        "tags must be object",
    ),
    (
        "resolve_servers_by_tags",
        {"accountId": HUB, "region": EAST, "tags": {"DRGroup": 1}},
        "string value",
    ),
    (
        "resolve_servers_by_tags",
        {"accountId": HUB, "region": EAST, "tags": {"": "x"}},
        "tag key must be a string",
    ),
    (
        "resolve_servers_by_tags",
        {"accountId": HUB, "region": EAST, "tags": {"a": "b"}, "nextToken": "%%%"},
        "nextToken is malformed",
    ),
]


@pytest.mark.parametrize(("operation", "params", "reason"), BAD_REQUESTS)
def test_bad_parameters_are_typed_errors(
    inventory: Inventory, operation: str, params: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidParameterError, match=reason):
        invoke(operation, **params)


def test_unknown_parameter_error_lists_the_valid_fields(inventory: Inventory) -> None:
    with pytest.raises(InvalidParameterError) as raised:
        invoke("list_source_servers", state="CONTINUOUS")
    for name in (
        "accountId",
        "region",
        "replicationState",
        "tagKey",
        "tagValue",
        "hostname",
        "includeDeleted",
        "limit",
        "nextToken",
    ):
        assert name in str(raised.value)


def test_a_token_only_works_with_the_filters_that_issued_it(inventory: Inventory) -> None:
    token = invoke("list_source_servers", accountId=HUB, limit=1)["nextToken"]
    assert token
    with pytest.raises(InvalidParameterError, match="different filters"):
        invoke("list_source_servers", accountId=TARGET, limit=1, nextToken=token)
    with pytest.raises(InvalidParameterError, match="different filters"):
        invoke(
            "resolve_servers_by_tags", accountId=HUB, region=EAST, tags={"a": "b"}, nextToken=token
        )
    # The limit may change between pages.
    assert invoke("list_source_servers", accountId=HUB, limit=5, nextToken=token)["items"]


def test_empty_results_are_not_errors(inventory: Inventory) -> None:
    assert invoke("list_source_servers", accountId="999999999999") == {
        "items": [],
        "nextToken": None,
    }
    assert invoke("get_inventory_summary", accountId="999999999999")["totalServers"] == 0


# --- read-only, proven on the wire ---------------------------------------------------------------

READ_OPERATIONS = {"GetItem", "BatchGetItem", "Query", "Scan"}


def test_every_aws_call_of_every_operation_is_a_read(
    inventory: Inventory, api_calls: ApiCalls
) -> None:
    # GIVEN the recorder on every client  WHEN every operation runs, including failures
    dup_id = inventory.servers["dup"]["sourceServerID"]
    requests: list[dict[str, Any]] = [
        {"operation": "list_source_servers"},
        {"operation": "list_source_servers", "accountId": HUB, "region": EAST, "limit": 2},
        {"operation": "list_source_servers", "accountId": TARGET, "tagKey": "Team"},
        {
            "operation": "list_source_servers",
            "region": WEST,
            "hostname": "west",
            "includeDeleted": True,
            "replicationState": "CONTINUOUS",
        },
        {"operation": "get_source_server", "sourceServerArn": inventory.arn("web1")},
        {"operation": "get_source_server", "sourceServerArn": inventory.arn("gone")},
        {"operation": "get_source_server", "sourceServerID": dup_id},
        {"operation": "get_source_server", "sourceServerID": dup_id, "accountId": HUB},
        {"operation": "get_source_server", "sourceServerID": dup_id, "region": EAST},
        {"operation": "get_region_status"},
        {"operation": "get_region_status", "accountId": HUB},
        {"operation": "get_inventory_summary"},
        {"operation": "get_inventory_summary", "accountId": TARGET},
        {
            "operation": "resolve_servers_by_tags",
            "accountId": HUB,
            "region": EAST,
            "tags": {"DRGroup": "web-tier"},
        },
        {
            "operation": "resolve_servers_by_tags",
            "accountId": HUB,
            "region": "eu-west-1",
            "tags": {"DRGroup": "web-tier"},
        },
        {"operation": "list_source_servers", "limit": 0},
        {"operation": "no_such_operation"},
    ]
    invoked = set()
    for request in requests:
        invoked.add(request["operation"])
        with contextlib.suppress(InvalidParameterError, NotFoundError, UnknownOperationError):
            query_handler.lambda_handler(request, FakeLambdaContext())

    # THEN every call was recorded, all to DynamoDB, and all reads
    assert invoked >= CONTRACT_OPERATIONS
    assert api_calls.made == len(api_calls.calls) > 0
    services = {service for service, _ in api_calls.operations}
    operations = {operation for _, operation in api_calls.operations}
    assert services == {"dynamodb"}
    assert operations <= READ_OPERATIONS
    assert {"GetItem", "Query", "Scan"} <= operations  # the hook saw the real traffic
