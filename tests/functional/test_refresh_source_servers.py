"""refresh_source_servers (operator calls and DRS events through SQS) against moto + the DRS
simulator, through real boto3 clients."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from drs_events import handle_sqs_batch
from inventory_sync import sync_source_server_inventory
from inventory_sync.models import SyncSettings
from inventory_sync.refresh import RefreshFailedError, refresh_source_servers
from scripts.local.drs_simulator import ACCESS_DENIED, THROTTLING
from shared.aws import ClientFactory, make_config
from shared.exceptions import InvalidParameterError
from tests.support.lambda_context import FakeLambdaContext
from tests.support.world import HUB, TARGET_A, TARGET_B, World, role_arn

SETTINGS = SyncSettings(max_concurrency=4, page_size=25, deadline_reserve_seconds=0)
EVENT_TIME = "2026-12-03T10:00:00Z"


# --- events as DRS and CloudTrail send them, as SQS hands them to Lambda ----------------------
def server_arn(account: str, region: str, server_id: str) -> str:
    return f"arn:aws:drs:{region}:{account}:source-server/{server_id}"


def drs_event(
    account: str,
    region: str,
    server_id: str,
    detail_type: str = "DRS Source Server Data Replication Stalled Change",
    detail: dict[str, Any] | None = None,
    when: str = EVENT_TIME,
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.drs",
        "account": account,
        "time": when,
        "region": region,
        "resources": [server_arn(account, region, server_id)],
        "detail": detail if detail is not None else {"state": "STALLED"},
    }


def cloudtrail_event(account: str, region: str, name: str, server_id: str) -> dict[str, Any]:
    parameters: dict[str, Any] = (
        {"resourceArn": server_arn(account, region, server_id), "tagKeys": ["Owner"]}
        if name in ("TagResource", "UntagResource")
        else {"sourceServerID": server_id}
    )
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.drs",
        "account": account,
        "time": EVENT_TIME,
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "eventSource": "drs.amazonaws.com",
            "eventName": name,
            "awsRegion": region,
            "recipientAccountId": account,
            "requestParameters": parameters,
            "responseElements": None,
        },
    }


def sqs_batch(*bodies: Any) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{index}",
                "receiptHandle": f"r-{index}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:drs-events",
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def deliver(world: World, batch: dict[str, Any]) -> dict[str, Any]:
    factory = ClientFactory(world.pool(), config=make_config(max_pool_connections=8))
    return handle_sqs_batch(batch, None, factory=factory, settings=SETTINGS)


def operator_refresh(world: World, **params: Any) -> dict[str, Any]:
    factory = ClientFactory(world.pool(), config=make_config(max_pool_connections=8))
    return refresh_source_servers(params, None, factory=factory, settings=SETTINGS)


def stall(world: World, account: str, region: str, server_id: str) -> None:
    record = next(
        r
        for r in world.simulator.source_servers(account, region)
        if r["sourceServerID"] == server_id
    )
    record["dataReplicationInfo"]["dataReplicationState"] = "STALLED"
    world.simulator.add_source_servers(account, region, [record])


def item(world: World, account: str, region: str, server_id: str) -> dict[str, Any]:
    return world.inventory()[server_arn(account, region, server_id)]


def set_last_sync_time(arn: str, world: World, value: str) -> None:
    boto3.client("dynamodb").update_item(
        TableName=world.tables.inventory,
        Key={"sourceServerArn": {"S": arn}},
        UpdateExpression="SET lastSyncTime = :t",
        ExpressionAttributeValues={":t": {"S": value}},
    )


# --- the burst -----------------------------------------------------------------------------------
def test_a_burst_of_events_for_30_servers_in_2_scopes_is_one_describe_per_scope(
    world: World,
) -> None:
    hub = [s["sourceServerID"] for s in world.add_servers(HUB, "us-east-1", 15)]
    target = [s["sourceServerID"] for s in world.add_servers(TARGET_A, "us-west-2", 15)]
    events = [drs_event(HUB, "us-east-1", sid) for sid in hub]
    events += [drs_event(TARGET_A, "us-west-2", sid) for sid in target]
    # Each server twice (a launch result after its stall, and a redelivery): still coalesced.
    events += [
        drs_event(HUB, "us-east-1", sid, "DRS Source Server Launch Result", {"state": "x"})
        for sid in hub
    ]
    events += [cloudtrail_event(TARGET_A, "us-west-2", "StopReplication", sid) for sid in target]
    world.simulator.reset_counts()

    answer = deliver(world, sqs_batch(*events))

    assert answer["batchItemFailures"] == []
    result = answer["refresh"]
    assert result["status"] == "SUCCEEDED", result["failures"]
    assert world.simulator.request_count("DescribeSourceServers", HUB, "us-east-1") == 1
    assert world.simulator.request_count("DescribeSourceServers", TARGET_A, "us-west-2") == 1
    assert world.simulator.request_count("DescribeSourceServers") == 2
    assert result["requested"] == 30
    assert result["counts"]["read"] == 30 and result["counts"]["written"] == 30
    assert len(world.inventory()) == 30
    assert {c["kind"] for c in result["changes"]} == {"Added"}


# --- the same transform as the full sync ---------------------------------------------------------
def test_a_stalled_server_is_written_as_the_full_sync_writes_it(world: World) -> None:
    servers = world.add_servers(TARGET_A, "us-east-1", 5)
    assert world.sync()["status"] == "SUCCEEDED"
    stalled = servers[2]["sourceServerID"]
    stall(world, TARGET_A, "us-east-1", stalled)

    answer = deliver(world, sqs_batch(drs_event(TARGET_A, "us-east-1", stalled)))

    result = answer["refresh"]
    assert result["counts"]["written"] == 1
    [change] = result["changes"]
    assert change["kind"] == "Changed" and change["sourceServerID"] == stalled
    assert "replicationState" in change["fields"]
    refreshed = item(world, TARGET_A, "us-east-1", stalled)
    assert refreshed["replicationState"] == "STALLED"
    # What a full sync writes for the same server (its item removed, then a narrowed sync).
    arn = refreshed["sourceServerArn"]
    boto3.client("dynamodb").delete_item(
        TableName=world.tables.inventory, Key={"sourceServerArn": {"S": arn}}
    )
    assert world.sync(accountIds=[TARGET_A], regions=["us-east-1"])["status"] == "SUCCEEDED"
    synced = item(world, TARGET_A, "us-east-1", stalled)
    assert {k: v for k, v in refreshed.items() if k != "lastSyncTime"} == {
        k: v for k, v in synced.items() if k != "lastSyncTime"
    }


def test_enrichment_is_the_full_syncs_for_ec2_origin_servers(world: World) -> None:
    instances = world.launch_instances(TARGET_B, "us-west-2", 2)
    servers = world.add_servers(
        TARGET_B, "us-west-2", 2, ec2_instance_ids=instances, ec2_fraction=1.0
    )
    ids = [s["sourceServerID"] for s in servers]

    operator_refresh(world, accountId=TARGET_B, region="us-west-2", sourceServerIDs=ids)

    for sid in ids:
        ec2 = item(world, TARGET_B, "us-west-2", sid)["ec2"]
        assert ec2["instanceId"].startswith("i-") and ec2["tags"] == {"Owner": f"team-{TARGET_B}"}


# --- never older over newer ----------------------------------------------------------------------
def test_a_refresh_that_read_before_a_newer_write_changes_nothing(world: World) -> None:
    servers = world.add_servers(HUB, "us-west-2", 3)
    world.sync()
    sid = servers[0]["sourceServerID"]
    arn = server_arn(HUB, "us-west-2", sid)
    set_last_sync_time(arn, world, "2999-01-01T00:00:00.000Z")  # written from a later read
    stall(world, HUB, "us-west-2", sid)
    before = world.inventory()[arn]

    answer = deliver(world, sqs_batch(drs_event(HUB, "us-west-2", sid)))

    assert answer["refresh"]["counts"]["staleSkipped"] == 1
    assert answer["refresh"]["counts"]["written"] == 0 and answer["refresh"]["changes"] == []
    assert answer["batchItemFailures"] == []  # nothing to retry: a newer truth is stored
    assert world.inventory()[arn] == before


def test_a_gone_server_is_not_soft_deleted_over_a_newer_write(world: World) -> None:
    servers = world.add_servers(HUB, "us-west-2", 3)
    world.sync()
    sid = servers[1]["sourceServerID"]
    arn = server_arn(HUB, "us-west-2", sid)
    set_last_sync_time(arn, world, "2999-01-01T00:00:00.000Z")
    world.simulator.remove_source_server(HUB, "us-west-2", sid)

    result = operator_refresh(world, accountId=HUB, region="us-west-2", sourceServerIDs=[sid])

    assert result["counts"]["staleSkipped"] == 1 and result["counts"]["softDeleted"] == 0
    assert "deletedAt" not in world.inventory()[arn]


def test_an_event_older_than_the_item_still_reads_drs_and_writes_its_current_state(
    world: World,
) -> None:
    servers = world.add_servers(HUB, "us-east-1", 2)
    world.sync()
    sid = servers[0]["sourceServerID"]
    stall(world, HUB, "us-east-1", sid)

    old_event = drs_event(HUB, "us-east-1", sid, when="2020-01-01T00:00:00Z")
    deliver(world, sqs_batch(old_event))

    assert item(world, HUB, "us-east-1", sid)["replicationState"] == "STALLED"


# --- deletions only on DRS's word ----------------------------------------------------------------
def test_a_server_gone_in_drs_is_soft_deleted_and_revived_when_listed_again(world: World) -> None:
    servers = world.add_servers(TARGET_A, "eu-west-1", 4)
    world.sync()
    gone = servers[3]
    sid = gone["sourceServerID"]
    world.simulator.remove_source_server(TARGET_A, "eu-west-1", sid)

    answer = deliver(
        world, sqs_batch(cloudtrail_event(TARGET_A, "eu-west-1", "DeleteSourceServer", sid))
    )

    result = answer["refresh"]
    assert result["counts"]["softDeleted"] == 1
    assert [c["kind"] for c in result["changes"]] == ["Removed"]
    deleted = item(world, TARGET_A, "eu-west-1", sid)
    assert deleted["deletedAt"] and int(deleted["expiresAt"]) > 0
    others = [i for i in world.scope_items(TARGET_A, "eu-west-1").values() if i is not deleted]
    assert sum(1 for i in others if "deletedAt" in i) == 1  # only that one

    # Redelivered: already soft-deleted, nothing more happens.
    again = deliver(
        world, sqs_batch(cloudtrail_event(TARGET_A, "eu-west-1", "DeleteSourceServer", sid))
    )
    assert again["refresh"]["counts"]["softDeleted"] == 0 and again["refresh"]["changes"] == []
    assert item(world, TARGET_A, "eu-west-1", sid) == deleted

    world.simulator.add_source_servers(TARGET_A, "eu-west-1", [gone])
    revived = deliver(world, sqs_batch(drs_event(TARGET_A, "eu-west-1", sid)))
    assert revived["refresh"]["counts"]["revived"] == 1
    assert [c["kind"] for c in revived["refresh"]["changes"]] == ["Revived"]
    back = item(world, TARGET_A, "eu-west-1", sid)
    assert "deletedAt" not in back and "expiresAt" not in back


@pytest.mark.parametrize("code", [THROTTLING, ACCESS_DENIED])
def test_a_refused_read_soft_deletes_nothing_and_is_retried(world: World, code: str) -> None:
    failing = [s["sourceServerID"] for s in world.add_servers(TARGET_A, "us-east-1", 3)]
    healthy = [s["sourceServerID"] for s in world.add_servers(HUB, "us-east-1", 2)]
    world.sync()
    world.simulator.remove_source_server(TARGET_A, "us-east-1", failing[0])
    world.fault(TARGET_A, "us-east-1", code)

    answer = deliver(
        world,
        sqs_batch(
            cloudtrail_event(TARGET_A, "us-east-1", "DeleteSourceServer", failing[0]),
            drs_event(HUB, "us-east-1", healthy[0]),
            drs_event(TARGET_A, "us-east-1", failing[1]),
        ),
    )

    assert answer["batchItemFailures"] == [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-2"}]
    result = answer["refresh"]
    assert result["status"] == "PARTIAL"
    assert [(f["accountId"], f["errorCode"]) for f in result["failures"]] == [(TARGET_A, code)]
    assert result["counts"]["failed"] == 2 and result["counts"]["softDeleted"] == 0
    assert "deletedAt" not in item(world, TARGET_A, "us-east-1", failing[0])


def test_a_role_that_cannot_be_assumed_fails_its_scope_only(world: World) -> None:
    sid = world.add_servers(TARGET_B, "us-west-2", 1)[0]["sourceServerID"]
    world.denied_roles.add(role_arn(TARGET_B))

    with pytest.raises(RefreshFailedError) as raised:
        operator_refresh(world, accountId=TARGET_B, region="us-west-2", sourceServerIDs=[sid])

    assert raised.value.summary["failures"][0]["errorCode"] == "AssumeRoleFailed"
    assert world.inventory() == {}


# --- at-least-once delivery ----------------------------------------------------------------------
def test_the_same_batch_twice_changes_nothing_but_the_read_stamp(world: World) -> None:
    ids = [s["sourceServerID"] for s in world.add_servers(TARGET_B, "us-west-2", 6)]
    batch = sqs_batch(*(drs_event(TARGET_B, "us-west-2", sid) for sid in ids))
    first = deliver(world, batch)
    assert first["refresh"]["counts"]["written"] == 6
    stored = world.raw_items(world.tables.inventory)
    stamps = {i["sourceServerArn"]["S"]: i["lastSyncTime"]["S"] for i in stored}

    second = deliver(world, batch)

    assert second["refresh"]["counts"]["written"] == 0
    assert second["refresh"]["counts"]["unchanged"] == 6
    assert second["refresh"]["changes"] == []
    # The content is the same; only the time of the read that confirmed it moved on (so an
    # older read still in flight cannot land over it: test_sync_refresh_race.py)
    after = world.raw_items(world.tables.inventory)
    assert _without_stamp(after) == _without_stamp(stored)
    for item in after:
        assert item["lastSyncTime"]["S"] > stamps[item["sourceServerArn"]["S"]]


def _without_stamp(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        ({k: v for k, v in i.items() if k != "lastSyncTime"} for i in items),
        key=lambda i: i["sourceServerArn"]["S"],
    )


def test_a_listed_record_that_cannot_be_stored_is_never_taken_for_gone(world: World) -> None:
    # GIVEN two refreshed servers, one of which DRS now lists with an ARN that is not one
    servers = world.add_servers(HUB, "us-east-1", 2, ec2_fraction=0.0)
    ids = [s["sourceServerID"] for s in servers]
    operator_refresh(world, accountId=HUB, region="us-east-1", sourceServerIDs=ids)
    broken = next(
        r for r in world.simulator.source_servers(HUB, "us-east-1") if r["sourceServerID"] == ids[0]
    )
    world.simulator.add_source_servers(HUB, "us-east-1", [{**broken, "arn": "not-an-arn"}])

    result = operator_refresh(world, accountId=HUB, region="us-east-1", sourceServerIDs=ids)

    # THEN it is counted failed (not retried: DRS would answer the same), kept, not Removed
    assert result["counts"]["failed"] == 1 and result["counts"]["softDeleted"] == 0, result
    assert "deletedAt" not in item(world, HUB, "us-east-1", ids[0])
    assert [c["kind"] for c in result["changes"] if c["sourceServerID"] == ids[0]] == []


# --- records that name nothing we can refresh ----------------------------------------------------
def test_unattributable_records_are_counted_and_never_retried(world: World) -> None:
    sid = world.add_servers(HUB, "us-east-1", 1)[0]["sourceServerID"]
    world.simulator.reset_counts()
    unregistered = "333333333333"
    batch = sqs_batch(
        "{not json",
        json.dumps(["a", "list"]),
        drs_event(HUB, "us-east-1", sid, detail_type="DRS Source Network Recovery Result"),
        drs_event(unregistered, "us-east-1", sid),
        drs_event(HUB, "ap-south-1", sid),  # a region this function does not sync
        {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"},
        drs_event(HUB, "us-east-1", sid) | {"resources": [server_arn(TARGET_A, "us-east-1", sid)]},
    )

    answer = deliver(world, batch)

    assert answer["batchItemFailures"] == []
    result = answer["refresh"]
    assert result["counts"]["unattributed"] == 7
    assert result["status"] == "SUCCEEDED" and result["requested"] == 0
    assert world.simulator.request_count("DescribeSourceServers") == 0
    assert world.inventory() == {}


# --- the full sync is the safety net -------------------------------------------------------------
def test_a_missed_event_is_corrected_by_the_next_full_sync(world: World) -> None:
    servers = world.add_servers(TARGET_A, "us-east-1", 4)
    world.sync()
    sid = servers[0]["sourceServerID"]
    stall(world, TARGET_A, "us-east-1", sid)  # no event reaches the hub

    assert item(world, TARGET_A, "us-east-1", sid)["replicationState"] != "STALLED"
    assert world.sync()["status"] == "SUCCEEDED"
    assert item(world, TARGET_A, "us-east-1", sid)["replicationState"] == "STALLED"


# --- the operator's form -------------------------------------------------------------------------
def test_the_operator_form_through_the_operation_map(world: World) -> None:
    ids = [s["sourceServerID"] for s in world.add_servers(TARGET_A, "us-west-2", 2)]

    result = world.invoke(
        "refresh_source_servers", accountId=TARGET_A, region="us-west-2", sourceServerIDs=ids
    )

    assert result["status"] == "SUCCEEDED" and result["counts"]["written"] == 2
    assert result["scopes"] == [{"accountId": TARGET_A, "region": "us-west-2"}]
    json.dumps(result)  # plain JSON


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"accountId": TARGET_A, "region": "us-east-1", "sourceServerIDs": []}, "at least one"),
        ({"accountId": TARGET_A, "region": "us-east-1", "sourceServerIDs": ["s-1"]}, "s-1"),
        (
            {
                "accountId": TARGET_A,
                "region": "us-east-1",
                "sourceServerIDs": [f"s-{n:017x}" for n in range(201)],
            },
            "at most 200",
        ),
        (
            {
                "accountId": "333333333333",
                "region": "us-east-1",
                "sourceServerIDs": ["s-" + "a" * 17],
            },
            "333333333333",
        ),
        (
            {"accountId": TARGET_A, "region": "ap-south-1", "sourceServerIDs": ["s-" + "a" * 17]},
            "ap-south-1",
        ),
        ({"accountId": TARGET_A, "region": "us-east-1"}, "sourceServerIDs"),
        (
            {"accountId": TARGET_A, "region": "us-east-1\n", "sourceServerIDs": ["s-" + "a" * 17]},
            "region",
        ),
    ],
)
def test_the_operator_form_is_strict(world: World, params: dict[str, Any], names: str) -> None:
    world.simulator.reset_counts()
    with pytest.raises(InvalidParameterError, match=names):
        world.invoke("refresh_source_servers", **params)
    assert world.simulator.request_count("DescribeSourceServers") == 0


def test_lambda_routes_an_sqs_batch_to_the_refresh(world: World) -> None:
    sid = world.add_servers(HUB, "us-east-1", 1)[0]["sourceServerID"]

    answer = world.handler.lambda_handler(
        sqs_batch(drs_event(HUB, "us-east-1", sid)), FakeLambdaContext()
    )

    assert answer["batchItemFailures"] == []
    assert answer["refresh"]["counts"]["written"] == 1


def test_more_than_200_servers_of_one_scope_are_read_200_at_a_time(world: World) -> None:
    ids = [s["sourceServerID"] for s in world.add_servers(HUB, "us-west-2", 230)]
    world.simulator.reset_counts()

    answer = deliver(world, sqs_batch(*(drs_event(HUB, "us-west-2", sid) for sid in ids)))

    # sourceServerIDs takes at most 200 ids: two calls, every server read and written.
    assert world.simulator.request_count("DescribeSourceServers", HUB, "us-west-2") == 2
    assert answer["refresh"]["counts"]["read"] == 230
    assert answer["refresh"]["counts"]["written"] == 230


def test_a_sync_that_started_before_a_refresh_read_never_hides_what_the_refresh_saw(
    world: World,
) -> None:
    # GIVEN a server the refresh read (and stamped) now, then deleted in DRS
    servers = world.add_servers(TARGET_A, "us-east-1", 3)
    world.sync()
    sid = servers[0]["sourceServerID"]
    arn = server_arn(TARGET_A, "us-east-1", sid)
    set_last_sync_time(arn, world, "2000-01-01T00:00:00.000Z")  # only the refresh is recent
    stall(world, TARGET_A, "us-east-1", sid)
    deliver(world, sqs_batch(drs_event(TARGET_A, "us-east-1", sid)))
    world.simulator.remove_source_server(TARGET_A, "us-east-1", sid)

    # WHEN a sync that started before that read finishes its listing (a run in flight)
    started_before = datetime.now(UTC) - timedelta(minutes=2)
    factory = ClientFactory(world.pool(), config=make_config(max_pool_connections=8))
    sync_source_server_inventory(
        {}, None, factory=factory, settings=SETTINGS, clock=lambda: started_before
    )

    # THEN its soft-delete does not go over the refresh's newer write; the next sync decides
    assert "deletedAt" not in item(world, TARGET_A, "us-east-1", sid)
    world.sync()
    assert "deletedAt" in item(world, TARGET_A, "us-east-1", sid)
