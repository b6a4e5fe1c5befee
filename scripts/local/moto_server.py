"""moto in server mode on loopback, with request handling serialised and faults injectable.

moto's backends are plain dicts and are not thread-safe: several threads writing and
scanning one table can fail inside moto ("dictionary changed size during iteration").
This server keeps werkzeug's threaded HTTP handling (so slow clients do not block each
other) but runs moto's request processing under one lock.

Faults (`MotoFault`) make matching requests fail the way AWS fails them, without reaching
moto: an AWS error in the protocol's own shape (JSON `__type`, EC2 or query XML), a
BatchWriteItem that processes nothing, or a request held until the server stops. Arm them
in-process (`LocalMotoServer.set_fault`) or over HTTP under `/_local/` for a server in
another process (`MotoControl`).

Requests wait for moto in arrival order (a FIFO lock: an unfair lock let one request starve
behind later ones past the caller's read timeout); how long each waited and held moto is kept
per operation (`/_local/stats`). Optional, for the benchmark: `fast_dynamodb` installs
`scripts.local.moto_speedups` (moto's DynamoDB hot paths, same answers, far less time under
the lock) and `capacity` meters the DynamoDB capacity units every request consumed, by
DynamoDB's item-size rules and the tables' own indexes (`/_local/capacity`, see
`scripts.local.dynamodb_capacity`). Latency per service (`latency_ms`, e.g. sts=20,
dynamodb=5) is slept before the lock, so it adds wall time, never serialisation.

STS AssumeRole is judged as AWS judges it before moto answers (moto's own STS hands out
credentials for any role ARN): the role must exist in moto's IAM with exactly that ARN, and
its trust policy must allow the caller (`scripts.local.local_sts` says what is modelled).
The caller is who signed the request, as moto attributes access keys (an AssumeRole'd key is
a session of its role, `testing` moto's default account), or the AWS service a local client
says it acts as (header `x-local-service-principal`, see `scripts.local.accounts`). A refusal
is AWS's 403 AccessDenied with AWS's one message; the reason is logged at INFO. Setup code
creates roles in other accounts through moto's `x-moto-account-id` header instead.

Garbage collection: with tens of thousands of items moto holds millions of objects, and one
automatic full collection pauses every request for seconds (growing with the tables).
`manual_gc` (process-wide) leaves the young generations to Python and runs full
collections only when asked (`POST /_local/gc`, under the lock: between a benchmark's
runs). Pauses of every collection are kept in `/_local/stats` either way.

Use it in-process (`with LocalMotoServer() as moto: moto.endpoint`) or as a process:
`python -m scripts.local.moto_server [--port N] [--latency sts=20,dynamodb=5]
[--fast-dynamodb] [--capacity]` prints `MOTO_ENDPOINT=http://127.0.0.1:N` and serves until
SIGTERM/SIGINT. `LOCAL_MOTO_LATENCY` (same form as --latency) sets latency too.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import FrameType
from typing import Any
from xml.sax.saxutils import escape

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from scripts.local import moto_events, moto_s3_policy, moto_speedups
from scripts.local.dynamodb_capacity import CapacityMeter, IndexSpec, ItemState, item_size
from scripts.local.local_sts import SERVICE_PRINCIPAL_HEADER, judge_assume_role

LOOPBACK = "127.0.0.1"
# werkzeug logs every request at INFO: thousands of lines per sync drown what matters.
logging.getLogger("werkzeug").setLevel(logging.WARNING)
# SigV4 credential scope: Credential=KEY/DATE/REGION/SERVICE/aws4_request
_SERVICE_IN_AUTH = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_CALLER_IN_AUTH = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/[^/]+/aws4_request")

# The control API's paths: no AWS service served by moto uses a path starting with "/_local/"
# (bucket names cannot start with "_").
CONTROL_PREFIX = "/_local/"
FAULTS_PATH = CONTROL_PREFIX + "faults"
COUNTS_PATH = CONTROL_PREFIX + "request-counts"
STATS_PATH = CONTROL_PREFIX + "stats"
GC_PATH = CONTROL_PREFIX + "gc"
CAPACITY_PATH = CONTROL_PREFIX + "capacity"
EVENT_DELIVERIES_PATH = CONTROL_PREFIX + "event-deliveries"  # Lambda targets (moto_events)
LATENCY_ENV = "LOCAL_MOTO_LATENCY"

ERROR = "error"
UNPROCESSED = "unprocessed"
HANG = "hang"
MOTO_FAULT_KINDS = frozenset({ERROR, UNPROCESSED, HANG})
DEFAULT_HANG_SECONDS = 300.0
BATCH_WRITE_ITEM = "BatchWriteItem"

# HTTP status of an error code when the fault does not give one; every other code answers 400.
_ERROR_STATUS = {
    "InternalServerError": 500,  # DynamoDB
    "InternalFailure": 500,
    "InternalError": 500,  # EC2
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
    "RequestLimitExceeded": 503,  # EC2 throttling
    "Unavailable": 503,  # EC2
}
# JSON-protocol error types carry the service's namespace; botocore keeps what follows "#".
_JSON_ERROR_NAMESPACE = {"dynamodb": "com.amazonaws.dynamodb.v20120810#"}


@dataclass(frozen=True)
class MotoFault:
    """A fault for requests to the local moto server, matched by service, operation and table.

    service: the SigV4 signing name ("dynamodb", "sts", "ec2", ...).
    operation: the operation ("BatchWriteItem", "AssumeRole", "DescribeInstances"): the
        X-Amz-Target's operation for JSON services (the full target, e.g.
        "DynamoDB_20120810.BatchWriteItem", matches too) or `Action=` for query services;
        None = every operation of the service.
    table_name: only requests naming this table (`TableName`, the `RequestItems` keys of batch
        operations, or a `TransactItems` entry); None = any request.
    kind:
        "error" (default): answer `error_code` with `message` and HTTP `status` (default 400,
            500/503 for the internal and unavailable codes) in the protocol's shape: JSON
            `{"__type", "message"}` for JSON services, EC2's `<Response><Errors>` XML, the query
            protocol's `<ErrorResponse>` XML (STS, IAM), S3's `<Error>` XML. moto is not called.
        "unprocessed": a DynamoDB BatchWriteItem answers 200 with request items in
            `UnprocessedItems`: all of them (`fraction` 1.0, the default: nothing is written),
            or the first ceil(fraction * n) in request order, the rest written by moto.
            Only BatchWriteItem requests match.
        "hang": hold the request `hang_seconds` (outside moto's lock), then process it. The
            server's stop ends the wait at once.
    count: fault only `count` matching requests (after the skipped ones), then disarm;
        None = until cleared.
    skip: let the first `skip` matching requests through untouched before the fault applies.
    """

    service: str
    operation: str | None = None
    table_name: str | None = None
    kind: str = ERROR
    error_code: str | None = None
    message: str | None = None
    status: int | None = None
    count: int | None = None
    skip: int = 0
    hang_seconds: float = DEFAULT_HANG_SECONDS
    fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in MOTO_FAULT_KINDS:
            raise ValueError(
                f"unsupported fault kind {self.kind!r}; use one of {sorted(MOTO_FAULT_KINDS)}"
            )
        if self.kind == ERROR and not self.error_code:
            raise ValueError("a fault of kind 'error' needs an error_code")
        if self.kind != ERROR and self.error_code is not None:
            raise ValueError(f"a fault of kind {self.kind!r} takes no error_code")
        if self.kind == UNPROCESSED and (
            self.service != "dynamodb" or self.key[1] not in (None, BATCH_WRITE_ITEM)
        ):
            raise ValueError("a fault of kind 'unprocessed' is for dynamodb BatchWriteItem only")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"MotoFault.status must be an HTTP error status, got {self.status}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"MotoFault.count must be >= 1 or None, got {self.count}")
        if self.skip < 0:
            raise ValueError(f"MotoFault.skip must be >= 0, got {self.skip}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"MotoFault.fraction must be in (0, 1], got {self.fraction}")
        if self.hang_seconds < 0:
            raise ValueError(f"MotoFault.hang_seconds must be >= 0, got {self.hang_seconds}")

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        """One armed fault per key: setting a fault with the same key replaces it."""
        operation = self.operation.rsplit(".", 1)[-1] if self.operation else None
        return (self.service, operation, self.table_name)

    @property
    def http_status(self) -> int:
        return self.status or _ERROR_STATUS.get(self.error_code or "", 400)

    def applies_to(self, operation: str) -> bool:
        """Whether the fault can act on `operation` at all (its own filters aside)."""
        return self.kind != UNPROCESSED or operation == BATCH_WRITE_ITEM

    def to_dict(self) -> dict[str, Any]:
        """JSON form used by the control API (camelCase keys, None values dropped)."""
        data = {
            "service": self.service,
            "operation": self.operation,
            "tableName": self.table_name,
            "kind": self.kind,
            "errorCode": self.error_code,
            "message": self.message,
            "status": self.status,
            "count": self.count,
            "skip": self.skip,
            "hangSeconds": self.hang_seconds if self.kind == HANG else None,
            "fraction": self.fraction if self.kind == UNPROCESSED else None,
        }
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MotoFault:
        """Inverse of `to_dict`. Raises KeyError/ValueError/TypeError on malformed input."""
        return cls(
            service=data["service"],
            operation=data.get("operation"),
            table_name=data.get("tableName"),
            kind=data.get("kind", ERROR),
            error_code=data.get("errorCode"),
            message=data.get("message"),
            status=data.get("status"),
            count=data.get("count"),
            skip=int(data.get("skip", 0)),
            hang_seconds=float(data.get("hangSeconds", DEFAULT_HANG_SECONDS)),
            fraction=float(data.get("fraction", 1.0)),
        )


@dataclass
class _ArmedFault:
    fault: MotoFault
    remaining: int | None
    to_skip: int


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once; moto then reads the same bytes from a fresh stream."""
    if "local.body" not in environ:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        if length > 0:
            body = stream.read(length)
        elif environ.get("wsgi.input_terminated"):
            body = stream.read()  # chunked: werkzeug ends the stream at the last chunk
        else:
            body = b""
        environ["local.body"] = body
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
    return bytes(environ["local.body"])


def _json_body(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(_read_body(environ) or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class _Call:
    """What a fault matches a request on."""

    service: str
    operation: str
    json_protocol: bool  # X-Amz-Target: the JSON protocol (DynamoDB)


def _call_of(environ: dict[str, Any]) -> _Call:
    match = _SERVICE_IN_AUTH.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = match.group(1) if match else ""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return _Call(service, target.rsplit(".", 1)[-1], json_protocol=True)
    action = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    content_type = environ.get("CONTENT_TYPE", "")
    if not action and content_type.startswith("application/x-www-form-urlencoded"):
        form = urllib.parse.parse_qs(_read_body(environ).decode("utf-8", "replace"))
        action = form.get("Action")
    return _Call(service, action[0] if action else "", json_protocol=False)


def _table_names(environ: dict[str, Any]) -> list[str]:
    """The DynamoDB tables a JSON request names (single-table, batch and transaction forms)."""
    return _table_names_of(_json_body(environ))


_WsgiAnswer = tuple[int, list[tuple[str, str]], bytes]


def _error_answer(call: _Call, fault: MotoFault) -> _WsgiAnswer:
    """`fault`'s error in the shape the service's protocol answers errors with."""
    code = fault.error_code or "InternalFailure"
    message = fault.message or f"{code} (injected by the local moto server)"
    status = fault.http_status
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id)]
    # No target and no Action: a REST service (Lambda, ...), which answers errors as JSON too.
    rest_json = not call.json_protocol and not call.operation and call.service not in ("ec2", "s3")
    if call.json_protocol or rest_json:
        # botocore reads the code from `__type` (after "#") or the x-amzn-ErrorType header.
        namespace = _JSON_ERROR_NAMESPACE.get(call.service, "")
        body = json.dumps({"__type": namespace + code, "message": message}).encode()
        headers += [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", code)]
        if call.service == "dynamodb":
            headers.append(("x-amz-crc32", str(zlib.crc32(body))))  # botocore checks it
        return status, headers, body
    code_xml, message_xml = escape(code), escape(message)
    if call.service == "ec2":
        text = (
            f"<Response><Errors><Error><Code>{code_xml}</Code><Message>{message_xml}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    elif call.service == "s3":
        text = (
            f"<Error><Code>{code_xml}</Code><Message>{message_xml}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
    else:  # the query protocol: STS, IAM, ...
        sender = "Receiver" if status >= 500 else "Sender"
        text = (
            f"<ErrorResponse><Error><Type>{sender}</Type><Code>{code_xml}</Code>"
            f"<Message>{message_xml}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        )
    headers.append(("Content-Type", "text/xml"))
    return status, headers, text.encode()


_ROLE_ARN = re.compile(r"arn:([a-z-]+):iam::([0-9]{12}):role/.+")
# WSGI's name of the service-principal header (see scripts.local.accounts.act_as_service).
_SERVICE_PRINCIPAL_ENVIRON = "HTTP_" + SERVICE_PRINCIPAL_HEADER.upper().replace("-", "_")
STS_LOG = logging.getLogger(__name__ + ".sts")


@dataclass(frozen=True)
class _StsCaller:
    principal_arn: str  # aws:PrincipalArn: an assumed-role session's role ARN (path included)
    account: str
    shown_as: str  # how AWS names the caller in AccessDenied (the session ARN of a role)


def _form_of(environ: dict[str, Any]) -> dict[str, str]:
    """A query-protocol request's parameters (the query string's and the form body's)."""
    pairs = urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""))
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        pairs += urllib.parse.parse_qsl(_read_body(environ).decode("utf-8", "replace"))
    return dict(pairs)


def _sts_caller(environ: dict[str, Any], partition: str) -> _StsCaller:
    """Who signed the request, as moto's own GetCallerIdentity sees it: an AssumeRole'd key is
    a session of its role (in the role's account), a key of an IAM user that user, any other
    key (the tests' `testing`) moto's default user of the account moto attributes it to."""
    from moto.iam.models import get_account_id_from, iam_backends
    from moto.sts.models import sts_backends

    match = _CALLER_IN_AUTH.search(environ.get("HTTP_AUTHORIZATION", ""))
    access_key = match.group(1) if match else ""
    # moto's own order (BaseResponse.get_current_account): env, header, then the key.
    account = (
        os.environ.get("MOTO_ACCOUNT_ID")
        or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
        or get_account_id_from(access_key)
    )
    session = sts_backends[account][partition].get_assumed_role_from_access_key(access_key)
    if session is not None:
        role = _moto_role(session.role_arn, partition)
        role_arn = role.arn if role is not None else session.role_arn
        return _StsCaller(str(role_arn), account, str(session.arn))
    user = iam_backends[account][partition].get_user_from_access_key_id(access_key)
    arn = str(user.arn) if user is not None else f"arn:{partition}:iam::{account}:user/moto"
    return _StsCaller(arn, account, arn)


def _moto_role(role_arn: str, partition: str) -> Any:
    """moto's IAM role with exactly this ARN (path included) in its account, or None."""
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends

    match = _ROLE_ARN.fullmatch(role_arn)
    if match is None:
        return None
    try:
        return iam_backends[match.group(2)][partition].get_role_by_arn(role_arn)
    except NotFoundException:
        return None


def _assume_role_refusal(environ: dict[str, Any]) -> _WsgiAnswer | None:
    """AWS's AccessDenied for an AssumeRole the role's trust policy does not allow (or of a
    role that does not exist); None to let moto answer. Runs under moto's lock.

    The caller gets AWS's one message whatever the reason; the reason is logged (INFO) for
    people debugging a local run. moto state that cannot be read refuses (fail closed).
    """
    form = _form_of(environ)
    role_arn = form.get("RoleArn", "")
    partition_match = _ROLE_ARN.fullmatch(role_arn)
    partition = partition_match.group(1) if partition_match else "aws"
    service = environ.get(_SERVICE_PRINCIPAL_ENVIRON) or None
    try:
        caller = None if service else _sts_caller(environ, partition)
        role = _moto_role(role_arn, partition)
    except (ImportError, AttributeError, TypeError, KeyError) as exc:
        # moto's public STS/IAM lookups changed (moto is pinned in requirements-dev.txt).
        message = (
            f"the local moto server cannot judge AssumeRole with moto {_moto_version()}: "
            f"{exc!r}; refused"
        )
        STS_LOG.error(message)
        return _access_denied(message)
    if role is None:
        reason: str | None = "the role does not exist"
    else:
        trust = _trust_policy(role.assume_role_policy_document)
        reason = judge_assume_role(
            trust,
            caller.principal_arn if caller else None,
            caller.account if caller else None,
            service,
            form.get("ExternalId"),
            form.get("SourceIdentity"),
            session_tags=any(key.startswith("Tags.member.") for key in form),
        )
    if reason is None:
        return None
    shown = service or (caller.shown_as if caller else "")
    STS_LOG.info("AssumeRole of %s by %s refused: %s", role_arn, shown, reason)
    return _access_denied(
        f"User: {shown} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    )


def _trust_policy(document: Any) -> dict[str, Any]:
    """The role's trust policy as moto keeps it (JSON, or URL-encoded JSON); {} if unreadable."""
    for text in (document, urllib.parse.unquote(str(document))):
        try:
            policy = json.loads(text)
        except (TypeError, ValueError):
            continue
        return policy if isinstance(policy, dict) else {}
    return {}


def _access_denied(message: str) -> _WsgiAnswer:
    return _error_answer(
        _Call("sts", "AssumeRole", json_protocol=False),
        MotoFault("sts", "AssumeRole", error_code="AccessDenied", message=message, status=403),
    )


def _moto_version() -> str:
    import moto

    return str(getattr(moto, "__version__", "?"))


RequestItems = dict[str, list[Any]]


def _split_request_items(items: RequestItems, fraction: float) -> tuple[RequestItems, RequestItems]:
    """(unprocessed, to write): the first ceil(fraction * n) items in request order are left."""
    total = sum(len(requests) for requests in items.values())
    left = math.ceil(fraction * total)
    unprocessed: RequestItems = {}
    to_write: RequestItems = {}
    for table, requests in items.items():
        kept, left = requests[:left], max(0, left - len(requests))
        if kept:
            unprocessed[table] = kept
        if requests[len(kept) :]:
            to_write[table] = requests[len(kept) :]
    return unprocessed, to_write


def _batch_write_answer(payload: dict[str, Any], headers: Iterable[tuple[str, str]]) -> _WsgiAnswer:
    body = json.dumps(payload).encode()
    kept = [(k, v) for k, v in headers if k.lower() not in ("content-length", "x-amz-crc32")]
    return 200, [*kept, ("x-amz-crc32", str(zlib.crc32(body)))], body


class _FifoLock:
    """A lock granted in arrival order (threading.Lock is not fair: under load a waiting
    request can lose the race again and again, and wait longer than any queue explains)."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._condition:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._condition.wait()

    def __exit__(self, *exc: object) -> None:
        with self._condition:
            self._serving += 1
            self._condition.notify_all()


class _GcPauses:
    """The longest pause and the count of this process's collections, per generation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = 0.0
        self.collections: Counter[int] = Counter()
        self.longest: dict[int, float] = {}

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # gc callbacks run in the thread that triggered the collection, holding the GIL.
        if phase == "start":
            self._started = time.perf_counter()
            return
        paused = time.perf_counter() - self._started
        generation = int(info.get("generation", -1))
        with self._lock:
            self.collections[generation] += 1
            self.longest[generation] = max(self.longest.get(generation, 0.0), paused)

    def reset(self) -> None:
        with self._lock:
            self.collections.clear()
            self.longest.clear()

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "collections": {str(g): n for g, n in sorted(self.collections.items())},
                "pauseMaxSeconds": {str(g): round(t, 4) for g, t in sorted(self.longest.items())},
            }


# One recorder per process: gc callbacks are process-wide.
GC_PAUSES = _GcPauses()
gc.callbacks.append(GC_PAUSES)
# A generation-2 threshold no count reaches: no automatic full collection (see manual_gc).
_NEVER = 2**31 - 1


def use_manual_full_gc() -> None:
    """No automatic full collections in this process from now on (young ones go on)."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _NEVER)


@dataclass
class _OperationStats:
    """How requests of one operation waited for moto and how long they held it (seconds)."""

    requests: int = 0
    wait_total: float = 0.0
    wait_max: float = 0.0
    held_total: float = 0.0
    held_max: float = 0.0

    def add(self, waited: float, held: float) -> None:
        self.requests += 1
        self.wait_total += waited
        self.wait_max = max(self.wait_max, waited)
        self.held_total += held
        self.held_max = max(self.held_max, held)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "waitTotalSeconds": round(self.wait_total, 4),
            "waitMaxSeconds": round(self.wait_max, 4),
            "heldTotalSeconds": round(self.held_total, 4),
            "heldMaxSeconds": round(self.held_max, 4),
        }


_DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
_DYNAMODB_READS = frozenset({"Query", "Scan", "GetItem", "BatchGetItem"})
# Data-plane requests the meter counts but does not size (control-plane ones it ignores).
_DYNAMODB_UNMETERED = frozenset(
    {
        "TransactWriteItems",
        "TransactGetItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
    }
)
_CONDITION_FAILED = "ConditionalCheckFailedException"


class _DynamoDbMeter:
    """Capacity units of the DynamoDB requests moto processes, from moto's own tables.

    Called under moto's lock: `before` reads the items a write names as they are, `after`
    reads them again once moto answered, and the difference is metered (see
    `scripts.local.dynamodb_capacity`). Query and Scan are metered by the fast paths'
    read observer (what each request evaluated); without them they are counted unmetered.
    """

    def __init__(self, meter: CapacityMeter) -> None:
        self.meter = meter
        self._accounts: dict[str, str] = {}
        self._observed = False

    def observe_read(self, table: str, index: str | None, size: int, consistent: bool) -> None:
        self._observed = True
        self.meter.read(table, index, size, consistent)

    def _table(self, environ: dict[str, Any], name: str) -> Any:
        from moto.dynamodb.models import dynamodb_backends
        from moto.iam.models import get_account_id_from

        match = _CALLER_IN_AUTH.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match is None:
            return None
        access_key, region = match.groups()
        if access_key not in self._accounts:
            self._accounts[access_key] = get_account_id_from(access_key)
        return dynamodb_backends[self._accounts[access_key]][region].tables.get(name)

    @staticmethod
    def _indexes(table: Any) -> list[IndexSpec]:
        return [
            IndexSpec.from_description(
                {"IndexName": ix.name, "KeySchema": ix.schema, "Projection": ix.projection},
                table.table_key_attrs,
            )
            for ix in table.global_indexes or ()
        ]

    @staticmethod
    def _attrs(table: Any, key: Mapping[str, Any]) -> Any:
        from moto.dynamodb.models.dynamo_type import DynamoType

        try:
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            item = table.get_item(hash_value, range_value)
        except Exception:  # a malformed key: moto answers the error; nothing to meter
            return None
        return None if item is None else item.attrs

    @staticmethod
    def _writes(operation: str, body: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
        """(table, key, item sent or None) of every item write the request asks for; a put
        names its item by its whole attribute map (the key is in it)."""
        if operation == "BatchWriteItem":
            writes = []
            for table, requests in (body.get("RequestItems") or {}).items():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"].get("Item") or {}
                        writes.append((table, item, item))
                    elif "DeleteRequest" in request:
                        writes.append((table, request["DeleteRequest"].get("Key") or {}, None))
            return writes
        table = body.get("TableName", "")
        if operation == "PutItem":
            item = body.get("Item") or {}
            return [(table, item, item)]
        return [(table, body.get("Key") or {}, None)]

    def meter_call(
        self,
        environ: dict[str, Any],
        operation: str,
        body: Mapping[str, Any],
        process: Callable[[], tuple[int, bytes]],
    ) -> None:
        """Run `process` (moto, under the lock), metering the request it answers."""
        if operation not in _DYNAMODB_WRITES | _DYNAMODB_READS | _DYNAMODB_UNMETERED:
            process()  # control plane (CreateTable, DescribeTable, ...): no request units
            return
        tables = _table_names_of(body)
        for table in tables:
            self.meter.request(table, operation)
        if operation in _DYNAMODB_UNMETERED:
            process()
            for table in tables:
                self.meter.unmetered(table, operation)
            return
        before: list[tuple[str, Any, Mapping[str, Any], list[IndexSpec], ItemState, Any]] = []
        if operation in _DYNAMODB_WRITES:
            for table_name, key, sent in self._writes(operation, body):
                table = self._table(environ, table_name)
                if table is None:
                    continue
                indexes = self._indexes(table)
                state = ItemState.of(self._attrs(table, key), indexes)
                before.append((table_name, table, key, indexes, state, sent))
        self._observed = False
        status, answer = process()
        if operation in _DYNAMODB_WRITES:
            failed_condition = status == 400 and _CONDITION_FAILED.encode() in answer
            if status != 200 and not failed_condition:
                return  # refused (validation, throttling fault): DynamoDB charges nothing
            for table_name, table, key, indexes, state, sent in before:
                if failed_condition:
                    # Only a failed condition is charged by the item sent (if larger).
                    self.meter.write(table_name, state, None, item_size(sent) if sent else 0)
                else:
                    self.meter.write(
                        table_name, state, ItemState.of(self._attrs(table, key), indexes)
                    )
            return
        if status != 200:
            return
        if operation == "GetItem":
            self._meter_gets(environ, {body.get("TableName", ""): body}, single=True)
        elif operation == "BatchGetItem":
            self._meter_gets(environ, body.get("RequestItems") or {}, single=False)
        elif not self._observed:
            for table in tables:
                self.meter.unmetered(table, operation)

    def _meter_gets(
        self, environ: dict[str, Any], requests: Mapping[str, Any], single: bool
    ) -> None:
        for table_name, request in requests.items():
            table = self._table(environ, table_name)
            if table is None:
                continue
            keys = [request.get("Key") or {}] if single else request.get("Keys") or []
            consistent = bool(request.get("ConsistentRead", False))
            for key in keys:
                attrs = self._attrs(table, key)
                size = 0 if attrs is None else ItemState.of(attrs, ()).size
                self.meter.read(table_name, None, size, consistent)


def _table_names_of(body: Mapping[str, Any]) -> list[str]:
    names = [body["TableName"]] if isinstance(body.get("TableName"), str) else []
    if isinstance(body.get("RequestItems"), dict):
        names += [name for name in body["RequestItems"] if isinstance(name, str)]
    for item in body.get("TransactItems") or ():
        for action in item.values() if isinstance(item, dict) else ():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                names.append(action["TableName"])
    return names


class _SerialisedApp:
    """WSGI middleware: one request inside moto at a time; the body is drained under the lock.

    `latency_ms` maps a SigV4 service name (e.g. "ec2") to added latency, slept outside
    the lock so simulated network time overlaps as it would against AWS. Faults are matched
    and answered before moto's lock is taken; a hang waits outside it too.
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        latency_ms: Mapping[str, float] | None = None,
        *,
        capacity: bool = False,
    ) -> None:
        self._app = app
        self._lock = _FifoLock()
        self._latency_ms = dict(latency_ms or {})
        # Guards faults and counters only, never held while moto runs or a request waits.
        self._state_lock = threading.Lock()
        self._faults: dict[tuple[str, str | None, str | None], _ArmedFault] = {}
        self._counts: Counter[tuple[str, str]] = Counter()
        self._stats: dict[str, _OperationStats] = {}
        self._meter = _DynamoDbMeter(CapacityMeter()) if capacity else None
        # Set when the server stops: hung requests and latency waits end at once.
        self.stopping = threading.Event()
        # Requests a "hang" fault held, from their arrival until moto answered them: a held
        # write lands when its hang ends, so whoever resets moto must wait for them first.
        self._held = 0
        self._held_done = threading.Condition(self._state_lock)

    @property
    def read_observer(self) -> moto_speedups.ReadObserver | None:
        """What the fast Query/Scan paths report reads to (None without metering)."""
        return self._meter.observe_read if self._meter is not None else None

    # -- faults and counters --

    def set_fault(self, fault: MotoFault) -> None:
        with self._state_lock:
            self._faults[fault.key] = _ArmedFault(fault, fault.count, fault.skip)

    def clear_faults(self) -> None:
        with self._state_lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._state_lock:
            return [
                {
                    "fault": armed.fault.to_dict(),
                    "remaining": armed.remaining,
                    "toSkip": armed.to_skip,
                }
                for armed in self._faults.values()
            ]

    def request_counts(self) -> dict[tuple[str, str], int]:
        with self._state_lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._state_lock:
            self._counts.clear()

    def stats(self) -> dict[str, dict[str, float | int]]:
        """Per operation: requests, seconds waited for moto's lock and held it (total, max)."""
        with self._state_lock:
            return {operation: stats.to_dict() for operation, stats in sorted(self._stats.items())}

    def reset_stats(self) -> None:
        with self._state_lock:
            self._stats.clear()
        GC_PAUSES.reset()

    def collect_garbage(self) -> dict[str, Any]:
        """A full collection under moto's lock (no request runs meanwhile); what it took."""
        with self._lock:
            started = time.perf_counter()
            collected = gc.collect()
            return {"collected": collected, "seconds": round(time.perf_counter() - started, 4)}

    def capacity(self) -> dict[str, Any]:
        """Capacity units per DynamoDB table since the last reset (`enabled` False: off)."""
        if self._meter is None:
            return {"enabled": False, "tables": {}}
        return {"enabled": True, "tables": self._meter.meter.snapshot()}

    def reset_capacity(self) -> None:
        if self._meter is not None:
            self._meter.meter.reset()

    def _take_fault(self, call: _Call, environ: dict[str, Any]) -> MotoFault | None:
        """The most specific armed fault for this request, using one of its uses (or skips)."""
        with self._state_lock:
            if not any(key[0] == call.service for key in self._faults):
                return None
            wants_tables = any(
                key[0] == call.service and key[2] is not None for key in self._faults
            )
        # Parsing the body happens outside the lock; only requests a fault could match pay it.
        tables = _table_names(environ) if wants_tables and call.json_protocol else []
        candidates: list[tuple[str, str | None, str | None]] = [
            (call.service, call.operation, table) for table in tables
        ]
        candidates.append((call.service, call.operation, None))
        candidates += [(call.service, None, table) for table in tables]
        candidates.append((call.service, None, None))
        with self._state_lock:
            for key in candidates:
                armed = self._faults.get(key)
                if armed is None or not armed.fault.applies_to(call.operation):
                    continue
                if armed.to_skip > 0:
                    armed.to_skip -= 1
                    return None
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining <= 0:
                        del self._faults[key]
                return armed.fault
        return None

    # -- WSGI --

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self._respond(start_response, self._control(environ))
        call = _call_of(environ)
        with self._state_lock:
            self._counts[(call.service, call.operation)] += 1
        delay = self._latency_ms.get(call.service, 0.0)
        if delay:
            self.stopping.wait(delay / 1000.0)
        fault = self._take_fault(call, environ)
        if fault is not None and fault.kind == ERROR:
            return self._respond(start_response, _error_answer(call, fault))
        if fault is not None and fault.kind == UNPROCESSED:
            return self._respond(start_response, self._unprocessed(environ, fault.fraction))
        if fault is not None and fault.kind == HANG:
            return self._held_then_run(environ, start_response, call, fault.hang_seconds)
        return self._run_moto(environ, start_response, call)

    def _held_then_run(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        call: _Call,
        hang_seconds: float,
    ) -> list[bytes]:
        with self._state_lock:
            self._held += 1
        try:
            self.stopping.wait(hang_seconds)
            return self._run_moto(environ, start_response, call)
        finally:
            with self._state_lock:
                self._held -= 1
                self._held_done.notify_all()

    def wait_for_held_requests(self, timeout: float) -> bool:
        """Block until no request held by a "hang" fault is waiting or inside moto (True),
        or `timeout` seconds passed (False)."""
        with self._state_lock:
            return self._held_done.wait_for(lambda: self._held == 0, timeout=timeout)

    def _run_moto(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        call: _Call,
        body: Mapping[str, Any] | None = None,
    ) -> list[bytes]:
        """moto answers the request under the lock (in arrival order), metered when asked;
        `body` is the DynamoDB request moto reads (default: the request's own)."""
        arrived = time.perf_counter()
        with self._lock:
            entered = time.perf_counter()
            try:
                if call.service == "sts" and call.operation == "AssumeRole":
                    refusal = _assume_role_refusal(environ)
                    if refusal is not None:
                        return self._respond(start_response, refusal)
                if self._meter is not None and call.service == "dynamodb" and call.json_protocol:
                    metered_body = body if body is not None else _json_body(environ)
                    return self._metered(environ, start_response, call, metered_body)
                return list(self._app(environ, start_response))
            finally:
                held = time.perf_counter() - entered
                with self._state_lock:
                    stats = self._stats.setdefault(call.operation, _OperationStats())
                    stats.add(entered - arrived, held)

    def _metered(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        call: _Call,
        body: Mapping[str, Any],
    ) -> list[bytes]:
        assert self._meter is not None
        status: list[int] = []
        chunks: list[bytes] = []

        def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(int(code.split()[0]))
            return (
                start_response(code, headers, exc_info)
                if exc_info
                else start_response(code, headers)
            )

        def process() -> tuple[int, bytes]:
            chunks.extend(self._app(environ, capture))
            return (status[0] if status else 500), b"".join(chunks)

        try:
            self._meter.meter_call(environ, call.operation, body, process)
        except Exception:  # metering must never cost a request its answer
            logging.getLogger(__name__).exception("capacity metering failed")
            if not status:
                process()
        return chunks

    def _unprocessed(self, environ: dict[str, Any], fraction: float) -> _WsgiAnswer:
        """A BatchWriteItem answer leaving `fraction` of the items unprocessed; moto writes the
        rest (and its own unprocessed items, if any, are returned too)."""
        body = _json_body(environ)
        unprocessed, to_write = _split_request_items(body.get("RequestItems") or {}, fraction)
        headers = [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ]
        if not to_write:
            return _batch_write_answer(
                {"UnprocessedItems": unprocessed, "ConsumedCapacity": []}, headers
            )
        forwarded = json.dumps({**body, "RequestItems": to_write}).encode()
        environ["wsgi.input"] = io.BytesIO(forwarded)
        environ["CONTENT_LENGTH"] = str(len(forwarded))
        answered: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered.update(status=int(status.split()[0]), headers=headers)
            return lambda data: None

        moto_body = b"".join(
            self._run_moto(environ, capture, _call_of(environ), {**body, "RequestItems": to_write})
        )
        if answered["status"] != 200:
            return answered["status"], answered["headers"], moto_body
        payload = json.loads(moto_body)
        for table, requests in (payload.get("UnprocessedItems") or {}).items():
            unprocessed.setdefault(table, []).extend(requests)
        payload["UnprocessedItems"] = unprocessed
        return _batch_write_answer(payload, answered["headers"])

    @staticmethod
    def _respond(start_response: Callable[..., Any], answer: _WsgiAnswer) -> list[bytes]:
        status, headers, body = answer
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [*headers, ("Content-Length", str(len(body)))],
        )
        return [body]

    def _control(self, environ: dict[str, Any]) -> _WsgiAnswer:
        """`/_local/faults` (GET list, POST arm one, DELETE clear all),
        `/_local/request-counts`, `/_local/stats` and `/_local/capacity` (GET, DELETE),
        `/_local/gc` (POST: a full collection)."""
        route = (environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""))
        try:
            if route == ("GET", FAULTS_PATH):
                return _json_answer(200, {"faults": self.faults()})
            if route == ("POST", FAULTS_PATH):
                self.set_fault(MotoFault.from_dict(_json_body(environ)))
                return _json_answer(200, {})
            if route == ("DELETE", FAULTS_PATH):
                self.clear_faults()
                return _json_answer(200, {})
            if route == ("GET", COUNTS_PATH):
                counts = [
                    {"service": service, "operation": operation, "count": count}
                    for (service, operation), count in sorted(self.request_counts().items())
                ]
                return _json_answer(200, {"counts": counts})
            if route == ("DELETE", COUNTS_PATH):
                self.reset_counts()
                return _json_answer(200, {})
            if route == ("GET", STATS_PATH):
                return _json_answer(200, {"operations": self.stats(), "gc": GC_PAUSES.to_dict()})
            if route == ("POST", GC_PATH):
                return _json_answer(200, self.collect_garbage())
            if route == ("DELETE", STATS_PATH):
                self.reset_stats()
                return _json_answer(200, {})
            if route == ("GET", CAPACITY_PATH):
                return _json_answer(200, self.capacity())
            if route == ("DELETE", CAPACITY_PATH):
                self.reset_capacity()
                return _json_answer(200, {})
            if route == ("GET", EVENT_DELIVERIES_PATH):
                # Not under moto's lock: a long poll must not hold other requests.
                query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
                after = int(query.get("after", ["0"])[0])
                wait = min(float(query.get("wait", ["0"])[0]), 20.0)
                deliveries = moto_events.DELIVERIES.after(after, wait)
                return _json_answer(200, {"deliveries": deliveries})
        except (KeyError, ValueError, TypeError) as exc:
            return _json_answer(400, {"message": f"bad control request: {exc!r}"})
        return _json_answer(404, {"message": f"no control route {route[0]} {route[1]}"})


