"""The local runner: plays EventBridge and Lambda for functions deployed to the local AWS.

moto deploys Lambda functions but cannot run them without Docker. The runner runs exactly what
was deployed, the way Lambda would:

1. reads the function's configuration (Handler, Environment, Timeout, MemorySize, Role) and
   CodeSha256 from the Lambda API;
2. fetches the deployed package: moto's `Code.Location` is a fake URL, so the package is found
   in S3 by the key in that URL, and its SHA-256 must equal CodeSha256;
3. unzips it to a temporary folder and runs it in a subprocess (`sys.executable` without
   site-packages; PYTHONPATH = the package first, then only the SDK modules the Lambda runtime
   provides, taken from this interpreter; a package that carries its own SDK, as ours do,
   runs that copy, as in Lambda), with the function's environment, the execution
   role's credentials (assumed from moto STS as `lambda.amazonaws.com`, so a role whose
   trust policy does not trust Lambda fails here as in AWS), the local endpoints
   (`AWS_ENDPOINT_URL` = moto, `AWS_ENDPOINT_URL_DRS` = the DRS simulator) and the Lambda
   runtime's variables;
   `lambda_bootstrap.py` builds the context and calls the handler;
4. returns what `Invoke` returns: StatusCode 200, and on an unhandled error
   `FunctionError: "Unhandled"` with Payload {"errorType", "errorMessage", ...}; the process
   is killed at Timeout (`Sandbox.Timedout`). The function's log (with START/END/REPORT lines)
   is returned, optionally streamed, and written to CloudWatch Logs in moto
   (`/aws/lambda/<function>`), so `aws logs filter-log-events` works locally too.

Where it differs from Lambda: every invocation is a cold start in a fresh process; MemorySize
is reported, not enforced; the interpreter is this one (3.11+), not necessarily python3.12.

As EventBridge, `fire_rule` reads the rule and its targets from the Events API, refuses a
DISABLED rule, checks that the function's resource policy lets `events.amazonaws.com` invoke it
from that rule, and invokes each target with its Input.

The read-only helpers `operation_names` and `format_*` (and the `operations --package-url` and
`show` commands) use only the standard library, so operators can run them next to the AWS CLI
against real accounts.

Command line: `python -m scripts.local.runner --help`.
"""

from __future__ import annotations

import argparse
import ast
import base64
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
DEFAULT_REGION = "us-east-1"
LAMBDA_SERVICE_PRINCIPAL = "lambda.amazonaws.com"  # who assumes a function's execution role
# Lambda gives the init phase (imports) its own 10 s, outside the function's Timeout.
INIT_SECONDS = 10.0
# Beyond Timeout + init, the bootstrap's own watchdog has failed: kill the process.
KILL_GRACE_SECONDS = 5.0
LOG_RESULT_BYTES = 4096  # Invoke's LogResult (LogType=Tail) carries the last 4 KB
LOG_TYPES = ("None", "Tail")  # Invoke's LogType: only Tail returns LogResult
# What the python3.12 runtime puts on sys.path after the package: the AWS SDK and its
# dependencies. Nothing else of this interpreter's site-packages is visible to the function,
# so a dependency missing from the package fails here as it would in Lambda.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
EVENTS_PRINCIPAL = "events.amazonaws.com"

LogSink = Callable[[str], None]


class RunnerError(Exception):
    """Base class: the runner could not do what was asked (not an error of the function)."""


class PackageError(RunnerError):
    """The deployed package cannot be found, or its bytes are not what Lambda reports."""


class RuleError(RunnerError):
    """The rule is missing or disabled, or EventBridge could not deliver to its target."""


@dataclass(frozen=True)
class DeployedFunction:
    """A function's configuration as deployed, and where its package is unzipped."""

    name: str
    arn: str
    region: str
    handler: str
    runtime: str
    role: str
    timeout: int
    memory_size: int
    code_sha256: str
    environment: Mapping[str, str]
    task_root: Path


