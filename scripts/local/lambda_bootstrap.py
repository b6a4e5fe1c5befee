"""Run one Lambda invocation in this process, the way the python3.12 runtime would.

The local runner (`scripts/local/runner.py`) starts this file as
`python -P lambda_bootstrap.py REQUEST_FILE RESULT_FILE`, with PYTHONPATH = the unzipped
deployment package (also LAMBDA_TASK_ROOT) and the function's environment. `-P` keeps this
file's folder off sys.path, so the package's modules resolve exactly as in Lambda.

REQUEST_FILE (JSON): {"handler": "index.lambda_handler", "event": ..., "requestId": ...,
"invokedFunctionArn": ..., "timeoutSeconds": N, "runnerPid": PID}.
RESULT_FILE (JSON, written once): {"outcome": "success" | "error" | "timeout", "payload": ...,
"initMs", "durationMs", "maxMemoryUsedMb", "sdk"}. For "error" the payload has Lambda's shape:
{"errorMessage", "errorType", "requestId", "stackTrace"}. "sdk" maps each AWS SDK module the
function imported ("boto3", "botocore") to the file it was loaded from: the package's own copy
or the runtime's, whichever came first on sys.path.

Everything the function prints (stdout and stderr) is its log; this file adds only what the
runtime adds: the "[ERROR] ..." record of an unhandled exception.

It imports only the standard library: anything else could be shadowed by, or missing from,
the package under test.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

# Reported in the result: which copy of the SDK the function ran (see the module docstring).
SDK_MODULES = ("boto3", "botocore")
# Exit statuses the runner reads when no result file could be written.
EXIT_OK = 0
EXIT_BAD_REQUEST = 2
EXIT_TIMED_OUT = 124
_PR_SET_PDEATHSIG = 1


class LambdaContext:
    """The context object of the Python runtime (awslambdaric), with the same attribute types.

    `memory_limit_in_mb` is a string there too: the runtime passes the environment variable
    through unchanged, and code written for Lambda (str concatenation) relies on that.
    """

    def __init__(self, request_id: str, invoked_function_arn: str, deadline_ms: int) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the function's Timeout (never negative), as Lambda reports it."""
        return max(0, self._deadline_ms - int(time.time() * 1000))


class _ResultWriter:
    """Writes the result file exactly once, whichever comes first: the handler or the timeout."""

    def __init__(self, path: Path, request_id: str) -> None:
        self._path = path
        self._request_id = request_id
        self._lock = threading.Lock()
        self._written = False
        self.init_ms = 0.0
        self.started = time.monotonic()

    def write(self, outcome: str, payload: Any) -> bool:
        with self._lock:
            if self._written:
                return False
            # ru_maxrss is in KiB on Linux: the peak of this process, as Lambda's REPORT line.
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            document = {
                "outcome": outcome,
                "payload": payload,
                "initMs": round(self.init_ms, 2),
                "durationMs": round((time.monotonic() - self.started) * 1000, 2),
                "maxMemoryUsedMb": peak_mb,
                "sdk": _sdk_origins(),
            }
            partial = self._path.with_suffix(".partial")
            partial.write_text(json.dumps(document))
            partial.replace(self._path)  # the runner never reads half a result
            self._written = True
            return True

    def error(self, error_type: str, message: str, stack: list[str] | None = None) -> bool:
        return self.write(
            "error",
            {
                "errorMessage": message,
                "errorType": error_type,
                "requestId": self._request_id,
                "stackTrace": stack or [],
            },
        )


def _sdk_origins() -> dict[str, str]:
    """Module name -> file, for the SDK modules the function has imported (none imported here:
    this file must not load an SDK the function did not)."""
    origins: dict[str, str] = {}
    for name in SDK_MODULES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            origins[name] = str(module.__file__)
    return origins


def _log_unhandled(error_type: str, message: str, stack: list[str]) -> None:
    # The runtime's own log record of an unhandled exception.
    trace = "".join(stack)
    print(
        f"[ERROR] {error_type}: {message}\nTraceback (most recent call last):\n{trace}",
        file=sys.stderr,
        flush=True,
    )


def _load_handler(handler: str, writer: _ResultWriter) -> Any:
    """Import `module.function` like the runtime, or record the runtime's init error and exit."""
    module_name, _, function_name = handler.rpartition(".")
    if not module_name or not function_name:
        writer.error("Runtime.MalformedHandlerName", f"Bad handler '{handler}': not enough values")
        _finish(EXIT_OK)
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except SyntaxError as exc:
        message = f"Syntax error in module '{module_name}': {exc}"
        stack = traceback.format_list(traceback.extract_tb(exc.__traceback__))
        _log_unhandled("Runtime.UserCodeSyntaxError", message, stack)
        writer.error("Runtime.UserCodeSyntaxError", message, stack)
        _finish(EXIT_OK)
    except Exception as exc:
        message = f"Unable to import module '{module_name}': {exc}"
        stack = traceback.format_list(traceback.extract_tb(exc.__traceback__))
        _log_unhandled("Runtime.ImportModuleError", message, stack)
        writer.error("Runtime.ImportModuleError", message, stack)
        _finish(EXIT_OK)
    function = getattr(module, function_name, None)
    if function is None:
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        writer.error("Runtime.HandlerNotFound", message)
        _finish(EXIT_OK)
    return function


def _finish(status: int) -> NoReturn:
    """Flush the log and leave at once: Lambda freezes the sandbox after the response, it never
    waits for stray threads, so neither does this process."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _die_with_runner(runner_pid: int) -> None:
    """Be killed with the runner (Linux PR_SET_PDEATHSIG), so a function never outlives it."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != runner_pid:  # the runner died before the request above took effect
        _finish(EXIT_BAD_REQUEST)


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        print("usage: lambda_bootstrap.py REQUEST_FILE RESULT_FILE", file=sys.stderr)
        _finish(EXIT_BAD_REQUEST)
    request = json.loads(Path(argv[0]).read_text())
    _die_with_runner(int(request["runnerPid"]))
    request_id = str(request["requestId"])
    writer = _ResultWriter(Path(argv[1]), request_id)

    handler = _load_handler(str(request["handler"]), writer)
    writer.init_ms = (time.monotonic() - writer.started) * 1000
    # As in Lambda, the Timeout counts from the invocation, after the init phase.
    writer.started = time.monotonic()
    timeout_s = float(request["timeoutSeconds"])
    deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
    context = LambdaContext(request_id, str(request["invokedFunctionArn"]), deadline_ms)

    def _time_out() -> None:
        message = f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
        if writer.write("timeout", {"errorMessage": message, "errorType": "Sandbox.Timedout"}):
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}Z {message}", flush=True)
            _finish(EXIT_TIMED_OUT)

    watchdog = threading.Timer(timeout_s, _time_out)
    watchdog.daemon = True
    watchdog.start()

    try:
        result = handler(request["event"], context)
    except Exception as exc:
        error_type = type(exc).__name__
        stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
        if writer.error(error_type, str(exc), stack):
            _log_unhandled(error_type, str(exc), stack)
        _finish(EXIT_OK)
    try:
        # Lambda serialises the response with json; what json cannot encode is an error.
        payload = json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        writer.error("Runtime.MarshalError", f"Unable to marshal response: {exc}")
        _finish(EXIT_OK)
    writer.write("success", payload)
    _finish(EXIT_OK)


if __name__ == "__main__":
    main(sys.argv[1:])
