"""The run's metrics: one per status, a PARTIAL run never counted as a success, and every
alarm of cfn/monitoring-stack.yaml on the sync's namespace watching a metric the sync emits
(read from what `publish` prints, not from string constants)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inventory_sync.report import publish
from shared.observability import METRICS_NAMESPACE
from tests.support.cfn import load_template, resources_of_type

STATUS_METRICS = {
    "SUCCEEDED": "SyncSucceeded",
    "PARTIAL": "SyncPartial",
    "FAILED": "SyncFailed",
    "SKIPPED": "SyncSkipped",
}


def _published(status: str, capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    result = {"status": status, "durationMs": 1200, "counts": {"serversSeen": 3}, "failures": []}
    publish(result, dry_run=False)
    (line,) = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    document: dict[str, Any] = json.loads(line)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE

    def value(name: str) -> float:
        raw = document[name]
        return float(raw[0] if isinstance(raw, list) else raw)

    return {metric["Name"]: value(metric["Name"]) for metric in directive["Metrics"]}


@pytest.mark.parametrize("status", sorted(STATUS_METRICS))
def test_each_run_counts_once_under_its_own_status(
    status: str, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = _published(status, capsys)

    assert {name: metrics[name] for name in STATUS_METRICS.values()} == {
        name: float(name == STATUS_METRICS[status]) for name in STATUS_METRICS.values()
    }
    assert metrics["SyncSucceededOrPartial"] == float(status in ("SUCCEEDED", "PARTIAL"))


def test_no_metric_reads_a_partial_run_as_a_success(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = _published("PARTIAL", capsys)

    ones = {name for name, value in metrics.items() if name.startswith("Sync") and value == 1}
    assert ones == {"SyncPartial", "SyncSucceededOrPartial"}
    assert "SyncCompleted" not in metrics  # the old name, which hid PARTIAL


def test_every_alarm_on_the_sync_namespace_watches_an_emitted_metric(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emitted: set[str] = set()
    for status in STATUS_METRICS:
        emitted |= set(_published(status, capsys))
    alarms = resources_of_type(load_template("monitoring-stack.yaml"), "AWS::CloudWatch::Alarm")
    watched = {
        logical_id: alarm["Properties"]["MetricName"]
        for logical_id, alarm in alarms.items()
        if alarm["Properties"].get("Namespace") == METRICS_NAMESPACE
    }

    assert watched["InventoryStaleAlarm"] == "SyncSucceededOrPartial"
    assert {alarm: name for alarm, name in watched.items() if name not in emitted} == {}
