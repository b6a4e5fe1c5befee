"""The sync under measurement, in a process of its own (as in Lambda: nothing else runs here).

Started by `scripts.bench.run` with PYTHONPATH=lambda:lambda/data-management-handler:. and the
function's environment. Protocol (one JSON document per line):

  child -> parent  `BENCH {"event": "ready", ...}` once imported
  parent -> child  `run`   run `sync_source_server_inventory({})` once, then answer
  child -> parent  `BENCH {"event": "run", "run": N, "summary": {...}, "wallSeconds": ...,
                   "cpuSeconds": ..., "peakRssMiB": ..., "calls": {...}, "batchWrites": {...}}`
  parent -> child  `exit`  (or EOF): write the profile if asked, answer `{"event": "exit"}`

The sync's own logs and EMF metrics go to stdout in Lambda; here fd 1 is pointed at stderr
(the parent's log file) and the answers use a duplicate of the original stdout, so a log line
can never be mistaken for an answer. Logging still costs what it costs in Lambda.

Call counts come from botocore's `provide-client-params` event (one per API call, retries
not included), registered on the session the sync's own client factory builds: the sync's
code and its default factory run unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import boto3

import inventory_sync.sync
import shared.aws
from inventory_sync import sync_source_server_inventory

PREFIX = "BENCH "
# 5 ms: enough resolution for minutes of work in 16 threads, at a fraction of the 1 ms
# default's overhead and file size (the HTML embeds every sample).
PROFILE_INTERVAL_SECONDS = 0.005
_original_new_session = shared.aws.new_session


class CallCounter:
    """AWS API calls by "service.Operation", BatchWriteItem sizes and PutItem requests per
    table (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.batch_sizes: dict[str, Counter[int]] = defaultdict(Counter)
        self.puts: Counter[str] = Counter()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.batch_sizes.clear()
            self.puts.clear()

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        with self._lock:
            self.calls[name] += 1
            if model.name == "BatchWriteItem":
                for table, requests in params.get("RequestItems", {}).items():
                    self.batch_sizes[table][len(requests)] += 1
            elif model.name == "PutItem":
                self.puts[str(params.get("TableName"))] += 1

    def snapshot(self) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
        with self._lock:
            calls = dict(sorted(self.calls.items()))
            batches = {
                table: {
                    "calls": sum(sizes.values()),
                    "items": sum(size * n for size, n in sizes.items()),
                    "sizes": {str(size): n for size, n in sorted(sizes.items())},
                    "puts": self.puts.get(table, 0),
                }
                for table, sizes in sorted(self.batch_sizes.items())
            }
            for table, puts in self.puts.items():  # tables written with PutItem alone
                batches.setdefault(table, {"calls": 0, "items": 0, "sizes": {}, "puts": puts})
        return calls, batches


COUNTER = CallCounter()


def _counted_session(*args: Any, **kwargs: Any) -> boto3.Session:
    """`shared.aws.new_session` plus the call counter: the factory the sync builds uses it."""
    session = _original_new_session(*args, **kwargs)  # (an assumed account's credentials)
    session.events.register("provide-client-params", COUNTER.record)
    return session


class ThreadedProfiling:
    """A profiler per pool task plus one for the main thread, merged at the end.

    Python profilers see only the thread that started them, and the sync works each scope on
    a worker thread, so the sync module's per-scope function is swapped for one that runs
    every scope in its own profiler. Subclasses say which profiler and how to merge.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.results: list[Any] = []
        inventory_sync.sync.sync_scope = self.wrap(inventory_sync.sync.sync_scope)  # type: ignore[assignment]

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn`, profiled in whichever thread runs it."""

        def profiled(*args: Any, **kwargs: Any) -> Any:
            with self.profile():
                return fn(*args, **kwargs)

        return profiled

    @contextlib.contextmanager
    def profile(self) -> Iterator[None]:
        """Profile the calling thread for the `with` block; keep the result."""
        profiler = self._start()
        try:
            yield
        finally:
            result = self._stop(profiler)
            with self._lock:
                self.results.append(result)

    def _start(self) -> Any:
        raise NotImplementedError

    def _stop(self, profiler: Any) -> Any:
        raise NotImplementedError

    def write(self, prefix: Path) -> list[str]:
        """Merge the results and write them next to `prefix`; return the paths written."""
        raise NotImplementedError


class WallProfiling(ThreadedProfiling):
    """pyinstrument: wall-clock samples per thread; `<prefix>.txt`, `.html`, `.pyisession`."""

    def __init__(self) -> None:
        from pyinstrument import Profiler  # imported only when this profile is asked for

        self._profiler_class = Profiler
        super().__init__()

    def _start(self) -> Any:
        profiler = self._profiler_class(interval=PROFILE_INTERVAL_SECONDS, async_mode="disabled")
        profiler.start()
        return profiler

    def _stop(self, profiler: Any) -> Any:
        return profiler.stop()

    def write(self, prefix: Path) -> list[str]:
        """Combine every session; write `<prefix>.txt` (tree + flat self time), `.html`, and
        `.pyisession` (re-render any view: `pyinstrument --load <file> -r html`)."""
        from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer
        from pyinstrument.session import Session

        sessions = list(self.results)
        if not sessions:
            return []
        # Pairwise rounds keep combining O(samples x log sessions), not x sessions.
        while len(sessions) > 1:
            sessions = [
                Session.combine(*sessions[i : i + 2]) if i + 1 < len(sessions) else sessions[i]
                for i in range(0, len(sessions), 2)
            ]
        session = sessions[0]
        paths = [prefix.with_suffix(suffix) for suffix in (".txt", ".html", ".pyisession")]
        tree = ConsoleRenderer(unicode=True, time="seconds").render(session)
        # show_all: library frames keep their own self time instead of folding it into the
        # nearest project frame, so botocore's serialiser and parser show up by name.
        flat = ConsoleRenderer(unicode=True, flat=True, show_all=True, time="seconds").render(
            session
        )
        paths[0].write_text(
            "pyinstrument: wall-clock samples summed over the sync's threads. Time waiting on\n"
            "a socket (socket.recv_into) or a lock is waiting, not CPU; the GIL wait after a\n"
            "blocking call counts there too. For CPU only, run with --cpu-profile.\n\n"
            f"{tree}\n\n==== flat: self time per function, every frame ====\n\n{flat}"
        )
        paths[1].write_text(HTMLRenderer().render(session))
        session.save(paths[2])
        return [str(path) for path in paths]


class CpuProfiling(ThreadedProfiling):
    """cProfile timed by each thread's own CPU clock: waiting (sockets, locks, the GIL) costs
    nothing, so the totals are where the sync's CPU goes. cProfile's per-call overhead
    inflates small, hot functions; compare functions, not absolute seconds.
    Writes `<prefix>.txt` (by self time and by cumulative time) and `.pstats`.
    """

    def _start(self) -> Any:
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        return profiler

    def _stop(self, profiler: Any) -> Any:
        profiler.disable()
        return profiler

    def write(self, prefix: Path) -> list[str]:
        if not self.results:
            return []
        paths = [prefix.with_suffix(".txt"), prefix.with_suffix(".pstats")]
        stats = pstats.Stats(self.results[0])
        for profiler in self.results[1:]:
            stats.add(profiler)
        stats.dump_stats(paths[1])
        report = io.StringIO()
        report.write("cProfile, CPU seconds per thread (time.thread_time), summed over threads\n")
        for order in ("tottime", "cumulative"):
            report.write(f"\n==== top 60 by {order} ====\n")
            pstats.Stats(str(paths[1]), stream=report).sort_stats(order).print_stats(60)
        paths[0].write_text(report.getvalue())
        return [str(path) for path in paths]


def _peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes; the benchmark targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_once(number: int, profiling: ThreadedProfiling | None) -> dict[str, Any]:
    """One sync with nothing but the environment as input; its figures as a dict."""
    COUNTER.reset()
    summary: dict[str, Any] | None = None
    error = None
    cpu_before, wall_before = _cpu_seconds(), time.perf_counter()
    with profiling.profile() if profiling is not None else contextlib.nullcontext():
        try:
            summary = sync_source_server_inventory({})
        except Exception as exc:  # report it to the parent; the run's figures still count
            summary = getattr(exc, "summary", None)
            error = "".join(traceback.format_exception(exc))
    wall = time.perf_counter() - wall_before
    cpu = _cpu_seconds() - cpu_before
    calls, batches = COUNTER.snapshot()
    return {
        "event": "run",
        "run": number,
        "summary": summary,
        "error": error,
        "wallSeconds": wall,
        "cpuSeconds": cpu,
        "peakRssMiB": _peak_rss_mib(),
        "calls": calls,
        "batchWrites": batches,
        # False would mean the sync no longer builds its session through
        # shared.aws.new_session: the call counts below would all be zero, not measured.
        "callCounterAttached": bool(calls),
    }


def _answer(channel: TextIO, document: dict[str, Any]) -> None:
    channel.write(PREFIX + json.dumps(document, default=str) + "\n")
    channel.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the inventory sync when told; measure it.")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--profile", type=Path, help="write <PROFILE>.txt/.html (pyinstrument)")
    kind.add_argument("--cpu-profile", type=Path, help="write <PROFILE>.txt/.pstats (cProfile)")
    args = parser.parse_args(argv)

    # Answers go to the original stdout; everything else written to fd 1 goes to stderr.
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    shared.aws.new_session = _counted_session
    profiling: ThreadedProfiling | None = None
    profile_prefix = args.profile or args.cpu_profile
    if args.profile:
        profiling = WallProfiling()
    elif args.cpu_profile:
        profiling = CpuProfiling()
    _answer(
        channel,
        {
            "event": "ready",
            "pid": os.getpid(),
            "startupCpuSeconds": _cpu_seconds(),
            # The baseline the memory estimate scales from: imports done, nothing synced.
            "rssMiB": _peak_rss_mib(),
        },
    )
    runs = 0
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            runs += 1
            _answer(channel, run_once(runs, profiling))
        elif command == "exit":
            break
    files = profiling.write(profile_prefix) if profiling is not None else []
    _answer(channel, {"event": "exit", "profileFiles": files, "peakRssMiB": _peak_rss_mib()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