def _json_answer(status: int, payload: Any) -> _WsgiAnswer:
    return status, [("Content-Type", "application/json")], json.dumps(payload).encode()


def _app(
    latency_ms: Mapping[str, float] | None = None,
    *,
    fast_dynamodb: bool = False,
    capacity: bool = False,
    manual_gc: bool = False,
) -> _SerialisedApp:
    """The serialised moto app; `fast_dynamodb` and `manual_gc` act on this whole process."""
    if manual_gc:
        use_manual_full_gc()
    # Always: moto takes every bucket-policy condition as met (see moto_s3_policy).
    moto_s3_policy.install()
    # Always: EventBridge's forwarding, Lambda targets and SQS mappings (see moto_events).
    moto_events.install()
    app = _SerialisedApp(
        DomainDispatcherApplication(create_backend_app), latency_ms, capacity=capacity
    )
    if fast_dynamodb:
        moto_speedups.install(app.read_observer)
    return app


def parse_latency(text: str) -> dict[str, float]:
    """`"sts=20,dynamodb=5"` -> {"sts": 20.0, "dynamodb": 5.0} (milliseconds per request).

    Raises ValueError for an entry that is not SERVICE=MS with MS >= 0.
    """
    latency: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        service, _, millis = entry.partition("=")
        if not service or not millis:
            raise ValueError(f"latency takes SERVICE=MS, got {entry!r}")
        value = float(millis)
        if value < 0 or math.isnan(value):
            raise ValueError(f"latency must be >= 0 ms, got {entry!r}")
        latency[service.strip()] = value
    return latency


