"""Faults of the local moto server, as stock boto3 clients see them: errors in each protocol's
shape, unprocessed batch writes, hung requests, matching by operation and table, count and skip,
and the HTTP control path for a server in another process.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from scripts.local.moto_server import (
    HANG,
    UNPROCESSED,
    LocalMotoServer,
    MotoControl,
    MotoControlError,
    MotoFault,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
HUB = "123456789012"
# One attempt per call: every call is one request, and errors surface as they were answered.
NO_RETRIES = Config(retries={"total_max_attempts": 1})


def _client(service: str, endpoint: str, config: Config = NO_RETRIES) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", config=config)


def _put_requests(count: int, prefix: str = "arn:test") -> list[dict[str, Any]]:
    return [
        {
            "PutRequest": {
                "Item": {
                    "sourceServerArn": {"S": f"{prefix}:{index}"},
                    "accountId": {"S": HUB},
                    "region": {"S": "us-east-1"},
                }
            }
        }
        for index in range(count)
    ]


def _item_count(dynamodb: Any, table: str) -> int:
    return int(dynamodb.scan(TableName=table, Select="COUNT")["Count"])


def _error_of(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


# ---- DynamoDB ---------------------------------------------------------------------------------


def test_unprocessed_batch_write_writes_nothing_and_returns_every_item(moto_server, tables):
    dynamodb = _client("dynamodb", moto_server.endpoint)
    moto_server.set_fault(MotoFault("dynamodb", "BatchWriteItem", kind=UNPROCESSED, count=1))
    request_items = {tables.inventory: _put_requests(5)}

    first = dynamodb.batch_write_item(RequestItems=request_items)
    assert first["UnprocessedItems"] == request_items
    assert _item_count(dynamodb, tables.inventory) == 0

    second = dynamodb.batch_write_item(RequestItems=first["UnprocessedItems"])
    assert second["UnprocessedItems"] == {}
    assert _item_count(dynamodb, tables.inventory) == 5


def test_unprocessed_fraction_leaves_the_first_items_and_writes_the_rest(moto_server, tables):
    dynamodb = _client("dynamodb", moto_server.endpoint)
    moto_server.set_fault(
        MotoFault("dynamodb", "BatchWriteItem", kind=UNPROCESSED, fraction=0.5, count=1)
    )
    status_items = [
        {"PutRequest": {"Item": {"accountId": {"S": HUB}, "region": {"S": region}}}}
        for region in ("us-east-1", "us-west-2")
    ]
    inventory_items = _put_requests(3)

    answer = dynamodb.batch_write_item(
        RequestItems={tables.inventory: inventory_items, tables.region_status: status_items}
    )

    # ceil(0.5 * 5) = 3: the first three in request order, i.e. the inventory table's.
    assert answer["UnprocessedItems"] == {tables.inventory: inventory_items}
    assert _item_count(dynamodb, tables.inventory) == 0
    assert _item_count(dynamodb, tables.region_status) == 2


def test_unprocessed_fraction_splits_one_tables_items(moto_server, tables):
    dynamodb = _client("dynamodb", moto_server.endpoint)
    moto_server.set_fault(MotoFault("dynamodb", kind=UNPROCESSED, fraction=0.4))
    items = _put_requests(5)

    answer = dynamodb.batch_write_item(RequestItems={tables.inventory: items})

    assert answer["UnprocessedItems"] == {tables.inventory: items[:2]}
    assert _item_count(dynamodb, tables.inventory) == 3


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 503),
        ("InternalServerError", 500),
    ],
)
def test_dynamodb_errors_are_parsed_by_botocore(moto_server, tables, code, status):
    dynamodb = _client("dynamodb", moto_server.endpoint)
    moto_server.set_fault(MotoFault("dynamodb", "BatchWriteItem", error_code=code))

    assert _error_of(
        dynamodb.batch_write_item, RequestItems={tables.inventory: _put_requests(1)}
    ) == (code, status)
    assert _item_count(dynamodb, tables.inventory) == 0  # moto never saw the write


@pytest.mark.usefixtures("no_retry_backoff")
def test_throttling_then_success_is_recovered_by_standard_retries(moto_server, tables):
    dynamodb = _client(
        "dynamodb", moto_server.endpoint, Config(retries={"mode": "standard", "max_attempts": 3})
    )
    fault = MotoFault(
        "dynamodb", "DynamoDB_20120810.PutItem", error_code="ThrottlingException", count=2
    )
    moto_server.set_fault(fault)

    response = dynamodb.put_item(
        TableName=tables.inventory, Item=_put_requests(1)[0]["PutRequest"]["Item"]
    )

    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert moto_server.request_count("dynamodb", "PutItem") == 3
    assert moto_server.faults() == []


def test_faults_match_by_table_and_the_most_specific_wins(moto_server, tables):
    dynamodb = _client("dynamodb", moto_server.endpoint)
    moto_server.set_fault(MotoFault("dynamodb", error_code="InternalServerError"))
    moto_server.set_fault(
        MotoFault("dynamodb", table_name=tables.region_status, kind=HANG, hang_seconds=0)
    )
    moto_server.set_fault(
        MotoFault("dynamodb", "BatchWriteItem", table_name=tables.inventory, kind=UNPROCESSED)
    )

    unprocessed = dynamodb.batch_write_item(RequestItems={tables.inventory: _put_requests(2)})
    assert len(unprocessed["UnprocessedItems"][tables.inventory]) == 2
    # The region-status table's own fault (a zero hang) beats the service's catch-all error.
    dynamodb.put_item(
        TableName=tables.region_status,
        Item={"accountId": {"S": HUB}, "region": {"S": "us-east-1"}},
    )
    assert _error_of(dynamodb.describe_table, TableName=tables.target_accounts)[0] == (
        "InternalServerError"
    )

    moto_server.clear_faults()
    assert _item_count(dynamodb, tables.region_status) == 1
    assert _item_count(dynamodb, tables.inventory) == 0


def test_skip_then_count(moto_server, tables):
    dynamodb = _client("dynamodb", moto_server.endpoint)
    fault = MotoFault(
        "dynamodb",
        "BatchWriteItem",
        error_code="ProvisionedThroughputExceededException",
        skip=1,
        count=2,
    )
    moto_server.set_fault(fault)

    outcomes = []
    for batch in range(4):
        try:
            dynamodb.batch_write_item(
                RequestItems={tables.inventory: _put_requests(1, f"arn:b{batch}")}
            )
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])

    assert outcomes == [
        "ok",
        "ProvisionedThroughputExceededException",
        "ProvisionedThroughputExceededException",
        "ok",
    ]
    assert _item_count(dynamodb, tables.inventory) == 2


# ---- query and EC2 protocols ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"), [("AccessDenied", 403), ("Throttling", 400), ("InternalFailure", 500)]
)
def test_sts_errors_are_parsed_by_botocore(moto_endpoint, moto_server, code, status):
    sts = _client("sts", moto_endpoint)
    fault_status = 403 if code == "AccessDenied" else None
    moto_server.set_fault(MotoFault("sts", "AssumeRole", error_code=code, status=fault_status))
    role_arn = "arn:aws:iam::111122223333:role/drs-orchestration-reader"

    assert _error_of(sts.assume_role, RoleArn=role_arn, RoleSessionName="fault-test") == (
        code,
        status,
    )
    assert sts.get_caller_identity()["Account"] == HUB  # another operation: untouched


@pytest.mark.parametrize(
    ("code", "status"), [("UnauthorizedOperation", 403), ("RequestLimitExceeded", 503)]
)
def test_ec2_errors_are_parsed_by_botocore(moto_endpoint, moto_server, code, status):
    ec2 = _client("ec2", moto_endpoint)
    fault_status = 403 if code == "UnauthorizedOperation" else None
    moto_server.set_fault(
        MotoFault("ec2", "DescribeInstances", error_code=code, status=fault_status, message="no")
    )

    assert _error_of(ec2.describe_instances) == (code, status)
    assert ec2.describe_vpcs()["Vpcs"]  # another operation: untouched


def test_request_counts_name_service_and_operation(moto_endpoint, moto_server):
    _client("sts", moto_endpoint).get_caller_identity()
    _client("ec2", moto_endpoint).describe_instances()
    _client("dynamodb", moto_endpoint).list_tables()

    assert moto_server.request_counts() == {
        ("sts", "GetCallerIdentity"): 1,
        ("ec2", "DescribeInstances"): 1,
        ("dynamodb", "ListTables"): 1,
    }


# ---- hang -------------------------------------------------------------------------------------


def test_a_hung_request_holds_no_lock_and_stop_ends_it_at_once():
    patient = Config(retries={"total_max_attempts": 1}, read_timeout=120)
    with LocalMotoServer() as server:
        server.set_fault(MotoFault("dynamodb", "ListTables", kind=HANG, hang_seconds=300))
        hung = _client("dynamodb", server.endpoint, patient)
        sts = _client("sts", server.endpoint)

        def call() -> Any:
            try:
                return hung.list_tables()
            except BotoCoreError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=1) as pool:
            outcome = pool.submit(call)
            deadline = time.monotonic() + 5
            while server.request_count("dynamodb", "ListTables") == 0:
                assert time.monotonic() < deadline, "the hung request never arrived"
                time.sleep(0.01)
            assert sts.get_caller_identity()["Account"] == HUB  # moto's lock is free

            started = time.monotonic()
            server.stop()
            outcome.result(timeout=5)
            assert time.monotonic() - started < 2.0


def test_hang_then_normal_answer(moto_endpoint, moto_server):
    moto_server.set_fault(MotoFault("dynamodb", kind=HANG, hang_seconds=0.3, count=1))
    dynamodb = _client("dynamodb", moto_endpoint)

    started = time.monotonic()
    assert dynamodb.list_tables()["TableNames"] == []
    assert time.monotonic() - started >= 0.3


def test_waiting_for_held_requests_ends_when_moto_has_answered_them(moto_endpoint, moto_server):
    """A held write lands when its hang ends, even after the fault is cleared: whoever resets
    moto waits for it, or it lands in the next test's fresh tables."""
    moto_server.set_fault(MotoFault("dynamodb", "CreateTable", kind=HANG, hang_seconds=1.0))
    dynamodb = _client("dynamodb", moto_endpoint)
    create = {
        "TableName": "held",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    with ThreadPoolExecutor(max_workers=1) as pool:
        outcome = pool.submit(lambda: dynamodb.create_table(**create))
        deadline = time.monotonic() + 5
        while moto_server.request_count("dynamodb", "CreateTable") == 0:
            assert time.monotonic() < deadline, "the held request never arrived"
            time.sleep(0.01)
        moto_server.clear_faults()

        assert moto_server.wait_for_held_requests(timeout=0.1) is False  # still held
        assert moto_server.wait_for_held_requests(timeout=10) is True
        # moto answered it before the wait ended: the table exists now, not later.
        assert dynamodb.list_tables()["TableNames"] == ["held"]
        outcome.result(timeout=5)


# ---- fault definitions and the control path ---------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"service": "dynamodb"}, "needs an error_code"),
        ({"service": "dynamodb", "kind": HANG, "error_code": "X"}, "takes no error_code"),
        ({"service": "dynamodb", "kind": "teapot"}, "unsupported fault kind"),
        ({"service": "sts", "kind": UNPROCESSED}, "BatchWriteItem only"),
        ({"service": "dynamodb", "operation": "PutItem", "kind": UNPROCESSED}, "BatchWriteItem"),
        ({"service": "dynamodb", "error_code": "X", "status": 200}, "error status"),
        ({"service": "dynamodb", "error_code": "X", "count": 0}, "count"),
        ({"service": "dynamodb", "error_code": "X", "skip": -1}, "skip"),
    ],
)
def test_fault_rejects_what_it_cannot_do(arguments, problem):
    with pytest.raises(ValueError, match=problem):
        MotoFault(**arguments)