@dataclass(frozen=True)
class Invocation:
    """One invocation's outcome, in the terms of Lambda's Invoke API."""

    function_name: str
    request_id: str
    payload: Any
    function_error: str | None
    log: str
    duration_ms: float
    status_code: int = 200
    # Which file each SDK module the function imported came from ("boto3", "botocore"): the
    # package's own copy or the runtime's. Local only; Invoke reports nothing like it.
    sdk_files: Mapping[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.function_error is None

    @property
    def error_type(self) -> str | None:
        if self.succeeded or not isinstance(self.payload, dict):
            return None
        return self.payload.get("errorType")

    def response(self, log_type: str = "None") -> dict[str, Any]:
        """The Invoke response (Payload parsed). As Lambda does, it carries LogResult (base64
        of the log's last 4 KB) only for `log_type` "Tail" (Invoke's LogType)."""
        if log_type not in LOG_TYPES:
            raise ValueError(f"log type must be one of {', '.join(LOG_TYPES)}, got {log_type!r}")
        response: dict[str, Any] = {
            "StatusCode": self.status_code,
            "ExecutedVersion": "$LATEST",
            "Payload": self.payload,
        }
        if log_type == "Tail":
            tail = self.log.encode()[-LOG_RESULT_BYTES:]
            response["LogResult"] = base64.b64encode(tail).decode()
        if self.function_error is not None:
            response["FunctionError"] = self.function_error
        return response


@dataclass(frozen=True)
class RuleDelivery:
    """What EventBridge sent to one target of a rule, and what the target answered."""

    rule_name: str
    rule_arn: str
    target_id: str
    target_arn: str
    event: Any
    invocation: Invocation


@dataclass
class _LogCollector:
    """The function's output, line by line, optionally echoed as it arrives."""

    sink: LogSink | None = None
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)
        if self.sink is not None:
            self.sink(line)

    def text(self) -> str:
        return "".join(line if line.endswith("\n") else line + "\n" for line in self.lines)


