"""The change feed: the full sync publishes what its landed writes changed to the project bus.

Events are observed as a subscriber would: a rule on the bus (moto's EventBridge) sends them
to an SQS queue, which the test reads.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config

from change_feed import MAX_ATTEMPTS, SOURCE, Change, publish_changes
from inventory_sync.deadline import Deadline
from inventory_sync.models import SyncSettings
from inventory_sync.sync import sync_source_server_inventory
from scripts.local.moto_server import LocalMotoServer, MotoFault
from shared.aws import ClientFactory, ClientPool, make_config
from shared.config import INVENTORY_EVENT_BUS_ENV
from tests.support.lambda_context import FakeLambdaContext
from tests.support.world import HUB, TARGET_A, TARGET_B, World

BUS = "aws-drs-orchestration-inventory-test"


class Subscriber:
    """A rule on the bus matching the feed's source, delivering to an SQS queue."""

    def __init__(self) -> None:
        events = boto3.client("events")
        events.create_event_bus(Name=BUS)
        self.sqs = boto3.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName="feed-subscriber")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        events.put_rule(
            Name="feed-to-queue", EventBusName=BUS, EventPattern=json.dumps({"source": [SOURCE]})
        )
        events.put_targets(
            Rule="feed-to-queue", EventBusName=BUS, Targets=[{"Id": "q", "Arn": queue_arn}]
        )

    def events(self) -> list[dict[str, Any]]:
        """Every event delivered since the last call (each read once)."""
        received: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return received
            for message in messages:
                received.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture
def subscriber(world: World) -> Subscriber:
    world.monkeypatch.setenv(INVENTORY_EVENT_BUS_ENV, BUS)
    return Subscriber()


def fleet(world: World) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {
        (HUB, "us-east-1"): world.add_servers(HUB, "us-east-1", 12, ec2_fraction=0.0),
        (TARGET_A, "eu-west-1"): world.add_servers(TARGET_A, "eu-west-1", 3, ec2_fraction=0.0),
        (TARGET_B, "us-west-2"): world.add_servers(TARGET_B, "us-west-2", 2, ec2_fraction=0.0),
    }


