"""`python -m scripts.bench.run --fleet small|org`: measure the inventory sync on a generated fleet.

Starts moto and the DRS simulator as server processes on loopback, seeds the fleet, runs
`sync_source_server_inventory` in a child process (`--runs` times; the second with nothing
changed), and prints one table per fleet with the targets marked PASS/MISS. The figures are
also written to `<out-dir>/<fleet>.json`; process logs go to `<out-dir>/<fleet>-logs/`.

Each process's CPU is measured apart: the sync's from its own getrusage, the fakes' from
/proc/<pid>/stat before and after each run, so the fakes' cost is never billed to the sync.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from scripts.bench import report
from scripts.bench.fleets import FLEETS, FleetSpec, MinimumCalls, minimum_calls
from scripts.bench.processes import (
    REPO_ROOT,
    ChildProcess,
    clean_env,
    cpu_seconds,
    drs_simulator,
    moto_server,
)
from scripts.bench.seed import count_live_inventory, inventory_item_count, patched_environ, seed
from scripts.local.drs_simulator import SimulatorControl

DEFAULT_OUT_DIR = REPO_ROOT / "build" / "bench"
CHILD_PREFIX = "BENCH "
SYNC_TIMEOUT_SECONDS = 3600.0  # a hung run must end the benchmark, not hang `make bench`


class _Progress:
    """Progress lines with the seconds since the benchmark started (where does setup go?)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    def __call__(self, line: str) -> None:
        print(f"[{time.perf_counter() - self._started:6.1f} s] {line}", flush=True)


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _fleet_json(spec: FleetSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "description": spec.description,
        "accounts": len(spec.accounts),
        "regions": len(spec.regions),
        "scopes": len(spec.scopes),
        "activeScopes": len(spec.active_scopes),
        "uninitializedScopes": sum(not scope.initialized for scope in spec.scopes),
        "servers": spec.servers,
        "ec2Instances": spec.ec2_instances,
        "drsRegionsEnv": spec.drs_regions_env,
    }


def _minimum_json(minimum: MinimumCalls) -> dict[str, int]:
    return {
        "describeSourceServers": minimum.describe_source_servers,
        "assumeRole": minimum.assume_role,
        "describeInstances": minimum.describe_instances,
        "inventoryBatchesPerScope": minimum.inventory_batches_per_scope,
        "inventoryBatchesPacked": minimum.inventory_batches_packed,
    }


def _run_record(
    answer: dict[str, Any],
    spec: FleetSpec,
    inventory_table: str,
    fakes: dict[str, float],
    simulator_counts: dict[tuple[str, str, str], int],
    inventory_items: int,
) -> dict[str, Any]:
    """The figures of one run: the child's answer plus what the parent measured around it."""
    summary = answer.get("summary") or {}
    counts = summary.get("counts") or {}
    by_operation: dict[str, int] = {}
    for (operation, _account, _region), count in simulator_counts.items():
        by_operation[operation] = by_operation.get(operation, 0) + count
    batches = answer["batchWrites"].get(inventory_table, {"calls": 0, "items": 0, "sizes": {}})
    servers = spec.servers
    return {
        "run": answer["run"],
        "status": summary.get("status", "ERROR"),
        "error": answer.get("error"),
        "wallSeconds": answer["wallSeconds"],
        "cpuSeconds": answer["cpuSeconds"],
        "cpuSecondsPer1000Servers": answer["cpuSeconds"] * 1000 / servers if servers else None,
        "peakRssMiB": answer["peakRssMiB"],
        "fakesCpuSeconds": {**fakes, "total": fakes["moto"] + fakes["simulator"]},
        "simulatorCalls": {"DescribeSourceServers": 0, **by_operation},
        "syncApiCalls": counts.get("apiCalls", {}),
        "botocoreCalls": answer["calls"],
        "batchWrites": answer["batchWrites"],
        "inventoryBatchWrites": {
            "calls": batches["calls"],
            "items": batches["items"],
            "fullBatches": int(batches["sizes"].get(str(25), 0)),
            "sizes": batches["sizes"],
        },
        "serversSeen": counts.get("serversSeen", 0),
        "serversWritten": counts.get("serversWritten", 0),
        "serversNew": counts.get("serversNew", 0),
        "serversSoftDeleted": counts.get("serversSoftDeleted", 0),
        "scopesByStatus": counts.get("scopesByStatus", {}),
        "inventoryItems": inventory_items,
        "loadAverageAfter": _load(),
    }