def test_control_path_round_trip(moto_endpoint, moto_server, tables):
    control = MotoControl(moto_endpoint)
    dynamodb = _client("dynamodb", moto_endpoint)
    fault = MotoFault(
        "dynamodb",
        "BatchWriteItem",
        table_name=tables.inventory,
        kind=UNPROCESSED,
        skip=1,
        count=1,
    )
    control.set_fault(fault)
    assert control.faults() == [{"fault": fault.to_dict(), "remaining": 1, "toSkip": 1}]
    assert MotoFault.from_dict(control.faults()[0]["fault"]) == fault

    dynamodb.batch_write_item(RequestItems={tables.inventory: _put_requests(1, "arn:a")})
    answer = dynamodb.batch_write_item(RequestItems={tables.inventory: _put_requests(1, "arn:b")})
    assert answer["UnprocessedItems"]
    assert control.faults() == []
    assert control.request_count("dynamodb", "BatchWriteItem") == 2

    control.set_fault(MotoFault("dynamodb", error_code="ThrottlingException"))
    control.clear_faults()
    assert dynamodb.list_tables()["TableNames"]
    control.reset_counts()
    assert control.request_counts() == {}

    with pytest.raises(MotoControlError, match="400"):
        control._call("POST", "/_local/faults", {"service": "dynamodb", "kind": "teapot"})
    with pytest.raises(MotoControlError, match="404"):
        control._call("GET", "/_local/nothing")


