"""`make bench-events`: how fresh the inventory stays under a burst of DRS events.

The chain measured is the one `make demo` shows for one stalled server, under load:
the DRS simulator changes a server's replication state and puts DRS's event on the target
account's bus in moto; the forwarding rule (cfn/target-account-role.yaml) carries it to the
hub bus, whose rule queues it to SQS; the local runner's SQS poller (as Lambda's event source
mapping) invokes the deployed data-management-handler, whose `refresh_source_servers` reads
the servers with DescribeSourceServers (one filtered call per scope per batch) and writes the
inventory items.

Steps: start the local AWS, deploy (`scripts.demo.deploy`), seed the demo organisation
(`seed_organisation`; `--servers-per-scope N` scales every scope to N servers), onboard the
target accounts, run one full sync so every item exists, start event delivery, then send
`--rate` replication-state changes per second for `--seconds`: each change toggles one server
between STALLED and CONTINUOUS (so every change is an event, and the final state is known),
round-robin over the servers of every synced scope. A poller scans the inventory table every
`--poll` seconds and records when each item changes state.

Latency of a change = when the poller first saw the item show its state, minus when the
change was made (the start of the simulator call). A server's later change may overtake an
earlier one before the poller sees it ("overtaken": fine, the inventory moved on). After the
burst, it waits (at most `--drain` seconds) for every server's last change to show.

The simulator queues each change's event and returns; its emitter puts them on the buses in
PutEvents of up to 10, one call per (account, region) at a time (each server's order kept).
"Events sent" are the events PutEvents accepted, and the achieved rate is their number over
the time from the burst's start to the last one accepted: the target is met at 90% of
`--rate` or more. The changes' own pace (how far behind schedule they started) is shown too.

Figures: events sent (achieved rate) and shown, p50/p90/p99/max latency, DescribeSourceServers
calls (the simulator's count) per event, refresh invocations (the runner's SQS deliveries),
items written (the refreshes' own `counts.written`), lost updates (final item state != the
simulator's final state after the drain), reordered (an item that went back to an older
state). Targets: the rate (above); p99 < 60 s; at most one DescribeSourceServers per
(account, region) per refresh batch (calls <= the sum over batches of the scopes each batch
names).

The throttled scope of `make demo` is not throttled here: every seeded scope syncs, the hub
account's own among them (the demo's deploy forwards the hub's DRS events from each of its
regions: scripts/deploy.sh --hub-event-regions).
The poller's resolution is its interval plus a scan: latencies are upper bounds. The local
moto answers one request at a time; the last row shows which operations held it longest
between the burst's start and the drain's end (the poller's own Scans among them).

Ctrl-C (or SIGTERM) stops the burst, then event delivery, the poller and both servers, and
exits 130. The exit status is 0 only when every target is met and nothing was lost.

Usage: python -m scripts.bench.events [--rate 100] [--seconds 30] [--servers-per-scope N]
       [--drain 60] [--poll 2] [--json FILE] [--log-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from scripts import demo
from scripts.local.moto_server import MotoControl
from scripts.local.runner import LocalRunner, format_table
from scripts.local.stack import LocalStack, StackError

STALLED, CONTINUOUS = "STALLED", "CONTINUOUS"
P99_TARGET_SECONDS = 60.0
# The burst counts as delivered when the events reached the bus at this share of the target
# rate or more (the last ones may wait for the calls in flight).
RATE_TARGET_SHARE = 0.9
SENDERS = 8  # threads making the changes; a server always goes to the same one (its order)
DESCRIBE = "DescribeSourceServers"
INTERRUPTED = 130  # the exit status of a run ended by Ctrl-C (128 + SIGINT), as shells use
# The inventory poller's pause between scans. A scan of the demo's 318 items holds the local
# moto (one request at a time) for 1-1.7 s: at 0.5 s the poller held it most of the burst
# (70 of 93 s) and slowed the very chain it measures. 2 s costs resolution, not truth:
# latencies stay upper bounds.
POLL_SECONDS = 2.0
FLUSH_WAIT_SECONDS = 45.0  # at most this long for the simulator's queued events (< its timeout)


def scaled_fleet(servers_per_scope: int | None) -> tuple[demo.ScopeSeed, ...]:
    """The demo fleet, or every scope of it with `servers_per_scope` servers (EC2 instances in
    the demo's proportion; no missing instances, no extended servers)."""
    if servers_per_scope is None:
        return demo.FLEET
    n = servers_per_scope
    return tuple(
        replace(
            seed,
            servers=n,
            instances=min(n, round(n * seed.instances / seed.servers)),
            missing=0,
            extended=0,
        )
        for seed in demo.FLEET
    )


@dataclass
class Change:
    server: int  # index into the bench's server list
    state: str
    scheduled: float
    start: float = 0.0  # wall time the simulator call began
    end: float = 0.0
    result_state: str | None = None  # the state in the record the simulator returned
    error: str | None = None


@dataclass
class Server:
    arn: str
    account_id: str
    region: str
    server_id: str
    initial: str
    changes: list[int] = field(default_factory=list)  # indexes into the change list
    # (wall time of the scan that saw it, replicationState, lastSyncTime) when state changed
    seen: list[tuple[float, str, str]] = field(default_factory=list)


class InventoryWatcher:
    """Scans the inventory (projected, consistent) every `interval` seconds in a thread;
    notes each item's state changes for the servers watched."""

    def __init__(self, dynamodb: Any, servers: dict[str, Server], interval: float) -> None:
        self.dynamodb = dynamodb
        self.servers = servers
        self.interval = interval
        self.scans = 0
        self.errors: list[str] = []
        self._last: dict[str, tuple[str, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="inventory-watch", daemon=True)

    def scan(self) -> dict[str, tuple[str, str]]:
        items: dict[str, tuple[str, str]] = {}
        for page in self.dynamodb.get_paginator("scan").paginate(
            TableName=demo.INVENTORY_TABLE,
            ProjectionExpression="sourceServerArn, replicationState, lastSyncTime",
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                items[item["sourceServerArn"]["S"]] = (
                    item.get("replicationState", {}).get("S", ""),
                    item.get("lastSyncTime", {}).get("S", ""),
                )
        return items

    def observe(self) -> None:
        items = self.scan()
        seen_at = time.time()  # the scan's end: the item showed the state by then
        self.scans += 1
        for arn, (state, synced) in items.items():
            server = self.servers.get(arn)
            if server is None:
                continue
            previous = self._last.get(arn)
            self._last[arn] = (state, synced)
            if previous is None or previous[0] != state or synced < previous[1]:
                server.seen.append((seen_at, state, synced))

    def start(self) -> None:
        self.observe()  # the baseline
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.observe()
            except Exception as exc:  # noted; the next scan tries again
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def current(self) -> dict[str, tuple[str, str]]:
        return dict(self._last)


class RefreshCounts:
    """Sums the refreshes' own counts from their "refresh finished" log lines."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals: dict[str, int] = {}
        self.refreshes = 0

    def __call__(self, line: str) -> None:
        if not line.startswith("{") or "refresh finished" not in line:
            return
        try:
            record = json.loads(line)
        except ValueError:
            return
        if record.get("message") != "refresh finished":
            return
        with self.lock:
            self.refreshes += 1
            for name, value in (record.get("counts") or {}).items():
                if isinstance(value, int):
                    self.totals[name] = self.totals.get(name, 0) + value


def pick_servers(dynamodb: Any) -> list[Server]:
    """Every live item, interleaved by scope (consecutive changes land in different scopes)."""
    by_scope: dict[tuple[str, str], list[Server]] = {}
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=demo.INVENTORY_TABLE, ConsistentRead=True
    ):
        for item in page["Items"]:
            if "deletedAt" in item or "sourceServerID" not in item:
                continue
            server = Server(
                item["sourceServerArn"]["S"],
                item["accountId"]["S"],
                item["region"]["S"],
                item["sourceServerID"]["S"],
                item.get("replicationState", {}).get("S", ""),
            )
            by_scope.setdefault((server.account_id, server.region), []).append(server)
    scopes = [sorted(v, key=lambda s: s.arn) for _, v in sorted(by_scope.items())]
    servers: list[Server] = []
    for row in range(max((len(s) for s in scopes), default=0)):
        servers.extend(scope[row] for scope in scopes if row < len(scope))
    return servers


def plan_changes(servers: list[Server], rate: float, seconds: float, t0: float) -> list[Change]:
    """rate x seconds changes, round-robin over `servers`, each toggling STALLED-ness."""
    total = round(rate * seconds)
    state = {i: s.initial for i, s in enumerate(servers)}
    changes = []
    for k in range(total):
        i = k % len(servers)
        state[i] = CONTINUOUS if state[i] == STALLED else STALLED
        changes.append(Change(i, state[i], t0 + k / rate))
        servers[i].changes.append(k)
    return changes


def send_changes(
    control: Any, servers: list[Server], changes: list[Change], stop: threading.Event
) -> None:
    """Make each change at its scheduled time (or as soon as the sender is free): SENDERS
    threads, a server always on the same thread, so each server's changes stay in order.
    Setting `stop` (or Ctrl-C, which sets it) ends the burst: no change starts after it."""

    def sender(worker: int) -> None:
        for change in changes:
            if change.server % SENDERS != worker:
                continue
            if stop.wait(max(0.0, change.scheduled - time.time())):
                return
            server = servers[change.server]
            change.start = time.time()
            try:
                record = control.set_replication_state(
                    server.account_id, server.region, server.server_id, change.state
                )
                change.result_state = record.get("dataReplicationInfo", {}).get(
                    "dataReplicationState"
                )
            except Exception as exc:
                change.error = f"{type(exc).__name__}: {exc}"
            change.end = time.time()

    threads = [threading.Thread(target=sender, args=(w,), daemon=True) for w in range(SENDERS)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():  # a timed join: Ctrl-C reaches the main thread
                thread.join(0.5)
    finally:
        stop.set()  # Ctrl-C: no change starts after this; a call under way ends first
        for thread in threads:
            thread.join(30)


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    shown: int = 0
    overtaken: int = 0
    coalesced: int = 0  # after the last seen change, in the final state, no change seen
    unseen: int = 0  # neither shown, nor overtaken, nor in the final state
    reordered: int = 0


def attribute(
    servers: list[Server], changes: list[Change], final: dict[str, tuple[str, str]]
) -> Outcome:
    """Match each item's observed state changes to the server's changes (see module doc).
    Changes after the last one seen count as coalesced when the item ends in the state of the
    server's last change (two toggles between scans show no change), else as unseen."""
    outcome = Outcome()
    for server in servers:
        landed = -1  # position in server.changes of the newest change shown
        last_synced = ""
        for seen_at, state, synced in server.seen[1:]:  # [0] is the baseline
            if synced and last_synced and synced < last_synced:
                outcome.reordered += 1
            last_synced = max(last_synced, synced)
            candidates = [
                p
                for p in range(landed + 1, len(server.changes))
                if changes[server.changes[p]].state == state
                and changes[server.changes[p]].start
                and changes[server.changes[p]].start < seen_at
            ]
            if not candidates:
                shown_state = (
                    changes[server.changes[landed]].state if landed >= 0 else server.initial
                )
                if state != shown_state:
                    outcome.reordered += 1  # back to an older state
                continue
            newest = candidates[-1]
            outcome.overtaken += newest - landed - 1
            outcome.shown += 1
            outcome.latencies.append(seen_at - changes[server.changes[newest]].start)
            landed = newest
        pending = len(server.changes) - landed - 1
        if pending and final.get(server.arn, ("", ""))[0] == final_state(server, changes):
            outcome.coalesced += pending
        else:
            outcome.unseen += pending
    return outcome


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def batch_scopes(deliveries: Sequence[Any]) -> tuple[int, int, int]:
    """(refresh invocations, the ones that succeeded, sum over them of the distinct scopes
    their records name): one DescribeSourceServers per scope per batch is the target."""
    invocations = succeeded = scopes = 0
    for delivery in deliveries:
        if delivery.kind != "sqs":
            continue
        invocations += 1
        succeeded += bool(delivery.succeeded)
        named = set()
        for record in delivery.event.get("Records", []):
            try:
                body = json.loads(record["body"])
            except (KeyError, ValueError):
                continue
            named.add((body.get("account"), body.get("region")))
        scopes += len(named)
    return invocations, succeeded, scopes


def run(args: argparse.Namespace) -> dict[str, Any]:
    seeds = scaled_fleet(args.servers_per_scope)
    stages: dict[str, float] = {}
    began = time.monotonic()

    def stage(name: str) -> None:
        stages[name] = round(time.monotonic() - began, 1)
        print(f"[{stages[name]:6.1f} s] {name}", flush=True)

    with LocalStack(log_dir=args.log_dir) as stack:
        pids = dict(stack.pids)
        stage("local AWS started (" + ", ".join(f"{k} pid {v}" for k, v in pids.items()) + ")")
        demo.deploy(stack.moto_endpoint, lambda line: None)
        stage("deployed")
        control = stack.control
        seeded = demo.seed_organisation(stack.moto_endpoint, control, seeds)
        stage(f"seeded {seeded.servers} servers in {len(seeds)} scopes")
        counts = RefreshCounts()
        watcher: InventoryWatcher | None = None
        runner = LocalRunner(stack.moto_endpoint, stack.drs_endpoint, log_sink=counts)
        try:
            demo.onboard_target_accounts(runner)
            stage("target accounts onboarded")
            (delivery,) = runner.fire_rule(demo.RULE)
            if not delivery.invocation.succeeded:
                raise demo.DemoError(f"full sync failed: {delivery.invocation.payload}")
            sync_counts = delivery.invocation.payload.get("counts", {})
            stage(f"full sync: {sync_counts.get('serversSeen')} servers seen")
            dynamodb = runner.client("dynamodb")
            servers = pick_servers(dynamodb)
            if not servers:
                raise demo.DemoError("the full sync left no items to change")
            scopes = sorted({(s.account_id, s.region) for s in servers})
            events = runner.start_event_delivery()
            watcher = InventoryWatcher(dynamodb, {s.arn: s for s in servers}, args.poll)
            watcher.start()
            if args.drs_latency_ms:
                control.set_latency(args.drs_latency_ms)
            calls_before = control.request_count(DESCRIBE)
            moto = MotoControl(stack.moto_endpoint)
            moto.reset_stats()
            control.reset_event_stats()
            t0 = time.time() + 0.5
            changes = plan_changes(servers, args.rate, args.seconds, t0)
            stage(
                f"burst: {len(changes)} changes over {len(servers)} servers in {len(scopes)} scopes"
            )
            send_changes(control, servers, changes, threading.Event())
            made_for = time.time() - t0
            # The burst is sent when its events are on the buses, not when the changes return.
            emitted = control.flush_events(min(args.drain, FLUSH_WAIT_SECONDS))
            stage(
                f"burst made in {made_for:.1f} s, its events put in "
                f"{seconds_since(emitted.get('lastPutAt'), t0):.1f} s; "
                f"draining (at most {args.drain:g} s)"
            )

            def final_states_shown() -> bool:
                current = watcher.current()
                return all(
                    current.get(s.arn, ("", ""))[0] == final_state(s, changes) for s in servers
                )

            deadline = time.time() + args.drain
            while time.time() < deadline and not final_states_shown():
                time.sleep(args.poll)
            time.sleep(2 * args.poll)  # one more scan, and any batch in flight
            watcher.stop()
            runner.stop_event_delivery()
            stage("drained")
            moto_stats = moto.stats()
            emitted = control.event_stats()
            calls = control.request_count(DESCRIBE) - calls_before
            final = watcher.scan()
            lost = sum(final.get(s.arn, ("", ""))[0] != final_state(s, changes) for s in servers)
            outcome = attribute(servers, changes, final)
            invocations, succeeded, batch_scope_sum = batch_scopes(list(events.deliveries))
            with counts.lock:
                refresh_totals = dict(counts.totals)
            failed_changes = sum(c.error is not None for c in changes)
        finally:
            if watcher is not None:
                watcher.stop()
            runner.close()
    result = {
        "servers": len(servers),
        "scopes": len(scopes),
        "rate": args.rate,
        "drsLatencyMs": args.drs_latency_ms,
        "seconds": args.seconds,
        "changesMade": len(changes) - failed_changes,
        "changesSeconds": round(made_for, 1),
        "changesFailed": failed_changes,
        # Events on the target accounts' buses (PutEvents accepted them), and how long from
        # the burst's start until the last one was: the achieved rate.
        "eventsSent": emitted.get("put", 0),
        "eventsFailed": emitted.get("failed", 0) + emitted.get("dropped", 0),
        "sendSeconds": round(seconds_since(emitted.get("lastPutAt"), t0), 1),
        "putEventsCalls": emitted.get("calls", 0),
        "emitLagMeanSeconds": emitted.get("lagTotalSeconds", 0.0) / max(1, emitted.get("put", 0)),
        "emitLagMaxSeconds": emitted.get("lagMaxSeconds", 0.0),
        "scheduleSlipP99": percentile([c.start - c.scheduled for c in changes if c.start], 99),
        "shown": outcome.shown,
        "overtaken": outcome.overtaken,
        "coalesced": outcome.coalesced,
        "unseen": outcome.unseen,
        "callSecondsP50": percentile([c.end - c.start for c in changes], 50),
        "callSecondsMax": max((c.end - c.start for c in changes), default=math.nan),
        "p50": percentile(outcome.latencies, 50),
        "p90": percentile(outcome.latencies, 90),
        "p99": percentile(outcome.latencies, 99),
        "max": max(outcome.latencies, default=math.nan),
        "describeCalls": calls,
        "refreshInvocations": invocations,
        "refreshSucceeded": succeeded,
        "batchScopes": batch_scope_sum,
        "itemsWritten": refresh_totals.get("written", 0),
        "refreshCounts": refresh_totals,
        "lost": lost,
        "reordered": outcome.reordered,
        "scans": watcher.scans,
        "watchErrors": watcher.errors[:5],
        "deliveryErrors": events.errors[:5],
        "motoStats": moto_stats,
        "stages": stages,
        "pids": pids,
    }
    result["achievedRate"] = result["eventsSent"] / max(result["sendSeconds"], 0.001)
    result["rateMet"] = result["achievedRate"] >= RATE_TARGET_SHARE * args.rate and (
        result["eventsSent"] >= RATE_TARGET_SHARE * len(changes)
    )
    result["p99Met"] = result["p99"] < P99_TARGET_SECONDS
    result["callsMet"] = calls <= batch_scope_sum
    return result


def seconds_since(moment: float | None, start: float) -> float:
    """`moment - start`, or NaN when there is no moment (nothing was put)."""
    return math.nan if moment is None else moment - start


def final_state(server: Server, changes: list[Change]) -> str:
    """The simulator's last word on the server: the state its last successful call returned."""
    for index in reversed(server.changes):
        change = changes[index]
        if change.error is None and change.result_state:
            return change.result_state
    return server.initial


def lock_summary(stats: dict[str, dict[str, float]], top: int = 5) -> str:
    """The operations that held the local moto's one lock longest: moto answers one request
    at a time, so this is where the machine's moto time went (the watcher's own Scans too)."""
    held = sorted(stats.items(), key=lambda item: -item[1].get("heldTotalSeconds", 0.0))
    total = sum(s.get("heldTotalSeconds", 0.0) for s in stats.values())
    parts = [
        f"{name} {s.get('heldTotalSeconds', 0.0):.1f} ({int(s.get('requests', 0))})"
        for name, s in held[:top]
    ]
    return f"{total:.1f} in all: " + ", ".join(parts)


def table(result: dict[str, Any]) -> str:
    sent = max(1, result["eventsSent"])

    def mark(met: bool) -> str:
        return "met" if met else "MISSED"

    rows = [
        ["servers changed / scopes", f"{result['servers']} / {result['scopes']}"],
        [
            "events sent (target rate x s; achieved)",
            f"{result['eventsSent']:,} (target {result['rate']:g}/s x {result['seconds']:g} s; "
            f"achieved {result['achievedRate']:.1f}/s over {result['sendSeconds']:g} s: "
            f"{mark(result['rateMet'])})",
        ],
        [
            "changes made / behind schedule p99 (s)",
            f"{result['changesMade']:,} in {result['changesSeconds']:g} s / "
            f"{result['scheduleSlipP99']:.2f}  ({SENDERS} senders; call p50 "
            f"{result['callSecondsP50']:.3f} s, max {result['callSecondsMax']:.2f} s)",
        ],
        [
            "PutEvents calls / change to bus mean, max (s)",
            f"{result['putEventsCalls']:,} / {result['emitLagMeanSeconds']:.2f}, "
            f"{result['emitLagMaxSeconds']:.2f}  ({result['eventsFailed']} events failed)",
        ],
        [
            "events whose state reached the inventory",
            f"{result['shown'] + result['overtaken'] + result['coalesced']} "
            f"({result['shown']} seen, {result['overtaken']} overtaken by a later change, "
            f"{result['coalesced']} toggled twice between scans)",
        ],
        ["events that did not", result["unseen"]],
        ["changes the simulator refused", result["changesFailed"]],
        ["latency p50 / p90 (s)", f"{result['p50']:.2f} / {result['p90']:.2f}"],
        [
            "latency p99 / max (s)",
            f"{result['p99']:.2f} / {result['max']:.2f}  "
            f"(target p99 < {P99_TARGET_SECONDS:g} s: {mark(result['p99Met'])})",
        ],
        [
            "DescribeSourceServers calls / per event",
            f"{result['describeCalls']} / {result['describeCalls'] / sent:.3f}",
        ],
        [
            "refresh invocations (SQS batches)",
            f"{result['refreshInvocations']} ({result['refreshSucceeded']} succeeded); "
            f"scopes named per batch, summed: {result['batchScopes']}",
        ],
        [
            "calls <= one per scope per batch",
            f"{result['describeCalls']} <= {result['batchScopes']}: {mark(result['callsMet'])}",
        ],
        ["items written (refresh counts.written)", result["itemsWritten"]],
        ["lost updates (after drain)", result["lost"]],
        ["reordered", result["reordered"]],
        ["moto lock held, burst to drain (s)", lock_summary(result["motoStats"])],
    ]
    return format_table(["MEASURE", "VALUE"], rows, indent="")


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.events", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rate", type=float, default=100.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the burst")
    parser.add_argument(
        "--servers-per-scope", type=int, help="every scope this many servers (default: demo)"
    )
    parser.add_argument("--drain", type=float, default=60.0, help="max wait after the burst")
    parser.add_argument(
        "--drs-latency-ms",
        type=float,
        default=0.0,
        help="the simulator's latency per DRS call during the burst (make bench uses 100)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=POLL_SECONDS,
        help="pause between inventory scans (s); each scan holds the local moto about 1 s",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--log-dir", type=Path, help="keep the servers' logs in this folder")
    args = parser.parse_args(argv)
    # SIGTERM ends the run as Ctrl-C does: the burst stops, then every server it started.
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        result = run(args)
    except (demo.DemoError, StackError) as exc:
        print(f"bench-events: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "bench-events: interrupted; the burst and every server it started are stopped",
            file=sys.stderr,
        )
        return INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    print()
    print(table(result), flush=True)
    if result["watchErrors"] or result["deliveryErrors"]:
        print(f"errors: {result['watchErrors']} {result['deliveryErrors']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    met = result["rateMet"] and result["p99Met"] and result["callsMet"] and not result["lost"]
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
