"""The DRS simulator as a stock boto3 `drs` client sees it: wire format, paging, attribution,
faults and latency, plus its control API from a separate process.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from scripts.local import fleet
from scripts.local.accounts import create_cross_account_role
from scripts.local.drs_simulator import (
    ACCESS_DENIED,
    DEFAULT_PAGE_SIZE,
    INTERNAL_ERROR,
    THROTTLING,
    UNINITIALIZED,
    UNRECOGNIZED_CLIENT,
    DrsSimulator,
    Fault,
    SimulatorControl,
    SimulatorControlError,
)
from tests.support.drs import (
    RawBodies,
    drs_client,
    drs_shape,
    output_shape,
    shape_violations,
)

HUB = "123456789012"  # moto's default account: what the "testing" key resolves to
SPOKE = "111122223333"
STAGING = "444455556666"
REGION = "us-east-1"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _ids(servers: list[dict[str, Any]]) -> list[str]:
    return [server["sourceServerID"] for server in servers]


def _assume_spoke(region: str = REGION) -> dict[str, str]:
    """Credentials of a session of SPOKE's role (created here: the local STS assumes only
    roles that exist and trust the caller)."""
    role_arn = create_cross_account_role(SPOKE, HUB, None, role_name="DrsReadOnly")
    sts = boto3.client("sts", region_name=region)
    return sts.assume_role(RoleArn=role_arn, RoleSessionName="drs-sim-test")["Credentials"]


def _signed_post(simulator: DrsSimulator, path: str, body: bytes) -> tuple[int, dict, dict]:
    """A raw request with a SigV4-shaped header, for what boto3 refuses to send."""
    request = urllib.request.Request(
        simulator.endpoint + path,
        data=body,
        method="POST",
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/drs/"
            "aws4_request, SignedHeaders=host, Signature=00",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


# ---- paging ----------------------------------------------------------------------------------


def test_paginator_returns_every_server_exactly_once(drs_simulator):
    servers = fleet.generate_fleet(HUB, REGION, 25, seed=1)
    drs_simulator.add_source_servers(HUB, REGION, servers)
    drs = drs_client(drs_simulator.endpoint)

    pages = list(
        drs.get_paginator("describe_source_servers").paginate(PaginationConfig={"PageSize": 7})
    )

    listed = [item["sourceServerID"] for page in pages for item in page["items"]]
    assert sorted(listed) == sorted(_ids(servers))
    assert len(listed) == len(set(listed))
    assert [len(page["items"]) for page in pages] == [7, 7, 7, 4]
    assert drs_simulator.request_count("DescribeSourceServers", HUB, REGION) == 4


def test_max_results_and_next_token(drs_simulator):
    drs_simulator.add_source_servers(HUB, REGION, fleet.generate_fleet(HUB, REGION, 12, seed=2))
    drs = drs_client(drs_simulator.endpoint)

    first = drs.describe_source_servers(maxResults=10)
    second = drs.describe_source_servers(maxResults=10, nextToken=first["nextToken"])

    assert len(first["items"]) == 10
    assert len(second["items"]) == 2
    assert "nextToken" not in second
    listed = _ids(first["items"]) + _ids(second["items"])
    assert listed == drs_simulator.source_server_ids(HUB, REGION)  # stable id order


def test_servers_removed_between_pages_neither_repeat_nor_shift(drs_simulator):
    servers = fleet.generate_fleet(HUB, REGION, 6, seed=3)
    drs_simulator.add_source_servers(HUB, REGION, servers)
    ordered = drs_simulator.source_server_ids(HUB, REGION)
    drs = drs_client(drs_simulator.endpoint)

    first = drs.describe_source_servers(maxResults=3)
    assert drs_simulator.remove_source_server(HUB, REGION, ordered[1])
    assert drs_simulator.remove_source_server(HUB, REGION, ordered[4])
    rest = drs.describe_source_servers(maxResults=3, nextToken=first["nextToken"])

    assert _ids(rest["items"]) == [ordered[3], ordered[5]]
    assert not drs_simulator.remove_source_server(HUB, REGION, ordered[4])


def test_default_and_maximum_page_size(drs_simulator):
    assert DEFAULT_PAGE_SIZE == 1000
    # Bare records (id + ARN) keep 2 x 1000 items cheap for botocore to parse.
    bare = [
        {
            "sourceServerID": f"s-{i:017x}",
            "arn": f"arn:aws:drs:{REGION}:{HUB}:source-server/s-{i:017x}",
        }
        for i in range(1001)
    ]
    drs_simulator.add_source_servers(HUB, REGION, bare)
    drs = drs_client(drs_simulator.endpoint)

    assert len(drs.describe_source_servers()["items"]) == 1000
    clamped = drs.describe_source_servers(maxResults=5000)
    assert len(clamped["items"]) == 1000
    assert "nextToken" in clamped


def test_configured_page_sizes():
    with DrsSimulator(default_account_id=HUB, default_page_size=3, max_page_size=5) as sim:
        sim.add_source_servers(HUB, REGION, fleet.generate_fleet(HUB, REGION, 9, seed=5))
        drs = drs_client(sim.endpoint)
        assert len(drs.describe_source_servers()["items"]) == 3
        assert len(drs.describe_source_servers(maxResults=50)["items"]) == 5


@pytest.mark.parametrize(
    "token",
    ["not-a-token", "eyJ2IjoyfQ==", "%%%"],
    ids=["garbage", "wrong-version", "not-base64"],
)
def test_invalid_next_token_is_a_validation_exception(drs_simulator, token):
    drs = drs_client(drs_simulator.endpoint)
    with pytest.raises(ClientError) as raised:
        drs.describe_source_servers(nextToken=token)
    error = raised.value.response
    assert error["Error"]["Code"] == "ValidationException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["fieldList"] == [{"name": "nextToken", "message": "Invalid nextToken"}]


def test_next_token_is_bound_to_its_region(drs_simulator):
    drs_simulator.add_source_servers(HUB, REGION, fleet.generate_fleet(HUB, REGION, 3, seed=6))
    token = drs_client(drs_simulator.endpoint).describe_source_servers(maxResults=1)["nextToken"]
    with pytest.raises(ClientError) as raised:
        drs_client(drs_simulator.endpoint, "eu-west-1").describe_source_servers(nextToken=token)
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_requests_are_validated_against_the_model_server_side(drs_simulator):
    # botocore validates client-side too; switch that off to see what the service says.
    unchecked = Config(parameter_validation=False, retries={"mode": "standard"})
    drs = drs_client(drs_simulator.endpoint, config=unchecked)

    for kwargs in (
        {"maxResults": 0},
        {"filters": {"sourceServerIDs": ["not-an-id"]}},
        {"filters": {"sourceServerIDs": [f"s-{i:017x}" for i in range(201)]}},
    ):
        with pytest.raises(ClientError) as raised:
            drs.describe_source_servers(**kwargs)
        assert raised.value.response["Error"]["Code"] == "ValidationException"
        assert raised.value.response["reason"] == "fieldValidationFailed"


# ---- filters ---------------------------------------------------------------------------------


def test_filters(drs_simulator):
    servers = fleet.generate_fleet(
        HUB, REGION, 20, ec2_fraction=0.5, extended_fraction=0.2, staging_account_ids=[STAGING]
    )
    drs_simulator.add_source_servers(HUB, REGION, servers)
    drs = drs_client(drs_simulator.endpoint)
    ec2_server, on_prem = servers[0], servers[15]
    hints = ec2_server["sourceProperties"]["identificationHints"]

    def listed(**filters: Any) -> list[str]:
        pages = drs.get_paginator("describe_source_servers").paginate(filters=filters)
        return sorted(item["sourceServerID"] for page in pages for item in page["items"])

    wanted = sorted([*_ids(servers[:3]), "s-00000000000000000"])
    assert listed(sourceServerIDs=wanted) == sorted(_ids(servers[:3]))
    assert listed(sourceServerIDs=[]) == sorted(_ids(servers))  # empty list = all
    assert listed(hardwareId=hints["awsInstanceID"]) == [ec2_server["sourceServerID"]]
    vmware = on_prem["sourceProperties"]["identificationHints"]["vmWareUuid"]
    assert listed(hardwareId=vmware) == [on_prem["sourceServerID"]]
    mac = on_prem["sourceProperties"]["networkInterfaces"][0]["macAddress"]
    assert listed(hardwareId=mac) == [on_prem["sourceServerID"]]
    assert listed(stagingAccountIDs=[STAGING]) == sorted(_ids(servers[16:]))
    assert listed(stagingAccountIDs=["999999999999"]) == []


def test_filtered_pages_have_no_empty_trailing_page(drs_simulator):
    servers = fleet.generate_fleet(
        HUB, REGION, 10, ec2_fraction=0, extended_fraction=0.4, staging_account_ids=[STAGING]
    )
    drs_simulator.add_source_servers(HUB, REGION, servers)
    drs = drs_client(drs_simulator.endpoint)

    pages = list(
        drs.get_paginator("describe_source_servers").paginate(
            filters={"stagingAccountIDs": [STAGING]}, PaginationConfig={"PageSize": 2}
        )
    )

    assert [len(page["items"]) for page in pages] == [2, 2]


# ---- caller attribution ----------------------------------------------------------------------


def test_assumed_role_sees_only_its_own_accounts_servers(drs_simulator):
    hub_servers = fleet.generate_fleet(HUB, REGION, 4, seed=10)
    spoke_servers = fleet.generate_fleet(SPOKE, REGION, 3, seed=11)
    drs_simulator.add_source_servers(HUB, REGION, hub_servers)
    drs_simulator.add_source_servers(SPOKE, REGION, spoke_servers)

    spoke = drs_client(drs_simulator.endpoint, credentials=_assume_spoke())
    hub = drs_client(drs_simulator.endpoint)

    spoke_items = spoke.describe_source_servers()["items"]
    assert sorted(_ids(spoke_items)) == sorted(_ids(spoke_servers))
    assert all(f":{SPOKE}:source-server/" in item["arn"] for item in spoke_items)
    assert sorted(_ids(hub.describe_source_servers()["items"])) == sorted(_ids(hub_servers))
    assert drs_simulator.request_count(account_id=SPOKE) == 1
    assert drs_simulator.request_count(account_id=HUB) == 1


def test_region_comes_from_the_signature_scope(drs_simulator):
    east = fleet.generate_fleet(HUB, "us-east-1", 2, seed=12)
    west = fleet.generate_fleet(HUB, "us-west-2", 3, seed=13)
    drs_simulator.add_source_servers(HUB, "us-east-1", east)
    drs_simulator.add_source_servers(HUB, "us-west-2", west)

    listed_west = drs_client(drs_simulator.endpoint, "us-west-2").describe_source_servers()
    listed_eu = drs_client(drs_simulator.endpoint, "eu-west-1").describe_source_servers()

    assert sorted(_ids(listed_west["items"])) == sorted(_ids(west))
    assert listed_eu["items"] == []
    assert drs_simulator.request_counts() == {
        ("DescribeSourceServers", HUB, "us-west-2"): 1,
        ("DescribeSourceServers", HUB, "eu-west-1"): 1,
    }


def test_static_mapping_default_account_and_unknown_keys():
    def nobody_knows(access_key_id: str) -> None:
        return None

    with DrsSimulator(account_resolver=nobody_knows, access_keys={"AKIAMAPPED": SPOKE}) as sim:
        sim.add_source_servers(SPOKE, REGION, fleet.generate_fleet(SPOKE, REGION, 1))
        mapped = {"AccessKeyId": "AKIAMAPPED", "SecretAccessKey": "x"}
        assert (
            len(drs_client(sim.endpoint, credentials=mapped).describe_source_servers()["items"])
            == 1
        )
        with pytest.raises(ClientError) as raised:
            drs_client(sim.endpoint).describe_source_servers()
        assert raised.value.response["Error"]["Code"] == UNRECOGNIZED_CLIENT
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    with DrsSimulator(default_account_id=STAGING) as sim:
        sim.add_source_servers(STAGING, REGION, fleet.generate_fleet(STAGING, REGION, 2))
        assert len(drs_client(sim.endpoint).describe_source_servers()["items"]) == 2


def test_unsigned_request_is_rejected(drs_simulator):
    request = urllib.request.Request(
        drs_simulator.endpoint + "/DescribeSourceServers", data=b"{}", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 403
    assert raised.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


# ---- operations and wire format --------------------------------------------------------------


def test_describe_source_servers_wire_body_matches_the_botocore_output_shape(drs_simulator):
    servers = fleet.generate_fleet(
        HUB, REGION, 60, ec2_fraction=0.5, extended_fraction=0.2, staging_account_ids=[STAGING]
    )
    drs_simulator.add_source_servers(HUB, REGION, servers)
    drs = drs_client(drs_simulator.endpoint)
    raw = RawBodies(drs, "DescribeSourceServers")

    parsed = list(
        drs.get_paginator("describe_source_servers").paginate(PaginationConfig={"PageSize": 25})
    )

    shape = output_shape("DescribeSourceServers")
    assert len(raw.bodies) == len(parsed) == 3
    problems = [problem for body in raw.bodies for problem in shape_violations(body, shape)]
    assert problems == []
    # botocore hands back what was sent, field for field (no lossy types on the wire).
    assert [item for body in raw.bodies for item in body["items"]] == [
        item for page in parsed for item in page["items"]
    ]


def test_churned_fleet_is_served_in_the_botocore_output_shape(drs_simulator):
    # GIVEN a mixed fleet in two scopes
    drs_simulator.add_source_servers(
        HUB,
        REGION,
        fleet.generate_fleet(
            HUB, REGION, 300, ec2_fraction=0.3, extended_fraction=0.1, staging_account_ids=[STAGING]
        ),
    )
    drs_simulator.generate_fleet(HUB, "us-west-2", 200, seed=5)
    scopes = ((HUB, REGION), (HUB, "us-west-2"))

    def all_ids() -> set[str]:
        return {sid for scope in scopes for sid in drs_simulator.source_server_ids(*scope)}

    before = all_ids()
    control = SimulatorControl(drs_simulator.endpoint)

    # WHEN a schedule interval of churn passes through the control API, then another
    first = control.churn(state_fraction=0.02, replace_fraction=0.01, seed=1)
    after_first = all_ids()
    second = control.churn(state_fraction=0.02, replace_fraction=0.01, seed=1)

    # THEN each interval changed 2% of states and replaced 1% (5 of 500) in place
    assert (first["servers"], first["stateChanged"], first["replaced"]) == (500, 10, 5)
    assert len(before - after_first) == len(after_first - before) == 5
    assert second["now"] > first["now"]
    assert control.scope_counts() == {(HUB, REGION): 300, (HUB, "us-west-2"): 200}
    # AND what a stock client reads is still DRS's output shape, field for field
    drs = drs_client(drs_simulator.endpoint)
    raw = RawBodies(drs, "DescribeSourceServers")
    list(drs.get_paginator("describe_source_servers").paginate())
    shape = output_shape("DescribeSourceServers")
    assert [problem for body in raw.bodies for problem in shape_violations(body, shape)] == []
    assert sum(len(body["items"]) for body in raw.bodies) == 300


def test_list_staging_accounts_and_describe_recovery_instances(drs_simulator):
    servers = fleet.generate_fleet(
        HUB, REGION, 6, extended_fraction=0.5, staging_account_ids=[STAGING, "777788889999"]
    )
    drs_simulator.add_source_servers(HUB, REGION, servers)
    drs = drs_client(drs_simulator.endpoint)
    raw_accounts = RawBodies(drs, "ListStagingAccounts")
    raw_recovery = RawBodies(drs, "DescribeRecoveryInstances")

    first = drs.list_staging_accounts(maxResults=1)
    second = drs.list_staging_accounts(maxResults=1, nextToken=first["nextToken"])
    recovery = drs.describe_recovery_instances(filters={"sourceServerIDs": _ids(servers[:1])})

    assert first["accounts"] + second["accounts"] == [
        {"accountID": STAGING},
        {"accountID": "777788889999"},
    ]
    assert "nextToken" not in second
    assert recovery["items"] == []
    for body in raw_accounts.bodies:
        assert shape_violations(body, output_shape("ListStagingAccounts")) == []
    for body in raw_recovery.bodies:
        assert shape_violations(body, output_shape("DescribeRecoveryInstances")) == []


def test_unknown_and_unimplemented_operations(drs_simulator):
    status, headers, body = _signed_post(drs_simulator, "/DescribeEverything", b"{}")
    assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationException")
    assert body["reason"] == "unknownOperation"

    drs = drs_client(drs_simulator.endpoint)
    with pytest.raises(ClientError) as raised:
        drs.start_recovery(sourceServers=[{"sourceServerID": "s-0123456789abcdef0"}])
    assert raised.value.response["Error"]["Code"] == "NotImplementedException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_malformed_json_body_is_a_validation_exception(drs_simulator):
    status, headers, body = _signed_post(drs_simulator, "/DescribeSourceServers", b"{nope")
    assert (status, headers["x-amzn-ErrorType"], body["reason"]) == (
        400,
        "ValidationException",
        "cannotParse",
    )


# ---- faults and latency ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "attempts"),
    [
        (THROTTLING, 429, 3),  # retryable: botocore standard mode tries 3 times
        (INTERNAL_ERROR, 500, 3),  # retryable (5xx)
        (ACCESS_DENIED, 403, 1),
        (UNINITIALIZED, 400, 1),
        (UNRECOGNIZED_CLIENT, 403, 1),  # an opt-in region the account has not enabled
    ],
)
@pytest.mark.usefixtures("no_retry_backoff")
def test_fault_as_seen_by_boto3(drs_simulator, code, status, attempts):
    if code != UNRECOGNIZED_CLIENT:  # not in DRS's model: the AWS front door answers it
        assert drs_shape(code).metadata["error"]["httpStatusCode"] == status
    drs_simulator.set_fault(HUB, REGION, Fault(code))
    drs = drs_client(drs_simulator.endpoint)

    with pytest.raises(ClientError) as raised:
        drs.describe_source_servers()

    response = raised.value.response
    assert response["Error"]["Code"] == code
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["RetryAttempts"] == attempts - 1
    assert drs_simulator.request_count("DescribeSourceServers", HUB, REGION) == attempts


@pytest.mark.usefixtures("no_retry_backoff")
def test_throttling_carries_the_models_fields(drs_simulator):
    drs_simulator.set_fault(HUB, REGION, Fault(THROTTLING, retry_after_seconds=3))
    with pytest.raises(ClientError) as raised:
        drs_client(drs_simulator.endpoint).describe_source_servers()
    response = raised.value.response
    assert response["serviceCode"] == "drs"
    assert response["quotaCode"]
    assert response["retryAfterSeconds"] == "3"  # the Retry-After header, as the model binds it


@pytest.mark.usefixtures("no_retry_backoff")
@pytest.mark.parametrize("code", [THROTTLING, INTERNAL_ERROR])
def test_n_failures_then_success_is_recovered_by_botocore_retries(drs_simulator, code):
    drs_simulator.add_source_servers(HUB, REGION, fleet.generate_fleet(HUB, REGION, 2))
    drs_simulator.set_fault(HUB, REGION, Fault(code, count=2))
    drs = drs_client(drs_simulator.endpoint)

    response = drs.describe_source_servers()

    assert len(response["items"]) == 2
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert drs_simulator.request_count("DescribeSourceServers", HUB, REGION) == 3
    assert drs_simulator.faults() == []  # used up


def test_faults_apply_only_to_their_scope_and_operation(drs_simulator):
    drs_simulator.set_fault(HUB, REGION, Fault(ACCESS_DENIED, operation="DescribeSourceServers"))
    drs_simulator.set_fault(None, "ap-east-1", Fault(UNRECOGNIZED_CLIENT))
    hub = drs_client(drs_simulator.endpoint)

    with pytest.raises(ClientError):
        hub.describe_source_servers()
    assert hub.list_staging_accounts()["accounts"] == []
    assert drs_client(drs_simulator.endpoint, "us-west-2").describe_source_servers()["items"] == []
    spoke = drs_client(drs_simulator.endpoint, "ap-east-1", credentials=_assume_spoke())
    with pytest.raises(ClientError) as raised:
        spoke.describe_source_servers()
    assert raised.value.response["Error"]["Code"] == UNRECOGNIZED_CLIENT

    drs_simulator.clear_faults()
    assert hub.describe_source_servers()["items"] == []


def test_latency_is_added_without_blocking_other_requests(drs_simulator):
    drs_simulator.set_latency(500, account_id=HUB, region="us-west-2")
    drs_simulator.set_latency(30)
    slow = drs_client(drs_simulator.endpoint, "us-west-2")
    fast = drs_client(drs_simulator.endpoint, REGION)
    fast.describe_source_servers()  # warm up the connection

    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        slow_call = pool.submit(slow.describe_source_servers)
        time.sleep(0.05)  # the slow request is now sleeping inside the simulator
        fast_started = time.monotonic()
        fast.describe_source_servers()
        fast_elapsed = time.monotonic() - fast_started
        slow_still_running = not slow_call.done()
        slow_call.result()
        slow_elapsed = time.monotonic() - started

    # Ordering, not tight bounds: the machine may be busy, but the fast request must not
    # have queued behind the slow one.
    assert slow_still_running
    assert fast_elapsed >= 0.03
    assert slow_elapsed >= 0.5


def test_concurrent_listings_while_servers_change(drs_simulator):
    drs_simulator.add_source_servers(HUB, REGION, fleet.generate_fleet(HUB, REGION, 150, seed=20))
    expected = set(drs_simulator.source_server_ids(HUB, REGION))

    def list_all() -> list[str]:
        drs = drs_client(drs_simulator.endpoint)
        pages = drs.get_paginator("describe_source_servers").paginate(
            PaginationConfig={"PageSize": 40}
        )
        return [item["sourceServerID"] for page in pages for item in page["items"]]

    def churn() -> None:
        for start in range(0, 100, 20):
            extra = fleet.generate_fleet(HUB, REGION, 20, seed=21, start_index=start)
            drs_simulator.add_source_servers(HUB, REGION, extra)

    with ThreadPoolExecutor(max_workers=5) as pool:
        listings = [pool.submit(list_all) for _ in range(3)]
        pool.submit(churn).result()
        for listing in listings:
            # Servers added mid-listing may or may not show; the originals show exactly once.
            listed = listing.result()
            assert len(listed) == len(set(listed))
            assert expected <= set(listed)
    assert drs_simulator.scope_counts()[(HUB, REGION)] == 250


# ---- lifecycle and control API ---------------------------------------------------------------


def test_stop_ends_keep_alive_connections_and_threads(moto_endpoint):
    before = set(threading.enumerate())
    with DrsSimulator(sts_endpoint=moto_endpoint) as sim:
        drs = drs_client(sim.endpoint)
        drs.describe_source_servers()  # leaves a pooled keep-alive connection open
        assert len(set(threading.enumerate()) - before) >= 2  # listener + connection handler
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(threading.enumerate()) - before == set()


def test_control_api_rejects_bad_requests(drs_simulator):
    control = SimulatorControl(drs_simulator.endpoint)
    with pytest.raises(SimulatorControlError, match="404"):
        control._call("GET", "no-such-route")
    with pytest.raises(SimulatorControlError, match="400"):
        control._call("POST", "faults", {"fault": {"errorCode": "TeapotException"}})
    with pytest.raises(SimulatorControlError, match="400"):
        control.add_source_servers(HUB, REGION, [{"sourceServerID": "nope"}])
    assert control.scope_counts() == {}


def _read_endpoint_line(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no DRS_ENDPOINT line within {timeout}s")
    line = process.stdout.readline().strip()
    assert line.startswith("DRS_ENDPOINT=http://127.0.0.1:"), line
    return line.split("=", 1)[1]


@pytest.mark.usefixtures("no_retry_backoff")
def test_control_api_drives_a_simulator_in_another_process(moto_endpoint, tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scripts.local.drs_simulator",
            "--port",
            "0",
            "--sts-endpoint",
            moto_endpoint,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        endpoint = _read_endpoint_line(process)
        control = SimulatorControl(endpoint)
        control.wait_until_healthy()
        servers = fleet.generate_fleet(HUB, REGION, 5, seed=30)
        assert control.set_source_servers(HUB, REGION, servers) == 5
        assert control.generate_fleet(SPOKE, REGION, 7, seed=31, ec2Fraction=1.0) == 7
        assert control.scope_counts() == {(HUB, REGION): 5, (SPOKE, REGION): 7}
        assert control.remove_source_server(HUB, REGION, servers[0]["sourceServerID"])
        assert not control.remove_source_server(HUB, REGION, servers[0]["sourceServerID"])

        hub = drs_client(endpoint)
        spoke = drs_client(endpoint, credentials=_assume_spoke())
        assert sorted(_ids(hub.describe_source_servers()["items"])) == sorted(_ids(servers[1:]))
        assert len(spoke.describe_source_servers()["items"]) == 7

        control.set_fault(SPOKE, REGION, Fault(THROTTLING, count=1))
        control.set_fault(HUB, REGION, Fault(UNINITIALIZED))
        assert len(control.faults()) == 2
        assert len(spoke.describe_source_servers()["items"]) == 7  # retried past the fault
        with pytest.raises(ClientError) as raised:
            hub.describe_source_servers()
        assert raised.value.response["Error"]["Code"] == UNINITIALIZED
        control.clear_faults(account_id=HUB)
        assert control.faults() == []

        control.set_latency(50)
        started = time.monotonic()
        hub.describe_source_servers()
        assert time.monotonic() - started >= 0.05
        control.clear_latency()

        assert control.request_counts() == {
            ("DescribeSourceServers", HUB, REGION): 3,
            ("DescribeSourceServers", SPOKE, REGION): 3,
        }
        control.reset_counts()
        assert control.request_counts() == {}
        control.reset()
        assert control.scope_counts() == {}
    finally:
        process.terminate()  # SIGTERM to this pid: the simulator shuts down cleanly
        try:
            returncode = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise
        if process.stdout is not None:
            process.stdout.close()
    assert returncode == 0


def test_create_ec2_instances_feed_a_matching_fleet(moto_endpoint, drs_simulator):
    ec2 = boto3.client("ec2", region_name=REGION)
    instances = fleet.create_ec2_instances(ec2, 3, tags={"App": "crm"}, batch_size=2)
    origins = fleet.ec2_origins(instances, HUB, REGION)
    drs_simulator.add_source_servers(
        HUB, REGION, fleet.generate_fleet(HUB, REGION, 4, ec2_instance_ids=origins)
    )

    items = drs_client(drs_simulator.endpoint).describe_source_servers()["items"]
    by_instance = {
        item["sourceProperties"]["identificationHints"].get("awsInstanceID"): item for item in items
    }
    described = ec2.describe_instances(InstanceIds=list(origins))["Reservations"]
    assert len([i for r in described for i in r["Instances"]]) == 3
    for instance in instances:
        server = by_instance[instance["InstanceId"]]
        cloud = server["sourceCloudProperties"]
        assert cloud["originAvailabilityZone"] == instance["Placement"]["AvailabilityZone"]
        ips = server["sourceProperties"]["networkInterfaces"][0]["ips"]
        assert ips == [instance["PrivateIpAddress"]]
    assert None in by_instance  # the fourth server is on-premises