class LocalRunner:
    """Invokes functions deployed to the local AWS, and fires EventBridge rules at them.

    Args:
        endpoint: the moto endpoint (Lambda, S3, STS, Events, Logs and the function's services).
        drs_endpoint: the DRS simulator, given to functions as AWS_ENDPOINT_URL_DRS.
        region: the region of the Events and Lambda APIs.
        log_sink: called with every log line of every invocation, as it is produced.
        cloudwatch_logs: also write each invocation's log to CloudWatch Logs in moto.

    Use it as a context manager (or call `close()`): it removes the unzipped packages.
    """

    def __init__(
        self,
        endpoint: str,
        drs_endpoint: str,
        *,
        region: str = DEFAULT_REGION,
        log_sink: LogSink | None = None,
        cloudwatch_logs: bool = True,
    ) -> None:
        # boto3 is imported here, not at the top: the module's read-only helpers must work on
        # an operator's machine that has only the standard library and the AWS CLI.
        import boto3

        self.endpoint = endpoint
        self.drs_endpoint = drs_endpoint
        self.region = region
        self.log_sink = log_sink
        self.cloudwatch_logs = cloudwatch_logs
        # The local AWS takes any credentials; these make moto act as its default account.
        self._session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        )
        self._clients: dict[tuple[str, str], Any] = {}
        # Clients and unzipped packages are shared with the event-delivery threads.
        self._lock = threading.RLock()
        self._delivery: Any = None  # EventDelivery while started
        self._work = Path(tempfile.mkdtemp(prefix="drs-local-lambda-"))
        self._task_roots: dict[str, Path] = {}  # CodeSha256 -> unzipped package

    def __enter__(self) -> LocalRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop event delivery (if started) and remove the unzipped packages."""
        self.stop_event_delivery()
        shutil.rmtree(self._work, ignore_errors=True)

    # ---- asynchronous delivery (EventBridge targets, SQS event source mappings) -----------
    def start_event_delivery(self, **options: Any) -> Any:
        """Start delivering, in background threads, what EventBridge and Lambda's SQS poller
        would: rule targets that are functions, and SQS event source mappings
        (`scripts.local.event_delivery.EventDelivery`; `options` go to it). Returns the
        EventDelivery (its `deliveries` and `wait_for`); `close()` stops it."""
        from scripts.local.event_delivery import EventDelivery

        with self._lock:
            if self._delivery is None:
                self._delivery = EventDelivery(self, **options).start()
            return self._delivery

    def stop_event_delivery(self) -> None:
        """Stop the delivery threads (if started); safe to call twice."""
        with self._lock:
            delivery, self._delivery = self._delivery, None
        if delivery is not None:
            delivery.stop()

    def wait_for_deliveries(self, count: int, timeout: float = 30.0) -> list[Any]:
        """Wait until `count` deliveries have succeeded; returns every delivery so far.

        Raises RunnerError when delivery is not started, or after `timeout` seconds."""
        delivery = self._delivery
        if delivery is None:
            raise RunnerError("event delivery is not started (start_event_delivery)")
        if not delivery.wait_for(lambda ds: sum(d.succeeded for d in ds) >= count, timeout):
            raise RunnerError(
                f"fewer than {count} successful deliveries within {timeout:g} s: "
                f"{delivery.deliveries} (errors: {delivery.errors})"
            )
        return list(delivery.deliveries)

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client of the local AWS (moto) as its default account."""
        key = (service, region or self.region)
        with self._lock:  # a boto3 Session must not build clients from two threads at once
            if key not in self._clients:
                self._clients[key] = self._session.client(  # type: ignore[call-overload]
                    service, region_name=key[1], endpoint_url=self.endpoint
                )
            return self._clients[key]

    def _lambda_sts(self, region: str) -> Any:
        """An STS client whose AssumeRole is Lambda's own (`lambda.amazonaws.com`): the local
        STS then judges the execution role's trust policy as AWS does when Lambda assumes it."""
        from scripts.local.accounts import act_as_service

        key = ("sts:" + LAMBDA_SERVICE_PRINCIPAL, region)
        with self._lock:
            return self._lambda_sts_locked(key, region, act_as_service)

    def _lambda_sts_locked(self, key: tuple[str, str], region: str, act_as_service: Any) -> Any:
        if key not in self._clients:
            self._clients[key] = act_as_service(
                self._session.client(  # type: ignore[call-overload]
                    "sts", region_name=region, endpoint_url=self.endpoint
                ),
                LAMBDA_SERVICE_PRINCIPAL,
            )
        return self._clients[key]

    # ---- the deployed function -------------------------------------------------------------
    def function(self, name_or_arn: str) -> DeployedFunction:
        """The deployed function (configuration + unzipped, verified package).

        Raises PackageError when the package cannot be found or does not match CodeSha256,
        and botocore's ResourceNotFoundException when there is no such function.
        """
        name, qualifier = _function_name(name_or_arn)
        if qualifier not in (None, "$LATEST"):
            raise RunnerError(f"{name_or_arn}: only $LATEST can run locally, not {qualifier!r}")
        # The configuration is read on every call (it can change without a code change); the
        # unzipped package is reused as long as CodeSha256 is the same.
        described = self.client("lambda").get_function(FunctionName=name)
        configuration = described["Configuration"]
        code_sha256 = configuration["CodeSha256"]
        with self._lock:
            task_root = self._unzipped(configuration, described, code_sha256)
        variables = (configuration.get("Environment") or {}).get("Variables") or {}
        return self._deployed(configuration, code_sha256, task_root, variables)

    def _unzipped(self, configuration: Any, described: Any, code_sha256: str) -> Path:
        task_root = self._task_roots.get(code_sha256)
        if task_root is None:
            package = self._fetch_package(
                configuration["FunctionName"],
                described.get("Code", {}).get("Location", ""),
                code_sha256,
            )
            task_root = Path(tempfile.mkdtemp(dir=self._work, prefix="task-"))
            with zipfile.ZipFile(io.BytesIO(package)) as archive:
                archive.extractall(task_root)  # extractall drops absolute and ".." member paths
            self._task_roots[code_sha256] = task_root
        return task_root

    @staticmethod
    def _deployed(
        configuration: Any, code_sha256: str, task_root: Path, variables: Mapping[str, Any]
    ) -> DeployedFunction:
        return DeployedFunction(
            name=configuration["FunctionName"],
            arn=configuration["FunctionArn"],
            region=configuration["FunctionArn"].split(":")[3],
            handler=configuration["Handler"],
            runtime=configuration.get("Runtime", ""),
            role=configuration["Role"],
            timeout=int(configuration.get("Timeout", 3)),
            memory_size=int(configuration.get("MemorySize", 128)),
            code_sha256=code_sha256,
            # Lambda hands the function strings; moto keeps numbers from the template as numbers.
            environment={name: str(value) for name, value in variables.items()},
            task_root=task_root,
        )

    def _fetch_package(self, function_name: str, location: str, code_sha256: str) -> bytes:
        """The deployed zip from moto's S3, located by the object key in `Code.Location`."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(location).path).lstrip("/")
        if not path:
            raise PackageError(f"{function_name}: get-function reports no Code.Location")
        # Virtual-hosted URLs carry the key as the whole path; path-style ones start with the
        # bucket. The bucket in moto's URL is fictitious either way, so every bucket is tried.
        keys = [path]
        if "/" in path:
            keys.append(path.split("/", 1)[1])
        s3 = self.client("s3")
        buckets = [bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])]
        # The deployment bucket first: that is where deploy.sh puts packages.
        buckets.sort(key=lambda name: (0 if "deploy" in name else 1, name))
        mismatched: list[str] = []
        for bucket in buckets:
            for key in keys:
                try:
                    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                except s3.exceptions.NoSuchKey:
                    continue
                if code_sha256_of(body) == code_sha256:
                    return body
                mismatched.append(f"s3://{bucket}/{key}")
        if mismatched:
            raise PackageError(
                f"{function_name}: {', '.join(mismatched)} does not match the deployed "
                f"CodeSha256 {code_sha256}: the object changed after the deploy"
            )
        raise PackageError(
            f"{function_name}: no bucket holds the package {keys[0]!r} named by Code.Location "
            f"{location!r}"
        )

    def deployed_operations(self, function: str) -> list[str]:
        """The keys of the OPERATIONS map in the deployed package's handler module."""
        deployed = self.function(function)
        module = deployed.handler.rpartition(".")[0].replace(".", "/") + ".py"
        source = (deployed.task_root / module).read_text()
        return operation_names(source, f"{deployed.name}:{module}")

    # ---- Lambda ----------------------------------------------------------------------------
    def invoke(self, function: str, event: Any, *, log_sink: LogSink | None = None) -> Invocation:
        """Invoke `function` (name or ARN) synchronously with `event`, as Lambda Invoke would.

        The function's own errors come back in the Invocation (FunctionError "Unhandled");
        RunnerError is raised only when the runner itself cannot run it.
        """
        deployed = self.function(function)
        request_id = str(uuid.uuid4())
        started_at = datetime.now(UTC)
        stream = f"{started_at:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        log = _LogCollector(log_sink or self.log_sink)
        log.add(f"START RequestId: {request_id} Version: $LATEST")
        with tempfile.TemporaryDirectory(dir=self._work) as scratch:
            request_file = Path(scratch) / "request.json"
            result_file = Path(scratch) / "result.json"
            request_file.write_text(
                json.dumps(
                    {
                        "handler": deployed.handler,
                        "event": event,
                        "requestId": request_id,
                        "invokedFunctionArn": deployed.arn,
                        "timeoutSeconds": deployed.timeout,
                        "runnerPid": os.getpid(),
                    }
                )
            )
            environment = self._environment(deployed, stream)
            began = time.monotonic()
            # -S: no site-packages (PYTHONPATH brings the package and the runtime's SDK);
            # -P: not the bootstrap's own folder either.
            returncode = run_streaming(
                [sys.executable, "-S", "-P", str(BOOTSTRAP), str(request_file), str(result_file)],
                environment,
                cwd=deployed.task_root,
                timeout=INIT_SECONDS + deployed.timeout + KILL_GRACE_SECONDS,
                on_line=log.add,
            )
            elapsed_ms = (time.monotonic() - began) * 1000
            result = json.loads(result_file.read_text()) if result_file.exists() else None

        payload, function_error = _outcome(result, returncode, request_id, deployed.timeout)
        duration_ms = float(result["durationMs"]) if result else elapsed_ms
        log.add(f"END RequestId: {request_id}")
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {max(1, int(duration_ms + 0.999))} ms\t"
            f"Memory Size: {deployed.memory_size} MB\t"
            f"Max Memory Used: {result['maxMemoryUsedMb'] if result else '?'} MB"
        )
        if result and result.get("initMs"):
            report += f"\tInit Duration: {float(result['initMs']):.2f} ms"
        if function_error and payload.get("errorType") == "Sandbox.Timedout":
            report += "\tStatus: timeout"
        elif result is None:
            report += "\tStatus: error"
        log.add(report)
        invocation = Invocation(
            function_name=deployed.name,
            request_id=request_id,
            payload=payload,
            function_error=function_error,
            log=log.text(),
            duration_ms=duration_ms,
            sdk_files=dict(result.get("sdk", {})) if result else {},
        )
        if self.cloudwatch_logs:
            self._put_logs(deployed, stream, started_at, log.lines)
        return invocation

    def _environment(self, deployed: DeployedFunction, log_stream: str) -> dict[str, str]:
        """The function's process environment: what Lambda would set, with local endpoints."""
        credentials = self._lambda_sts(deployed.region).assume_role(
            RoleArn=deployed.role, RoleSessionName=deployed.name[:64]
        )["Credentials"]
        environment = dict(deployed.environment)
        # Lambda's reserved variables cannot be set by the function, so they come last.
        environment.update(
            {
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "LANG": "C.UTF-8",  # Lambda's en_US.UTF-8 may not be installed here
                "TZ": ":UTC",
                "PYTHONPATH": os.pathsep.join([str(deployed.task_root), str(self._runtime_dir())]),
                "PYTHONUNBUFFERED": "1",  # print and log lines reach the log in order
                "PYTHONDONTWRITEBYTECODE": "1",
                "LAMBDA_TASK_ROOT": str(deployed.task_root),
                "_HANDLER": deployed.handler,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{deployed.runtime or 'python3.12'}",
                "AWS_LAMBDA_FUNCTION_NAME": deployed.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(deployed.memory_size),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{deployed.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_REGION": deployed.region,
                "AWS_DEFAULT_REGION": deployed.region,
                # The execution role's credentials, as Lambda provides them.
                "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"],
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ENDPOINT_URL_DRS": self.drs_endpoint,
                # Nothing of this machine's AWS setup may leak into the function.
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        return environment

    def _runtime_dir(self) -> Path:
        """A folder holding (symlinks to) just the runtime's modules, from this interpreter."""
        runtime = self._work / "runtime"
        if not runtime.is_dir():
            runtime.mkdir()
            for name in RUNTIME_MODULES:
                spec = importlib.util.find_spec(name)
                if spec is None or spec.origin is None:
                    continue  # not installed here: not provided to the function either
                origin = Path(spec.origin)
                source = origin.parent if spec.submodule_search_locations else origin
                (runtime / source.name).symlink_to(source)
        return runtime

    def _put_logs(
        self, deployed: DeployedFunction, stream: str, started_at: datetime, lines: list[str]
    ) -> None:
        """Best effort: a log the local CloudWatch refuses must not turn a run into a failure."""
        logs = self.client("logs", deployed.region)
        group = f"/aws/lambda/{deployed.name}"
        timestamp = int(started_at.timestamp() * 1000)
        events = [
            {"timestamp": timestamp, "message": line.rstrip("\n")[:200_000] or " "}
            for line in lines
        ]
        try:
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=group)
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            for start in range(0, len(events), 1000):
                logs.put_log_events(
                    logGroupName=group, logStreamName=stream, logEvents=events[start : start + 1000]
                )
        except Exception as exc:  # reported, not raised (see docstring)
            print(f"runner: could not write the log to CloudWatch Logs: {exc}", file=sys.stderr)

    # ---- EventBridge -----------------------------------------------------------------------
    def fire_rule(
        self, rule_name: str, *, force: bool = False, log_sink: LogSink | None = None
    ) -> list[RuleDelivery]:
        """Deliver the rule's event to each of its targets, as EventBridge does on schedule.

        Raises RuleError when the rule does not exist, is DISABLED (unless `force`), has no
        target, has a target that is not a Lambda function or uses InputPath/InputTransformer,
        or when a function's resource policy does not let the rule invoke it (EventBridge
        would fail the delivery). Function errors come back in each delivery's Invocation.
        `log_sink` receives the functions' log lines as they are produced.
        """
        events = self.client("events")
        try:
            rule = events.describe_rule(Name=rule_name)
        except events.exceptions.ResourceNotFoundException as exc:
            raise RuleError(f"rule {rule_name} does not exist") from exc
        if rule.get("State") != "ENABLED" and not force:
            state = rule.get("State")
            raise RuleError(
                f"rule {rule_name} is {state}: EventBridge would not fire it "
                "(--force fires it anyway, as a manual run would)"
            )
        targets = list(_paginate(events.list_targets_by_rule, "Targets", Rule=rule_name))
        if not targets:
            raise RuleError(f"rule {rule_name} has no targets")
        deliveries = []
        for target in targets:
            event = self._target_event(rule, target)
            self.check_invoke_permission(target["Arn"], rule["Arn"])
            invocation = self.invoke(target["Arn"], event, log_sink=log_sink)
            deliveries.append(
                RuleDelivery(rule_name, rule["Arn"], target["Id"], target["Arn"], event, invocation)
            )
        return deliveries

    def _target_event(self, rule: Mapping[str, Any], target: Mapping[str, Any]) -> Any:
        if ":lambda:" not in target["Arn"] or ":function:" not in target["Arn"]:
            raise RuleError(f"target {target['Id']} is not a Lambda function: {target['Arn']}")
        if "InputPath" in target or "InputTransformer" in target:
            raise RuleError(f"target {target['Id']}: InputPath/InputTransformer are not supported")
        if "Input" in target:
            return json.loads(target["Input"])
        # No Input: EventBridge sends the scheduled event itself.
        arn_parts = rule["Arn"].split(":")
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": arn_parts[4],
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": arn_parts[3],
            "resources": [rule["Arn"]],
            "detail": {},
        }

    def check_invoke_permission(self, function_arn: str, rule_arn: str) -> None:
        """Raise RuleError unless the function's resource policy lets `rule_arn` invoke it
        (EventBridge would fail the delivery)."""
        lambda_client = self.client("lambda")
        name, _ = _function_name(function_arn)
        try:
            policy = json.loads(lambda_client.get_policy(FunctionName=name)["Policy"])
        except lambda_client.exceptions.ResourceNotFoundException as exc:
            raise RuleError(
                f"{name} has no resource policy: EventBridge cannot invoke it for {rule_arn}"
            ) from exc
        if not policy_allows_rule(policy, rule_arn):
            raise RuleError(
                f"{name}'s resource policy does not let {EVENTS_PRINCIPAL} invoke it from "
                f"{rule_arn}: EventBridge would fail the delivery"
            )


