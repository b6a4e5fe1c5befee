"""Log keys an invocation appends (operation, refreshId, runId) end with it.

Powertools keeps appended keys on the logger's formatter, shared by every module's logger in
the process, so a key left behind shows up on the next invocation's lines (a sync's "scope
synced" lines once carried `operation: refresh_source_servers`). The lines are captured as
the function writes them: JSON from the Powertools formatter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from shared.exceptions import InvalidParameterError
from shared.observability import get_logger
from tests.functional.test_refresh_source_servers import drs_event, sqs_batch
from tests.support.lambda_context import FakeLambdaContext
from tests.support.world import HUB, TARGET_A, World

REFRESH_KEYS = ("operation", "refreshId")


class JsonLines(logging.Handler):
    """Every line the function's logger writes, parsed."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def take(self) -> list[dict[str, Any]]:
        lines, self.lines = self.lines, []
        return lines


@pytest.fixture
def log_lines() -> Iterator[JsonLines]:
    powertools = get_logger("data-management-handler")
    target = logging.getLogger(powertools.service)
    handler = JsonLines(powertools.registered_formatter)
    target.addHandler(handler)
    try:
        yield handler
    finally:
        target.removeHandler(handler)


def lines_named(lines: list[dict[str, Any]], message: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("message") == message]


def test_a_sync_after_a_refresh_logs_no_refresh_keys(world: World, log_lines: JsonLines) -> None:
    # GIVEN a refresh delivered through SQS, whose lines name the operation and the refresh
    sid = world.add_servers(HUB, "us-east-1", 2, ec2_fraction=0.0)[0]["sourceServerID"]
    world.add_servers(TARGET_A, "us-west-2", 2, ec2_fraction=0.0)
    log_lines.take()
    answer = world.handler.lambda_handler(
        sqs_batch(drs_event(HUB, "us-east-1", sid)), FakeLambdaContext()
    )
    [finished] = lines_named(log_lines.take(), "refresh finished")
    assert finished["operation"] == "refresh_source_servers"
    assert finished["refreshId"] == answer["refresh"]["refreshId"]

    # WHEN a sync runs next in the same process (not through the handler: nothing clears)
    summary = world.sync()

    # THEN none of its lines carries the refresh's keys; each carries its own runId
    lines = log_lines.take()
    scope_lines = lines_named(lines, "scope synced")
    assert len(scope_lines) == 9
    for line in lines:
        assert not [key for key in REFRESH_KEYS if key in line], line
    assert {line["runId"] for line in scope_lines} == {summary["runId"]}


def test_a_refresh_after_a_sync_logs_no_sync_keys(world: World, log_lines: JsonLines) -> None:
    sid = world.add_servers(HUB, "us-east-1", 1, ec2_fraction=0.0)[0]["sourceServerID"]
    world.invoke("sync_source_server_inventory")
    synced = log_lines.take()
    assert {line.get("operation") for line in lines_named(synced, "sync finished")} == {
        "sync_source_server_inventory"
    }

    result = world.invoke(
        "refresh_source_servers", accountId=HUB, region="us-east-1", sourceServerIDs=[sid]
    )

    [finished] = lines_named(log_lines.take(), "refresh finished")
    assert "runId" not in finished
    assert finished["operation"] == "refresh_source_servers"
    assert finished["refreshId"] == result["refreshId"]


def test_keys_go_when_the_operation_fails(world: World) -> None:
    powertools = get_logger("data-management-handler")

    with pytest.raises(InvalidParameterError):
        world.invoke("refresh_source_servers", accountId=HUB)
    with pytest.raises(InvalidParameterError):
        world.handler.lambda_handler(
            {"operation": "sync_source_server_inventory", "x": 1}, FakeLambdaContext()
        )

    assert not [key for key in (*REFRESH_KEYS, "runId") if key in powertools.get_current_keys()]
