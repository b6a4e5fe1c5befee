"""`local up|down|status`: the embedded local AWS (moto + the DRS simulator) for the console.

`up` starts `python -m scripts.local.stack` as a background process of its own session and
records its pid and endpoints in `.local-aws/state.json`; every other command finds them
there with `--local`. `down` stops that process (by the recorded pid, after checking it is
still the stack), which stops its two servers. Nothing else is touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from scripts.cli.client import (
    DATA_MANAGEMENT,
    LOCAL_REGION,
    QUERY,
    ROOT,
    STATE_DIR,
    STATE_FILE,
    Target,
    read_state,
)
from scripts.cli.context import Console, pass_console
from scripts.cli.errors import EXIT_FAILED, EXIT_UNREACHABLE, ConsoleError
from scripts.cli.output import stderr_console

START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
STACK_MODULE = "scripts.local.stack"


def stack_alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) `scripts.local.stack` process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return False
    return STACK_MODULE in cmdline and state != "Z"


def running_state() -> dict[str, Any] | None:
    state = read_state()
    if state and isinstance(state.get("pid"), int) and stack_alive(state["pid"]):
        return state
    return None


def start_stack(timeout: float = START_TIMEOUT) -> dict[str, Any]:
    """Start the stack in the background; its endpoints and pid, recorded in STATE_FILE."""
    STATE_DIR.mkdir(exist_ok=True)
    announce = STATE_DIR / "stack.out"
    logs = STATE_DIR / "logs"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with announce.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", STACK_MODULE, "--log-dir", str(logs)],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command; a Ctrl-C here does not reach it
        )
    deadline = time.monotonic() + timeout
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        for line in announce.read_text(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep and key in ("MOTO_ENDPOINT", "DRS_ENDPOINT"):
                found[key] = value.strip()
        if len(found) == 2:
            break
        if process.poll() is not None:
            raise ConsoleError(
                f"the local AWS exited with status {process.returncode}:\n"
                + announce.read_text(errors="replace")[-2000:]
            )
        time.sleep(0.2)
    else:
        process.terminate()
        raise ConsoleError(f"the local AWS announced no endpoints within {timeout:.0f} s")
    state = {
        "pid": process.pid,
        "motoEndpoint": found["MOTO_ENDPOINT"],
        "drsEndpoint": found["DRS_ENDPOINT"],
        "logDir": str(logs),
        "startedAt": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    STATE_FILE.write_text(json.dumps(state, indent=2) + "\n")
    return state


def stop_stack(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM the stack (it stops its servers), SIGKILL after `timeout`. True when it ended."""
    if not stack_alive(pid):
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not stack_alive(pid):
            return True
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)  # its servers get SIGTERM from the kernel (PR_SET_PDEATHSIG)
    time.sleep(0.5)
    return not stack_alive(pid)


def _deploy(env: str, endpoint: str) -> None:
    from scripts.demo import REGIONS, deploy_environment

    environment = deploy_environment()
    environment.setdefault("DRS_REGIONS", ",".join(REGIONS))
    err = stderr_console()
    err.print(f"deploying {env}: scripts/deploy.sh {env} --endpoint-url {endpoint}")
    result = subprocess.run(
        [str(ROOT / "scripts" / "deploy.sh"), env, "--endpoint-url", endpoint],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise ConsoleError(
            f"scripts/deploy.sh {env} failed (exit {result.returncode}):\n"
            + "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        )


def _seed(target: Target) -> None:
    """The demo's organisation: EC2 instances and the DRS fleet, then its target accounts
    onboarded as the demo onboards them (registered through the deployed
    data-management-handler, roles from cfn/target-account-role.yaml, connection tests),
    then the demo's throttled scope."""
    from scripts.demo import (
        TARGET_ACCOUNTS,
        onboard_target_accounts,
        seed_organisation,
        throttle_scope,
    )
    from scripts.local.drs_simulator import SimulatorControl
    from scripts.local.runner import LocalRunner

    assert target.endpoint and target.drs_endpoint
    control = SimulatorControl(target.drs_endpoint)
    seeded = seed_organisation(target.endpoint, control)
    with LocalRunner(
        target.endpoint, target.drs_endpoint, region=target.region or LOCAL_REGION
    ) as runner:
        onboarded = onboard_target_accounts(
            runner,
            TARGET_ACCOUNTS,
            target.function_name(DATA_MANAGEMENT),
            f"{target.project}-drs-events-{target.env}",
        )
    throttle_scope(control)
    passed = sum(1 for test in onboarded.tests.values() if test.get("ok"))
    stderr_console().print(
        f"seeded {seeded.servers} DRS source servers and onboarded {len(TARGET_ACCOUNTS)} "
        f"target accounts ({passed} passed their connection test; the demo's organisation)"
    )


@click.group()
def local() -> None:
    """The embedded local AWS (moto + the DRS simulator on 127.0.0.1)."""


@local.command()
@click.option("--deploy", is_flag=True, help="then deploy --env to it (scripts/deploy.sh)")
@click.option("--seed", is_flag=True, help="then seed the demo's organisation (implies --deploy)")
@pass_console
def up(console: Console, deploy: bool, seed: bool) -> None:
    """Start the local AWS in the background (or report the running one). Prints the
    variables to export; `drs-inventory --local ...` finds it without them."""
    state = running_state()
    err = stderr_console()
    if state is None:
        state = start_stack()
        err.print(f"local AWS started (pid {state['pid']}), logs in {state['logDir']}")
    else:
        err.print(f"local AWS already running (pid {state['pid']})")
    target = Target(
        console.target.env,
        console.target.project,
        "us-east-1",
        None,
        True,
        state["motoEndpoint"],
        state["drsEndpoint"],
    )
    if deploy or seed:
        _deploy(target.env, target.endpoint or "")
    if seed:
        _seed(target)
    click.echo(
        f"export AWS_ENDPOINT_URL={state['motoEndpoint']} "
        f"AWS_ENDPOINT_URL_DRS={state['drsEndpoint']} "
        "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        "AWS_DEFAULT_REGION=us-east-1"
    )


@local.command()
def down() -> None:
    """Stop the local AWS that `local up` started (only that one, by its recorded pid)."""
    state = read_state()
    if not state or not isinstance(state.get("pid"), int):
        stderr_console().print("no local AWS recorded: nothing to stop")
        return
    pid = state["pid"]
    if not stop_stack(pid):
        raise ConsoleError(f"the local AWS (pid {pid}) did not stop", EXIT_FAILED)
    STATE_FILE.unlink(missing_ok=True)
    stderr_console().print(f"stopped the local AWS (pid {pid})")


@local.command("status")
@pass_console
def local_status(console: Console) -> None:
    """Whether the local AWS runs, its endpoints, and whether --env is deployed there."""
    state = running_state()
    if state is None:
        raise ConsoleError(
            "the local AWS is not running: `drs-inventory local up`", EXIT_UNREACHABLE
        )
    import boto3

    functions = (
        boto3.client(
            "lambda",
            endpoint_url=state["motoEndpoint"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        .list_functions()
        .get("Functions", [])
    )
    names = {f["FunctionName"] for f in functions}
    target = console.target
    deployed = {
        handler: f"{target.project}-{handler}-{target.env}" in names
        for handler in (DATA_MANAGEMENT, QUERY)
    }
    answer = {**state, "env": target.env, "deployed": deployed}
    console.output.emit(answer)


def register(group: click.Group) -> None:
    group.add_command(local)
