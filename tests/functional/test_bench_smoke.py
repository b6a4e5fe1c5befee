"""The benchmark harness works end to end on a tiny fleet (seconds), and its yardsticks are right.

No timing is asserted: the machine is shared, and the benchmark reports times, it does not
gate on them. What is asserted is structure and counts: the processes it started are gone,
every run synced the fleet, the calls match the fleet's minimum, the second run adds nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scripts.bench.fleets import FLEETS, all_drs_regions, minimum_calls
from scripts.bench.report import Latencies, latency_floor

REPO_ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int, module: str) -> bool:
    """True if `pid` still runs `module` (a reused pid running something else does not count)."""
    try:
        return module in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def test_minimum_calls_follow_the_fleet_shape() -> None:
    small = minimum_calls(FLEETS["small"]())
    # 9 scopes; hub/us-east-1 holds 1,050 servers: two pages there, one call everywhere else.
    assert small.describe_source_servers == 10
    assert small.assume_role == 2
    assert small.describe_instances == 7  # 7 initialised scopes with instances, <= 200 each
    assert small.inventory_batches_per_scope == 60  # 1,050/25 = 42 + 18 smaller full batches

    org_fleet = FLEETS["org"]()
    org = minimum_calls(org_fleet)
    # Every region botocore lists for drs (28 today: 1,120 scopes), as the sync covers them.
    scopes = 40 * len(all_drs_regions())
    assert (len(org_fleet.accounts), len(org_fleet.scopes)) == (40, scopes)
    assert org_fleet.servers == 30_000 and org_fleet.ec2_instances == 3_000
    # one call per uninitialised scope + one page of 1,000 per active scope
    assert org.describe_source_servers == (scopes - 30) + 30
    assert org.assume_role == 39
    assert org.describe_instances == 30
    assert org.inventory_batches_per_scope == org.inventory_batches_packed == 1200


def test_latency_floor_is_the_stated_formula() -> None:
    minimum = minimum_calls(FLEETS["org"]())
    floor = latency_floor(minimum, Latencies(drs_ms=100, ec2_ms=50), concurrency=16)
    dss = minimum.describe_source_servers
    assert floor.seconds == (dss * 0.1 + 39 * 0.0 + 30 * 0.05) / 16
    assert "/ 16" in floor.formula


def test_harness_runs_a_tiny_fleet_twice(tmp_path: Path) -> None:
    # GIVEN the tiny fleet: hub + 1 target x 2 regions, one scope uninitialised, one empty
    spec = FLEETS["tiny"]()
    minimum = minimum_calls(spec)

    # WHEN the harness runs it as `make bench` would (low latency: this is about structure)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.bench.run",
            "--fleet",
            "tiny",
            "--latency-ms",
            "5",
            "--ec2-latency-ms",
            "5",
            "--concurrency",
            "4",
            "--out-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    # THEN it printed a table and wrote the figures
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "== fleet tiny" in completed.stdout and "targets:" in completed.stdout
    result = json.loads((tmp_path / "tiny.json").read_text())
    assert result["fleet"]["servers"] == spec.servers == 60
    assert result["minimumCalls"]["describeSourceServers"] == minimum.describe_source_servers
    assert result["concurrency"] == 4

    # AND every process it started is gone
    for name, pid in result["processes"].items():
        assert not _alive(pid, name), f"{name} (pid {pid}) still runs"

    # AND both runs synced the whole fleet with the minimum calls
    first, second = result["runs"]
    for run in (first, second):
        assert run["status"] == "SUCCEEDED", run.get("error")
        assert run["serversWritten"] == 60
        assert run["simulatorCalls"]["DescribeSourceServers"] == minimum.describe_source_servers
        assert run["botocoreCalls"]["sts.AssumeRole"] == minimum.assume_role
        assert run["botocoreCalls"]["ec2.DescribeInstances"] <= minimum.describe_instances
        assert run["inventoryBatchWrites"]["items"] == 60
        assert run["scopesByStatus"] == {"ACTIVE": 3, "NOT_INITIALIZED": 1}
        assert run["cpuSeconds"] > 0 and run["peakRssMiB"] > 0
        assert set(run["fakesCpuSeconds"]) == {"moto", "simulator", "total"}
        assert {t["verdict"] for t in run["targets"]} <= {"PASS", "MISS"}

    # AND the second run, with nothing changed, added nothing
    assert first["serversNew"] == 60
    assert second["serversNew"] == 0 and second["serversSoftDeleted"] == 0
    assert second["inventoryItems"] == first["inventoryItems"] == 60
    assert result["inventoryAfter"] == {"items": 60, "live": 60}
    second_run_targets = {t["name"]: t["verdict"] for t in second["targets"]}
    assert second_run_targets["second run: no new items"] == "PASS"
