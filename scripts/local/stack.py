"""The embedded local AWS: moto and the DRS simulator, each in its own process, on loopback.

From Python:

    with LocalStack() as stack:
        stack.moto_endpoint   # http://127.0.0.1:PORT  (STS, IAM, S3, DynamoDB, EC2, Lambda, ...)
        stack.drs_endpoint    # http://127.0.0.1:PORT  (DRS, via AWS_ENDPOINT_URL_DRS)
        stack.control         # SimulatorControl: fleets, faults, latency, request counts

From a shell: `python -m scripts.local.stack` prints the endpoints (and the variables to
export) and serves until Ctrl-C or SIGTERM.

Both servers pick free ports on 127.0.0.1 and are stopped (SIGTERM, then SIGKILL) when the
block or the command ends, whatever the reason. Each runs in its own session, so a Ctrl-C
reaches only this process, which then stops them in order; on Linux they are also told to
exit if the thread that started them dies without cleaning up (PR_SET_PDEATHSIG), so even a
SIGKILL of the parent leaves no server behind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from scripts.local.drs_simulator import SimulatorControl

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
# After SIGTERM a server gets this long to exit before SIGKILL. moto needs seconds of CPU at
# exit just to free its in-memory state, which is thrown away anyway: not worth waiting for.
STOP_GRACE_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 10.0
# The credentials and region every client of the local AWS uses: moto's default account.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# Started in place of each server: asks the kernel for SIGTERM when the thread that started it
# dies (PR_SET_PDEATHSIG, Linux; kept across exec), then becomes the server. Done in the new
# interpreter rather than in a preexec_fn, which is unsafe in a process with threads.
_EXEC_WITH_PARENT_DEATH_SIGNAL = """
import ctypes, os, signal, sys
parent = int(sys.argv[1])
if sys.platform == "linux":
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
if os.getppid() != parent:
    sys.exit("the parent exited before the server started")
os.execv(sys.argv[2], sys.argv[2:])
"""


class StackError(Exception):
    """A server of the local AWS did not start (the message carries the end of its log)."""


def server_environment() -> dict[str, str]:
    """The servers' environment: this one without AWS settings (no profile can leak in)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


