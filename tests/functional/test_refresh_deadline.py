"""The refresh under its deadline: a hung DRS, DynamoDB or EventBridge call never keeps the
invocation past Lambda's timeout, and SQS is told to redeliver exactly the messages whose
servers were not refreshed.

Faults go in on the wire (the DRS simulator's hang, the moto server's hang or error). Each
test gives the invocation a Lambda context of several seconds and asserts that it returned
before the context ran out, what the result reports, and the batchItemFailures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from drs_events import handle_sqs_batch
from inventory_sync.deadline import Deadline
from inventory_sync.models import SyncSettings
from inventory_sync.refresh import RefreshFailedError, refresh_source_servers
from scripts.local.drs_simulator import Fault
from scripts.local.moto_server import LocalMotoServer, MotoFault
from shared.aws import ClientFactory, make_config
from tests.functional.test_change_feed import Subscriber, subscriber  # noqa: F401 (fixture)
from tests.functional.test_refresh_source_servers import drs_event, server_arn, sqs_batch
from tests.support.lambda_context import FakeLambdaContext
from tests.support.world import HUB, TARGET_A, World

# A context of several seconds (a loaded 2-core CI needs the room); the deadline leaves
# RESERVE seconds of it for the answer, as SYNC_DEADLINE_RESERVE_SECONDS does in AWS.
TIMEOUT_MS = 8000
RESERVE = 2
SETTINGS = SyncSettings(max_concurrency=4, page_size=25, deadline_reserve_seconds=RESERVE)
HEALTHY = (HUB, "us-east-1")
HUNG = (TARGET_A, "us-west-2")


@pytest.fixture
def call_outlives_its_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung call its connect/read timeouts do not end (a server trickling bytes): the
    clients keep make_config's 30 s read timeout, so only the deadline ends the wait."""
    monkeypatch.setattr(Deadline, "client_config", lambda self, base: base)


@pytest.fixture
def held_requests_drained(moto_server: LocalMotoServer) -> Iterator[None]:
    """moto processes a request held by a hang when the hang ends: let that happen inside
    the test that armed it, never in the next test's fresh tables."""
    yield
    moto_server.clear_faults()
    assert moto_server.wait_for_held_requests(timeout=60)


def deliver_in_time(world: World, batch: dict[str, Any]) -> dict[str, Any]:
    """Deliver `batch` as Lambda would, with a TIMEOUT_MS context; assert it returned before
    the context ran out."""
    factory = ClientFactory(world.pool(), config=make_config(max_pool_connections=8))
    context = FakeLambdaContext(timeout_ms=TIMEOUT_MS)
    answer = handle_sqs_batch(batch, context, factory=factory, settings=SETTINGS)
    assert context.get_remaining_time_in_millis() > 0, "returned after Lambda's timeout"
    return answer


def failed_messages(answer: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]


def ids(servers: list[dict[str, Any]]) -> list[str]:
    return [server["sourceServerID"] for server in servers]


# --- a hung DRS scope ----------------------------------------------------------------------------
def _hung_drs_batch(world: World) -> tuple[dict[str, Any], list[str], list[str]]:
    """Two healthy servers and two of a scope whose DRS hangs (60 s), one message each,
    interleaved: m-0 healthy, m-1 hung, m-2 healthy, m-3 hung."""
    healthy = ids(world.add_servers(*HEALTHY, 2, ec2_fraction=0.0))
    hung = ids(world.add_servers(*HUNG, 2, ec2_fraction=0.0))
    world.simulator.set_fault(*HUNG, Fault(kind="hang", hang_seconds=60))
    batch = sqs_batch(
        drs_event(*HEALTHY, healthy[0]),
        drs_event(*HUNG, hung[0]),
        drs_event(*HEALTHY, healthy[1]),
        drs_event(*HUNG, hung[1]),
    )
    return batch, healthy, hung