# ---- pure helpers (standard library only) ---------------------------------------------------


def code_sha256_of(data: bytes) -> str:
    """Lambda's CodeSha256 of a package: base64 of its SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def operation_names(source: str, filename: str = "index.py") -> list[str]:
    """The keys of the module-level `OPERATIONS` dict literal in handler source code.

    Read from the syntax tree, not by importing it, so it runs no deployed code. Raises
    RunnerError when there is no such dict or a key is not a string literal.
    """
    for node in ast.parse(source, filename).body:
        if isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        else:
            continue
        if "OPERATIONS" not in names or node.value is None:
            continue
        if not isinstance(node.value, ast.Dict):
            raise RunnerError(f"{filename}: OPERATIONS is not a dict literal")
        keys = []
        for key in node.value.keys:
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise RunnerError(f"{filename}: an OPERATIONS key is not a string literal")
            keys.append(key.value)
        return keys
    raise RunnerError(f"{filename}: no OPERATIONS map")


def package_operations(package: bytes, code_sha256: str, handler: str) -> list[str]:
    """Verify a package against CodeSha256, then read its handler module's operation map."""
    actual = code_sha256_of(package)
    if actual != code_sha256:
        raise PackageError(f"package CodeSha256 is {actual}, the function reports {code_sha256}")
    module = handler.rpartition(".")[0].replace(".", "/") + ".py"
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        try:
            source = archive.read(module).decode()
        except KeyError as exc:
            raise PackageError(f"the package has no {module} (handler {handler})") from exc
    return operation_names(source, module)


