"""`python -m scripts.bench.run --fleet small|org`: measure the inventory sync on a generated fleet.

Starts moto and the DRS simulator as server processes on loopback, seeds the fleet, runs
`sync_source_server_inventory` in a child process `--runs` times, and prints one table per
fleet with the targets marked PASS/MISS. Run 1 syncs an empty inventory (cold); before each
later run the fleet churns by one schedule interval (`--churn`, `--replace`), so runs 2..N
are a steady state, not a frozen one. The figures are also written to
`<out-dir>/<fleet>.json`; process logs go to `<out-dir>/<fleet>-logs/`.

Each process's CPU is measured apart: the sync's from its own getrusage, the fakes' from
/proc/<pid>/stat before and after each run, so the fakes' cost is never billed to the sync.
moto meters the DynamoDB capacity units of every request (index writes included) and how
long requests waited for it; the machine's load is sampled during each run, and a run that
others' work competed with is marked contended (see `scripts.bench.load`).

A run whose sync fails is reported with its error and the bench goes on; a process that dies
or stops answering ends the bench. Either way the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from scripts.bench import cost, report
from scripts.bench.fleets import FLEETS, FleetSpec, MinimumCalls, minimum_calls
from scripts.bench.load import CONTENDED_CORES, LoadSampler, own_cpu_seconds
from scripts.bench.processes import (
    REPO_ROOT,
    BenchProcessError,
    ChildProcess,
    clean_env,
    cpu_seconds,
    drs_simulator,
    moto_server,
)
from scripts.bench.seed import count_live_inventory, patched_environ, seed
from scripts.local.drs_simulator import SimulatorControl
from scripts.local.moto_server import MotoControl

DEFAULT_OUT_DIR = REPO_ROOT / "build" / "bench"
CHILD_PREFIX = "BENCH "
SYNC_TIMEOUT_SECONDS = 3600.0  # a hung run must end the benchmark, not hang `make bench`
# DRS 100 ms and EC2 50 ms per call as before; STS 20 ms and DynamoDB 5 ms: loopback round
# trips of the order AWS answers in from a Lambda in the same region.
DEFAULT_LATENCIES = report.Latencies(drs_ms=100, ec2_ms=50, sts_ms=20, dynamodb_ms=5)
CHURN_SEED = 15  # churn is deterministic: the same fleet changes the same way everywhere


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


def _moto_json(stats: dict[str, dict[str, float | int]]) -> dict[str, Any]:
    """moto's queue over a run: the longest wait for its lock and the longest request."""
    waits = {op: float(s["waitMaxSeconds"]) for op, s in stats.items()}
    held = {op: float(s["heldMaxSeconds"]) for op, s in stats.items()}
    return {
        "waitMaxSeconds": max(waits.values(), default=0.0),
        "heldMaxSeconds": max(held.values(), default=0.0),
        "longestRequest": max(held, key=held.__getitem__) if held else None,
        "operations": stats,
    }


def _capacity_json(capacity: dict[str, Any]) -> dict[str, Any]:
    tables = capacity.get("tables") or {}
    return {
        "enabled": bool(capacity.get("enabled")),
        "writeUnits": sum(t["writeUnits"] for t in tables.values()),
        "readUnits": sum(t["readUnits"] for t in tables.values()),
        "tables": tables,
    }