class LocalMotoServer:
    """A moto server bound to 127.0.0.1 on a free port (or `port`), stopped by `stop()`.

    Faults may be armed before `start()`; they and the request counters last until cleared
    (a restart keeps them).
    """

    def __init__(
        self,
        port: int = 0,
        latency_ms: Mapping[str, float] | None = None,
        *,
        fast_dynamodb: bool = False,
        capacity: bool = False,
        manual_gc: bool = False,
    ) -> None:
        self._port = port
        self._app = _app(
            latency_ms, fast_dynamodb=fast_dynamodb, capacity=capacity, manual_gc=manual_gc
        )
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalMotoServer is not started")
        return f"http://{LOOPBACK}:{self._server.server_port}"

    def start(self) -> str:
        self._app.stopping.clear()
        self._server = make_server(LOOPBACK, self._port, self._app, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-server", daemon=True
        )
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        """Stop serving; requests held by a "hang" fault or latency are released first."""
        self._app.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalMotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and counters (the same as `MotoControl` does over HTTP) --

    def set_fault(self, fault: MotoFault) -> None:
        """Arm `fault`; one per (service, operation, table_name): setting again replaces it.

        The most specific armed fault that applies wins: operation and table, then operation,
        then table, then the service's catch-all. While it is skipping, requests pass untouched.
        """
        self._app.set_fault(fault)

    def clear_faults(self) -> None:
        """Disarm every fault (requests already held by a "hang" stay held)."""
        self._app.clear_faults()

    def wait_for_held_requests(self, timeout: float = 30.0) -> bool:
        """Wait until every request held by a "hang" fault has been answered by moto; False
        if some were still held after `timeout` seconds. A held write lands when its hang ends:
        reset moto only after this, or the write lands in the next test's tables."""
        return self._app.wait_for_held_requests(timeout)

    def faults(self) -> list[dict[str, Any]]:
        """Armed faults as JSON-ready dicts: fault (`MotoFault.to_dict`), remaining, toSkip."""
        return self._app.faults()

    def request_counts(self) -> dict[tuple[str, str], int]:
        """Requests per (SigV4 service, operation), faulted ones included.

        The operation is the X-Amz-Target's or `Action=`'s; "" for REST services (S3, Lambda).
        """
        return self._app.request_counts()

    def request_count(self, service: str | None = None, operation: str | None = None) -> int:
        """Sum of `request_counts()` matching the arguments (None matches any)."""
        return count_matching(self.request_counts(), service, operation)

    def reset_counts(self) -> None:
        self._app.reset_counts()

    def stats(self) -> dict[str, dict[str, float | int]]:
        """Per operation: requests, seconds waited for moto and held it (total and max)."""
        return self._app.stats()

    def reset_stats(self) -> None:
        self._app.reset_stats()

    def collect_garbage(self) -> dict[str, Any]:
        """A full collection under moto's lock: `{"collected", "seconds"}`."""
        return self._app.collect_garbage()

    def capacity(self) -> dict[str, Any]:
        """`{"enabled": bool, "tables": {name: units...}}` (see `CapacityMeter`)."""
        return self._app.capacity()

    def reset_capacity(self) -> None:
        self._app.reset_capacity()


