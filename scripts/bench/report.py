"""The benchmark's yardsticks: latency floor, targets (PASS/MISS), cost, and the printed table.

Pure functions over the figures the runs collected (see `scripts.bench.run`), so the table and
the JSON file always say the same thing. Run 1 syncs an empty inventory (the cold run); runs
2..N are steady state: before each, the fleet churned by one schedule interval (see
`scripts.local.fleet.plan_churn`), as a live estate does between two syncs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scripts.bench import cost
from scripts.bench.fleets import DYNAMODB_BATCH_SIZE, FleetSpec, MinimumCalls

WALL_FACTOR = 1.25
CPU_SECONDS_PER_1000_SERVERS = 1.0
RSS_LIMIT_MIB = 1024.0
STEADY_WRITE_SHARE = 0.20  # a steady run writes at most this share of run 1's units
# The fakes must never be what times the sync out: a request's wait for moto plus moto's
# longest answer stays under a third of botocore's 30 s read timeout the sync runs with.
FAKES_ANSWER_SECONDS = 10.0
# Calls a steady run must repeat exactly: the fleet's shape did not change, only its content.
REPEATED_CALLS = ("drs.DescribeSourceServers", "sts.AssumeRole", "ec2.DescribeInstances")
READ_CALLS = ("dynamodb.Query", "dynamodb.Scan", "dynamodb.GetItem")


@dataclass(frozen=True)
class Latencies:
    """Simulated latency per call, milliseconds."""

    drs_ms: float
    ec2_ms: float
    sts_ms: float = 0.0
    dynamodb_ms: float = 0.0


@dataclass(frozen=True)
class Floor:
    seconds: float
    formula: str


def dynamodb_minimum(
    minimum: MinimumCalls, scopes: int, churn: Mapping[str, Any] | None = None
) -> int:
    """The fewest DynamoDB requests a run can make: its inventory writes (every server in
    batches in the cold run; in a steady one, the new servers in batches and each changed
    server the inventory held with a conditional PutItem of its own), one region-status write
    per scope (each written as it finishes) and one conditional soft-delete per removed
    server."""
    if churn is None:
        return minimum.inventory_batches_per_scope + scopes
    replaced = int(churn.get("replaced", 0))
    state_changed = int(churn.get("stateChanged", 0))
    return math.ceil(replaced / DYNAMODB_BATCH_SIZE) + state_changed + scopes + replaced


def latency_floor(
    minimum: MinimumCalls,
    latencies: Latencies,
    concurrency: int,
    dynamodb_calls: int = 0,
) -> Floor:
    """The least wall time the minimum calls take at `concurrency` calls in flight.

    floor = (DSS_min x DRS latency + AssumeRole_min x STS latency
             + DescribeInstances_min x EC2 latency + DynamoDB_min x DynamoDB latency)
            / concurrency
    """
    terms = (
        ("DescribeSourceServers", minimum.describe_source_servers, latencies.drs_ms),
        ("AssumeRole", minimum.assume_role, latencies.sts_ms),
        ("DescribeInstances", minimum.describe_instances, latencies.ec2_ms),
        ("DynamoDB", dynamodb_calls, latencies.dynamodb_ms),
    )
    seconds = sum(calls * ms / 1000.0 for _, calls, ms in terms) / concurrency
    symbolic = " + ".join(f"{name}_min x latency" for name, _, _ in terms)
    numeric = " + ".join(f"{calls:,} x {ms / 1000.0:g} s" for _, calls, ms in terms)
    formula = (
        f"floor = ({symbolic}) / concurrency = ({numeric}) / {concurrency} = {seconds:.2f} s; "
        "DescribeSourceServers_min = 1 per empty or uninitialised scope + ceil(servers / 1,000) "
        "per active scope; AssumeRole_min = target accounts; DescribeInstances_min = sum over "
        "origins (account, region) of ceil(instances / 200); DynamoDB_min = inventory writes "
        "(sum per scope of ceil(servers / 25) batches cold; steady: ceil(new servers / 25) "
        "batches + one conditional PutItem per changed stored server) + one status write per "
        "scope + one soft-delete per removed server"
    )
    return Floor(seconds, formula)


@dataclass(frozen=True)
class Target:
    """One target for one run: what was measured against what bound."""

    name: str
    ok: bool
    measured: str
    bound: str

    @property
    def verdict(self) -> str:
        return "PASS" if self.ok else "MISS"


def _calls(run: Mapping[str, Any], name: str) -> int:
    return int(run["botocoreCalls"].get(name, 0))


def _write_units(run: Mapping[str, Any]) -> float:
    return float(run["capacity"]["writeUnits"])


def evaluate(
    run: Mapping[str, Any],
    minimum: MinimumCalls,
    spec: FleetSpec,
    first_run: Mapping[str, Any] | None,
) -> list[Target]:
    """The issue's targets for one run (`first_run` given: also the steady-state targets)."""
    servers = spec.servers
    floor = run["floorSeconds"]
    fakes = run["fakesCpuSeconds"]["total"]
    wall_bound = WALL_FACTOR * max(floor, fakes)
    cpu_per_1000 = run["cpuSecondsPer1000Servers"]
    dss_simulator = run["simulatorCalls"]["DescribeSourceServers"]
    dss_botocore = _calls(run, "drs.DescribeSourceServers")
    assume_botocore = _calls(run, "sts.AssumeRole")
    inventory = run["inventoryBatchWrites"]
    contended = " (contended run)" if run["load"]["contended"] else ""
    targets = [
        Target(
            "wall <= 1.25 x max(latency floor, fakes' CPU)",
            run["wallSeconds"] <= wall_bound,
            f"{run['wallSeconds']:.2f} s{contended}",
            f"<= 1.25 x max({floor:.2f}, {fakes:.2f}) = {wall_bound:.2f} s",
        ),
        Target(
            "sync CPU <= 1 s per 1,000 servers",
            cpu_per_1000 is not None and cpu_per_1000 <= CPU_SECONDS_PER_1000_SERVERS,
            "n/a" if cpu_per_1000 is None else f"{cpu_per_1000:.3f} s",
            f"<= {CPU_SECONDS_PER_1000_SERVERS:g} s ({servers:,} servers)",
        ),
        Target(
            "peak RSS < 1 GiB",
            run["peakRssMiB"] < RSS_LIMIT_MIB,
            f"{run['peakRssMiB']:.0f} MiB",
            f"< {RSS_LIMIT_MIB:.0f} MiB",
        ),
        Target(
            "DescribeSourceServers == minimum",
            dss_simulator == dss_botocore == minimum.describe_source_servers,
            f"{dss_simulator:,} served / {dss_botocore:,} made",
            f"== {minimum.describe_source_servers:,}",
        ),
        Target(
            "AssumeRole == target accounts",
            assume_botocore == minimum.assume_role,
            f"{assume_botocore:,}",
            f"== {minimum.assume_role:,}",
        ),
        Target(
            "DescribeInstances <= sum ceil(instances / 200) per origin",
            _calls(run, "ec2.DescribeInstances") <= minimum.describe_instances,
            f"{_calls(run, 'ec2.DescribeInstances'):,}",
            f"<= {minimum.describe_instances:,}",
        ),
        _batch_target(run, inventory, minimum, spec, cold=first_run is None),
        Target(
            "servers kept in the inventory",
            run["liveItems"] == servers,
            f"{run['liveItems']:,} of {servers:,}",
            f"== {servers:,} (every server DRS lists, none soft-deleted)",
        ),
    ]
    moto = run["moto"]
    slowest = moto["waitMaxSeconds"] + moto["heldMaxSeconds"]
    targets.append(
        Target(
            "(fakes) moto answered far within the sync's read timeout",
            slowest < FAKES_ANSWER_SECONDS,
            f"longest wait {moto['waitMaxSeconds']:.2f} s + longest request "
            f"{moto['heldMaxSeconds']:.2f} s ({moto['longestRequest']})",
            f"< {FAKES_ANSWER_SECONDS:g} s (a third of the 30 s read timeout)",
        )
    )
    mismatched = _summary_mismatches(run)
    targets.append(
        Target(
            "(check) the sync's summary apiCalls == calls made",
            not mismatched,
            "agree" if not mismatched else "; ".join(mismatched),
            "summary == botocore's count",
        )
    )
    if first_run is not None:
        targets += _steady_targets(run, first_run)
    return targets


