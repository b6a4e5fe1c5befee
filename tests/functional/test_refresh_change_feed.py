"""refresh_source_servers publishes what it changed to the change feed, named by the DRS event
that asked (`eventId`) or, for an operator's call, by the refresh (`runId`)."""

from __future__ import annotations

from tests.functional.test_change_feed import Subscriber, subscriber  # noqa: F401 (fixture)
from tests.functional.test_refresh_source_servers import (
    deliver,
    drs_event,
    operator_refresh,
    sqs_batch,
    stall,
)
from tests.support.world import TARGET_A, World


def test_a_stall_event_publishes_one_changed_event_naming_the_drs_event(
    world: World,
    subscriber: Subscriber,  # noqa: F811
) -> None:
    servers = world.add_servers(TARGET_A, "us-east-1", 4, ec2_fraction=0.0)
    assert world.sync()["status"] == "SUCCEEDED"
    subscriber.events()  # the first sync's Added events
    stalled = servers[1]["sourceServerID"]
    stall(world, TARGET_A, "us-east-1", stalled)
    event = drs_event(TARGET_A, "us-east-1", stalled)

    answer = deliver(world, sqs_batch(event))

    assert answer["refresh"]["counts"]["changesPublished"] == 1
    [published] = subscriber.events()
    assert published["detail-type"] == "DRS Inventory Server Changed"
    assert published["detail"]["sourceServerID"] == stalled
    assert published["detail"]["eventId"] == event["id"]
    assert "runId" not in published["detail"]
    assert "replicationState" in published["detail"]["changedFields"]
    assert published["time"] == event["time"]  # when DRS saw it, not when it was published

    # The same event again (at-least-once delivery): nothing changed, nothing published.
    again = deliver(world, sqs_batch(event))
    assert again["refresh"]["counts"]["changesPublished"] == 0
    assert subscriber.events() == []


def test_an_operators_refresh_is_named_by_its_refresh_id(
    world: World,
    subscriber: Subscriber,  # noqa: F811
) -> None:
    servers = world.add_servers(TARGET_A, "us-east-1", 2, ec2_fraction=0.0)
    assert world.sync()["status"] == "SUCCEEDED"
    subscriber.events()
    stall(world, TARGET_A, "us-east-1", servers[0]["sourceServerID"])

    result = operator_refresh(
        world,
        accountId=TARGET_A,
        region="us-east-1",
        sourceServerIDs=[servers[0]["sourceServerID"]],
    )

    [published] = subscriber.events()
    assert published["detail"]["runId"] == result["refreshId"]
    assert result["counts"]["changesPublished"] == 1 and result["counts"]["changesFailed"] == 0
