"""What a run costs in AWS, per month per 1,000 servers, and how large a fleet one run fits.

Prices live here and nowhere else. They are us-east-1 list prices, read from the public
pricing pages in November 2026 (check them before quoting a figure):

- DynamoDB on-demand (https://aws.amazon.com/dynamodb/pricing/on-demand/): $0.625 per
  million write request units, $0.125 per million read request units (the November 2024
  price reduction). Storage, backups (point-in-time recovery) and streams are not modelled.
- Lambda (https://aws.amazon.com/lambda/pricing/): x86, $0.0000166667 per GB-second and
  $0.20 per million requests, at the function's 1,769 MB (1,769 / 1,024 GB; one vCPU).
  Duration is the run's measured wall time here, against the fakes' latencies: the real
  function's duration will differ, and the free tier is left out.
- EventBridge (https://aws.amazon.com/eventbridge/pricing/): a scheduled rule's invocations
  are not charged, so the schedule costs $0.
- CloudWatch Logs and metrics (the sync's JSON logs and EMF metrics) are not modelled.

A month is 30.4 days of 96 runs (one every 15 minutes): 2,918.4 runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PRICES_AS_OF = "2026-11, us-east-1 list prices"
DYNAMODB_WRITE_UNIT_USD = 0.625 / 1_000_000
DYNAMODB_READ_UNIT_USD = 0.125 / 1_000_000
LAMBDA_GB_SECOND_USD = 0.0000166667
LAMBDA_REQUEST_USD = 0.20 / 1_000_000
SCHEDULE_INVOCATION_USD = 0.0  # EventBridge scheduled rules: no charge
LAMBDA_MEMORY_MB = 1769  # one full vCPU at this size
RUNS_PER_DAY = 96  # rate(15 minutes)
DAYS_PER_MONTH = 30.4
RUNS_PER_MONTH = RUNS_PER_DAY * DAYS_PER_MONTH
SERVERS_PER_UNIT = 1000


@dataclass(frozen=True)
class MonthlyCost:
    """Dollars per month per 1,000 servers if every run of the month cost what one run did."""

    label: str
    dynamodb_writes: float
    dynamodb_reads: float
    lambda_duration: float
    lambda_requests: float
    schedule: float = SCHEDULE_INVOCATION_USD

    @property
    def total(self) -> float:
        return (
            self.dynamodb_writes
            + self.dynamodb_reads
            + self.lambda_duration
            + self.lambda_requests
            + self.schedule
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "dynamodbWrites": self.dynamodb_writes,
            "dynamodbReads": self.dynamodb_reads,
            "lambdaDuration": self.lambda_duration,
            "lambdaRequests": self.lambda_requests,
            "schedule": self.schedule,
            "total": self.total,
        }


def monthly_cost(
    label: str, write_units: float, read_units: float, wall_seconds: float, servers: int
) -> MonthlyCost:
    """One run's units and duration, priced for a month of runs, per 1,000 servers."""
    per_unit = SERVERS_PER_UNIT / servers if servers else 0.0
    month = RUNS_PER_MONTH * per_unit
    gb_seconds = wall_seconds * LAMBDA_MEMORY_MB / 1024
    return MonthlyCost(
        label=label,
        dynamodb_writes=write_units * DYNAMODB_WRITE_UNIT_USD * month,
        dynamodb_reads=read_units * DYNAMODB_READ_UNIT_USD * month,
        lambda_duration=gb_seconds * LAMBDA_GB_SECOND_USD * month,
        lambda_requests=LAMBDA_REQUEST_USD * month,
    )


def prices_json() -> dict[str, Any]:
    return {
        "asOf": PRICES_AS_OF,
        "dynamodbPerMillionWriteUnits": DYNAMODB_WRITE_UNIT_USD * 1e6,
        "dynamodbPerMillionReadUnits": DYNAMODB_READ_UNIT_USD * 1e6,
        "lambdaPerGbSecond": LAMBDA_GB_SECOND_USD,
        "lambdaPerMillionRequests": LAMBDA_REQUEST_USD * 1e6,
        "lambdaMemoryMb": LAMBDA_MEMORY_MB,
        "scheduleInvocation": SCHEDULE_INVOCATION_USD,
        "runsPerMonth": RUNS_PER_MONTH,
        "notModelled": "CloudWatch Logs and metrics, DynamoDB storage/PITR, the free tier",
    }


# ---- what fits one invocation ------------------------------------------------------------------


@dataclass(frozen=True)
class FitBound:
    """The largest fleet one bound allows: `servers` (None: this run measured no cost)."""

    name: str
    servers: int | None
    basis: str


def largest_fleet(
    *,
    servers: int,
    cpu_seconds: float,
    wall_seconds: float,
    peak_rss_mib: float,
    baseline_rss_mib: float,
    budget_seconds: float,
    memory_mib: float = LAMBDA_MEMORY_MB,
) -> list[FitBound]:
    """The largest fleet each bound allows, scaling this run's cost linearly with servers.

    CPU: the function has one vCPU, so the sync's CPU seconds must fit the run's budget.
    Wall: the run's wall time, as measured (against the fakes) must fit the budget too.
    Memory: the peak RSS above the process's RSS before its first run, per server, must fit
    the function's memory above that baseline. Sorted tightest first.
    """

    def bound(name: str, used: float, room: float, basis: str) -> FitBound:
        """`used` of a resource by this fleet; `room` the function has of it."""
        if used <= 0 or servers <= 0:
            return FitBound(name, None, basis)
        return FitBound(name, math.floor(room * servers / used), basis)

    per_1000 = 1000 / max(servers, 1)
    grown = peak_rss_mib - baseline_rss_mib
    bounds = [
        bound(
            "CPU time",
            cpu_seconds,
            budget_seconds,
            f"{cpu_seconds * per_1000:.2f} s per 1,000 servers on one vCPU, "
            f"{budget_seconds:.0f} s budget",
        ),
        bound(
            "wall time",
            wall_seconds,
            budget_seconds,
            f"{wall_seconds * per_1000:.2f} s per 1,000 servers as measured here, "
            f"{budget_seconds:.0f} s budget",
        ),
        bound(
            "memory",
            grown,
            memory_mib - baseline_rss_mib,
            f"{grown * 1024 / max(servers, 1):.1f} KiB per server above "
            f"{baseline_rss_mib:.0f} MiB, {memory_mib:.0f} MB function",
        ),
    ]
    return sorted(bounds, key=lambda b: float("inf") if b.servers is None else b.servers)


def fit_json(bounds: list[FitBound]) -> list[Mapping[str, Any]]:
    return [{"bound": b.name, "servers": b.servers, "basis": b.basis} for b in bounds]