def policy_allows_rule(policy: Mapping[str, Any], rule_arn: str) -> bool:
    """Whether a Lambda resource policy lets EventBridge invoke the function from `rule_arn`."""
    for statement in policy.get("Statement", []):
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else list(actions or [])
        principal = statement.get("Principal") or {}
        services = principal.get("Service") if isinstance(principal, dict) else principal
        services = [services] if isinstance(services, str) else list(services or [])
        source_arns = [
            value
            for operator in ("ArnLike", "ArnEquals", "StringEquals", "StringLike")
            for key, value in (statement.get("Condition") or {}).get(operator, {}).items()
            if key.lower() == "aws:sourcearn"
        ]
        if (
            statement.get("Effect") == "Allow"
            and {"lambda:InvokeFunction", "lambda:*"} & set(actions)
            and EVENTS_PRINCIPAL in services
            and rule_arn in source_arns
        ):
            return True
    return False


def _function_name(name_or_arn: str) -> tuple[str, str | None]:
    """(function name, qualifier or None) of a name or a (qualified) function ARN."""
    if not name_or_arn.startswith("arn:"):
        return name_or_arn, None
    parts = name_or_arn.split(":")
    return parts[6], (parts[7] if len(parts) > 7 else None)


def _paginate(method: Callable[..., Any], key: str, **kwargs: Any) -> Iterator[Any]:
    """Every item under `key`, following NextToken (ListTargetsByRule has no paginator)."""
    while True:
        page = method(**kwargs)
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return
        kwargs["NextToken"] = token


