"""Messages the SQS adapter brings back: a record whose refresh failed comes back soon, not
after the queue's 960 s visibility timeout (RETRY_SECONDS x its receive count); the event
of an API call DRS carries out over time comes back once, delayed, for a second read."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

import drs_events
from scripts.local.drs_simulator import THROTTLING
from scripts.local.event_delivery import sqs_record
from tests.functional.test_refresh_source_servers import (
    cloudtrail_event,
    deliver,
    drs_event,
    sqs_batch,
)
from tests.support.world import HUB, TARGET_A, World

QUEUE = "aws-drs-orchestration-drs-events-qa"
VISIBILITY = 960  # as cfn/eventbridge-stack.yaml sets it


def _received_batch(sqs: Any, url: str, arn: str) -> dict[str, Any]:
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    return {"Records": [sqs_record(m, arn, "us-east-1") for m in messages]}


def _queue() -> tuple[Any, str, str]:
    """The hub's DRS events queue as the eventbridge stack makes it: (client, URL, ARN)."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": str(VISIBILITY)})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return sqs, url, arn


def _done(sqs: Any, url: str, batch: dict[str, Any], answer: dict[str, Any]) -> None:
    """What Lambda does after the invocation: delete the records not reported as failed."""
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    for record in batch["Records"]:
        if record["messageId"] not in failed:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])


def test_a_failed_record_is_visible_again_soon_and_a_done_one_never(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a throttled scope and a healthy one, one event each on the hub's queue
    monkeypatch.setattr(drs_events, "RETRY_SECONDS", 1)
    throttled = world.add_servers(TARGET_A, "us-east-1", 1)[0]["sourceServerID"]
    healthy = world.add_servers(HUB, "us-east-1", 1)[0]["sourceServerID"]
    world.sync()
    world.fault(TARGET_A, "us-east-1", THROTTLING)
    sqs, url, arn = _queue()
    for body in (drs_event(TARGET_A, "us-east-1", throttled), drs_event(HUB, "us-east-1", healthy)):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    batch = _received_batch(sqs, url, arn)
    assert len(batch["Records"]) == 2

    # WHEN the function handles the batch (Lambda then deletes the record it did not name)
    answer = deliver(world, batch)
    (failed,) = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    done = [r for r in batch["Records"] if r["messageId"] != failed]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=done[0]["receiptHandle"])

    # THEN the failed record is back within seconds (not 960 s), received a second time
    time.sleep(1.5)
    again = _received_batch(sqs, url, arn)["Records"]
    assert [r["messageId"] for r in again] == [failed]
    assert again[0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert json.loads(again[0]["body"])["account"] == TARGET_A


def test_a_retry_that_cannot_be_scheduled_leaves_the_record_to_its_timeout(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a failing record whose queue does not exist (so ChangeMessageVisibility fails)
    throttled = world.add_servers(TARGET_A, "us-east-1", 1)[0]["sourceServerID"]
    world.sync()
    world.fault(TARGET_A, "us-east-1", THROTTLING)
    # WHEN it is handled, THEN it is still reported for redelivery, and the miss is logged
    answer = deliver(world, sqs_batch(drs_event(TARGET_A, "us-east-1", throttled)))
    assert answer["batchItemFailures"] == [{"itemIdentifier": "m-0"}]
    assert "failed record left to its visibility timeout" in caplog.text


def test_an_asynchronous_api_call_is_read_again_once_later(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a server an operator stops replicating (DRS moves it on over time), and a tag
    # change on another (done at once): both calls' events on the hub's queue
    monkeypatch.setattr(drs_events, "REREAD_DELAY_SECONDS", 1)
    stopped, tagged = (s["sourceServerID"] for s in world.add_servers(HUB, "us-east-1", 2))
    world.sync()
    sqs, url, arn = _queue()
    for body in (
        cloudtrail_event(HUB, "us-east-1", "StopReplication", stopped),
        cloudtrail_event(HUB, "us-east-1", "TagResource", tagged),
    ):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    batch = _received_batch(sqs, url, arn)
    first = deliver(world, batch)
    _done(sqs, url, batch, first)
    assert first["batchItemFailures"] == []

    # WHEN DRS gets where the call was going, after the first read
    world.simulator.set_replication_state(HUB, "us-east-1", stopped, "STOPPED")
    time.sleep(1.5)

    # THEN the StopReplication event alone came back once, and its second read shows it
    again = _received_batch(sqs, url, arn)
    (record,) = again["Records"]
    event = json.loads(record["body"])
    assert event["detail"]["eventName"] == "StopReplication"
    assert event[drs_events.REREAD_MARK] == batch["Records"][0]["messageId"]
    second = deliver(world, again)
    _done(sqs, url, again, second)
    arn_of = f"arn:aws:drs:us-east-1:{HUB}:source-server/{stopped}"
    assert world.inventory()[arn_of]["replicationState"] == "STOPPED"
    # ... and a second read is never put back again
    time.sleep(1.5)
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []
