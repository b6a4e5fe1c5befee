"""The benchmark harness works end to end on a tiny fleet (seconds), and its yardsticks are right.

No timing is asserted: the machine is shared, and the benchmark reports times, it does not
gate on them. What is asserted is structure and counts: the processes it started are gone,
every run synced the fleet, the calls match the fleet's minimum, the steady runs follow the
churn, and capacity units, load, cost and the fit estimate are reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.bench.fleets import FLEETS, all_drs_regions, minimum_calls
from scripts.bench.report import Latencies, dynamodb_minimum, latency_floor

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
    org = FLEETS["org"]()
    minimum = minimum_calls(org)
    floor = latency_floor(minimum, Latencies(drs_ms=100, ec2_ms=50), concurrency=16)
    dss = minimum.describe_source_servers
    assert floor.seconds == (dss * 0.1 + 39 * 0.0 + 30 * 0.05) / 16
    assert "/ 16" in floor.formula

    # STS and DynamoDB round trips count too: cold, 1,200 batches + 1,120 status writes.
    cold = dynamodb_minimum(minimum, len(org.scopes))
    assert cold == 1200 + 1120
    latencies = Latencies(drs_ms=100, ec2_ms=50, sts_ms=20, dynamodb_ms=5)
    floor = latency_floor(minimum, latencies, 16, cold)
    assert floor.seconds == pytest.approx((dss * 0.1 + 39 * 0.02 + 30 * 0.05 + cold * 0.005) / 16)
    # Steady: only what changed is written: the 30 replaced servers (new to the inventory) in
    # 2 batches, the 600 state changes one conditional PutItem each; 30 soft-deletes.
    steady = dynamodb_minimum(minimum, len(org.scopes), {"stateChanged": 600, "replaced": 30})
    assert steady == 2 + 600 + 1120 + 30


def test_harness_runs_a_tiny_fleet_cold_then_steady(tmp_path: Path) -> None:
    # GIVEN the tiny fleet: hub + 1 target x 2 regions, one scope uninitialised, one empty
    spec = FLEETS["tiny"]()
    minimum = minimum_calls(spec)

    # WHEN the harness runs it as `make bench` would (low latency: this is about structure),
    # three runs with 5% of servers changing state and 5% replaced between runs
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
            "--churn",
            "0.05",
            "--replace",
            "0.05",
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
    assert "cost per month per 1,000 servers" in completed.stdout
    result = json.loads((tmp_path / "tiny.json").read_text())
    assert result["fleet"]["servers"] == spec.servers == 60
    assert result["minimumCalls"]["describeSourceServers"] == minimum.describe_source_servers
    assert result["concurrency"] == 4 and result["failure"] is None
    assert result["latencyMs"] == {"drs": 5, "ec2": 5, "sts": 20, "dynamodb": 5}

    # AND every process it started is gone
    for name, pid in result["processes"].items():
        assert not _alive(pid, name), f"{name} (pid {pid}) still runs"

    # AND every run synced the whole fleet with the minimum calls, metered and load-sampled
    first, *steady = result["runs"]
    assert len(steady) == 2
    inventory = next(t for t in result["tables"] if "source-server-inventory" in t)
    for run in result["runs"]:
        assert run["status"] == "SUCCEEDED", run.get("error")
        assert run["simulatorCalls"]["DescribeSourceServers"] == minimum.describe_source_servers
        assert run["botocoreCalls"]["sts.AssumeRole"] == minimum.assume_role
        assert run["botocoreCalls"]["ec2.DescribeInstances"] <= minimum.describe_instances
        writes = run["inventoryBatchWrites"]
        # servers new to the inventory in batches, the ones it held a conditional PutItem each
        assert writes["items"] == run["serversNew"]
        assert writes["items"] + writes["conditionalPuts"] == run["serversWritten"]
        assert run["scopesByStatus"] == {"ACTIVE": 3, "NOT_INITIALIZED": 1}
        assert run["cpuSeconds"] > 0 and run["peakRssMiB"] > 0
        assert set(run["fakesCpuSeconds"]) == {"moto", "simulator", "total"}
        assert run["liveItems"] == 60
        assert run["capacity"]["enabled"] and run["capacity"]["writeUnits"] > 0
        assert run["capacity"]["tables"][inventory]["unmeteredRequests"] == {}
        assert {"othersCores", "contended", "loadAverageMax"} <= set(run["load"])
        assert {t["verdict"] for t in run["targets"]} <= {"PASS", "MISS"}

    # AND run 1 wrote every server; each steady run followed its churn (3 replaced of 60)
    assert first["serversNew"] == first["serversWritten"] == 60 and first["churn"] is None
    for run in steady:
        assert run["churn"]["replaced"] == 3 and run["churn"]["stateChanged"] == 3
        assert run["serversNew"] == run["serversSoftDeleted"] == 3
        verdicts = {t["name"]: t["verdict"] for t in run["targets"]}
        assert verdicts["steady run: the inventory follows the churn"] == "PASS"
        assert verdicts["steady run: same DRS, STS and EC2 calls as run 1"] == "PASS"
        assert "steady DynamoDB write units <= 20% of run 1's" in verdicts
    assert result["inventoryAfter"] == {"items": 66, "live": 60}

    # AND the steady spread, the cost rows and the fit estimate are there
    assert set(result["steadySpread"]["writeUnits"]) == {"min", "max"}
    labels = [row["label"] for row in result["costPerMonthPer1000Servers"]]
    assert labels[0] == "first run (run 1)" and labels[1].startswith("steady")
    assert set(result["largestFleet"]) == {"first run", "steady (worst run)"}