def by_kind(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    for event in events:
        kind = event["detail-type"].removeprefix("DRS Inventory Server ")
        kinds.setdefault(kind, set()).add(event["detail"]["sourceServerArn"])
    return kinds


def test_a_first_sync_publishes_one_added_event_per_server_with_its_run_id(
    world: World, subscriber: Subscriber
) -> None:
    servers = [s for scope in fleet(world).values() for s in scope]

    summary = world.sync()

    events = subscriber.events()
    assert len(events) == len(servers)
    assert by_kind(events) == {"Added": {s["arn"] for s in servers}}
    assert summary["counts"]["changesPublished"] == len(servers)
    assert summary["counts"]["changesFailed"] == 0
    one = next(e for e in events if e["detail"]["sourceServerArn"] == servers[0]["arn"])
    assert one["source"] == SOURCE
    assert one["resources"] == [servers[0]["arn"]]
    assert one["detail"] == {
        "accountId": HUB,
        "region": "us-east-1",
        "sourceServerArn": servers[0]["arn"],
        "sourceServerID": servers[0]["sourceServerID"],
        "changedFields": [],
        "runId": summary["runId"],
    }


def test_changed_removed_revived_and_nothing_for_an_unchanged_run(
    world: World, subscriber: Subscriber
) -> None:
    scopes = fleet(world)
    world.sync()
    subscriber.events()

    # GIVEN nothing changed in DRS: nothing is published
    quiet = world.sync()
    assert subscriber.events() == []
    assert quiet["counts"]["changesPublished"] == 0

    # GIVEN one server's replication stalls and another disappears
    stalled = copy.deepcopy(scopes[(HUB, "us-east-1")][0])
    stalled["dataReplicationInfo"]["dataReplicationState"] = "STALLED"
    world.simulator.add_source_servers(HUB, "us-east-1", [stalled])
    gone = scopes[(TARGET_A, "eu-west-1")][1]
    world.simulator.remove_source_server(TARGET_A, "eu-west-1", gone["sourceServerID"])

    second = world.sync()

    events = subscriber.events()
    assert by_kind(events) == {"Changed": {stalled["arn"]}, "Removed": {gone["arn"]}}
    changed = next(e for e in events if e["detail-type"] == "DRS Inventory Server Changed")
    assert "replicationState" in changed["detail"]["changedFields"]
    assert changed["detail"]["runId"] == second["runId"]
    removed = next(e for e in events if e["detail-type"] == "DRS Inventory Server Removed")
    assert removed["detail"]["accountId"] == TARGET_A
    assert removed["detail"]["sourceServerID"] == gone["sourceServerID"]
    assert second["counts"]["changesPublished"] == 2

    # GIVEN the server comes back
    world.simulator.add_source_servers(TARGET_A, "eu-west-1", [gone])
    world.sync()
    assert by_kind(subscriber.events()) == {"Revived": {gone["arn"]}}


def test_the_sweep_of_an_unregistered_account_publishes_removed(
    world: World, subscriber: Subscriber
) -> None:
    scopes = fleet(world)
    world.sync()
    subscriber.events()
    world.invoke("delete_target_account", accountId=TARGET_B)

    summary = world.sync()

    assert by_kind(subscriber.events()) == {
        "Removed": {s["arn"] for s in scopes[(TARGET_B, "us-west-2")]}
    }
    assert summary["counts"]["changesPublished"] == 2


def test_a_dry_run_publishes_nothing(world: World, subscriber: Subscriber) -> None:
    fleet(world)

    summary = world.sync(dryRun=True)

    assert summary["counts"]["serversNew"] == 17
    assert subscriber.events() == []
    assert (summary["counts"]["changesPublished"], summary["counts"]["changesFailed"]) == (0, 0)


def test_without_the_bus_variable_the_feed_is_off(world: World) -> None:
    fleet(world)

    summary = world.sync()

    assert (summary["counts"]["changesPublished"], summary["counts"]["changesFailed"]) == (0, 0)


def test_a_throttled_put_events_is_retried_and_everything_lands(
    world: World, subscriber: Subscriber, moto_server: LocalMotoServer
) -> None:
    servers = [s for scope in fleet(world).values() for s in scope]
    moto_server.set_fault(
        MotoFault("events", "PutEvents", error_code="ThrottlingException", count=1)
    )

    summary = world.sync()

    assert summary["counts"]["changesPublished"] == len(servers)
    assert summary["counts"]["changesFailed"] == 0
    assert {e["detail"]["sourceServerArn"] for e in subscriber.events()} == {
        s["arn"] for s in servers
    }


def test_put_events_failing_throughout_is_counted_and_the_sync_succeeds(
    world: World, subscriber: Subscriber, moto_server: LocalMotoServer
) -> None:
    servers = [s for scope in fleet(world).values() for s in scope]
    moto_server.set_fault(MotoFault("events", "PutEvents", error_code="AccessDeniedException"))

    summary = world.sync()

    assert summary["status"] == "SUCCEEDED"
    assert summary["counts"]["serversWritten"] == len(servers)
    assert summary["counts"]["changesPublished"] == 0
    assert summary["counts"]["changesFailed"] == len(servers)
    assert subscriber.events() == []


def refusing_first_entry(times: int) -> Any:
    """An after-call hook that rewrites PutEvents answers as EventBridge reports refused
    entries: the first entry of the next `times` calls fails with InternalFailure."""
    left = {"calls": times}

    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        if left["calls"] <= 0 or not parsed.get("Entries"):
            return
        left["calls"] -= 1
        parsed["Entries"][0] = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
        parsed["FailedEntryCount"] = 1

    return rewrite


def sync_with_hook(world: World, hook: Any, **params: Any) -> dict[str, Any]:
    def session(credentials: Any = None) -> boto3.Session:
        made = world.session(None, credentials)
        made.events.register("after-call.events.PutEvents", hook)
        return made

    factory = ClientFactory(ClientPool(session), config=make_config(max_pool_connections=8))
    return sync_source_server_inventory(
        params,
        factory=factory,
        settings=SyncSettings(max_concurrency=1, page_size=25, deadline_reserve_seconds=0),
    )


def test_refused_entries_are_retried_then_published(world: World, subscriber: Subscriber) -> None:
    servers = [s for scope in fleet(world).values() for s in scope]

    summary = sync_with_hook(world, refusing_first_entry(2))

    assert summary["counts"]["changesPublished"] == len(servers)
    assert summary["counts"]["changesFailed"] == 0
    # moto delivered the "refused" entries too: a subscriber may see one event twice.
    assert {e["detail"]["sourceServerArn"] for e in subscriber.events()} == {
        s["arn"] for s in servers
    }


def test_an_entry_refused_on_every_attempt_is_counted_failed(
    world: World, subscriber: Subscriber
) -> None:
    world.add_servers(HUB, "us-east-1", 3, ec2_fraction=0.0)

    summary = sync_with_hook(world, refusing_first_entry(1000))

    assert summary["counts"]["changesPublished"] == 2
    assert summary["counts"]["changesFailed"] == 1


def test_publishing_stops_at_the_deadline_and_the_sync_returns_in_time(
    world: World, subscriber: Subscriber, moto_server: LocalMotoServer
) -> None:
    servers = [s for scope in fleet(world).values() for s in scope]
    # Every PutEvents hangs: the client's read timeout and the deadline must end it.
    moto_server.set_fault(MotoFault("events", "PutEvents", kind="hang", hang_seconds=8))
    settings = SyncSettings(max_concurrency=4, page_size=25, deadline_reserve_seconds=0)
    started = time.monotonic()

    summary = world.sync(context=FakeLambdaContext(timeout_ms=6000), settings=settings)

    assert time.monotonic() - started < 6.0 + 1.5
    assert summary["counts"]["changesPublished"] == 0
    assert summary["counts"]["changesFailed"] == len(servers)
    assert summary["counts"]["serversWritten"] == len(servers)


def change(n: int) -> Change:
    arn = f"arn:aws:drs:us-east-1:{HUB}:source-server/s-{n:017x}"
    return Change("Added", HUB, "us-east-1", arn, arn.rsplit("/", 1)[1], (), "eventId", f"e{n}")


def test_publish_changes_past_the_deadline_sends_nothing_and_counts_it(
    subscriber: Subscriber, moto_server: LocalMotoServer
) -> None:
    spent = Deadline(0.0)

    result = publish_changes(
        [change(n) for n in range(25)],
        events_client=boto3.client("events"),
        bus_name=BUS,
        deadline=spent,
    )

    assert (result.published, result.failed, result.abandoned, result.attempts) == (0, 25, 25, 0)
    assert moto_server.request_count("events", "PutEvents") == 0


def test_publish_changes_batches_by_ten_and_reports_attempts(subscriber: Subscriber) -> None:
    result = publish_changes(
        [change(n) for n in range(25)],
        events_client=boto3.client("events"),
        bus_name=BUS,
        now=datetime(2026, 12, 3, tzinfo=UTC),
    )

    assert (result.published, result.failed, result.attempts) == (25, 0, 3)
    events = subscriber.events()
    assert len(events) == 25
    assert {e["detail"]["eventId"] for e in events} == {f"e{n}" for n in range(25)}


def test_persistent_throttling_gives_up_after_the_bounded_attempts(
    subscriber: Subscriber, moto_server: LocalMotoServer
) -> None:
    moto_server.set_fault(MotoFault("events", "PutEvents", error_code="ThrottlingException"))
    # botocore's own retries off: the attempts counted are the feed's.
    client = boto3.client("events", config=Config(retries={"mode": "standard", "max_attempts": 1}))

    result = publish_changes(
        [change(n) for n in range(12)], events_client=client, bus_name=BUS, sleep=lambda _: None
    )

    assert (result.published, result.failed) == (0, 12)
    assert result.attempts == 2 * MAX_ATTEMPTS  # two batches, each sent MAX_ATTEMPTS times