def _run_record(
    answer: dict[str, Any],
    spec: FleetSpec,
    inventory_table: str,
    measured: dict[str, Any],
) -> dict[str, Any]:
    """The figures of one run: the child's answer plus what the parent measured around it."""
    summary = answer.get("summary") or {}
    counts = summary.get("counts") or {}
    by_operation: dict[str, int] = {}
    for (operation, _account, _region), count in measured["simulatorCounts"].items():
        by_operation[operation] = by_operation.get(operation, 0) + count
    batches = answer["batchWrites"].get(
        inventory_table, {"calls": 0, "items": 0, "sizes": {}, "puts": 0}
    )
    servers = spec.servers
    fakes = measured["fakes"]
    return {
        "run": answer["run"],
        "status": summary.get("status", "ERROR"),
        "error": answer.get("error"),
        "churn": measured["churn"],
        "wallSeconds": answer["wallSeconds"],
        "cpuSeconds": answer["cpuSeconds"],
        "cpuSecondsPer1000Servers": answer["cpuSeconds"] * 1000 / servers if servers else None,
        "peakRssMiB": answer["peakRssMiB"],
        "fakesCpuSeconds": {**fakes, "total": fakes["moto"] + fakes["simulator"]},
        "moto": {**_moto_json(measured["motoStats"]), "gc": measured["motoGc"]},
        "capacity": _capacity_json(measured["capacity"]),
        "load": measured["load"],
        "simulatorCalls": {"DescribeSourceServers": 0, **by_operation},
        "syncApiCalls": counts.get("apiCalls", {}),
        "botocoreCalls": answer["calls"],
        "batchWrites": answer["batchWrites"],
        "inventoryBatchWrites": {
            "calls": batches["calls"],
            "items": batches["items"],
            "fullBatches": int(batches["sizes"].get(str(25), 0)),
            "sizes": batches["sizes"],
            # Servers the inventory held: one conditional PutItem each (never a batch)
            "conditionalPuts": batches.get("puts", 0),
        },
        "serversSeen": counts.get("serversSeen", 0),
        "serversWritten": counts.get("serversWritten", 0),
        "serversKeptNewer": counts.get("serversKeptNewer", 0),
        "serversNew": counts.get("serversNew", 0),
        "serversSoftDeleted": counts.get("serversSoftDeleted", 0),
        "scopesByStatus": counts.get("scopesByStatus", {}),
        "failures": summary.get("failures", []),
        "inventoryItems": measured["items"],
        "liveItems": measured["live"],
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
    """The fake services' processes and their control clients."""

    moto_pid: int
    simulator_pid: int
    simulator: SimulatorControl
    moto: MotoControl

    def cpu(self) -> dict[str, float]:
        return {"moto": cpu_seconds(self.moto_pid), "simulator": cpu_seconds(self.simulator_pid)}

    def prepare(self) -> dict[str, object]:
        """Between runs: a full garbage collection in moto (it runs none on its own, see
        scripts.local.moto_server), then every counter reset. Returns what the collection
        took; it happens before the run's clocks start."""
        collected = self.moto.collect_garbage()
        self.simulator.reset_counts()
        self.moto.reset_capacity()
        self.moto.reset_stats()
        return collected


@dataclass(frozen=True)
class BenchOptions:
    """What `main` was asked for (see its --help)."""

    runs: int = 3
    latencies: report.Latencies = DEFAULT_LATENCIES
    concurrency: int = 16
    churn: float = 0.02
    replace: float = 0.001
    fast_moto: bool = True
    contended_cores: float = CONTENDED_CORES
    out_dir: Path = DEFAULT_OUT_DIR
    profile: str | None = None


def _measure_run(
    child: ChildProcess,
    fakes: _Fakes,
    spec: FleetSpec,
    inventory_table: str,
    aws_env: dict[str, str | None],
    number: int,
    churn: dict[str, Any] | None,
    contended_cores: float,
) -> dict[str, Any]:
    """Run the sync once in `child`; its figures plus the fakes' CPU, queue, capacity units
    and the machine's load around it. A sync that raised is a run with status ERROR.

    Raises BenchProcessError when a process dies or the child does not answer in time, and
    RuntimeError when the child's call counter saw nothing (its figures would be zeros).
    """
    collected = fakes.prepare()
    pids = [child.pid, fakes.moto_pid, fakes.simulator_pid]
    sampler = LoadSampler(lambda: own_cpu_seconds(cpu_seconds, pids), contended_cores).start()
    before = fakes.cpu()
    try:
        child.send("run")
        line = child.read_line(SYNC_TIMEOUT_SECONDS, prefix=CHILD_PREFIX)
    finally:
        load = sampler.stop()
    after = fakes.cpu()
    answer = json.loads(line)
    if not answer.get("callCounterAttached") and not answer.get("error"):
        raise RuntimeError(
            "the call counter saw no AWS call: the sync no longer creates its session via "
            "shared.aws.new_session; update scripts/bench/sync_child.py"
        )
    if answer.get("error") and not answer.get("summary"):
        answer["summary"] = {"status": "ERROR"}
    # Read after the fakes' CPU: these requests are the harness's cost, not the sync's.
    capacity, moto_stats = fakes.moto.capacity(), fakes.moto.stats()
    gc_pauses = fakes.moto.gc_pauses()
    simulator_counts = fakes.simulator.request_counts()
    with patched_environ(aws_env):
        items, live = count_live_inventory(inventory_table)
    return _run_record(
        answer,
        spec,
        inventory_table,
        {
            "fakes": {name: after[name] - before[name] for name in before},
            "simulatorCounts": simulator_counts,
            "capacity": capacity,
            "motoStats": moto_stats,
            "motoGc": {**gc_pauses, "fullCollectionBeforeRun": collected},
            "load": load.to_dict(),
            "churn": churn,
            "items": items,
            "live": live,
        },
    )


def _run_budget_seconds() -> float:
    """The sync's own deadline in a scheduled invocation (SyncSettings: the schedule interval
    minus two deadline reserves), the time budget of the fit estimate."""
    from inventory_sync.models import SyncSettings  # lambda code: on sys.path after seeding

    return float(SyncSettings().max_run_seconds)


def run_fleet(spec: FleetSpec, options: BenchOptions) -> dict[str, Any]:
    """Seed `spec` into fresh fakes, run the sync `options.runs` times, return every figure.

    A failed sync is a run with its status and error; a process that fails ends the runs,
    and the result's `failure` says why. Raises BenchProcessError when the fakes or the child
    do not start.
    """
    out_dir = options.out_dir
    log_dir = out_dir / f"{spec.name}-logs"
    minimum = minimum_calls(spec)
    latencies = options.latencies
    moto_latency = {
        "ec2": latencies.ec2_ms,
        "sts": latencies.sts_ms,
        "dynamodb": latencies.dynamodb_ms,
    }
    load_before = _load()
    servers_env = clean_env()
    progress = _Progress()
    progress(f"fleet {spec.name}: {spec.description}")
    failure: str | None = None
    records: list[dict[str, Any]] = []
    after: dict[str, int] | None = None
    finished: dict[str, Any] = {}
    with (
        moto_server(
            log_dir,
            servers_env,
            moto_latency,
            fast_dynamodb=options.fast_moto,
            capacity=True,
            manual_gc=True,
        ) as (moto, moto_url),
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
        simulator.set_latency(latencies.drs_ms)
        budget = _run_budget_seconds()

        child_args = {
            "wall": ["--profile", str(out_dir / f"{spec.name}-profile")],
            "cpu": ["--cpu-profile", str(out_dir / f"{spec.name}-cpu-profile")],
        }.get(options.profile or "", [])
        with ChildProcess(
            "scripts.bench.sync_child",
            child_args,
            env=_sync_env(spec, moto_url, drs_url, seeded.table_env, options.concurrency),
            log_path=log_dir / "sync.log",
            stdin=True,
        ) as child:
            pids = {process.name: process.pid for process in (moto, simulator_process, child)}
            ready = json.loads(child.read_line(120, prefix=CHILD_PREFIX))
            progress(f"sync child ready (pid {child.pid})")
            fakes = _Fakes(moto.pid, simulator_process.pid, simulator, MotoControl(moto_url, 600))
            for number in range(1, options.runs + 1):
                churn = None
                if number > 1 and (options.churn or options.replace):
                    churn = simulator.churn(
                        state_fraction=options.churn,
                        replace_fraction=options.replace,
                        seed=CHURN_SEED,
                    )
                    progress(
                        f"churn: {churn['stateChanged']:,} state changes, "
                        f"{churn['replaced']:,} servers replaced, "
                        f"{churn['volatileMoved']:,} with volatile fields moved"
                    )
                try:
                    record = _measure_run(
                        child,
                        fakes,
                        spec,
                        seeded.inventory_table,
                        aws_env,
                        number,
                        churn,
                        options.contended_cores,
                    )
                except BenchProcessError as exc:
                    failure = f"run {number}: {exc}"
                    progress(f"run {number} FAILED: {exc}")
                    break
                dynamodb_calls = report.dynamodb_minimum(minimum, len(spec.scopes), churn)
                floor = report.latency_floor(
                    minimum, latencies, options.concurrency, dynamodb_calls
                )
                record.update(floorSeconds=floor.seconds, floorFormula=floor.formula)
                records.append(record)
                contended = " (contended)" if record["load"]["contended"] else ""
                progress(
                    f"run {number}: {record['status']} in {record['wallSeconds']:.2f} s, "
                    f"sync CPU {record['cpuSeconds']:.2f} s, "
                    f"{record['capacity']['writeUnits']:,.0f} WCU, "
                    f"others' load {record['load']['othersCores']:.2f} cores{contended}"
                )
                if record.get("error"):
                    progress(f"run {number} raised: {record['error'].strip().splitlines()[-1]}")
            if failure is None:
                with patched_environ(aws_env):
                    items_after, live_after = count_live_inventory(seeded.inventory_table)
                after = {"items": items_after, "live": live_after}
                progress(
                    f"inventory after the last run: {items_after:,} items, {live_after:,} live"
                )
                child.send("exit")
                finished = json.loads(child.read_line(600, prefix=CHILD_PREFIX))
                child.wait(timeout=30)
        progress("stopping the fakes")

    progress("done")

    for index, record in enumerate(records):
        record["targets"] = report.targets_json(
            report.evaluate(record, minimum, spec, records[0] if index else None)
        )
    tables = sorted({table for r in records for table in r["capacity"]["tables"]})
    return {
        "fleet": _fleet_json(spec),
        "latencyMs": {
            "drs": latencies.drs_ms,
            "ec2": latencies.ec2_ms,
            "sts": latencies.sts_ms,
            "dynamodb": latencies.dynamodb_ms,
        },
        "concurrency": options.concurrency,
        "churn": {"stateFraction": options.churn, "replaceFraction": options.replace},
        "fastMoto": options.fast_moto,
        "contendedCores": options.contended_cores,
        "minimumCalls": _minimum_json(minimum),
        "floorSeconds": records[0]["floorSeconds"] if records else None,
        "seedSeconds": seeded.steps,
        "syncStartupCpuSeconds": ready.get("startupCpuSeconds"),
        "syncStartupRssMiB": ready.get("rssMiB"),
        "profileFiles": finished.get("profileFiles", []),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadBefore": load_before,
            "loadAfter": _load(),
        },
        "processes": pids,
        "tables": tables,
        "runs": records,
        "steadySpread": report.spread(records),
        "prices": cost.prices_json(),
        "costPerMonthPer1000Servers": [c.to_dict() for c in report.costs(records, spec.servers)],
        "runBudgetSeconds": budget,
        "largestFleet": {
            label: cost.fit_json(bounds)
            for label, bounds in report.fits(
                records, spec.servers, float(ready.get("rssMiB") or 0.0), budget
            ).items()
        },
        "inventoryAfter": after,
        "failure": failure,
    }


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through every `with`, so each started process is stopped by pid.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure the inventory sync against moto and the DRS simulator."
    )
    defaults = BenchOptions()
    parser.add_argument("--fleet", choices=sorted(FLEETS), default="small")
    latency = defaults.latencies
    parser.add_argument("--latency-ms", type=float, default=latency.drs_ms, help="DRS, per call")
    parser.add_argument(
        "--ec2-latency-ms", type=float, default=latency.ec2_ms, help="EC2, per call"
    )
    parser.add_argument(
        "--sts-latency-ms", type=float, default=latency.sts_ms, help="STS, per call"
    )
    parser.add_argument(
        "--dynamodb-latency-ms", type=float, default=latency.dynamodb_ms, help="DynamoDB, per call"
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="SYNC_MAX_CONCURRENCY (the sync's default)"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=defaults.runs,
        help="sync runs: run 1 cold (empty inventory), runs 2..N steady state (default 3)",
    )
    parser.add_argument(
        "--churn",
        type=float,
        default=defaults.churn,
        help="share of servers changing replication state before each steady run "
        "(default 0.02; with --replace 0: a frozen fleet)",
    )
    parser.add_argument(
        "--replace",
        type=float,
        default=defaults.replace,
        help="share of servers replaced (one removed, one added, same scope) before each "
        "steady run (default 0.001)",
    )
    parser.add_argument(
        "--contended-cores",
        type=float,
        default=CONTENDED_CORES,
        help="mark a run contended when other work kept more cores busy on average "
        f"(default {CONTENDED_CORES}; see scripts/bench/load.py)",
    )
    parser.add_argument(
        "--plain-moto",
        action="store_true",
        help="run moto's own DynamoDB code instead of scripts.local.moto_speedups "
        "(slower; Query/Scan read units are then not metered)",
    )
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
    if not (0.0 <= args.churn <= 1.0 and 0.0 <= args.replace <= 1.0):
        parser.error("--churn and --replace are shares within [0, 1]")
    latencies = report.Latencies(
        drs_ms=args.latency_ms,
        ec2_ms=args.ec2_latency_ms,
        sts_ms=args.sts_latency_ms,
        dynamodb_ms=args.dynamodb_latency_ms,
    )
    if min(asdict(latencies).values()) < 0:
        parser.error("latencies must be >= 0 ms")
    options = BenchOptions(
        runs=args.runs,
        latencies=latencies,
        concurrency=args.concurrency,
        churn=args.churn,
        replace=args.replace,
        fast_moto=not args.plain_moto,
        contended_cores=args.contended_cores,
        out_dir=args.out_dir,
        profile=args.profile,
    )

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    spec = FLEETS[args.fleet]()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = run_fleet(spec, options)
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
    failed = [run for run in result["runs"] if run["status"] != "SUCCEEDED"]
    if result["failure"] or failed:
        what = [f"run {run['run']} {run['status']}" for run in failed]
        if result["failure"]:
            what.append(f"stopped at {result['failure']}")
        print(
            f"\n   BENCH FAILED ({spec.name}): {'; '.join(what)}; logs in "
            f"{args.out_dir / (spec.name + '-logs')}",
            file=sys.stderr,
        )
        return 1
    missed = [t for run in result["runs"] for t in run["targets"] if t["verdict"] == "MISS"]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