def _harness_aws_env(moto_url: str, drs_url: str) -> dict[str, str | None]:
    """What this process's own boto3 calls (seeding, counting) run under: the fakes' endpoints
    and fake credentials, never a profile or a real session token (None: unset)."""
    env: dict[str, str | None] = {
        key: value for key, value in clean_env().items() if key.startswith("AWS_")
    }
    env.update({"AWS_PROFILE": None, "AWS_SESSION_TOKEN": None, "AWS_SECURITY_TOKEN": None})
    env.update({"AWS_ENDPOINT_URL": moto_url, "AWS_ENDPOINT_URL_DRS": drs_url})
    return env


def _sync_env(
    spec: FleetSpec,
    moto_url: str,
    drs_url: str,
    table_env: dict[str, str],
    concurrency: int,
) -> dict[str, str]:
    """The sync child's environment: the function's variables, pointed at the fakes."""
    lambda_dir = REPO_ROOT / "lambda"
    return clean_env(
        {
            # Each handler folder is its own sys.path root in Lambda; the bench mirrors that.
            "PYTHONPATH": os.pathsep.join(
                [str(lambda_dir), str(lambda_dir / "data-management-handler"), str(REPO_ROOT)]
            ),
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ENDPOINT_URL_DRS": drs_url,
            "DRS_REGIONS": spec.drs_regions_env,
            "SYNC_MAX_CONCURRENCY": str(concurrency),
            **table_env,
        }
    )


@dataclass(frozen=True)
class _Fakes:
    """The fake services' processes and the simulator's control client."""

    moto_pid: int
    simulator_pid: int
    simulator: SimulatorControl

    def cpu(self) -> dict[str, float]:
        return {"moto": cpu_seconds(self.moto_pid), "simulator": cpu_seconds(self.simulator_pid)}


def _measure_run(
    child: ChildProcess,
    fakes: _Fakes,
    spec: FleetSpec,
    inventory_table: str,
    aws_env: dict[str, str | None],
    number: int,
) -> dict[str, Any]:
    """Run the sync once in `child`; its figures plus the fakes' CPU and counters around it.

    Raises RuntimeError when the sync raised without a summary, or when the child's call
    counter saw nothing (its figures would be zeros, not measurements).
    """
    fakes.simulator.reset_counts()
    before = fakes.cpu()
    child.send("run")
    answer = json.loads(child.read_line(SYNC_TIMEOUT_SECONDS, prefix=CHILD_PREFIX))
    after = fakes.cpu()
    if answer.get("error") and not answer.get("summary"):
        raise RuntimeError(f"sync run {number} raised:\n{answer['error']}")
    if not answer.get("callCounterAttached"):
        raise RuntimeError(
            "the call counter saw no AWS call: the sync no longer creates its session via "
            "shared.aws.new_session; update scripts/bench/sync_child.py"
        )
    # Read after the fakes' CPU: these requests are the harness's cost, not the sync's.
    with patched_environ(aws_env):
        items = inventory_item_count(inventory_table)
    return _run_record(
        answer,
        spec,
        inventory_table,
        {name: after[name] - before[name] for name in before},
        fakes.simulator.request_counts(),
        items,
    )


