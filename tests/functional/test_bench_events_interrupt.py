"""Ctrl-C during `python -m scripts.bench.events`'s burst stops the burst, stops the servers
it started (moto, the DRS simulator) and exits non-zero, well before the burst would have
ended (about 60 s here: the setup before the burst is most of it)."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time

from tests.functional.test_bench_events_smoke import REPO_ROOT, _alive

BURST_SECONDS = 300  # far longer than the test waits: only Ctrl-C can end it in time
STARTED = re.compile(r"local AWS started \(moto pid (\d+), drs-simulator pid (\d+)\)")


def test_ctrl_c_during_the_burst_stops_everything_and_exits_non_zero() -> None:
    bench = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scripts.bench.events",
            "--servers-per-scope",
            "3",
            "--rate",
            "5",
            "--seconds",
            str(BURST_SECONDS),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read_stdout() -> None:
        assert bench.stdout is not None
        for line in bench.stdout:
            lines.put(line)

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        pids: dict[str, int] = {}
        seen: list[str] = []
        deadline = time.monotonic() + 240
        while not any("burst:" in line for line in seen):
            assert time.monotonic() < deadline and bench.poll() is None, "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
            started = STARTED.search(seen[-1])
            if started:
                pids = {"moto": int(started[1]), "drs-simulator": int(started[2])}
        assert pids, "".join(seen)
        time.sleep(3)  # changes under way

        interrupted = time.monotonic()
        bench.send_signal(signal.SIGINT)
        returncode = bench.wait(timeout=90)
        stopped_in = time.monotonic() - interrupted
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)

    stderr = bench.stderr.read() if bench.stderr else ""
    assert returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr
    assert stopped_in < 60
    for name, pid in pids.items():
        assert not _alive(pid, "scripts.local"), f"{name} pid {pid} still runs"
