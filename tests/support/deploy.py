"""Run scripts/deploy.sh and the aws CLI the way an operator does, against the local AWS.

Every subprocess gets an explicit environment: fake credentials, no profile or config
file, no instance-metadata lookups, so nothing can reach real AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# Variables deploy.sh (or the functions' contract) reads: never inherited from the caller.
_DEPLOY_VARIABLES = {
    "PROJECT_NAME",
    "DEPLOY_BUCKET",
    "ALARM_EMAIL",
    "ENABLE_INVENTORY_SYNC",
    "TARGET_ACCOUNT_ROLE_NAME_PATTERN",
    "DRS_REGIONS",
    "TARGET_ORG_ID",
    "TARGET_ACCOUNT_IDS",
    "MOTO_ACCOUNT_ID",
}
# The demo's target accounts (scripts/demo.py): a local deploy scopes the hub's AssumeRole
# grant to them, as a real deploy must scope it to some accounts or an organization.
TARGET_ACCOUNT_IDS = "111122223333,444455556666,777788889999"


def deploy_env(*, credentials: bool = True, **extra: str) -> dict[str, str]:
    """The caller's environment minus AWS settings, plus fake credentials (unless disabled)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_") and name not in _DEPLOY_VARIABLES
    }
    env.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        TARGET_ACCOUNT_IDS=TARGET_ACCOUNT_IDS,
    )
    if credentials:
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    env.update(extra)
    return env


def run_deploy(
    *args: str, root: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`root/scripts/deploy.sh ARGS...` run from `root`; never raises on a non-zero exit."""
    return subprocess.run(
        [str(root / "scripts" / "deploy.sh"), *args],
        cwd=root,
        env=deploy_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def aws_cli(endpoint: str, *args: str) -> Any:
    """`aws ARGS... --output json` against `endpoint`; the parsed output (None when empty)."""
    executable = ROOT / ".venv" / "bin" / "aws"
    command = str(executable) if executable.exists() else shutil.which("aws")
    assert command, "aws CLI not found"
    result = subprocess.run(
        [command, "--endpoint-url", endpoint, "--region", REGION, "--output", "json", *args],
        env=deploy_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"aws {' '.join(args)} failed: {result.stderr}"
    return json.loads(result.stdout) if result.stdout.strip() else None


def client(endpoint: str, service: str) -> Any:
    """A boto3 client for `service` at `endpoint` with the fake credentials."""
    return boto3.client(  # type: ignore[call-overload]  # service is not a literal
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def copy_repo(destination: Path, source: Path = ROOT) -> Path:
    """A copy of the working tree `source` to change freely (and that others' edits of the
    shared tree cannot change under a test): venv linked, requirements cache copied."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "build", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
        ".local-aws",
    )  # fmt: skip
    shutil.copytree(source, destination, ignore=ignore, symlinks=True)
    (destination / ".venv").symlink_to(ROOT / ".venv")
    cache = source / "build" / "requirements"
    if cache.is_dir():
        # Finished installs only: a name starting with "." is a build in progress.
        shutil.copytree(
            cache,
            destination / "build" / "requirements",
            ignore=lambda folder, names: [n for n in names if folder == str(cache) and n[0] == "."],
        )
    return destination


@contextmanager
def moto_server_process(log_path: Path, start_timeout: float = 60) -> Iterator[str]:
    """`python -m scripts.local.moto_server --port 0` in its own process; yields its endpoint.

    The process is stopped (terminate, then kill) when the block exits; its log goes to
    `log_path`.
    """
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.local.moto_server", "--port", "0"],
            cwd=ROOT,
            env=deploy_env(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        first_line: list[str] = []
        assert process.stdout is not None
        reader = threading.Thread(
            target=lambda: first_line.append(process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(start_timeout)
        if not first_line or not first_line[0].startswith("MOTO_ENDPOINT="):
            raise RuntimeError(f"moto server did not start; see {log_path}")
        yield first_line[0].strip().split("=", 1)[1]
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
