"""The benchmark's yardsticks: latency floor, targets (PASS/MISS), and the printed table.

Pure functions over the figures a run collected (see `scripts.bench.run`), so the table and
the JSON file always say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scripts.bench.fleets import DYNAMODB_BATCH_SIZE, FleetSpec, MinimumCalls

WALL_FACTOR = 1.25
CPU_SECONDS_PER_1000_SERVERS = 1.0
RSS_LIMIT_MIB = 1024.0
# The calls a second, unchanged run must repeat exactly (botocore's view of the sync).
# DynamoDB reads are reported, not compared: the first run reads an empty inventory, the
# second reads back every item, so more pages are the table's growth, not extra work.
REPEATED_CALLS = (
    "drs.DescribeSourceServers",
    "sts.AssumeRole",
    "ec2.DescribeInstances",
    "dynamodb.BatchWriteItem",
    "dynamodb.UpdateItem",
    "dynamodb.PutItem",
    "dynamodb.DeleteItem",
)
READ_CALLS = ("dynamodb.Query", "dynamodb.Scan", "dynamodb.GetItem")


@dataclass(frozen=True)
class Latencies:
    """Simulated latency per call kind, milliseconds (moto's STS and DynamoDB have none)."""

    drs_ms: float
    ec2_ms: float
    sts_ms: float = 0.0


@dataclass(frozen=True)
class Floor:
    seconds: float
    formula: str


def latency_floor(minimum: MinimumCalls, latencies: Latencies, concurrency: int) -> Floor:
    """The least wall time the minimum calls take at `concurrency` calls in flight.

    floor = (DSS_min x DRS latency + AssumeRole_min x STS latency
             + DescribeInstances_min x EC2 latency) / concurrency
    DynamoDB has no simulated latency, so it adds nothing here (its cost is the fakes' CPU).
    """
    terms = (
        ("DescribeSourceServers", minimum.describe_source_servers, latencies.drs_ms),
        ("AssumeRole", minimum.assume_role, latencies.sts_ms),
        ("DescribeInstances", minimum.describe_instances, latencies.ec2_ms),
    )
    seconds = sum(calls * ms / 1000.0 for _, calls, ms in terms) / concurrency
    symbolic = " + ".join(f"{name}_min x latency" for name, _, _ in terms)
    numeric = " + ".join(f"{calls:,} x {ms / 1000.0:g} s" for _, calls, ms in terms)
    formula = (
        f"floor = ({symbolic}) / concurrency = ({numeric}) / {concurrency} = {seconds:.2f} s; "
        "DescribeSourceServers_min = 1 per empty or uninitialised scope + ceil(servers / 1,000) "
        "per active scope; AssumeRole_min = target accounts; DescribeInstances_min = sum over "
        "origins (account, region) of ceil(instances / 200)"
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


def evaluate(
    run: Mapping[str, Any],
    minimum: MinimumCalls,
    floor: Floor,
    spec: FleetSpec,
    first_run: Mapping[str, Any] | None,
) -> list[Target]:
    """The issue's targets for one run (`first_run` given: also the "second run" targets)."""
    servers = spec.servers
    fakes = run["fakesCpuSeconds"]["total"]
    wall_bound = WALL_FACTOR * max(floor.seconds, fakes)
    cpu_per_1000 = run["cpuSecondsPer1000Servers"]
    dss_simulator = run["simulatorCalls"]["DescribeSourceServers"]
    dss_botocore = _calls(run, "drs.DescribeSourceServers")
    assume_botocore = _calls(run, "sts.AssumeRole")
    inventory = run["inventoryBatchWrites"]
    targets = [
        Target(
            "wall <= 1.25 x max(latency floor, fakes' CPU)",
            run["wallSeconds"] <= wall_bound,
            f"{run['wallSeconds']:.2f} s",
            f"<= 1.25 x max({floor.seconds:.2f}, {fakes:.2f}) = {wall_bound:.2f} s",
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
        Target(
            "inventory writes in full batches of 25",
            inventory["calls"] <= minimum.inventory_batches_per_scope
            and inventory["items"] == servers,
            f"{inventory['calls']:,} BatchWriteItem ({inventory['items']:,} items, "
            f"{inventory['fullBatches']:,} full)",
            f"<= {minimum.inventory_batches_per_scope:,} (sum per scope of ceil(n/25)); "
            f"servers/25 = {servers / DYNAMODB_BATCH_SIZE:,.1f}",
        ),
    ]
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
        changed = {
            name: (_calls(first_run, name), _calls(run, name))
            for name in REPEATED_CALLS
            if _calls(first_run, name) != _calls(run, name)
        }
        reads = [f"{name} {_calls(first_run, name)}->{_calls(run, name)}" for name in READ_CALLS]
        targets.append(
            Target(
                "second run: same API calls and DynamoDB writes as the first",
                not changed
                and run["simulatorCalls"]["DescribeSourceServers"]
                == first_run["simulatorCalls"]["DescribeSourceServers"],
                "same"
                if not changed
                else "; ".join(f"{name} {a}->{b}" for name, (a, b) in changed.items()),
                f"identical per API (reads, not compared: {', '.join(reads)})",
            )
        )
        added = run["inventoryItems"] - first_run["inventoryItems"]
        targets.append(
            Target(
                "second run: no new items",
                run["serversNew"] == 0 and added == 0 and run["serversSoftDeleted"] == 0,
                f"{run['serversNew']} new, {added:+d} table items, "
                f"{run['serversSoftDeleted']} soft-deleted",
                "0 new, +0 items, 0 soft-deleted",
            )
        )
    return targets


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


def _row(label: str, values: Sequence[str], width: int = 14) -> str:
    return f"  {label:<44}" + "".join(f"{v:>{width}}" for v in values)


def render(result: Mapping[str, Any]) -> str:
    """The human-readable table for one fleet's result (as written to the JSON file)."""
    runs = result["runs"]
    minimum = result["minimumCalls"]
    fleet = result["fleet"]
    lines = [
        f"== fleet {fleet['name']}: {fleet['description']}",
        f"   {fleet['scopes']:,} scopes ({fleet['activeScopes']} active), "
        f"{fleet['servers']:,} servers, {fleet['ec2Instances']:,} EC2 instances; "
        f"latency DRS {result['latencyMs']['drs']:g} ms, EC2 {result['latencyMs']['ec2']:g} ms, "
        f"STS/DynamoDB 0 ms; concurrency {result['concurrency']}",
        f"   machine: {result['machine']['cpus']} CPUs, load average "
        f"{result['machine']['loadBefore']} before / {result['machine']['loadAfter']} after "
        "(shared with other work: timings include contention)",
        f"   seeding: {', '.join(f'{k} {v:.1f} s' for k, v in result['seedSeconds'].items())}",
        "",
        _row("", [f"run {run['run']}" for run in runs]),
    ]

    def add(label: str, fmt: Any) -> None:
        lines.append(_row(label, [fmt(run) for run in runs]))

    add("wall s", lambda r: f"{r['wallSeconds']:.2f}")
    add("latency floor s (formula below)", lambda r: f"{result['floorSeconds']:.2f}")
    add("fakes' CPU s (moto + simulator)", lambda r: f"{r['fakesCpuSeconds']['total']:.2f}")
    add("  moto CPU s", lambda r: f"{r['fakesCpuSeconds']['moto']:.2f}")
    add("  simulator CPU s", lambda r: f"{r['fakesCpuSeconds']['simulator']:.2f}")
    add("sync CPU s", lambda r: f"{r['cpuSeconds']:.2f}")
    add(
        "sync CPU s per 1,000 servers",
        lambda r: "n/a"
        if r["cpuSecondsPer1000Servers"] is None
        else f"{r['cpuSecondsPer1000Servers']:.3f}",
    )
    add("sync peak RSS MiB", lambda r: f"{r['peakRssMiB']:.0f}")
    add(
        f"DescribeSourceServers served (min {minimum['describeSourceServers']:,})",
        lambda r: f"{r['simulatorCalls']['DescribeSourceServers']:,}",
    )
    add(
        "DescribeSourceServers made (botocore)",
        lambda r: f"{r['botocoreCalls'].get('drs.DescribeSourceServers', 0):,}",
    )
    add(
        "DescribeSourceServers (sync's summary)",
        lambda r: f"{r['syncApiCalls']['describeSourceServers']:,}",
    )
    add(
        f"AssumeRole (min {minimum['assumeRole']:,})",
        lambda r: f"{r['botocoreCalls'].get('sts.AssumeRole', 0):,}",
    )
    add(
        f"DescribeInstances (bound {minimum['describeInstances']:,})",
        lambda r: f"{r['botocoreCalls'].get('ec2.DescribeInstances', 0):,}",
    )
    add("DynamoDB reads (sync's count)", lambda r: f"{r['syncApiCalls']['dynamodbReads']:,}")
    add("DynamoDB writes (sync's count)", lambda r: f"{r['syncApiCalls']['dynamodbWrites']:,}")
    add(
        f"  inventory BatchWriteItem (servers/25 = {fleet['servers'] / 25:,.0f})",
        lambda r: f"{r['inventoryBatchWrites']['calls']:,}",
    )
    add("  of which full (25 items)", lambda r: f"{r['inventoryBatchWrites']['fullBatches']:,}")
    add(
        "  soft-delete UpdateItem",
        lambda r: f"{r['botocoreCalls'].get('dynamodb.UpdateItem', 0):,}",
    )
    add("items written", lambda r: f"{r['serversWritten']:,}")
    add("new items", lambda r: f"{r['serversNew']:,}")
    add("soft-deleted", lambda r: f"{r['serversSoftDeleted']:,}")
    add("inventory items in table", lambda r: f"{r['inventoryItems']:,}")
    add("sync status", lambda r: str(r["status"]))
    after = result["inventoryAfter"]
    lines += [
        "",
        f"   inventory after the last run: {after['items']:,} items, {after['live']:,} live "
        f"(not soft-deleted) of {fleet['servers']:,} servers in DRS",
        f"   {result['floorFormula']}",
        "",
        "   targets:",
    ]
    for run in runs:
        for target in run["targets"]:
            lines.append(
                f"   run {run['run']}  {target['verdict']}  {target['name']}: "
                f"{target['measured']} ({target['bound']})"
            )
    return "\n".join(lines)
