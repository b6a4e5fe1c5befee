"""The local moto's SendMessage no longer walks the whole queue (`moto_events`), which is what
kept `make bench-events` from putting its burst: a queue that is behind made every event
delivered to it cost a pass over its backlog. The answers stay moto's: the queue's counts
are right, and the messages all arrive."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.sqs import models as sqs_models

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

BACKLOG = 120
ENTRY: PutEventsRequestEntryTypeDef = {"Source": "aws.drs", "DetailType": "test", "Detail": "{}"}


@pytest.fixture
def visible_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How often moto asks a message whether it is visible (once per message per count)."""
    reads = [0]
    visible_property: Any = sqs_models.Message.visible  # a property: moto's stubs say method
    visible = visible_property.fget

    def counted(self: Any) -> bool:
        reads[0] += 1
        return bool(visible(self))

    monkeypatch.setattr(sqs_models.Message, "visible", property(counted))
    yield reads


def _count(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_sending_to_a_queue_that_is_behind_does_not_walk_its_backlog(
    moto_endpoint: str, visible_reads: list[int]
) -> None:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="behind")["QueueUrl"]
    for start in range(0, BACKLOG, 10):
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)],
        )

    visible_reads[0] = 0
    sqs.send_message(QueueUrl=queue_url, MessageBody="one more")
    assert visible_reads[0] == 0

    # GetQueueAttributes still counts, message by message.
    assert _count(sqs, queue_url) == BACKLOG + 1
    assert visible_reads[0] >= BACKLOG + 1


def test_an_event_rule_delivering_to_a_queue_that_is_behind_does_not_walk_it(
    moto_endpoint: str, visible_reads: list[int]
) -> None:
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue_url = sqs.create_queue(QueueName="events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(Name="all", EventPattern=json.dumps({"source": ["aws.drs"]}))
    events.put_targets(Rule="all", Targets=[{"Id": "q", "Arn": queue_arn}])
    for _ in range(BACKLOG // 10):
        events.put_events(Entries=[ENTRY] * 10)

    visible_reads[0] = 0
    answer = events.put_events(Entries=[ENTRY] * 10)
    assert answer["FailedEntryCount"] == 0
    assert visible_reads[0] == 0
    assert _count(sqs, queue_url) == BACKLOG + 10


def test_receiving_from_a_queue_that_is_behind_walks_it_once_not_per_message(
    moto_endpoint: str, visible_reads: list[int]
) -> None:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="behind")["QueueUrl"]
    for start in range(0, BACKLOG, 10):
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)],
        )

    visible_reads[0] = 0
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 10
    # moto finds the visible messages in one pass; its retention check per message returned
    # (GetQueueAttributes MessageRetentionPeriod) no longer counts the queue each time.
    assert visible_reads[0] < 3 * BACKLOG

    # Asked for, the counts are made: 10 in flight, the rest waiting.
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessagesNotVisible", "MessageRetentionPeriod"],
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "10"
    assert int(attributes["MessageRetentionPeriod"]) > 0
    assert _count(sqs, queue_url) == BACKLOG - 10
