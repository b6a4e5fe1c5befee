"""The DRS simulator's event emitter (`EventEmitter`), which lets `make bench-events` reach its
burst rate: changes return at once, their events go onto the account's default bus in
PutEvents of up to 10 entries, and one server's events still arrive in the order of its
changes. Through real boto3 clients against the local moto: a rule on the target account's
default bus delivers to an SQS queue, as the forwarding rule does to the hub."""

from __future__ import annotations

import json
import threading
from typing import Any

from scripts.local import drs_events, fleet
from scripts.local.accounts import account_client
from scripts.local.drs_simulator import PUT_EVENTS_MAX_ENTRIES, DrsSimulator

TARGET, REGION = "111122223333", "us-west-2"
TOGGLES = 25  # per server: more than one PutEvents' worth


def _queue_behind_default_bus(endpoint: str) -> tuple[Any, str]:
    """An SQS queue fed by a rule on TARGET's default bus in REGION; (sqs client, its URL)."""
    sqs = account_client("sqs", TARGET, REGION, endpoint=endpoint)
    events = account_client("events", TARGET, REGION, endpoint=endpoint)
    queue_url = sqs.create_queue(QueueName="drs-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(Name="drs", EventPattern=json.dumps({"source": [drs_events.SOURCE]}))
    events.put_targets(Rule="drs", Targets=[{"Id": "q", "Arn": queue_arn}])
    return sqs, queue_url


def _drain(sqs: Any, queue_url: str, expected: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for _ in range(50):
        if len(events) >= expected:
            break
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return events


def test_a_burst_of_changes_is_batched_and_each_servers_events_keep_their_order(
    moto_endpoint: str,
) -> None:
    # GIVEN two servers in a target account whose default bus feeds a queue
    sqs, queue_url = _queue_behind_default_bus(moto_endpoint)
    servers = fleet.generate_fleet(TARGET, REGION, 2)
    ids = [server["sourceServerID"] for server in servers]

    with DrsSimulator(default_account_id=TARGET, events_endpoint=moto_endpoint) as simulator:
        simulator.add_source_servers(TARGET, REGION, servers)

        # WHEN each server toggles in and out of STALLED, both at once
        def toggle(server_id: str) -> None:
            for n in range(TOGGLES):
                state = "STALLED" if n % 2 == 0 else "CONTINUOUS"
                simulator.set_replication_state(TARGET, REGION, server_id, state)

        threads = [threading.Thread(target=toggle, args=(i,)) for i in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert simulator.flush_events(timeout=30)
        stats = simulator.event_stats()

    # THEN every event is on the bus, in fewer calls than events, none above the limit
    assert stats["put"] == 2 * TOGGLES and stats["failed"] == stats["dropped"] == 0
    assert stats["pending"] == 0
    assert stats["calls"] >= 2 * TOGGLES / PUT_EVENTS_MAX_ENTRIES
    assert len(simulator.events_put) == 2 * TOGGLES
    # AND each server's events reached the queue in the order of its changes
    delivered = _drain(sqs, queue_url, 2 * TOGGLES)
    for server_id in ids:
        arn = drs_events.source_server_arn(TARGET, REGION, server_id)
        states = [e["detail"]["state"] for e in delivered if e["resources"] == [arn]]
        alternating = [drs_events.STALLED, drs_events.NOT_STALLED] * TOGGLES
        assert states == alternating[:TOGGLES]
    # AND stopping the simulator ended its sender threads
    assert not [t for t in threading.enumerate() if t.name.startswith("drs-events-")]


def test_a_change_returns_before_its_event_is_put_and_stop_flushes_it(
    moto_endpoint: str,
) -> None:
    sqs, queue_url = _queue_behind_default_bus(moto_endpoint)
    (server,) = fleet.generate_fleet(TARGET, REGION, 1)

    with DrsSimulator(default_account_id=TARGET, events_endpoint=moto_endpoint) as simulator:
        simulator.add_source_servers(TARGET, REGION, [server])
        simulator.set_replication_state(TARGET, REGION, server["sourceServerID"], "STALLED")
        assert simulator.event_stats()["queued"] == 1
    # stop() gave the queued event its time: it is on the bus, nothing was dropped
    assert simulator.event_stats()["put"] == 1
    assert simulator.event_stats()["dropped"] == 0
    (event,) = _drain(sqs, queue_url, 1)
    assert event["detail"] == {"state": drs_events.STALLED}
    assert (event["account"], event["region"]) == (TARGET, REGION)
