"""`python -m scripts.bench.events` works end to end on a tiny fleet (about 80 s here): the
burst's changes all reach the inventory through the forwarding rule, the hub bus, its queue
and refresh_source_servers, none is lost or reordered, the refreshes stay within one
DescribeSourceServers per scope per batch, and the processes it started are gone.

No latency is asserted: the machine is shared, and the benchmark reports times."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int, module: str) -> bool:
    """True if `pid` still runs `module` (a reused pid running something else does not count)."""
    try:
        return module in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def test_a_small_burst_lands_completely(tmp_path: Path) -> None:
    out = tmp_path / "events.json"
    logs = tmp_path / "logs"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.bench.events",
            "--servers-per-scope",
            "3",
            "--rate",
            "5",
            "--seconds",
            "3",
            "--drain",
            "45",
            "--json",
            str(out),
            "--log-dir",
            str(logs),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "latency p99 / max" in completed.stdout
    result = json.loads(out.read_text())
    assert result["eventsSent"] == 15
    assert result["changesFailed"] == 0
    reached = result["shown"] + result["overtaken"] + result["coalesced"]
    assert reached == result["eventsSent"], result
    assert result["unseen"] == 0
    assert result["lost"] == 0
    assert result["reordered"] == 0
    assert result["refreshInvocations"] >= 1
    assert result["callsMet"], result
    assert result["describeCalls"] <= result["batchScopes"]
    assert result["itemsWritten"] >= 1
    assert set(result["pids"]) == {"moto", "drs-simulator"}
    for name, pid in result["pids"].items():
        assert not _alive(pid, "scripts.local"), f"{name} pid {pid} still runs"
