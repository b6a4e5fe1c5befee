"""Where the console talks to, and how it invokes the deployed functions.

`Target` is what the global options say (environment, project, region, profile, local or
not, endpoints). `connect` turns it into a `FunctionClient`:

- against AWS: boto3 `lambda.invoke` of `${project}-data-management-handler-${env}` or
  `${project}-query-handler-${env}` (boto3's default credential chain, `--profile`);
- against the embedded local AWS: moto cannot run Lambda code without Docker, so the local
  runner (`scripts.local.runner`) runs the deployed package as Lambda would. Local is
  `--local`, an `--endpoint-url` on loopback, or `AWS_ENDPOINT_URL` on loopback (the line
  `python -m scripts.local.stack` prints); never boto3's Invoke against moto, which needs
  Docker and fails with DNS errors.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scripts.cli.errors import (
    EXIT_USAGE,
    ConsoleError,
    FunctionFailedError,
    NotDeployedError,
    UnreachableError,
)
from scripts.local.reachable import unreachable_reason

ENVIRONMENTS = ("dev", "test", "qa", "uat", "staging", "prod")
DEFAULT_PROJECT = "aws-drs-orchestration"
DATA_MANAGEMENT = "data-management-handler"
QUERY = "query-handler"
LOCAL_REGION = "us-east-1"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
ROOT = Path(__file__).resolve().parents[2]
# `drs-inventory local up` records the stack it started here (the folder is git-ignored);
# DRS_INVENTORY_STATE_DIR moves it (tests use their own).
STATE_DIR = Path(os.environ.get("DRS_INVENTORY_STATE_DIR") or ROOT / ".local-aws")
STATE_FILE = STATE_DIR / "state.json"
# A sync may run up to Lambda's 900 s: the read must outlast it, and never be retried.
INVOKE_READ_TIMEOUT = 960

LogSink = Callable[[str], None]


def is_loopback(url: str | None) -> bool:
    """Whether `url` points at this machine (the embedded local AWS listens on loopback)."""
    if not url:
        return False
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def read_state(path: Path = STATE_FILE) -> dict[str, Any] | None:
    """What `local up` recorded (endpoints, pid, log folder), or None."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


@dataclass(frozen=True)
class Target:
    """The global options, resolved: which deployment the command talks to."""

    env: str
    project: str = DEFAULT_PROJECT
    region: str | None = None
    profile: str | None = None
    local: bool = False
    endpoint: str | None = None
    drs_endpoint: str | None = None

    def function_name(self, handler: str) -> str:
        return f"{self.project}-{handler}-{self.env}"

    @property
    def where(self) -> str:
        """Where, in words, for messages."""
        if self.local:
            return f"the local AWS at {self.endpoint}"
        place = f"region {self.region or '(default)'}"
        return place + (f", profile {self.profile}" if self.profile else "")


def resolve_target(
    *,
    env: str,
    project: str,
    region: str | None,
    profile: str | None,
    local: bool,
    endpoint_url: str | None,
    drs_endpoint_url: str | None,
    environ: Mapping[str, str] = os.environ,
    state_file: Path = STATE_FILE,
) -> Target:
    """The Target the options and environment name. Local when asked (`--local`) or when
    the endpoint (`--endpoint-url`, else AWS_ENDPOINT_URL) is on loopback; its endpoints
    come from the options, then the environment, then what `local up` recorded."""
    endpoint = endpoint_url or environ.get("AWS_ENDPOINT_URL") or None
    drs_endpoint = drs_endpoint_url or environ.get("AWS_ENDPOINT_URL_DRS") or None
    if not (local or is_loopback(endpoint)):
        region = region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        return Target(env, project, region, profile, False, endpoint, drs_endpoint)
    if not is_loopback(endpoint):
        endpoint = None  # --local with AWS_ENDPOINT_URL elsewhere: that one is not the local AWS
    if endpoint is None or drs_endpoint is None:
        state = read_state(state_file) or {}
        endpoint = endpoint or state.get("motoEndpoint")
        drs_endpoint = drs_endpoint or state.get("drsEndpoint")
    if endpoint is None:
        raise UnreachableError(
            "--local: no local AWS found: start one with `drs-inventory local up` (or export "
            "the AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_DRS that `python -m scripts.local.stack` "
            "prints)"
        )
    return Target(env, project, region or LOCAL_REGION, None, True, endpoint, drs_endpoint)


class FunctionClient(Protocol):
    def invoke(
        self, handler: str, payload: Mapping[str, Any], *, log_sink: LogSink | None = None
    ) -> Any:
        """The function's answer (parsed JSON). Raises FunctionFailedError when it raised,
        NotDeployedError / UnreachableError when it cannot be invoked."""
        ...

    def close(self) -> None: ...


def check_reachable(url: str, timeout: float = 3.0) -> None:
    """Raise UnreachableError unless something accepts TCP connections at `url`."""
    reason = unreachable_reason(url, timeout)
    if reason is not None:
        raise UnreachableError(
            f"endpoint {url} is unreachable ({reason}); is the local AWS running? "
            "(`drs-inventory local status`)"
        )


PACKAGE_CACHE = STATE_DIR / "packages"