def _batch_target(
    run: Mapping[str, Any],
    inventory: Mapping[str, Any],
    minimum: MinimumCalls,
    spec: FleetSpec,
    cold: bool,
) -> Target:
    measured = (
        f"{inventory['calls']:,} BatchWriteItem ({inventory['items']:,} items, "
        f"{inventory['fullBatches']:,} full)"
    )
    if cold:
        return Target(
            "inventory writes in full batches of 25",
            inventory["calls"] <= minimum.inventory_batches_per_scope
            and inventory["items"] == spec.servers,
            measured,
            f"<= {minimum.inventory_batches_per_scope:,} (sum per scope of ceil(n/25)); "
            f"servers/25 = {spec.servers / DYNAMODB_BATCH_SIZE:,.1f}",
        )
    # A steady run writes what changed: new servers in full batches but at most one partial
    # one per scope, stored ones one conditional PutItem each; nothing written twice.
    bound = inventory["items"] // DYNAMODB_BATCH_SIZE + len(spec.active_scopes)
    puts = inventory.get("conditionalPuts", 0)
    landed = run["serversWritten"] + run.get("serversKeptNewer", 0)
    return Target(
        "inventory writes in full batches of 25",
        inventory["calls"] <= bound and inventory["items"] + puts == landed,
        f"{measured}; {puts:,} conditional PutItem",
        f"<= floor(batched items/25) + active scopes = {bound:,}; batched items + PutItem == "
        f"servers written + kept newer ({landed:,})",
    )