def count_matching(
    counts: Mapping[tuple[str, str], int], service: str | None = None, operation: str | None = None
) -> int:
    """Sum of the (service, operation) counters matching the arguments (None: any)."""
    return sum(
        count
        for (svc, op), count in counts.items()
        if service in (None, svc) and operation in (None, op)
    )


class MotoControlError(Exception):
    """The control API answered an error status."""


class MotoControl:
    """Faults and counters of a local moto server running elsewhere, over `/_local/`."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        url = self.endpoint + path
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            raise MotoControlError(f"{method} {url} -> {exc.code}: {text}") from exc

    def set_fault(self, fault: MotoFault) -> None:
        self._call("POST", FAULTS_PATH, fault.to_dict())

    def clear_faults(self) -> None:
        self._call("DELETE", FAULTS_PATH)

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", FAULTS_PATH)["faults"])

    def request_counts(self) -> dict[tuple[str, str], int]:
        return {
            (row["service"], row["operation"]): row["count"]
            for row in self._call("GET", COUNTS_PATH)["counts"]
        }

    def request_count(self, service: str | None = None, operation: str | None = None) -> int:
        return count_matching(self.request_counts(), service, operation)

    def reset_counts(self) -> None:
        self._call("DELETE", COUNTS_PATH)

    def stats(self) -> dict[str, dict[str, float | int]]:
        return dict(self._call("GET", STATS_PATH)["operations"])

    def reset_stats(self) -> None:
        self._call("DELETE", STATS_PATH)

    def gc_pauses(self) -> dict[str, Any]:
        """Collections and longest pause per generation since the stats' last reset."""
        return dict(self._call("GET", STATS_PATH)["gc"])

    def collect_garbage(self) -> dict[str, Any]:
        return dict(self._call("POST", GC_PATH))

    def capacity(self) -> dict[str, Any]:
        return dict(self._call("GET", CAPACITY_PATH))

    def reset_capacity(self) -> None:
        self._call("DELETE", CAPACITY_PATH)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve moto on 127.0.0.1 until stopped.")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="SERVICE=MS[,SERVICE=MS]",
        help="added latency per request of a service in milliseconds, e.g. sts=20,dynamodb=5 "
        f"(repeatable; ${LATENCY_ENV} is read first)",
    )
    parser.add_argument(
        "--fast-dynamodb",
        action="store_true",
        help="install scripts.local.moto_speedups (moto's DynamoDB hot paths, same answers)",
    )
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="meter DynamoDB capacity units (GET/DELETE /_local/capacity)",
    )
    parser.add_argument(
        "--manual-gc",
        action="store_true",
        help="no automatic full garbage collections; POST /_local/gc runs one",
    )
    args = parser.parse_args(argv)
    try:
        latency = parse_latency(os.environ.get(LATENCY_ENV, ""))
        for spec in args.latency:
            latency.update(parse_latency(spec))
    except ValueError as exc:
        parser.error(str(exc))
    app = _app(
        latency,
        fast_dynamodb=args.fast_dynamodb,
        capacity=args.capacity,
        manual_gc=args.manual_gc,
    )
    server = make_server(LOOPBACK, args.port, app, threaded=True)

    def _stop(signum: int, frame: FrameType | None) -> None:
        app.stopping.set()  # hung requests end now
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"MOTO_ENDPOINT=http://{LOOPBACK}:{server.server_port}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
