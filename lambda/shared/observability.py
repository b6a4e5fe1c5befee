"""Structured JSON logs and CloudWatch Embedded Metric Format metrics (Powertools)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

METRICS_NAMESPACE = "DRSOrchestration"


def get_logger(service: str) -> Logger:
    """A JSON logger; POWERTOOLS_SERVICE_NAME wins over `service` when set."""
    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", service))


def emit_metrics(
    service: str, counts: Mapping[str, float], durations_ms: Mapping[str, float]
) -> None:
    """Print one EMF document with `counts` (unit Count) and `durations_ms` (Milliseconds).

    CloudWatch turns the log line into metrics; nothing is sent through PutMetricData.
    Dimensions: service, and environment (DEPLOYMENT_ENVIRONMENT) when set, so two
    environments in one account never answer each other's alarms.
    """
    metrics = Metrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE),
        service=os.environ.get("POWERTOOLS_SERVICE_NAME", service),
    )
    environment = os.environ.get("DEPLOYMENT_ENVIRONMENT")
    if environment:
        metrics.add_dimension(name="environment", value=environment)
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for name, value in durations_ms.items():
        metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
    metrics.flush_metrics()