def run_streaming(
    command: Sequence[str],
    environment: Mapping[str, str],
    *,
    cwd: Path,
    timeout: float,
    on_line: LogSink,
) -> int | None:
    """Run `command`, feeding each output line (stdout and stderr) to `on_line`.

    Returns the exit status, or None when it was killed at `timeout`. The process runs in its
    own session and is killed with its group when this returns early for any reason (error,
    Ctrl-C), so no function process outlives the runner.
    """
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(environment),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    assert process.stdout is not None

    def _pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            on_line(line.rstrip("\n"))

    reader = threading.Thread(target=_pump, name="function-log", daemon=True)
    reader.start()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(timeout=5)
        process.stdout.close()


def _outcome(
    result: Mapping[str, Any] | None, returncode: int | None, request_id: str, timeout: int
) -> tuple[Any, str | None]:
    """(Payload, FunctionError) from the bootstrap's result, or from how the process ended."""
    if result is not None:
        if result["outcome"] == "success":
            return result["payload"], None
        return result["payload"], "Unhandled"
    if returncode is None:
        message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
        return {"errorMessage": message, "errorType": "Sandbox.Timedout"}, "Unhandled"
    message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {returncode}"
    return {"errorMessage": message, "errorType": "Runtime.ExitError"}, "Unhandled"