def _steady_targets(run: Mapping[str, Any], first_run: Mapping[str, Any]) -> list[Target]:
    changed = {
        name: (_calls(first_run, name), _calls(run, name))
        for name in REPEATED_CALLS
        if _calls(first_run, name) != _calls(run, name)
    }
    reads = [f"{name} {_calls(first_run, name)}->{_calls(run, name)}" for name in READ_CALLS]
    churn = run.get("churn") or {}
    replaced = int(churn.get("replaced", 0))
    first_units, units = _write_units(first_run), _write_units(run)
    share = units / first_units if first_units else math.inf
    return [
        Target(
            "steady run: same DRS, STS and EC2 calls as run 1",
            not changed
            and run["simulatorCalls"]["DescribeSourceServers"]
            == first_run["simulatorCalls"]["DescribeSourceServers"],
            "same" if not changed else "; ".join(f"{n} {a}->{b}" for n, (a, b) in changed.items()),
            f"identical per API (DynamoDB reads, not compared: {', '.join(reads)})",
        ),
        Target(
            "steady run: the inventory follows the churn",
            run["serversNew"] == replaced and run["serversSoftDeleted"] == replaced,
            f"{run['serversNew']} new, {run['serversSoftDeleted']} soft-deleted",
            f"{replaced} new and {replaced} soft-deleted ({replaced} servers replaced)",
        ),
        Target(
            "steady DynamoDB write units <= 20% of run 1's",
            share <= STEADY_WRITE_SHARE,
            f"{units:,.0f} WCU = {share:.1%} of {first_units:,.0f}",
            f"<= {STEADY_WRITE_SHARE:.0%}",
        ),
    ]