def test_a_hung_drs_scope_is_ended_by_its_timeouts_and_only_its_messages_are_retried(
    world: World,
) -> None:
    # GIVEN one scope's DRS hangs; the clients' timeouts are sized to the deadline
    batch, healthy, hung = _hung_drs_batch(world)

    # WHEN the batch is delivered
    answer = deliver_in_time(world, batch)

    # THEN the healthy scope is written, the hung one is a failure with nothing written, and
    # SQS redelivers only the hung scope's messages
    assert failed_messages(answer) == ["m-1", "m-3"]
    result = answer["refresh"]
    assert result["status"] == "PARTIAL"
    [failure] = result["failures"]
    assert (failure["accountId"], failure["region"]) == HUNG
    assert sorted(failure["sourceServerIDs"]) == sorted(hung)
    assert result["counts"]["written"] == 2 and result["counts"]["failed"] == 2
    inventory = world.inventory()
    assert {server_arn(*HEALTHY, sid) for sid in healthy} == set(inventory)


def test_a_hung_drs_call_past_its_timeouts_is_abandoned_at_the_deadline(
    world: World, call_outlives_its_timeouts: None
) -> None:
    # GIVEN one scope's DRS hangs longer than the invocation, and its client waits 30 s
    batch, healthy, hung = _hung_drs_batch(world)

    # WHEN the batch is delivered
    started = time.monotonic()
    answer = deliver_in_time(world, batch)

    # THEN the supervisor gave up at the deadline: the hung scope is reported DeadlineReached
    # with its servers, the healthy one is done, and only the hung scope's messages come back
    assert time.monotonic() - started < TIMEOUT_MS / 1000
    assert failed_messages(answer) == ["m-1", "m-3"]
    result = answer["refresh"]
    assert result["deadlineReached"] is True
    [failure] = result["failures"]
    assert (failure["accountId"], failure["region"], failure["errorCode"]) == (
        *HUNG,
        "DeadlineReached",
    )
    assert sorted(failure["sourceServerIDs"]) == sorted(hung)
    assert result["counts"]["written"] == 2 and result["counts"]["failed"] == 2
    assert {server_arn(*HEALTHY, sid) for sid in healthy} == set(world.inventory())


def test_an_operators_refresh_of_a_hung_scope_fails_visibly_in_time(
    world: World, call_outlives_its_timeouts: None
) -> None:
    _, _, hung = _hung_drs_batch(world)
    factory = ClientFactory(world.pool(), config=make_config(max_pool_connections=8))
    context = FakeLambdaContext(timeout_ms=TIMEOUT_MS)

    with pytest.raises(RefreshFailedError) as raised:
        refresh_source_servers(
            {"accountId": HUNG[0], "region": HUNG[1], "sourceServerIDs": hung},
            context,
            factory=factory,
            settings=SETTINGS,
        )

    assert context.get_remaining_time_in_millis() > 0, "returned after Lambda's timeout"
    [failure] = raised.value.summary["failures"]
    assert failure["errorCode"] == "DeadlineReached"
    assert sorted(failure["sourceServerIDs"]) == sorted(hung)
    assert world.inventory() == {}


# --- a hung DynamoDB write -----------------------------------------------------------------------
def _hung_write_batch(
    world: World, moto_server: LocalMotoServer, hang_seconds: float
) -> tuple[dict[str, Any], list[str]]:
    """Three servers of one scope, one message each (m-0, m-1, m-2 in the order the refresh
    writes them: by ARN); the first inventory PutItem lands, every later one hangs."""
    servers = sorted(ids(world.add_servers(*HEALTHY, 3, ec2_fraction=0.0)))
    moto_server.set_fault(
        MotoFault(
            service="dynamodb",
            operation="PutItem",
            table_name=world.tables.inventory,
            kind="hang",
            hang_seconds=hang_seconds,
            skip=1,
        )
    )
    return sqs_batch(*(drs_event(*HEALTHY, sid) for sid in servers)), servers


def test_a_hung_inventory_write_retries_only_the_messages_not_written(
    world: World, moto_server: LocalMotoServer, held_requests_drained: None
) -> None:
    # GIVEN the first server's write lands and the next one hangs (4 s, past the clients'
    # read timeout, sized to the deadline)
    batch, servers = _hung_write_batch(world, moto_server, hang_seconds=4)

    answer = deliver_in_time(world, batch)

    # THEN the written server's message is done; the other two come back
    assert failed_messages(answer) == ["m-1", "m-2"]
    [failure] = answer["refresh"]["failures"]
    # The retries' timeouts end it (a loaded machine may reach the deadline first)
    assert failure["errorCode"] in ("InventoryTableFailed", "DeadlineReached")
    assert failure["sourceServerIDs"] == servers[1:]
    assert answer["refresh"]["counts"]["written"] == 1
    assert answer["refresh"]["counts"]["failed"] == 2