# ---- presentation (standard library only) ---------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """A plain-text table: left-aligned text, right-aligned numbers (None/"" cells are blank)."""
    cells = [[("" if value is None else str(value)) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def is_number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    numeric = [
        any(is_number(row[i]) for row in rows)
        and all(is_number(row[i]) or row[i] in (None, "") for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric, strict=True)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join([line(list(headers)), *(line(row) for row in cells)])


def format_sync_result(result: Mapping[str, Any]) -> str:
    """A sync_source_server_inventory result as a few readable lines and a failures table."""
    counts = result.get("counts") or {}
    api = counts.get("apiCalls") or {}
    by_status = ", ".join(f"{k} {v}" for k, v in (counts.get("scopesByStatus") or {}).items())
    seconds = (result.get("durationMs") or 0) / 1000
    lines = [
        f"{result.get('operation', 'sync')}: {result.get('status')}"
        f"{' (dry run: nothing written)' if result.get('dryRun') else ''}"
        f"  run {result.get('runId')}  {result.get('startedAt')}  {seconds:.1f} s",
    ]
    if result.get("skippedBecause"):
        lines.append(f"  skipped: {result['skippedBecause']}")
    if counts:
        lines += [
            f"  scopes   {counts.get('scopes', 0)} = {counts.get('accounts', 0)} accounts x "
            f"{counts.get('regions', 0)} regions ({by_status or 'none'})",
            f"  servers  seen {counts.get('serversSeen', 0)}, written "
            f"{counts.get('serversWritten', 0)}, unchanged {counts.get('serversUnchanged', 0)}, "
            f"new {counts.get('serversNew', 0)}, revived "
            f"{counts.get('serversRevived', 0)}, soft-deleted "
            f"{counts.get('serversSoftDeleted', 0)}, write failures "
            f"{counts.get('serversWriteFailed', 0)}",
            f"  EC2      enriched {counts.get('ec2Enriched', 0)}, instance not found "
            f"{counts.get('ec2NotFound', 0)}, origin unreadable {counts.get('ec2Unavailable', 0)}",
        ]
        if api:
            lines.append(
                "  calls    " + ", ".join(f"{name} {value}" for name, value in api.items())
            )
        swept = counts.get("unregisteredAccountsSwept") or []
        if swept:
            lines.append(f"  swept    unregistered accounts {', '.join(swept)}")
    failures = result.get("failures") or []
    if failures:
        lines.append(f"  failed scopes ({len(failures)}):")
        rows = [
            [f["accountId"], f["region"], f["status"], f.get("errorCode"), f.get("message")]
            for f in failures
        ]
        lines.append(
            format_table(["ACCOUNT", "REGION", "STATUS", "ERROR CODE", "MESSAGE"], rows, "    ")
        )
    return "\n".join(lines)


def format_response(response: Mapping[str, Any]) -> str:
    """An Invoke response (StatusCode, FunctionError, Payload) as readable text."""
    payload = response.get("Payload")
    if response.get("FunctionError"):
        error = payload if isinstance(payload, dict) else {"errorMessage": payload}
        text = (
            f"function error ({response['FunctionError']}): "
            f"{error.get('errorType', 'Error')}: {error.get('errorMessage')}"
        )
        return text
    if isinstance(payload, dict) and payload.get("operation") == "sync_source_server_inventory":
        return format_sync_result(payload)
    return json.dumps(payload, indent=2, sort_keys=True, default=str)


# ---- command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.local.runner",
        description="Run functions deployed to the local AWS as Lambda and EventBridge would.",
    )
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("MOTO_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL"),
        help="local AWS (moto) endpoint (default: MOTO_ENDPOINT or AWS_ENDPOINT_URL)",
    )
    parser.add_argument(
        "--drs-endpoint-url",
        default=os.environ.get("DRS_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL_DRS"),
        help="DRS simulator endpoint (default: DRS_ENDPOINT or AWS_ENDPOINT_URL_DRS)",
    )
    parser.add_argument("--region", default=DEFAULT_REGION, help="default: us-east-1")
    parser.add_argument(
        "--logs", action="store_true", help="print the function's log to stderr as it runs"
    )
    parser.add_argument("--log-file", type=Path, help="append the function's log to this file")
    commands = parser.add_subparsers(dest="command", required=True)

    outfile_help = (
        "write the payload here and print the response metadata (like aws lambda invoke); "
        "before or after the options"
    )
    log_type_help = "Tail: the response carries LogResult (the log's last 4 KB), as in Lambda"
    fire = commands.add_parser("fire-rule", help="deliver a rule's event to its target")
    fire.add_argument("rule", help="rule name, e.g. aws-drs-orchestration-inventory-sync-qa")
    fire.add_argument("--force", action="store_true", help="fire even when DISABLED")
    fire.add_argument("--log-type", choices=LOG_TYPES, default="None", help=log_type_help)
    fire.add_argument("outfile", nargs="?", type=Path, help=outfile_help)

    invoke = commands.add_parser(
        "invoke",
        help="invoke a function with a payload",
        description="Also in the AWS CLI's order: invoke --function-name F --payload JSON "
        "OUTFILE, or invoke F --payload JSON OUTFILE.",
    )
    invoke.add_argument("function", nargs="?", help="function name or ARN")
    invoke.add_argument("--function-name", help="the same, as aws lambda invoke names it")
    source = invoke.add_mutually_exclusive_group(required=True)
    source.add_argument("--payload", help="the event, as JSON")
    source.add_argument("--payload-file", type=Path, help="file holding the event JSON")
    invoke.add_argument("--log-type", choices=LOG_TYPES, default="None", help=log_type_help)
    invoke.add_argument("outfile", nargs="?", type=Path, help=outfile_help)

    operations = commands.add_parser(
        "operations", help="list the operation map of a deployed function's package"
    )
    operations.add_argument("function", nargs="?", help="function name or ARN (local AWS)")
    operations.add_argument(
        "--package-url",
        help="download the package from this URL instead (get-function's Code.Location in a "
        "real account; needs no local AWS)",
    )
    operations.add_argument("--code-sha256", help="with --package-url: the function's CodeSha256")
    operations.add_argument("--handler", default="index.lambda_handler")

    show = commands.add_parser("show", help="print an Invoke response or sync result readably")
    show.add_argument("file", nargs="?", type=Path, help="JSON file (default: stdin)")
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """`argv` parsed, with OUTFILE also after the options (`invoke F --payload P OUTFILE`, as
    `aws lambda invoke` takes it: argparse alone binds a trailing positional only when it
    follows the first one) and --function-name as the AWS CLI spells FUNCTION."""
    args, extras = parser.parse_known_args(argv)
    if args.command in ("invoke", "fire-rule"):
        if args.command == "invoke" and args.function_name:
            if args.function and args.function_name != args.function and args.outfile is None:
                # `invoke --function-name F ... OUTFILE`: the lone positional is the OUTFILE
                args.function, args.outfile = args.function_name, Path(args.function)
            elif args.function and args.function != args.function_name:
                parser.error("give FUNCTION or --function-name, not both")
            args.function = args.function_name
        if args.command == "invoke" and not args.function:
            parser.error("invoke needs FUNCTION (or --function-name)")
        if len(extras) == 1 and not extras[0].startswith("-") and args.outfile is None:
            args.outfile, extras = Path(extras[0]), []
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _print_invocation(invocation: Invocation, outfile: Path | None, log_type: str) -> None:
    response = invocation.response(log_type)
    if outfile is None:
        print(format_response(response))
        return
    outfile.write_text(json.dumps(response["Payload"]))
    metadata = {key: value for key, value in response.items() if key != "Payload"}
    print(json.dumps(metadata, indent=4))


def _log_sinks(args: argparse.Namespace) -> tuple[LogSink | None, Any]:
    log_file = args.log_file.open("a") if args.log_file else None

    def sink(line: str) -> None:
        if args.logs:
            print(line, file=sys.stderr, flush=True)
        if log_file is not None:
            log_file.write(line + "\n")

    return (sink if args.logs or log_file else None), log_file


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 success, 1 function error or runner failure, 2 usage error."""
    parser = _parser()
    args = _parse(parser, argv)
    try:
        if args.command == "show":
            text = args.file.read_text() if args.file else sys.stdin.read()
            document = json.loads(text)
            if "StatusCode" not in document:  # a bare payload (e.g. aws lambda invoke's outfile)
                document = {"StatusCode": 200, "Payload": document}
            print(format_response(document))
            return 1 if document.get("FunctionError") else 0
        if args.command == "operations" and args.package_url:
            if not args.code_sha256:
                parser.error("--package-url needs --code-sha256")
            with urllib.request.urlopen(args.package_url, timeout=120) as response:
                package = response.read()
            print("\n".join(package_operations(package, args.code_sha256, args.handler)))
            return 0
        if not (args.endpoint_url and args.drs_endpoint_url):
            parser.error("give --endpoint-url and --drs-endpoint-url (or MOTO_/DRS_ENDPOINT)")
        sink, log_file = _log_sinks(args)
        try:
            with LocalRunner(
                args.endpoint_url, args.drs_endpoint_url, region=args.region, log_sink=sink
            ) as runner:
                if args.command == "operations":
                    if not args.function:
                        parser.error("operations needs FUNCTION or --package-url")
                    print("\n".join(runner.deployed_operations(args.function)))
                    return 0
                if args.command == "invoke":
                    raw = args.payload
                    if raw is None:
                        raw = args.payload_file.read_text()
                    invocation = runner.invoke(args.function, json.loads(raw))
                    _print_invocation(invocation, args.outfile, args.log_type)
                    return 0 if invocation.succeeded else 1
                deliveries = runner.fire_rule(args.rule, force=args.force)
                if args.outfile is not None and len(deliveries) > 1:
                    raise RunnerError(f"{args.rule} has {len(deliveries)} targets; omit OUTFILE")
                for delivery in deliveries:
                    if args.outfile is None:
                        print(f"{delivery.target_id} -> {delivery.target_arn}")
                    _print_invocation(delivery.invocation, args.outfile, args.log_type)
                return 0 if all(d.invocation.succeeded for d in deliveries) else 1
        finally:
            if log_file is not None:
                log_file.close()
    except (RunnerError, OSError, ValueError) as exc:
        print(f"runner: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # An AWS error (botocore is imported lazily, with boto3): report it, not a traceback.
        if type(exc).__module__.startswith("botocore."):
            print(f"runner: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