# The sync's summary counter -> the API calls it should equal (as botocore saw them made).
_SUMMARY_COUNTERS = {
    "describeSourceServers": ("drs.DescribeSourceServers",),
    "assumeRole": ("sts.AssumeRole",),
    "describeInstances": ("ec2.DescribeInstances",),
    "dynamodbReads": ("dynamodb.Query", "dynamodb.Scan", "dynamodb.GetItem"),
    "dynamodbWrites": (
        "dynamodb.BatchWriteItem",
        "dynamodb.PutItem",
        "dynamodb.UpdateItem",
        "dynamodb.DeleteItem",
    ),
}


def _summary_mismatches(run: Mapping[str, Any]) -> list[str]:
    """Where the sync's own apiCalls differ from the calls botocore saw it make."""
    mismatches = []
    for counter, operations in _SUMMARY_COUNTERS.items():
        reported = run["syncApiCalls"].get(counter)
        made = sum(_calls(run, name) for name in operations)
        if reported != made:
            mismatches.append(f"{counter} {reported} vs {made} made")
    return mismatches


def targets_json(targets: Sequence[Target]) -> list[dict[str, Any]]:
    return [{**asdict(t), "verdict": t.verdict} for t in targets]


# ---- steady-state spread, cost, fit -------------------------------------------------------------

# (label, key in the JSON, how to read it from a run)
SPREAD_FIGURES: tuple[tuple[str, str, Callable[[Mapping[str, Any]], float]], ...] = (
    ("wall s", "wallSeconds", lambda r: float(r["wallSeconds"])),
    (
        "sync CPU s per 1,000 servers",
        "cpuSecondsPer1000Servers",
        lambda r: float(r["cpuSecondsPer1000Servers"] or 0.0),
    ),
    ("fakes' CPU s", "fakesCpuSeconds", lambda r: float(r["fakesCpuSeconds"]["total"])),
    ("DynamoDB write units", "writeUnits", lambda r: float(r["capacity"]["writeUnits"])),
    ("DynamoDB read units", "readUnits", lambda r: float(r["capacity"]["readUnits"])),
    ("others' cores (load)", "othersCores", lambda r: float(r["load"]["othersCores"])),
)