class _ServerProcess:
    """One server started as `python -m MODULE ...` that announces `PREFIX=URL` on stdout."""

    def __init__(self, name: str, module: str, args: Sequence[str], prefix: str, log: Path) -> None:
        self.name = name
        self.log_path = log
        self._prefix = prefix
        self._log: IO[str] = log.open("a")
        command = [sys.executable, "-m", module, *args]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _EXEC_WITH_PARENT_DEATH_SIGNAL, str(os.getpid()), *command],
            cwd=ROOT,
            env=server_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self.endpoint: str | None = None
        self._announced = threading.Event()
        self._reader = threading.Thread(
            target=self._read_stdout, name=f"{name}-stdout", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_stdout(self) -> None:
        # Keeps draining after the announcement, so a chatty server can never block on a full pipe.
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if self.endpoint is None and line.startswith(self._prefix + "="):
                self.endpoint = line.strip().split("=", 1)[1]
                self._announced.set()
            else:
                self._log.write(line)
                self._log.flush()
        self._announced.set()  # EOF: the process ended before (or after) announcing

    def wait_for_endpoint(self, timeout: float) -> str:
        """The announced endpoint. Raises StackError if the server exits or stays silent."""
        self._announced.wait(timeout)
        if self.endpoint is None:
            state = (
                f"exited with status {self.process.poll()}"
                if self.process.poll() is not None
                else f"announced nothing within {timeout:.0f} s"
            )
            raise StackError(f"{self.name} {state}; end of its log:\n{self.log_tail()}")
        return self.endpoint

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM the server's process group; SIGKILL it after STOP_GRACE_SECONDS."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


class LocalStack:
    """moto (server mode) and the DRS simulator as two processes on free loopback ports.

    Start it from a thread that lives as long as the stack (the main thread, typically): on
    Linux the servers are stopped when the thread that started them ends.

    Args:
        log_dir: where the servers' logs go (default: a temporary folder removed on stop).
        moto_latency: added latency per service in ms, e.g. {"ec2": 50} (moto's --latency).
        start_timeout: seconds each server may take to announce its endpoint.
    """

    def __init__(
        self,
        *,
        log_dir: Path | None = None,
        moto_latency: Mapping[str, float] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self._log_dir = log_dir
        self._own_log_dir = False
        self._moto_latency = dict(moto_latency or {})
        self._start_timeout = start_timeout
        self._moto: _ServerProcess | None = None
        self._drs: _ServerProcess | None = None

    @property
    def moto_endpoint(self) -> str:
        if self._moto is None or self._moto.endpoint is None:
            raise RuntimeError("LocalStack is not started")
        return self._moto.endpoint

    @property
    def drs_endpoint(self) -> str:
        if self._drs is None or self._drs.endpoint is None:
            raise RuntimeError("LocalStack is not started")
        return self._drs.endpoint

    @property
    def control(self) -> SimulatorControl:
        """The simulator's control client (fleets, faults, latency, request counts)."""
        return SimulatorControl(self.drs_endpoint)

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the running servers, by name."""
        return {server.name: server.pid for server in (self._moto, self._drs) if server}

    @property
    def log_dir(self) -> Path:
        if self._log_dir is None:
            raise RuntimeError("LocalStack is not started")
        return self._log_dir

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 and the AWS CLI at this stack, with its fake credentials."""
        return {
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "AWS_ENDPOINT_URL_DRS": self.drs_endpoint,
            **LOCAL_CREDENTIALS,
        }

    def check_running(self) -> None:
        """Raise StackError (with the end of its log) if a server has exited."""
        for server in (self._moto, self._drs):
            if server is not None and server.process.poll() is not None:
                raise StackError(
                    f"{server.name} (pid {server.pid}) exited with status "
                    f"{server.process.returncode}; end of its log:\n{server.log_tail()}"
                )

    def start(self) -> LocalStack:
        """Start moto, then the simulator (which attributes callers through moto's STS).

        Raises StackError (with the server's log) when one does not come up; whatever was
        started is stopped first.
        """
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="drs-local-aws-"))
            self._own_log_dir = True
        self._log_dir.mkdir(parents=True, exist_ok=True)
        try:
            moto_args = ["--port", "0"]
            for service, millis in self._moto_latency.items():
                moto_args += ["--latency", f"{service}={millis:g}"]
            self._moto = _ServerProcess(
                "moto",
                "scripts.local.moto_server",
                moto_args,
                "MOTO_ENDPOINT",
                self._log_dir / "moto.log",
            )
            moto_endpoint = self._moto.wait_for_endpoint(self._start_timeout)
            self._drs = _ServerProcess(
                "drs-simulator",
                "scripts.local.drs_simulator",
                # DRS's events go to moto's EventBridge, as DRS puts them in AWS.
                [
                    "--port",
                    "0",
                    "--sts-endpoint",
                    moto_endpoint,
                    "--events-endpoint",
                    moto_endpoint,
                ],
                "DRS_ENDPOINT",
                self._log_dir / "drs-simulator.log",
            )
            self._drs.wait_for_endpoint(self._start_timeout)
            self.control.wait_until_healthy(timeout=self._start_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers (the simulator first: it calls moto), and remove a temporary log
        folder. Safe to call twice."""
        for server in (self._drs, self._moto):
            if server is not None:
                server.stop()
        if self._own_log_dir and self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
            self._own_log_dir = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.local.stack",
        description="Run the local AWS (moto + DRS simulator) on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--log-dir", type=Path, help="keep the servers' logs here")
    parser.add_argument(
        "--moto-latency",
        action="append",
        default=[],
        metavar="SERVICE=MS",
        help="added latency per request of a moto service, e.g. ec2=50 (repeatable)",
    )
    args = parser.parse_args(argv)
    latency: dict[str, float] = {}
    for spec in args.moto_latency:
        service, _, millis = spec.partition("=")
        if not service or not millis:
            parser.error(f"--moto-latency takes SERVICE=MS, got {spec!r}")
        latency[service] = float(millis)

    # SIGTERM (e.g. from a supervisor) stops the servers the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    stack = LocalStack(log_dir=args.log_dir, moto_latency=latency)
    try:
        stack.start()
        print(f"MOTO_ENDPOINT={stack.moto_endpoint}")
        print(f"DRS_ENDPOINT={stack.drs_endpoint}", flush=True)
        exports = " ".join(f"{k}={v}" for k, v in stack.environment().items())
        print(
            f"# local AWS running (moto pid {stack.pids['moto']}, DRS simulator pid "
            f"{stack.pids['drs-simulator']}); logs in {stack.log_dir}\n"
            f"# in another shell:  export {exports}\n"
            f"# deploy:  scripts/deploy.sh qa --endpoint-url {stack.moto_endpoint}\n"
            f"# check:   scripts/e2e-inventory-sync.sh qa --endpoint-url {stack.moto_endpoint} "
            f"--drs-endpoint-url {stack.drs_endpoint}\n"
            "# Ctrl-C stops both servers.",
            flush=True,
        )
        while True:
            stack.check_running()
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping the local AWS", file=sys.stderr)
        return 0
    except StackError as exc:
        print(f"stack: error: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