def run_fleet(
    spec: FleetSpec,
    *,
    runs: int,
    latency_ms: float,
    ec2_latency_ms: float,
    concurrency: int,
    out_dir: Path,
    profile: str | None,
) -> dict[str, Any]:
    """Seed `spec` into fresh fakes, run the sync `runs` times, return every figure.

    Raises BenchProcessError when a process fails to start or answer, RuntimeError when the
    sync itself raised (its traceback is in the message).
    """
    log_dir = out_dir / f"{spec.name}-logs"
    minimum = minimum_calls(spec)
    latencies = report.Latencies(drs_ms=latency_ms, ec2_ms=ec2_latency_ms)
    floor = report.latency_floor(minimum, latencies, concurrency)
    load_before = _load()
    servers_env = clean_env()
    progress = _Progress()
    progress(f"fleet {spec.name}: {spec.description}")
    with (
        moto_server(log_dir, servers_env, {"ec2": ec2_latency_ms}) as (moto, moto_url),
        drs_simulator(log_dir, servers_env, moto_url) as (simulator_process, drs_url),
    ):
        simulator = SimulatorControl(drs_url, timeout=600)
        simulator.wait_until_healthy()
        progress(
            f"moto at {moto_url} (pid {moto.pid}), DRS simulator at {drs_url} "
            f"(pid {simulator_process.pid})"
        )
        aws_env = _harness_aws_env(moto_url, drs_url)
        seeded = seed(spec, aws_env, simulator, progress=progress)
        simulator.set_latency(latency_ms)

        child_args = {
            "wall": ["--profile", str(out_dir / f"{spec.name}-profile")],
            "cpu": ["--cpu-profile", str(out_dir / f"{spec.name}-cpu-profile")],
        }.get(profile or "", [])
        records: list[dict[str, Any]] = []
        with ChildProcess(
            "scripts.bench.sync_child",
            child_args,
            env=_sync_env(spec, moto_url, drs_url, seeded.table_env, concurrency),
            log_path=log_dir / "sync.log",
            stdin=True,
        ) as child:
            pids = {process.name: process.pid for process in (moto, simulator_process, child)}
            ready = json.loads(child.read_line(120, prefix=CHILD_PREFIX))
            progress(f"sync child ready (pid {child.pid})")
            fakes = _Fakes(moto.pid, simulator_process.pid, simulator)
            for number in range(1, runs + 1):
                record = _measure_run(child, fakes, spec, seeded.inventory_table, aws_env, number)
                records.append(record)
                progress(
                    f"run {number}: {record['status']} in {record['wallSeconds']:.2f} s, "
                    f"sync CPU {record['cpuSeconds']:.2f} s"
                )
            with patched_environ(aws_env):
                items_after, live_after = count_live_inventory(seeded.inventory_table)
            progress(f"inventory after the last run: {items_after:,} items, {live_after:,} live")
            child.send("exit")
            finished = json.loads(child.read_line(600, prefix=CHILD_PREFIX))
            child.wait(timeout=30)
        progress("stopping the fakes")

    progress("done")

    for index, record in enumerate(records):
        record["targets"] = report.targets_json(
            report.evaluate(record, minimum, floor, spec, records[0] if index else None)
        )
    return {
        "fleet": _fleet_json(spec),
        "latencyMs": {"drs": latency_ms, "ec2": ec2_latency_ms, "sts": 0.0, "dynamodb": 0.0},
        "concurrency": concurrency,
        "minimumCalls": _minimum_json(minimum),
        "floorSeconds": floor.seconds,
        "floorFormula": floor.formula,
        "seedSeconds": seeded.steps,
        "syncStartupCpuSeconds": ready.get("startupCpuSeconds"),
        "profileFiles": finished.get("profileFiles", []),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadBefore": load_before,
            "loadAfter": _load(),
        },
        "processes": pids,
        "runs": records,
        "inventoryAfter": {"items": items_after, "live": live_after},
    }


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through every `with`, so each started process is stopped by pid.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure the inventory sync against moto and the DRS simulator."
    )
    parser.add_argument("--fleet", choices=sorted(FLEETS), default="small")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="DRS latency per call")
    parser.add_argument("--ec2-latency-ms", type=float, default=50.0, help="EC2 latency per call")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="SYNC_MAX_CONCURRENCY (the sync's default)"
    )
    parser.add_argument("--runs", type=int, default=2, help="sync runs (2nd: nothing changed)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    profiles = parser.add_mutually_exclusive_group()
    profiles.add_argument(
        "--profile",
        action="store_const",
        const="wall",
        dest="profile",
        help="profile the sync with pyinstrument (wall clock, every thread): "
        "<out-dir>/<fleet>-profile.txt/.html/.pyisession",
    )
    profiles.add_argument(
        "--cpu-profile",
        action="store_const",
        const="cpu",
        dest="profile",
        help="profile the sync's CPU with cProfile on per-thread CPU clocks: "
        "<out-dir>/<fleet>-cpu-profile.txt/.pstats",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when any target is missed")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.concurrency < 1:
        parser.error("--runs and --concurrency must be at least 1")

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    spec = FLEETS[args.fleet]()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = run_fleet(
        spec,
        runs=args.runs,
        latency_ms=args.latency_ms,
        ec2_latency_ms=args.ec2_latency_ms,
        concurrency=args.concurrency,
        out_dir=args.out_dir,
        profile=args.profile,
    )
    result["benchSeconds"] = time.perf_counter() - started
    # A profiled sync runs slower: its timings are not the benchmark's.
    result["profiled"] = args.profile
    path = args.out_dir / f"{spec.name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print()
    print(report.render(result))
    print(f"\n   total {result['benchSeconds']:.1f} s including setup; figures: {path}")
    for profile_file in result["profileFiles"]:
        print(f"   profile: {profile_file}")
    missed = [t for run in result["runs"] for t in run["targets"] if t["verdict"] == "MISS"]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