def test_a_hung_inventory_write_past_its_timeouts_is_abandoned_at_the_deadline(
    world: World,
    moto_server: LocalMotoServer,
    held_requests_drained: None,
    call_outlives_its_timeouts: None,
) -> None:
    # GIVEN the second write hangs longer than the invocation, and its client waits 30 s
    batch, servers = _hung_write_batch(world, moto_server, hang_seconds=10)

    answer = deliver_in_time(world, batch)

    # THEN the invocation returned at the deadline, reporting the unwritten servers
    assert failed_messages(answer) == ["m-1", "m-2"]
    result = answer["refresh"]
    assert result["deadlineReached"] is True
    [failure] = result["failures"]
    assert (failure["errorCode"], failure["sourceServerIDs"]) == ("DeadlineReached", servers[1:])
    assert result["counts"]["written"] == 1 and result["counts"]["failed"] == 2
    # Only the first write landed while the refresh ran (the held one lands when its hang
    # ends: a request already sent; the gate stops any new one).
    assert set(world.inventory()) == {server_arn(*HEALTHY, servers[0])}


def test_a_registry_read_past_its_timeouts_returns_every_message(
    world: World,
    moto_server: LocalMotoServer,
    held_requests_drained: None,
    call_outlives_its_timeouts: None,
) -> None:
    # GIVEN the read of the target-accounts registry (before any scope) hangs
    healthy = ids(world.add_servers(*HEALTHY, 2, ec2_fraction=0.0))
    moto_server.set_fault(
        MotoFault(
            service="dynamodb",
            operation="Scan",
            table_name=world.tables.target_accounts,
            kind="hang",
            hang_seconds=10,
        )
    )

    answer = deliver_in_time(world, sqs_batch(*(drs_event(*HEALTHY, sid) for sid in healthy)))

    # THEN nothing was refreshed: every message comes back, the scope says why
    assert failed_messages(answer) == ["m-0", "m-1"]
    [failure] = answer["refresh"]["failures"]
    assert failure["errorCode"] == "DeadlineReached"
    assert world.simulator.request_count("DescribeSourceServers") == 0
    assert world.inventory() == {}


# --- the change feed -----------------------------------------------------------------------------
def test_a_hung_put_events_never_costs_the_deadline_nor_a_redelivery(
    world: World,
    subscriber: Subscriber,  # noqa: F811
    moto_server: LocalMotoServer,
    held_requests_drained: None,
) -> None:
    # GIVEN every PutEvents hangs past the invocation
    servers = ids(world.add_servers(*HEALTHY, 3, ec2_fraction=0.0))
    moto_server.set_fault(MotoFault("events", "PutEvents", kind="hang", hang_seconds=10))

    answer = deliver_in_time(world, sqs_batch(*(drs_event(*HEALTHY, sid) for sid in servers)))

    # THEN every server is written and its message done (a redelivery would find it
    # unchanged and publish nothing); the feed's loss is counted
    assert failed_messages(answer) == []
    counts = answer["refresh"]["counts"]
    assert counts["written"] == 3
    assert (counts["changesPublished"], counts["changesFailed"]) == (0, 3)


def test_a_refused_put_events_is_counted_and_no_message_is_retried(
    world: World,
    subscriber: Subscriber,  # noqa: F811
    moto_server: LocalMotoServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    servers = ids(world.add_servers(*HEALTHY, 2, ec2_fraction=0.0))
    moto_server.set_fault(MotoFault("events", "PutEvents", error_code="AccessDeniedException"))

    answer = deliver_in_time(world, sqs_batch(*(drs_event(*HEALTHY, sid) for sid in servers)))

    assert failed_messages(answer) == []
    assert answer["refresh"]["status"] == "SUCCEEDED"
    counts = answer["refresh"]["counts"]
    assert (counts["written"], counts["changesPublished"], counts["changesFailed"]) == (2, 0, 2)
    assert subscriber.events() == []
    # ... and the loss reaches the ChangeFeedFailures alarm's metric, as the sync's does
    metrics = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if '"_aws"' in line and "RefreshServersRead" in line
    ]
    assert [m["ChangeFeedFailures"] for m in metrics] == [[2.0]]  # EMF: a list of values