class _PackageCache(dict[str, Path]):
    """The runner's unzipped packages by CodeSha256, kept across commands in PACKAGE_CACHE.

    Fetching a deployed package from moto's S3 and unzipping it costs seconds per function
    and command; the runner checked its bytes against CodeSha256 when it fetched them, so a
    copy filed under that digest is the deployed code for as long as the digest is."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def _path(self, key: str) -> Path:
        # CodeSha256 is base64: its '/' and '+' are not for file names.
        return self.folder / key.replace("/", "_").replace("+", "-")

    def get(self, key: str, default: Any = None) -> Any:
        cached = self._path(key)
        if key not in self and (cached / ".complete").exists():
            self[key] = cached
        return super().get(key, default)

    def __setitem__(self, key: str, value: Path) -> None:
        super().__setitem__(key, value)
        cached = self._path(key)
        if value != cached and not (cached / ".complete").exists():
            import shutil
            import tempfile

            self.folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.folder, prefix=".unpacking-"))
            shutil.copytree(value, staging, dirs_exist_ok=True, symlinks=True)
            (staging / ".complete").touch()
            try:
                staging.rename(cached)
            except OSError:  # another command filed it first
                shutil.rmtree(staging, ignore_errors=True)


@dataclass
class LocalClient:
    """Invokes through the local runner: the deployed package, run as Lambda would."""

    target: Target
    _runner: Any = field(default=None, init=False)

    def _get_runner(self, handler: str) -> Any:
        from scripts.local.runner import LocalRunner

        assert self.target.endpoint is not None
        if self._runner is None:
            check_reachable(self.target.endpoint)
            self._runner = LocalRunner(
                self.target.endpoint,
                self.target.drs_endpoint or "",
                region=self.target.region or LOCAL_REGION,
            )
            # The runner reuses an unzipped package by CodeSha256 (`_task_roots`); give it a
            # memory of the packages earlier commands unzipped.
            if isinstance(getattr(self._runner, "_task_roots", None), dict):
                self._runner._task_roots = _PackageCache(PACKAGE_CACHE)
        if handler == DATA_MANAGEMENT and not self.target.drs_endpoint:
            raise ConsoleError(
                "the local data-management-handler needs the DRS simulator's endpoint: set "
                "AWS_ENDPOINT_URL_DRS or --drs-endpoint-url (both printed by "
                "`python -m scripts.local.stack`), or use `drs-inventory local up`",
                EXIT_USAGE,
            )
        return self._runner

    def invoke(
        self, handler: str, payload: Mapping[str, Any], *, log_sink: LogSink | None = None
    ) -> Any:
        import botocore.exceptions

        from scripts.local.runner import RunnerError

        runner = self._get_runner(handler)
        name = self.target.function_name(handler)
        try:
            invocation = runner.invoke(name, dict(payload), log_sink=log_sink)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise _not_deployed(self.target, name) from exc
            raise ConsoleError(f"{name}: the local AWS answered {exc}") from exc
        except botocore.exceptions.EndpointConnectionError as exc:
            raise UnreachableError(f"endpoint {self.target.endpoint} is unreachable") from exc
        except RunnerError as exc:
            raise ConsoleError(f"{name}: the local runner could not run it: {exc}") from exc
        if not invocation.succeeded:
            raise FunctionFailedError(name, invocation.payload)
        return invocation.payload

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()


@dataclass
class AwsClient:
    """Invokes through Lambda's Invoke API (boto3's default credential chain)."""

    target: Target
    _client: Any = field(default=None, init=False)

    def _lambda(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError

            try:
                session = boto3.Session(
                    profile_name=self.target.profile, region_name=self.target.region
                )
                self._client = session.client(
                    "lambda",
                    endpoint_url=self.target.endpoint,
                    config=Config(
                        read_timeout=INVOKE_READ_TIMEOUT,
                        connect_timeout=10,
                        retries={"mode": "standard", "max_attempts": 1},
                    ),
                )
            except BotoCoreError as exc:  # ProfileNotFound, NoRegionError, ...
                raise ConsoleError(str(exc), EXIT_USAGE) from exc
        return self._client

    def invoke(
        self, handler: str, payload: Mapping[str, Any], *, log_sink: LogSink | None = None
    ) -> Any:
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        name = self.target.function_name(handler)
        client = self._lambda()
        try:
            response = client.invoke(FunctionName=name, Payload=json.dumps(dict(payload)).encode())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ResourceNotFoundException":
                raise _not_deployed(self.target, name) from exc
            raise ConsoleError(f"{name}: Lambda answered {code}: {exc}") from exc
        except EndpointConnectionError as exc:
            raise UnreachableError(
                f"endpoint {exc.kwargs.get('endpoint_url')} is unreachable"
            ) from exc
        except NoCredentialsError as exc:
            raise UnreachableError(
                "no AWS credentials found (boto3's default chain): use --profile, or "
                "--local for the embedded local AWS"
            ) from exc
        except ReadTimeoutError as exc:
            raise ConsoleError(f"{name}: no answer within {INVOKE_READ_TIMEOUT} s") from exc
        body = response["Payload"].read()
        answer = json.loads(body) if body else None
        if response.get("FunctionError"):
            raise FunctionFailedError(name, answer)
        return answer

    def close(self) -> None:
        pass


def _not_deployed(target: Target, name: str) -> NotDeployedError:
    return NotDeployedError(
        f"{name} is not deployed in {target.where}: check --env ({target.env}), --region and "
        f"--project-name, or deploy with `scripts/deploy.sh {target.env}`"
    )


def connect(target: Target) -> LocalClient | AwsClient:
    """The client for `target` (local runner or Lambda Invoke)."""
    return LocalClient(target) if target.local else AwsClient(target)
