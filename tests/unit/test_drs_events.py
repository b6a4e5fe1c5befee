"""Parsing DRS events (each detail-type shape, CloudTrail API calls) into refresh requests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from drs_events import (
    SERVER_DETAIL_TYPES,
    Unattributed,
    is_sqs_batch,
    servers_of_event,
    servers_of_record,
)
from inventory_sync.refresh import ServerRef

ACCOUNT = "111122223333"
REGION = "us-west-2"
SID = "s-1234567890abcdef0"
ARN = f"arn:aws:drs:{REGION}:{ACCOUNT}:source-server/{SID}"
WHEN = "2026-12-03T10:00:00Z"


def service_event(detail_type: str, detail: dict[str, Any], resources: list[str]) -> dict:
    return {
        "version": "0",
        "id": "9da9af57-9253-4406-87cb-7cc400e43465",
        "detail-type": detail_type,
        "source": "aws.drs",
        "account": ACCOUNT,
        "time": WHEN,
        "region": REGION,
        "resources": resources,
        "detail": detail,
    }


def api_call(name: str, parameters: dict[str, Any] | None) -> dict:
    return {
        "version": "0",
        "id": "6f87d04b-9f74-4f04-a780-7acf4b0a9b38",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.drs",
        "account": ACCOUNT,
        "time": WHEN,
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "eventSource": "drs.amazonaws.com",
            "eventName": name,
            "awsRegion": REGION,
            "recipientAccountId": ACCOUNT,
            "requestParameters": parameters,
        },
    }


EXPECTED = [ServerRef(ACCOUNT, REGION, SID, WHEN, "9da9af57-9253-4406-87cb-7cc400e43465")]


@pytest.mark.parametrize(
    ("detail_type", "detail"),
    [
        ("DRS Source Server Launch Result", {"state": "RECOVERY_LAUNCH_FAILED", "job-id": "j"}),
        ("DRS Source Server Data Replication Stalled Change", {"state": "STALLED"}),
        ("DRS Source Server Data Replication Stalled Change", {"state": "NOT_STALLED"}),
    ],
)
def test_service_events_name_their_servers_in_resources(
    detail_type: str, detail: dict[str, Any]
) -> None:
    assert servers_of_event(service_event(detail_type, detail, [ARN])) == EXPECTED


@pytest.mark.parametrize(
    "detail_type",
    ["DRS Source Network Protection Status Change", "DRS Source Network Recovery Result", "X"],
)
def test_events_about_other_resources_are_unattributed(detail_type: str) -> None:
    found = servers_of_event(service_event(detail_type, {}, [ARN]))
    assert isinstance(found, Unattributed)


def test_a_failback_state_change_names_a_recovery_instance_so_is_unattributed() -> None:
    # As DRS sends it: `resources` holds the recovery instance's ARN (its EC2 instance id),
    # not a source server's. The templates do not forward it; the full sync covers failback.
    recovery_instance = f"arn:aws:drs:{REGION}:{ACCOUNT}:recovery-instance/i-0123456789abcdef0"
    event = service_event(
        "DRS Recovery Instance Failback State Change",
        {"state": "FAILBACK_COMPLETED"},
        [recovery_instance],
    )
    assert isinstance(servers_of_event(event), Unattributed)


@pytest.mark.parametrize(
    "detail_type", ["DRS PIT Snapshot Taken", "DRS Recovery Instance Failback State Change"]
)
def test_detail_types_left_to_the_full_sync_are_unattributed(detail_type: str) -> None:
    # Even naming a source server (a PIT snapshot does), they are not refreshed on.
    assert detail_type not in SERVER_DETAIL_TYPES
    assert isinstance(servers_of_event(service_event(detail_type, {}, [ARN])), Unattributed)


@pytest.mark.parametrize(
    "name",
    ["DeleteSourceServer", "DisconnectSourceServer", "StartReplication", "StopReplication"],
)
def test_api_calls_name_their_server_by_id(name: str) -> None:
    [ref] = servers_of_event(api_call(name, {"sourceServerID": SID}))  # type: ignore[misc]
    assert (ref.account_id, ref.region, ref.source_server_id) == (ACCOUNT, REGION, SID)


@pytest.mark.parametrize("name", ["TagResource", "UntagResource"])
def test_tag_calls_name_their_server_by_arn(name: str) -> None:
    [ref] = servers_of_event(api_call(name, {"resourceArn": ARN}))  # type: ignore[misc]
    assert ref.source_server_id == SID


@pytest.mark.parametrize(
    "event",
    [
        api_call("DescribeSourceServers", {"filters": {}}),
        api_call("StartReplication", None),
        api_call("StartReplication", {"sourceServerID": SID + "\n"}),
        api_call("TagResource", {"resourceArn": ARN.replace(ACCOUNT, "999999999999")}),
        service_event("DRS Source Server Launch Result", {}, []),
        service_event("DRS Source Server Launch Result", {}, [ARN.replace(REGION, "eu-west-1")]),
        service_event("DRS Source Server Launch Result", {}, ["arn:aws:drs:x"]),
        service_event("DRS Source Server Launch Result", {}, {"not": "a list"}),  # type: ignore[arg-type]
        {**service_event("DRS Source Server Launch Result", {}, [ARN]), "account": "12345"},
        {**service_event("DRS Source Server Launch Result", {}, [ARN]), "source": "aws.ec2"},
        "a string",
        None,
    ],
)
def test_what_names_no_server_of_its_own_account_and_region_is_unattributed(event: Any) -> None:
    assert isinstance(servers_of_event(event), Unattributed)


def test_several_servers_in_one_event_are_each_refreshed_once() -> None:
    other = ARN.replace(SID, "s-0000000000000000a")
    event = service_event("DRS Source Server Launch Result", {}, [ARN, other, ARN])
    found = servers_of_event(event)
    assert [ref.source_server_id for ref in found] == [SID, "s-0000000000000000a"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "record",
    [{"body": "{oops"}, {"body": None}, {}, "x", {"body": "x" * (256 * 1024 + 1)}],
)
def test_records_whose_body_is_no_event_are_unattributed(record: Any) -> None:
    assert isinstance(servers_of_record(record), Unattributed)


def test_a_record_body_is_the_eventbridge_event_as_json() -> None:
    event = service_event("DRS Source Server Launch Result", {}, [ARN])
    assert servers_of_record({"body": json.dumps(event)}) == [
        ServerRef(ACCOUNT, REGION, SID, WHEN, event["id"])
    ]


def test_only_sqs_batches_are_taken_for_events() -> None:
    record = {"eventSource": "aws:sqs", "messageId": "m", "body": "{}"}
    assert is_sqs_batch({"Records": [record]})
    assert not is_sqs_batch({"Records": []})
    assert not is_sqs_batch({"Records": [{**record, "eventSource": "aws:s3"}]})
    assert not is_sqs_batch({"operation": "x", "Records": [record]})
    assert not is_sqs_batch({"operation": "sync_source_server_inventory"})
    assert not is_sqs_batch([record])
