"""Child processes of the benchmark: the two fake services and the sync, plus their CPU clocks.

Every process is started here with `subprocess`, bound to loopback by its own code, and stopped
by its pid (SIGTERM, then SIGKILL) by whoever started it. On Linux each child also gets
PR_SET_PDEATHSIG, so it dies with the harness even if the harness is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[2]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


class BenchProcessError(RuntimeError):
    """A child process did not start, announce itself or answer in time."""


def clean_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment without any AWS configuration, plus fake credentials.

    Nothing the harness starts may reach real AWS or read the developer's profile.
    `extra` values of None remove a variable.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """preexec_fn: SIGTERM this child when the harness dies (Linux only; a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far, from /proc/<pid>/stat (all threads).

    Raises:
        BenchProcessError: the process is gone or /proc is unavailable.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        raise BenchProcessError(f"cannot read CPU time of pid {pid}: {exc}") from exc
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLOCK_TICKS


class ChildProcess:
    """A Python child (`python -m module args...`) whose stdout is read line by line.

    stdout lines go to a queue (a reader thread drains the pipe, so the child never blocks on
    a full pipe); stderr goes to `log_path`. `stop()` ends it by pid; use it as a context
    manager so that happens on any exit, Ctrl-C included.
    """

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        stdin: bool = False,
        stop_grace_seconds: float = 10.0,
    ) -> None:
        self.name = module.rsplit(".", 1)[-1]
        self._argv = [sys.executable, "-m", module, *args]
        self._env = dict(env)
        self._log_path = log_path
        self._stdin = stdin
        self._stop_grace_seconds = stop_grace_seconds
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BenchProcessError(f"{self.name} is not started")
        return self._process.pid

    def start(self) -> ChildProcess:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self._log_path.open("w")
        self._process = subprocess.Popen(
            self._argv,
            cwd=REPO_ROOT,
            env=self._env,
            stdin=subprocess.PIPE if self._stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        threading.Thread(
            target=self._drain, args=(self._process.stdout,), name=f"{self.name}-out", daemon=True
        ).start()
        return self

    def _drain(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # EOF: the child closed stdout (usually: it exited)

    def read_line(self, timeout: float, prefix: str = "") -> str:
        """The next stdout line starting with `prefix` (other lines are skipped).

        Raises:
            BenchProcessError: nothing within `timeout` seconds, or the child ended first.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchProcessError(
                    f"{self.name} wrote no {prefix or 'line'} within {timeout:.0f} s; "
                    f"see {self._log_path}"
                )
            try:
                line = self._lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line is None:
                code = self._process.wait(timeout=5) if self._process else None
                raise BenchProcessError(
                    f"{self.name} exited (code {code}) before writing {prefix or 'a line'}; "
                    f"see {self._log_path}"
                )
            if line.startswith(prefix):
                return line[len(prefix) :]

    def send(self, line: str) -> None:
        """Write one line to the child's stdin."""
        if self._process is None or self._process.stdin is None:
            raise BenchProcessError(f"{self.name} has no stdin")
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()

    def wait(self, timeout: float) -> int:
        if self._process is None:
            raise BenchProcessError(f"{self.name} is not started")
        return self._process.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM this pid, SIGKILL it after the stop grace period; idempotent."""
        process, self._process = self._process, None
        timeout = self._stop_grace_seconds
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ChildProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def moto_server(
    log_dir: Path,
    env: Mapping[str, str],
    latency_ms: Mapping[str, float],
    *,
    fast_dynamodb: bool = False,
    capacity: bool = False,
    manual_gc: bool = False,
) -> Iterator[tuple[ChildProcess, str]]:
    """moto in server mode as its own process; yields (process, endpoint URL).

    `fast_dynamodb`, `capacity` and `manual_gc`: see `scripts.local.moto_server`
    (--fast-dynamodb, --capacity, --manual-gc).
    """
    args = ["--port", "0"]
    for service, millis in latency_ms.items():
        if millis:
            args += ["--latency", f"{service}={millis:g}"]
    if fast_dynamodb:
        args.append("--fast-dynamodb")
    if capacity:
        args.append("--capacity")
    if manual_gc:
        args.append("--manual-gc")
    # moto holds only in-memory state: after a short grace, SIGKILL spares the seconds its
    # interpreter spends freeing tens of thousands of items on the way out.
    with ChildProcess(
        "scripts.local.moto_server",
        args,
        env=env,
        log_path=log_dir / "moto.log",
        stop_grace_seconds=2.0,
    ) as process:
        yield process, process.read_line(60, prefix="MOTO_ENDPOINT=")


@contextlib.contextmanager
def drs_simulator(
    log_dir: Path, env: Mapping[str, str], sts_endpoint: str
) -> Iterator[tuple[ChildProcess, str]]:
    """The DRS simulator as its own process, attributing callers via moto's STS."""
    args = ["--port", "0", "--sts-endpoint", sts_endpoint]
    with ChildProcess(
        "scripts.local.drs_simulator", args, env=env, log_path=log_dir / "drs-simulator.log"
    ) as process:
        yield process, process.read_line(60, prefix="DRS_ENDPOINT=")
