"""The bench's cost model and fit estimate: the arithmetic, on round figures."""

from __future__ import annotations

import pytest

from scripts.bench import cost


def test_a_month_of_runs_per_1000_servers() -> None:
    # 2,000 servers: per 1,000 servers a month is 2,918.4 runs x 0.5 = 1,459.2 runs' worth.
    month = cost.monthly_cost(
        "x", write_units=1_000_000, read_units=2_000_000, wall_seconds=100, servers=2000
    )
    assert pytest.approx(30.4 * 96) == cost.RUNS_PER_MONTH
    assert month.dynamodb_writes == pytest.approx(0.625 * 1459.2)  # 1 M WRU per run
    assert month.dynamodb_reads == pytest.approx(0.25 * 1459.2)  # 2 M RRU at $0.125/M
    # 100 s at 1,769 MB = 172.75 GB-s per run, at $0.0000166667 per GB-s
    assert month.lambda_duration == pytest.approx(100 * 1769 / 1024 * 0.0000166667 * 1459.2)
    assert month.lambda_requests == pytest.approx(0.20 / 1e6 * 1459.2)
    assert month.schedule == 0.0
    assert month.total == pytest.approx(
        month.dynamodb_writes + month.dynamodb_reads + month.lambda_duration + month.lambda_requests
    )


def test_largest_fleet_names_the_bound_that_bites_first() -> None:
    bounds = cost.largest_fleet(
        servers=30_000,
        cpu_seconds=45.0,
        wall_seconds=100.0,
        peak_rss_mib=500.0,
        baseline_rss_mib=100.0,
        budget_seconds=840.0,
    )
    by_name = {b.name: b.servers for b in bounds}
    assert by_name["CPU time"] == 560_000  # 840 s / (45 s / 30,000)
    assert by_name["wall time"] == 252_000  # 840 s / (100 s / 30,000)
    assert by_name["memory"] == 125_175  # (1,769 - 100) MiB / (400 MiB / 30,000)
    assert bounds[0].name == "memory"