def steady_runs(runs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Runs 2..N that completed (the cold run and failed runs left out)."""
    return [r for r in runs[1:] if r["status"] in ("SUCCEEDED", "PARTIAL")]


def spread(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Min and max of each SPREAD_FIGURES figure over the steady runs ({} without any)."""
    steady = steady_runs(runs)
    if not steady:
        return {}
    return {
        key: {"min": min(read(r) for r in steady), "max": max(read(r) for r in steady)}
        for _, key, read in SPREAD_FIGURES
    }


def costs(runs: Sequence[Mapping[str, Any]], servers: int) -> list[cost.MonthlyCost]:
    """Monthly cost per 1,000 servers: as run 1 ("first run") and as the steady runs' mean."""
    rows = []
    if runs and runs[0]["status"] in ("SUCCEEDED", "PARTIAL"):
        first = runs[0]
        rows.append(
            cost.monthly_cost(
                "first run (run 1)",
                _write_units(first),
                float(first["capacity"]["readUnits"]),
                float(first["wallSeconds"]),
                servers,
            )
        )
    steady = steady_runs(runs)
    if steady:
        n = len(steady)
        rows.append(
            cost.monthly_cost(
                f"steady (mean of runs {', '.join(str(r['run']) for r in steady)})",
                sum(_write_units(r) for r in steady) / n,
                sum(float(r["capacity"]["readUnits"]) for r in steady) / n,
                sum(float(r["wallSeconds"]) for r in steady) / n,
                servers,
            )
        )
    return rows


def fits(
    runs: Sequence[Mapping[str, Any]], servers: int, baseline_rss_mib: float, budget: float
) -> dict[str, list[cost.FitBound]]:
    """The largest fleet one invocation fits, from run 1 and from the worst steady run."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    if runs and runs[0]["status"] in ("SUCCEEDED", "PARTIAL"):
        groups["first run"] = [runs[0]]
    if steady_runs(runs):
        groups["steady (worst run)"] = steady_runs(runs)
    return {
        label: cost.largest_fleet(
            servers=servers,
            cpu_seconds=max(float(r["cpuSeconds"]) for r in group),
            wall_seconds=max(float(r["wallSeconds"]) for r in group),
            peak_rss_mib=max(float(r["peakRssMiB"]) for r in group),
            baseline_rss_mib=baseline_rss_mib,
            budget_seconds=budget,
        )
        for label, group in groups.items()
    }


# ---- the printed table ---------------------------------------------------------------------


def _row(label: str, values: Sequence[str], width: int = 14) -> str:
    return f"  {label:<44}" + "".join(f"{v:>{width}}" for v in values)


def _longest_gc_pause(run: Mapping[str, Any]) -> str:
    pauses = (run["moto"].get("gc") or {}).get("pauseMaxSeconds") or {}
    return f"{max(pauses.values(), default=0.0):.2f}"


def _index_names(runs: Sequence[Mapping[str, Any]], table: str) -> list[str]:
    """Every index of `table` any run wrote to."""
    names = set()
    for run in runs:
        names.update((run["capacity"]["tables"].get(table) or {}).get("indexWriteUnits", {}))
    return sorted(names)


def _index_units(run: Mapping[str, Any], table: str, index: str) -> str:
    usage = run["capacity"]["tables"].get(table) or {}
    return f"{usage.get('indexWriteUnits', {}).get(index, 0):,}"


def _table_units(run: Mapping[str, Any], table: str, field: str) -> str:
    usage = run["capacity"]["tables"].get(table)
    return "0" if usage is None else f"{usage[field]:,.1f}".removesuffix(".0")


def render(result: Mapping[str, Any]) -> str:
    """The human-readable table for one fleet's result (as written to the JSON file)."""
    runs = result["runs"]
    minimum = result["minimumCalls"]
    fleet = result["fleet"]
    latency = result["latencyMs"]
    lines = [
        f"== fleet {fleet['name']}: {fleet['description']}",
        f"   {fleet['scopes']:,} scopes ({fleet['activeScopes']} active), "
        f"{fleet['servers']:,} servers, {fleet['ec2Instances']:,} EC2 instances; "
        f"latency DRS {latency['drs']:g} ms, EC2 {latency['ec2']:g} ms, "
        f"STS {latency['sts']:g} ms, DynamoDB {latency['dynamodb']:g} ms; "
        f"concurrency {result['concurrency']}",
        f"   churn before each steady run: {result['churn']['stateFraction']:.1%} of servers "
        f"change state, {result['churn']['replaceFraction']:.1%} replaced, every reporting "
        "agent's volatile fields move",
        f"   machine: {result['machine']['cpus']} CPUs, load average "
        f"{result['machine']['loadBefore']} before / {result['machine']['loadAfter']} after; "
        f"a run is contended when others kept > {result['contendedCores']:g} cores busy",
        f"   seeding: {', '.join(f'{k} {v:.1f} s' for k, v in result['seedSeconds'].items())}",
        "",
        _row("", [f"run {run['run']}" for run in runs]),
    ]

    def add(label: str, fmt: Callable[[Mapping[str, Any]], str]) -> None:
        lines.append(_row(label, [fmt(run) for run in runs]))

    add("sync status", lambda r: str(r["status"]))
    add(
        "churn before the run (state / replaced)",
        lambda r: "cold"
        if not r.get("churn")
        else f"{r['churn']['stateChanged']}/{r['churn']['replaced']}",
    )
    add("wall s", lambda r: f"{r['wallSeconds']:.2f}")
    add("latency floor s (formula below)", lambda r: f"{r['floorSeconds']:.2f}")
    add("fakes' CPU s (moto + simulator)", lambda r: f"{r['fakesCpuSeconds']['total']:.2f}")
    add("  moto CPU s", lambda r: f"{r['fakesCpuSeconds']['moto']:.2f}")
    add("  simulator CPU s", lambda r: f"{r['fakesCpuSeconds']['simulator']:.2f}")
    add("  moto: longest wait for its lock s", lambda r: f"{r['moto']['waitMaxSeconds']:.2f}")
    add("  moto: longest request s", lambda r: f"{r['moto']['heldMaxSeconds']:.2f}")
    add("  moto: longest GC pause s", _longest_gc_pause)
    add("sync CPU s", lambda r: f"{r['cpuSeconds']:.2f}")
    add(
        "sync CPU s per 1,000 servers",
        lambda r: "n/a"
        if r["cpuSecondsPer1000Servers"] is None
        else f"{r['cpuSecondsPer1000Servers']:.3f}",
    )
    add("sync peak RSS MiB", lambda r: f"{r['peakRssMiB']:.0f}")
    add("others' cores busy (load)", lambda r: f"{r['load']['othersCores']:.2f}")
    add(
        "load average min-max",
        lambda r: f"{r['load']['loadAverageMin']:.1f}-{r['load']['loadAverageMax']:.1f}",
    )
    add("contended", lambda r: "YES" if r["load"]["contended"] else "no")
    add(
        f"DescribeSourceServers served (min {minimum['describeSourceServers']:,})",
        lambda r: f"{r['simulatorCalls']['DescribeSourceServers']:,}",
    )
    add(
        "DescribeSourceServers made (botocore)",
        lambda r: f"{r['botocoreCalls'].get('drs.DescribeSourceServers', 0):,}",
    )
    add(
        f"AssumeRole (min {minimum['assumeRole']:,})",
        lambda r: f"{r['botocoreCalls'].get('sts.AssumeRole', 0):,}",
    )
    add(
        f"DescribeInstances (bound {minimum['describeInstances']:,})",
        lambda r: f"{r['botocoreCalls'].get('ec2.DescribeInstances', 0):,}",
    )
    add("DynamoDB reads (sync's count)", lambda r: f"{r['syncApiCalls'].get('dynamodbReads', 0):,}")
    add(
        "DynamoDB writes (sync's count)",
        lambda r: f"{r['syncApiCalls'].get('dynamodbWrites', 0):,}",
    )
    add(
        f"  inventory BatchWriteItem (servers/25 = {fleet['servers'] / 25:,.0f})",
        lambda r: f"{r['inventoryBatchWrites']['calls']:,}",
    )
    add("  of which full (25 items)", lambda r: f"{r['inventoryBatchWrites']['fullBatches']:,}")
    add(
        "  inventory PutItem (stored servers)",
        lambda r: f"{r['inventoryBatchWrites'].get('conditionalPuts', 0):,}",
    )
    add("  UpdateItem", lambda r: f"{r['botocoreCalls'].get('dynamodb.UpdateItem', 0):,}")
    add("DynamoDB write units (index writes incl.)", lambda r: f"{_write_units(r):,.0f}")
    add("DynamoDB read units", lambda r: f"{r['capacity']['readUnits']:,.1f}")
    for table in result["tables"]:
        short = table.removeprefix("aws-drs-orchestration-").removesuffix("-bench")
        add(f"  {short} WCU table", lambda r, t=table: _table_units(r, t, "tableWriteUnits"))
        for index in _index_names(runs, table):
            add(f"  {short} WCU {index}", lambda r, t=table, i=index: _index_units(r, t, i))
        add(f"  {short} RCU", lambda r, t=table: _table_units(r, t, "readUnits"))
    add(
        "steady WCU / run 1 WCU",
        lambda r: "-"
        if r["run"] == 1 or not _write_units(runs[0])
        else f"{_write_units(r) / _write_units(runs[0]):.1%}",
    )
    add("items written", lambda r: f"{r['serversWritten']:,}")
    add("new items", lambda r: f"{r['serversNew']:,}")
    add("soft-deleted", lambda r: f"{r['serversSoftDeleted']:,}")
    add("live items / table items", lambda r: f"{r['liveItems']:,}/{r['inventoryItems']:,}")

    lines += _spread_lines(result) + _cost_lines(result) + _fit_lines(result)
    after = result.get("inventoryAfter")
    if after:
        lines += [
            "",
            f"   inventory after the last run: {after['items']:,} items, {after['live']:,} live "
            f"(not soft-deleted) of {fleet['servers']:,} servers in DRS",
        ]
    lines += ["", f"   run 1 {runs[0]['floorFormula']}" if runs else "", "", "   targets:"]
    for run in runs:
        for target in run["targets"]:
            lines.append(
                f"   run {run['run']}  {target['verdict']}  {target['name']}: "
                f"{target['measured']} ({target['bound']})"
            )
        if run.get("error"):
            first_line = str(run["error"]).strip().splitlines()[-1]
            lines.append(f"   run {run['run']}  ERROR  {first_line}")
    if result.get("failure"):
        lines.append(f"   BENCH STOPPED: {result['failure']}")
    return "\n".join(lines)


def _spread_lines(result: Mapping[str, Any]) -> list[str]:
    figures = result.get("steadySpread") or {}
    if not figures:
        return []
    steady = [r["run"] for r in steady_runs(result["runs"])]
    lines = ["", f"   steady runs ({', '.join(map(str, steady))}): min / max"]
    for label, key, _ in SPREAD_FIGURES:
        low, high = figures[key]["min"], figures[key]["max"]
        lines.append(f"     {label:<40}{low:>14,.2f}{high:>14,.2f}")
    return lines


def _cost_lines(result: Mapping[str, Any]) -> list[str]:
    rows = result.get("costPerMonthPer1000Servers") or []
    if not rows:
        return []
    prices = result["prices"]
    header = ("DDB writes", "DDB reads", "Lambda GB-s", "Lambda req", "schedule", "total")
    lines = [
        "",
        f"   cost per month per 1,000 servers, rate(15 minutes) = {prices['runsPerMonth']:,.1f} "
        f"runs ({prices['asOf']}; ${prices['dynamodbPerMillionWriteUnits']:g}/M WRU, "
        f"${prices['dynamodbPerMillionReadUnits']:g}/M RRU, Lambda {prices['lambdaMemoryMb']} MB "
        f"x86 ${prices['lambdaPerGbSecond']}/GB-s + ${prices['lambdaPerMillionRequests']:g}/M)",
        "     " + f"{'':<34}" + "".join(f"{h:>12}" for h in header),
    ]
    for row in rows:
        values = (
            row["dynamodbWrites"],
            row["dynamodbReads"],
            row["lambdaDuration"],
            row["lambdaRequests"],
            row["schedule"],
            row["total"],
        )
        lines.append(
            "     " + f"{row['label']:<34}" + "".join(f"{f'${v:,.4f}':>12}" for v in values)
        )
    lines.append(
        "     Lambda duration = the run's wall time measured here; EventBridge scheduled "
        f"invocations are free; not modelled: {prices['notModelled']}"
    )
    return lines


def _fit_lines(result: Mapping[str, Any]) -> list[str]:
    fit = result.get("largestFleet") or {}
    if not fit:
        return []
    budget = result["runBudgetSeconds"]
    lines = [
        "",
        f"   largest fleet one invocation fits ({cost.LAMBDA_MEMORY_MB} MB = one vCPU, the run's "
        f"own deadline {budget:.0f} s), scaling this fleet's cost linearly:",
    ]
    for label, bounds in fit.items():
        tightest = bounds[0]
        if tightest["servers"] is None:
            lines.append(f"     {label}: not measurable (no cost measured)")
        else:
            lines.append(
                f"     {label}: {tightest['servers']:,} servers; "
                f"the {tightest['bound']} bound bites first"
            )
        for bound in bounds:
            shown = "n/a" if bound["servers"] is None else f"{bound['servers']:,}"
            lines.append(f"       {bound['bound']:<10}{shown:>12} servers  ({bound['basis']})")
    return lines
