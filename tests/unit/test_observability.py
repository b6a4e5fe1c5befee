"""EMF metrics carry the dimensions the alarms in cfn/monitoring-stack.yaml watch."""

from __future__ import annotations

import json

import pytest

from shared.observability import emit_metrics


def _emf_document(output: str) -> dict:
    (line,) = [line for line in output.splitlines() if '"_aws"' in line]
    return json.loads(line)


def test_metrics_carry_service_and_environment(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYMENT_ENVIRONMENT", "qa")
    monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
    emit_metrics("data-management-handler", {"ScopesFailed": 2}, {"SyncDurationMs": 1500})

    document = _emf_document(capsys.readouterr().out)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "DRSOrchestration"
    assert [sorted(dims) for dims in directive["Dimensions"]] == [["environment", "service"]]
    assert (document["service"], document["environment"]) == ("data-management-handler", "qa")
    units = {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}
    assert units == {"ScopesFailed": "Count", "SyncDurationMs": "Milliseconds"}
    assert document["ScopesFailed"] in (2, [2.0], 2.0)