def _read_endpoint_line(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no MOTO_ENDPOINT line within {timeout}s")
    line = process.stdout.readline().strip()
    assert line.startswith("MOTO_ENDPOINT=http://127.0.0.1:"), line
    return line.split("=", 1)[1]


def test_control_path_drives_a_server_in_another_process():
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.local.moto_server", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        endpoint = _read_endpoint_line(process)
        control = MotoControl(endpoint)
        control.set_fault(MotoFault("sts", "AssumeRole", error_code="AccessDenied", status=403))
        control.set_fault(MotoFault("ec2", kind=HANG, hang_seconds=300))
        sts = _client("sts", endpoint)
        role_arn = "arn:aws:iam::111122223333:role/drs-orchestration-reader"
        assert _error_of(sts.assume_role, RoleArn=role_arn, RoleSessionName="fault-test") == (
            "AccessDenied",
            403,
        )
        ec2 = _client("ec2", endpoint, Config(retries={"total_max_attempts": 1}, read_timeout=120))
        with ThreadPoolExecutor(max_workers=1) as pool:

            def call() -> Any:
                try:
                    return ec2.describe_instances()
                except BotoCoreError as exc:
                    return exc

            hung = pool.submit(call)
            deadline = time.monotonic() + 5
            while control.request_count("ec2") == 0:
                assert time.monotonic() < deadline, "the hung request never arrived"
                time.sleep(0.01)
            started = time.monotonic()
            process.terminate()  # SIGTERM: the hung request is released, the server ends
            assert process.wait(timeout=5) == 0
            hung.result(timeout=5)
            assert time.monotonic() - started < 3.0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
