"""A wire-level AWS Elastic Disaster Recovery (DRS) simulator on loopback (moto has no DRS).

It speaks DRS's rest-json protocol, so a stock boto3 `drs` client pointed at it
(`endpoint_url=...` or `AWS_ENDPOINT_URL_DRS`) works unchanged, and it attributes every request
to a caller the way DRS does:

- region: the SigV4 credential scope (`Credential=AKID/DATE/REGION/drs/aws4_request`);
- account: the access key id, resolved by a static mapping, then a resolver (by default STS
  GetCallerIdentity against moto, which knows which account an AssumeRole'd key belongs to),
  then an optional default account. An unknown key gets `UnrecognizedClientException`.
  Signatures are not verified: the simulator never knows the secrets.

Operations: DescribeSourceServers (filters, maxResults, opaque nextToken), DescribeRecoveryInstances
(always empty), ListStagingAccounts (staging accounts of the caller's extended servers). Other
DRS operations answer 501 `NotImplementedException`; paths that are no DRS operation answer
`ValidationException` (reason `unknownOperation`). Requests are validated against botocore's
input shapes (types, ranges, lengths, patterns), as the service would.

Paging: items are served in `sourceServerID` order; `nextToken` is an opaque token naming the
scope and the last id served, so servers added or removed between pages neither repeat nor
shift. `maxResults` has no upper bound in the model; the simulator serves at most
`max_page_size` (default 1000) and uses `default_page_size` (default 1000) when it is absent.

Control (tests, `make demo`, benchmarks): Python methods on `DrsSimulator`, or the same over
HTTP under `/_sim/` (see `SimulatorControl`): servers per (account, region), raw records (any
JSON, served unvalidated among the servers), faults per (account, region[, operation]) with
optional "skip N, then fail M, then succeed", latency, request counts, churn (one schedule
interval of a live estate: see `churn`). A fault answers an error,
hangs a request until `stop()`, or bends the shape of a DescribeSourceServers answer (no
`items`, `items` not a list, a repeating or never-ending `nextToken`); see `Fault`.

Events (issue 15): given an EventBridge endpoint (`events_endpoint`, `--events-endpoint`: the
local moto), the control API's changes to a server put the events DRS would put on the default
bus of that account and region (`scripts.local.drs_events`): a replication stall or its end
("DRS Source Server Data Replication Stalled Change"), a launch result, and, as CloudTrail
records them, DeleteSourceServer, DisconnectSourceServer, TagResource and UntagResource. Without
an endpoint nothing is put. The bulk setters (servers, fleet, churn) emit nothing: they seed.
A change queues its event and returns; `EventEmitter`'s threads put the queued events, up to
10 per PutEvents, one call per (account, region) at a time so each server's events keep their
order, up to EVENT_SENDERS calls in flight (`/_sim/events`: counts and lag;
`/_sim/events/flush`: wait until all are put).

As a process: `python -m scripts.local.drs_simulator --port 0 --sts-endpoint URL` prints
`DRS_ENDPOINT=http://127.0.0.1:PORT` and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import contextlib
import itertools
import json
import logging
import random
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

import boto3
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import (
    ListShape,
    MapShape,
    OperationModel,
    ServiceModel,
    Shape,
    StringShape,
    StructureShape,
)

from scripts.local import drs_events, fleet

LOG = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000
CONTROL_PREFIX = "/_sim/"

THROTTLING = "ThrottlingException"
ACCESS_DENIED = "AccessDeniedException"
UNINITIALIZED = "UninitializedAccountException"
INTERNAL_ERROR = "InternalServerException"
UNRECOGNIZED_CLIENT = "UnrecognizedClientException"
VALIDATION = "ValidationException"

# Errors DRS's model does not declare but the AWS front door answers with (HTTP status).
_UNMODELED_ERROR_STATUS = {
    UNRECOGNIZED_CLIENT: 403,  # unknown key, or an opt-in region the account has not enabled
    "MissingAuthenticationTokenException": 403,
    "NotImplementedException": 501,
}
FAULT_ERROR_CODES = frozenset(
    {THROTTLING, ACCESS_DENIED, UNINITIALIZED, INTERNAL_ERROR, UNRECOGNIZED_CLIENT, VALIDATION}
)
_DEFAULT_FAULT_MESSAGES = {
    THROTTLING: "Rate exceeded",
    ACCESS_DENIED: "User is not authorized to perform this DRS action (simulated)",
    UNINITIALIZED: "Account is not initialized. Please initialize the service first.",
    INTERNAL_ERROR: "Internal server error (simulated)",
    UNRECOGNIZED_CLIENT: "The security token included in the request is invalid.",
    VALIDATION: "Invalid request (simulated)",
}
IMPLEMENTED_OPERATIONS = (
    "DescribeSourceServers",
    "DescribeRecoveryInstances",
    "ListStagingAccounts",
)

_AUTH_SCOPE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_SERVER_ID = re.compile(r"s-[0-9a-zA-Z]{17}")

AccountResolver = Callable[[str], "str | None"]


@cache
def service_model() -> ServiceModel:
    """botocore's DRS model: the one source of truth for routes, input rules and error statuses."""
    return botocore.session.get_session().get_service_model("drs")


# ---- errors and faults ------------------------------------------------------------------------


class DrsApiError(Exception):
    """An error the simulator answers with, in rest-json form (x-amzn-ErrorType + JSON body)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        fields: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        """The HTTP status the model declares for `code` (or the AWS front door's, if unmodeled)."""
        if self.code in _UNMODELED_ERROR_STATUS:
            return _UNMODELED_ERROR_STATUS[self.code]
        shape = service_model().shape_for(self.code)
        return int(shape.metadata["error"]["httpStatusCode"])


def _validation_error(message: str, reason: str, field_name: str | None = None) -> DrsApiError:
    fields: dict[str, Any] = {"code": VALIDATION, "reason": reason}
    if field_name:
        fields["fieldList"] = [{"name": field_name, "message": message}]
    return DrsApiError(VALIDATION, message, fields=fields)


def fault_error(
    code: str, message: str | None = None, retry_after_seconds: int | None = None
) -> DrsApiError:
    """The error a fault answers with, carrying every member the model's error shape declares.

    Raises:
        ValueError: `code` is not one of `FAULT_ERROR_CODES`.
    """
    if code not in FAULT_ERROR_CODES:
        raise ValueError(f"unsupported fault {code!r}; use one of {sorted(FAULT_ERROR_CODES)}")
    text = message or _DEFAULT_FAULT_MESSAGES[code]
    headers: dict[str, str] = {}
    fields: dict[str, Any] = {}
    if code == THROTTLING:
        # Retry-After is the header the model binds to ThrottlingException.retryAfterSeconds.
        fields = {"serviceCode": "drs", "quotaCode": "L-SIMULATED-API-RATE"}
        headers["Retry-After"] = str(1 if retry_after_seconds is None else retry_after_seconds)
    elif code == INTERNAL_ERROR:
        if retry_after_seconds is not None:
            headers["Retry-After"] = str(retry_after_seconds)
    elif code in (ACCESS_DENIED, UNINITIALIZED):
        fields = {"code": code}
    elif code == VALIDATION:
        fields = {"code": code, "reason": "other"}
    return DrsApiError(code, text, fields=fields, headers=headers)


ERROR_KIND = "error"
MISSING_ITEMS = "missing_items"
ITEMS_NOT_LIST = "items_not_list"
REPEAT_TOKEN = "repeat_token"
ENDLESS_PAGES = "endless_pages"
HANG = "hang"
# Kinds that change the shape of a DescribeSourceServers answer (200) instead of failing it.
RESPONSE_SHAPE_KINDS = frozenset({MISSING_ITEMS, ITEMS_NOT_LIST, REPEAT_TOKEN, ENDLESS_PAGES})
FAULT_KINDS = frozenset({ERROR_KIND, HANG} | RESPONSE_SHAPE_KINDS)
DEFAULT_HANG_SECONDS = 300.0


@dataclass(frozen=True)
class Fault:
    """A fault injected into matching requests.

    kind: what happens to a faulted request:
        "error" (default): answer `error_code`, one of `FAULT_ERROR_CODES`.
        "missing_items": DescribeSourceServers answers 200 with the body `{}`.
        "items_not_list": DescribeSourceServers answers 200 with `{"items": "oops"}`.
        "repeat_token": DescribeSourceServers answers the listing's first page, with that
            page's nextToken, whatever token was sent: the listing never advances.
        "endless_pages": DescribeSourceServers answers the page the token asks for (empty once
            the servers run out) with a fresh, never-repeated nextToken: the listing never ends.
        "hang": hold the request `hang_seconds`, then answer it normally. `stop()` of the
            simulator ends the wait at once.
        The response-shape kinds apply to DescribeSourceServers only; other operations are not
        matched by them (and do not use up `skip` or `count`).
    error_code: the error of kind "error"; must be None for the other kinds.
    operation: only this operation (e.g. "DescribeSourceServers"); None = every operation.
    count: fault only `count` matching requests (after the skipped ones), then disarm;
        None = until cleared.
    skip: let the first `skip` matching requests through untouched before the fault applies,
        e.g. skip=1 fails page 2 of a listing whose page 1 succeeded.
    message / retry_after_seconds: override the error's message / Retry-After header.
    hang_seconds: how long "hang" holds a request.
    """

    error_code: str | None = None
    operation: str | None = None
    count: int | None = None
    message: str | None = None
    retry_after_seconds: int | None = None
    kind: str = ERROR_KIND
    skip: int = 0
    hang_seconds: float = DEFAULT_HANG_SECONDS

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unsupported fault kind {self.kind!r}; use one of {sorted(FAULT_KINDS)}"
            )
        if self.kind == ERROR_KIND and self.error_code not in FAULT_ERROR_CODES:
            raise ValueError(
                f"unsupported fault {self.error_code!r}; use one of {sorted(FAULT_ERROR_CODES)}"
            )
        if self.kind != ERROR_KIND and self.error_code is not None:
            raise ValueError(f"a fault of kind {self.kind!r} takes no error_code")
        if self.kind in RESPONSE_SHAPE_KINDS and self.operation not in (
            None,
            "DescribeSourceServers",
        ):
            raise ValueError(f"a fault of kind {self.kind!r} applies to DescribeSourceServers only")
        if self.count is not None and self.count < 1:
            raise ValueError(f"Fault.count must be >= 1 or None, got {self.count}")
        if self.skip < 0:
            raise ValueError(f"Fault.skip must be >= 0, got {self.skip}")
        if self.hang_seconds < 0:
            raise ValueError(f"Fault.hang_seconds must be >= 0, got {self.hang_seconds}")

    def applies_to(self, operation: str) -> bool:
        """Whether the fault can act on a request for `operation` (its own filter aside)."""
        return self.kind not in RESPONSE_SHAPE_KINDS or operation == "DescribeSourceServers"

    def to_dict(self) -> dict[str, Any]:
        """JSON form used by the control API (camelCase keys, None values dropped)."""
        data = {
            "kind": self.kind,
            "errorCode": self.error_code,
            "operation": self.operation,
            "count": self.count,
            "skip": self.skip,
            "message": self.message,
            "retryAfterSeconds": self.retry_after_seconds,
            "hangSeconds": self.hang_seconds if self.kind == HANG else None,
        }
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Inverse of `to_dict`. Raises KeyError/ValueError/TypeError on malformed input."""
        return cls(
            error_code=data.get("errorCode"),
            operation=data.get("operation"),
            count=data.get("count"),
            message=data.get("message"),
            retry_after_seconds=data.get("retryAfterSeconds"),
            kind=data.get("kind", ERROR_KIND),
            skip=int(data.get("skip", 0)),
            hang_seconds=float(data.get("hangSeconds", DEFAULT_HANG_SECONDS)),
        )


@dataclass
class _ArmedFault:
    fault: Fault
    remaining: int | None
    to_skip: int = 0


@dataclass(frozen=True)
class Latency:
    """Added delay per request: `ms` plus a uniform random 0..`jitter_ms`."""

    ms: float
    jitter_ms: float = 0.0

    def sample_seconds(self) -> float:
        jitter = random.uniform(0.0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        return (self.ms + jitter) / 1000.0


# ---- caller attribution -----------------------------------------------------------------------


class AccountResolutionError(Exception):
    """The resolver could not ask anyone (e.g. STS unreachable): not the caller's fault."""


class StsAccountResolver:
    """Access key id -> account id via STS GetCallerIdentity on `endpoint` (moto), cached per key.

    The request is SigV4-signed with the access key id and a dummy secret: moto identifies the
    caller from the key alone (an AssumeRole'd key -> the assumed account, "testing" -> moto's
    default account). Returns None when STS rejects the key.
    """

    def __init__(self, endpoint: str, region: str = "us-east-1", timeout: float = 10.0) -> None:
        self._endpoint = endpoint.rstrip("/") + "/"
        self._region = region
        self._timeout = timeout
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, access_key_id: str) -> str | None:
        with self._lock:
            cached = self._cache.get(access_key_id)
        if cached is not None:
            return cached
        account_id = self._get_caller_account(access_key_id)
        if account_id is not None:
            with self._lock:
                self._cache[access_key_id] = account_id
        return account_id

    def _get_caller_account(self, access_key_id: str) -> str | None:
        body = "Action=GetCallerIdentity&Version=2011-06-15"
        request = AWSRequest(
            method="POST",
            url=self._endpoint,
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        credentials = Credentials(access_key_id, "drs-simulator-dummy-secret")
        SigV4Auth(credentials, "sts", self._region).add_auth(request)
        http_request = urllib.request.Request(
            self._endpoint, data=body.encode(), headers=dict(request.headers.items()), method="POST"
        )
        try:
            with urllib.request.urlopen(http_request, timeout=self._timeout) as response:
                document = ElementTree.fromstring(response.read())
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:
                return None
            raise AccountResolutionError(f"STS at {self._endpoint} answered {exc.code}") from exc
        except (OSError, ElementTree.ParseError) as exc:
            raise AccountResolutionError(f"STS at {self._endpoint} failed: {exc}") from exc
        for element in document.iter():
            if element.tag.rsplit("}", 1)[-1] == "Account" and element.text:
                return element.text.strip()
        return None


# ---- stored servers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One stored server: its pre-serialised JSON plus just what the filters need."""

    blob: bytes
    hardware_ids: frozenset[str]
    staging_account_id: str | None


@dataclass
class _Scope:
    """The servers of one (account, region): sorted keys (stable pages) and entries by key.

    A server's key is its sourceServerID; a raw record's is a synthetic key from `_raw_key`,
    listed in `raw_keys` too.
    """

    ids: list[str] = field(default_factory=list)
    entries: dict[str, _Entry] = field(default_factory=dict)
    raw_keys: set[str] = field(default_factory=set)

    def server_ids(self) -> list[str]:
        """The keys of real servers, in page order (raw records left out)."""
        return [key for key in self.ids if key not in self.raw_keys]


def _entry_for(server: Mapping[str, Any]) -> _Entry:
    source = server.get("sourceProperties") or {}
    hints = source.get("identificationHints") or {}
    hardware = {hints.get("awsInstanceID"), hints.get("vmWareUuid")}
    hardware.update(nic.get("macAddress") for nic in source.get("networkInterfaces") or ())
    staging = server.get("stagingArea") or {}
    staged_in = staging.get("stagingAccountID") if staging.get("status") == "EXTENDED" else None
    return _Entry(
        blob=json.dumps(server, separators=(",", ":")).encode(),
        hardware_ids=frozenset(value for value in hardware if value),
        staging_account_id=staged_in,
    )


def _raw_key(record: Any, sequence: int) -> str:
    """A raw record's sort key: right after the server its sourceServerID names (a duplicate
    sits next to the original), or after every server when it has no string id.

    "~" sorts after every character of a real id, and `sequence` keeps keys unique and in
    insertion order.
    """
    server_id = record.get("sourceServerID") if isinstance(record, dict) else None
    prefix = server_id if isinstance(server_id, str) else ""
    return f"{prefix}~raw-{sequence:012d}"


def _raw_entry(record: Any) -> _Entry:
    """An entry served as is: no filter ever selects it (no hardware ids, no staging account).

    Raises:
        ValueError: `record` cannot be written as strict JSON (NaN, infinity, non-JSON types).
    """
    try:
        blob = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
    except TypeError as exc:
        raise ValueError(f"raw record is not JSON: {exc}") from exc
    return _Entry(blob=blob, hardware_ids=frozenset(), staging_account_id=None)


# ---- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimRequest:
    """An HTTP request as the simulator sees it (headers lower-cased)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class SimResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Caller:
    account_id: str
    region: str


def _json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> SimResponse:
    return SimResponse(status, json.dumps(payload, separators=(",", ":")).encode(), headers or {})


def _error_response(error: DrsApiError) -> SimResponse:
    body = {"message": error.message, **error.fields}
    headers = {"x-amzn-ErrorType": error.code, **error.headers}
    return _json_response(error.status, body, headers)


@cache
def _routes() -> list[tuple[str, re.Pattern[str], str]]:
    """(method, path regex, operation) for every operation in the model."""
    routes = []
    for name in service_model().operation_names:
        http = service_model().operation_model(name).http
        path = http["requestUri"].split("?", 1)[0]
        # {label} matches one segment, {label+} the rest of the path (greedy labels).
        pattern = re.sub(r"\\\{[^}]+?\\\+\\\}", ".+", re.escape(path))
        pattern = re.sub(r"\\\{[^}]+?\\\}", "[^/]+", pattern)
        routes.append((http["method"], re.compile(pattern + "/?"), name))
    return routes


def _operation_for(method: str, path: str) -> str | None:
    for route_method, pattern, name in _routes():
        if route_method == method and pattern.fullmatch(path):
            return name
    return None


def _validate(value: Any, shape: Shape, path: str) -> None:
    """Check `value` against a model input shape: type, range, length, pattern, enum.

    Raises:
        DrsApiError: ValidationException (reason fieldValidationFailed) naming the field.
    """

    def fail(problem: str) -> DrsApiError:
        return _validation_error(f"{path}: {problem}", "fieldValidationFailed", path)

    meta = shape.metadata
    sized: Any = None
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            raise fail("expected an object")
        for name in shape.required_members:
            if name not in value:
                raise fail(f"missing required field {name}")
        # Unknown members are ignored, as AWS services do for forward compatibility.
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _validate(value[name], member, f"{path}.{name}" if path else name)
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            raise fail("expected a list")
        for index, item in enumerate(value):
            _validate(item, shape.member, f"{path}[{index}]")
        sized = value
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            raise fail("expected an object")
        sized = value
    elif isinstance(shape, StringShape):
        if not isinstance(value, str):
            raise fail("expected a string")
        if shape.enum and value not in shape.enum:
            raise fail(f"must be one of {shape.enum}")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            raise fail(f"must match {meta['pattern']}")
        sized = value
    elif shape.type_name in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("expected an integer")
        if "min" in meta and value < meta["min"]:
            raise fail(f"must be >= {meta['min']}")
        if "max" in meta and value > meta["max"]:
            raise fail(f"must be <= {meta['max']}")
    elif shape.type_name == "boolean" and not isinstance(value, bool):
        raise fail("expected a boolean")
    if sized is not None:
        if "min" in meta and len(sized) < meta["min"]:
            raise fail(f"length must be >= {meta['min']}")
        if "max" in meta and len(sized) > meta["max"]:
            raise fail(f"length must be <= {meta['max']}")


def _encode_token(operation: str, caller: _Caller, after: str, nonce: str | None = None) -> str:
    """An opaque token resuming `operation` after key `after`; `nonce` makes it unique."""
    data = {"v": 1, "op": operation, "a": caller.account_id, "r": caller.region, "after": after}
    if nonce is not None:
        data["n"] = nonce  # ignored by _decode_token: tokens differ, the position does not
    raw = json.dumps(data, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_token(token: str, operation: str, caller: _Caller) -> str:
    """The last key served before `token`.

    Raises:
        DrsApiError: ValidationException when the token is malformed or belongs to another
            operation, account or region (a real token is opaque and bound to its listing).
    """
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError("unknown token version")
        bound_to = (data["op"], data["a"], data["r"])
        after = data["after"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise _validation_error("Invalid nextToken", "fieldValidationFailed", "nextToken") from exc
    if bound_to != (operation, caller.account_id, caller.region) or not isinstance(after, str):
        raise _validation_error(
            "nextToken does not belong to this request", "fieldValidationFailed", "nextToken"
        )
    return after


# ---- DRS's events on their way to EventBridge -------------------------------------------------

PUT_EVENTS_MAX_ENTRIES = 10  # EventBridge's limit of entries per PutEvents
EVENT_SENDERS = 8  # PutEvents calls in flight at once, for different (account, region)s
EVENT_FLUSH_ON_STOP_SECONDS = 2.0  # what stop() gives the queued events before dropping them


@dataclass
class _QueuedEvent:
    entry: dict[str, Any]
    queued_at: float  # wall time the change queued it


@dataclass
class EventEmitterStats:
    """What the emitter did since it started (or its last `reset`), wall times in seconds."""

    queued: int = 0
    put: int = 0  # entries EventBridge accepted
    failed: int = 0  # entries refused, or in a call that failed
    dropped: int = 0  # entries still queued when the emitter was closed
    calls: int = 0  # PutEvents calls made
    first_put_at: float | None = None  # when the first accepted entry's call answered
    last_put_at: float | None = None
    lag_total: float = 0.0  # sum over accepted entries of (call answered - queued)
    lag_max: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "put": self.put,
            "failed": self.failed,
            "dropped": self.dropped,
            "calls": self.calls,
            "firstPutAt": self.first_put_at,
            "lastPutAt": self.last_put_at,
            "lagTotalSeconds": round(self.lag_total, 4),
            "lagMaxSeconds": round(self.lag_max, 4),
        }


class EventEmitter:
    """Puts DRS's events on the default bus of their (account, region) in moto, off the
    caller's thread: `put` queues an entry and returns; `senders` threads (started at the
    first `put`) take up to PUT_EVENTS_MAX_ENTRIES queued entries of one (account, region) per
    PutEvents call, the (account, region) whose oldest entry waited longest first.

    One call per (account, region) is in flight at a time and entries leave in the order they
    were queued, so one server's events reach its bus in the order of its changes (moto offers
    a call's entries to the rules in order; EventBridge itself promises no order). Nothing is
    batched on purpose: a call takes what queued while the previous one was in flight, so at a
    trickle each event goes alone and at once. Best effort, as DRS's own delivery: a refused
    entry or a failed call (after botocore's retries) is logged and counted, not retried.

    Args:
        endpoint: the local moto.
        senders: threads, hence calls in flight at once.
        on_put: called (from a sender thread) with each accepted entry's record.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        senders: int = EVENT_SENDERS,
        on_put: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.senders = senders
        self._on_put = on_put
        self._changed = threading.Condition()
        self._queues: dict[tuple[str, str], list[_QueuedEvent]] = {}
        self._busy: set[tuple[str, str]] = set()  # (account, region)s with a call in flight
        self._in_flight = 0  # entries in calls that have not answered yet
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._stats = EventEmitterStats()
        # One session for every client (sessions are not thread-safe: clients are made under
        # the lock); moto's own keys, as the account comes from a header, not from the keys.
        self._session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()

    def put(self, account_id: str, region: str, entry: dict[str, Any]) -> None:
        """Queue `entry` for the default bus of (account, region); return at once."""
        with self._changed:
            self._queues.setdefault((account_id, region), []).append(
                _QueuedEvent(entry, time.time())
            )
            self._stats.queued += 1
            if not self._threads:
                self._start_senders()
            self._changed.notify()

    def pending(self) -> int:
        """Entries queued or in a call that has not answered yet."""
        with self._changed:
            return self._pending()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued entry was put (or failed); False after `timeout` s."""
        with self._changed:
            return self._changed.wait_for(lambda: self._pending() == 0, timeout)

    def stats(self) -> dict[str, Any]:
        with self._changed:
            return {**self._stats.to_dict(), "pending": self._pending()}

    def reset_stats(self) -> None:
        with self._changed:
            self._stats = EventEmitterStats()

    def close(self, flush_timeout: float = EVENT_FLUSH_ON_STOP_SECONDS) -> None:
        """Give the queued entries `flush_timeout` s, drop what is left (counted and logged)
        and end the senders (a call under way finishes first). A later `put` starts anew."""
        self.flush(flush_timeout)
        with self._changed:
            self._closing = True
            dropped = sum(len(queue) for queue in self._queues.values())
            self._queues.clear()
            self._stats.dropped += dropped
            self._changed.notify_all()
            threads, self._threads = self._threads, []
        if dropped:
            LOG.warning("dropped %d DRS events still queued at stop", dropped)
        for thread in threads:
            thread.join(30)
        with self._changed:
            self._closing = False

    def _pending(self) -> int:
        return self._in_flight + sum(len(queue) for queue in self._queues.values())

    def _start_senders(self) -> None:
        for number in range(self.senders):
            thread = threading.Thread(
                target=self._send_loop, name=f"drs-events-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _next_batch(self) -> tuple[tuple[str, str], list[_QueuedEvent]] | None:
        """Under the lock: the entries of the ready (account, region) that waited longest,
        marked busy; None when the emitter is closing."""
        while not self._closing:
            ready = [key for key, queue in self._queues.items() if queue and key not in self._busy]
            if ready:
                key = min(ready, key=lambda k: self._queues[k][0].queued_at)
                queue = self._queues[key]
                batch, queue[:] = queue[:PUT_EVENTS_MAX_ENTRIES], queue[PUT_EVENTS_MAX_ENTRIES:]
                self._busy.add(key)
                self._in_flight += len(batch)
                return key, batch
            self._changed.wait()
        return None

    def _send_loop(self) -> None:
        while True:
            with self._changed:
                taken = self._next_batch()
            if taken is None:
                return
            key, batch = taken
            try:
                accepted = self._put_events(key, batch)
            finally:
                with self._changed:
                    self._busy.discard(key)
                    self._in_flight -= len(batch)
                    self._changed.notify_all()
            for record in accepted:
                if self._on_put is not None:
                    self._on_put(record)

    def _client(self, account_id: str, region: str) -> Any:
        from scripts.local.accounts import account_client

        with self._clients_lock:
            key = (account_id, region)
            if key not in self._clients:
                self._clients[key] = account_client(
                    "events", account_id, region, endpoint=self.endpoint, session=self._session
                )
            return self._clients[key]

    def _put_events(self, key: tuple[str, str], batch: list[_QueuedEvent]) -> list[dict[str, Any]]:
        """One PutEvents with `batch`; the records of the entries it accepted (counted)."""
        account_id, region = key
        try:
            answer = self._client(account_id, region).put_events(
                Entries=[queued.entry for queued in batch]
            )
        except Exception:  # best effort, as DRS's own delivery
            LOG.exception("could not put %d DRS events for %s/%s", len(batch), account_id, region)
            with self._changed:
                self._stats.calls += 1
                self._stats.failed += len(batch)
            return []
        answered = time.time()
        accepted: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        for queued, result in zip(batch, answer["Entries"], strict=True):
            if "EventId" not in result:
                refused.append(result)
                continue
            accepted.append(
                {
                    "account": account_id,
                    "region": region,
                    "eventId": result["EventId"],
                    "queuedAt": queued.queued_at,
                    "putAt": answered,
                    **queued.entry,
                }
            )
        if refused:
            LOG.error("PutEvents refused %d DRS events: %s", len(refused), refused)
        with self._changed:
            stats = self._stats
            stats.calls += 1
            stats.put += len(accepted)
            stats.failed += len(refused)
            if accepted:
                stats.first_put_at = stats.first_put_at or answered
                stats.last_put_at = answered
            for record in accepted:
                lag = answered - record["queuedAt"]
                stats.lag_total += lag
                stats.lag_max = max(stats.lag_max, lag)
        return accepted


# ---- the simulator ----------------------------------------------------------------------------


def count_matching(
    counts: Mapping[tuple[str, str, str], int],
    operation: str | None = None,
    account_id: str | None = None,
    region: str | None = None,
) -> int:
    """Sum of the (operation, account, region) counters matching the arguments (None: any)."""
    return sum(
        count
        for (op, account, reg), count in counts.items()
        if operation in (None, op) and account_id in (None, account) and region in (None, reg)
    )


class DrsSimulator:
    """The simulated DRS service: state, request handling and (optionally) its HTTP server.

    Args:
        port: the loopback port for `start()` (0 = a free one).
        sts_endpoint: STS (moto) used to resolve access keys to accounts, unless
            `account_resolver` is given.
        account_resolver: callable access key id -> account id or None (replaces STS).
        access_keys: static access key id -> account id mapping, consulted first.
        default_account_id: account for keys nobody could resolve (None: reject them).
        default_page_size / max_page_size: page size without maxResults / upper bound.
        events_endpoint: EventBridge (the local moto) that receives the events of the control
            API's changes (None: no events).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        sts_endpoint: str | None = None,
        account_resolver: AccountResolver | None = None,
        access_keys: Mapping[str, str] | None = None,
        default_account_id: str | None = None,
        default_page_size: int = DEFAULT_PAGE_SIZE,
        max_page_size: int = MAX_PAGE_SIZE,
        events_endpoint: str | None = None,
    ) -> None:
        if not 1 <= default_page_size <= max_page_size:
            raise ValueError("need 1 <= default_page_size <= max_page_size")
        self._port = port
        if account_resolver is None and sts_endpoint:
            account_resolver = StsAccountResolver(sts_endpoint)
        self._resolver = account_resolver
        self._default_account_id = default_account_id
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self._lock = threading.Lock()
        self._access_keys: dict[str, str] = dict(access_keys or {})
        self._scopes: dict[tuple[str, str], _Scope] = {}
        self._faults: dict[tuple[str | None, str | None, str | None], _ArmedFault] = {}
        self._latency: dict[tuple[str | None, str | None], Latency] = {}
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._raw_sequence = itertools.count()
        # The simulated service's "now" for churn: the generated fleets' own "now" at first.
        self._clock = fleet.DEFAULT_NOW
        self._churn_intervals = 0
        # Set by stop(): hung requests and latency waits end at once instead of holding stop().
        self._stopping = threading.Event()
        self._http: _SimulatorHttpServer | None = None
        self._thread: threading.Thread | None = None
        self.events_endpoint = events_endpoint
        self.events_put: list[dict[str, Any]] = []  # what went onto a bus, as it answered
        self._emitter = (
            EventEmitter(events_endpoint, on_put=self.events_put.append)
            if events_endpoint
            else None
        )

    # -- lifecycle --

    @property
    def endpoint(self) -> str:
        """`http://127.0.0.1:PORT`. Raises RuntimeError when not started."""
        if self._http is None:
            raise RuntimeError("DrsSimulator is not started")
        return f"http://{LOOPBACK}:{self._http.server_port}"

    def start(self) -> str:
        """Serve on loopback in a background thread; return the endpoint."""
        if self._http is not None:
            return self.endpoint
        self._stopping.clear()
        self._http = _SimulatorHttpServer((LOOPBACK, self._port), self)
        # A short poll interval makes stop() return in ~50 ms instead of the default 0.5 s.
        self._thread = threading.Thread(
            target=self._http.serve_forever, args=(0.05,), name="drs-simulator", daemon=True
        )
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        """Stop serving, close open keep-alive connections and wait for handler threads.

        Requests held by a "hang" fault or by latency are released first; their answers go
        nowhere, since their connections are closed.
        """
        self._stopping.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.close_all()
            self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._http = None
        self._thread = None
        if self._emitter is not None:
            self._emitter.close()

    def __enter__(self) -> DrsSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- servers --

    def add_source_servers(
        self, account_id: str, region: str, servers: Iterable[Mapping[str, Any]]
    ) -> int:
        """Add (or replace, by sourceServerID) servers listed by (account, region).

        Returns the number of servers given. Raises ValueError for a record without a valid
        `sourceServerID` (nothing is stored then).
        """
        entries = {}
        for server in servers:
            server_id = server.get("sourceServerID")
            if not isinstance(server_id, str) or not _SERVER_ID.fullmatch(server_id):
                raise ValueError(f"server without a valid sourceServerID: {server_id!r}")
            entries[server_id] = _entry_for(server)
        with self._lock:
            scope = self._scopes.setdefault((account_id, region), _Scope())
            new_ids = [sid for sid in entries if sid not in scope.entries]
            scope.entries.update(entries)
            if new_ids:
                # One sort for a bulk add; insort per id would be quadratic for big fleets.
                scope.ids.extend(new_ids)
                scope.ids.sort()
        return len(entries)

    def set_source_servers(
        self, account_id: str, region: str, servers: Iterable[Mapping[str, Any]]
    ) -> int:
        """Replace the servers of (account, region) with `servers`; see `add_source_servers`."""
        materialised = list(servers)
        self.clear_source_servers(account_id, region)
        return self.add_source_servers(account_id, region, materialised)

    def generate_fleet(self, account_id: str, region: str, count: int, **kwargs: Any) -> int:
        """Add `fleet.generate_fleet(account_id, region, count, **kwargs)`; return the count."""
        servers = fleet.generate_fleet(account_id, region, count, **kwargs)
        return self.add_source_servers(account_id, region, servers)

    def churn(
        self,
        *,
        state_fraction: float = 0.02,
        replace_fraction: float = 0.001,
        seed: int = 0,
        interval_seconds: float = 900.0,
    ) -> dict[str, Any]:
        """Age every stored server by one schedule interval (see `fleet.plan_churn`).

        The simulator's clock starts at `fleet.DEFAULT_NOW` (the generated fleets' "now") and
        moves `interval_seconds` per call: every reporting agent's volatile fields move,
        round(state_fraction x servers) change replication state, round(replace_fraction x
        servers) on-premises servers are replaced in their scope. Raw records are left alone.
        Returns counts: servers, volatileMoved, stateChanged, replaced, now (ISO-8601).

        Raises ValueError for fractions outside [0, 1] or a negative interval.
        """
        if interval_seconds < 0:
            raise ValueError(f"interval_seconds must be >= 0, got {interval_seconds}")
        with self._lock:
            self._churn_intervals += 1
            interval = self._churn_intervals
            self._clock += timedelta(seconds=interval_seconds)
            now = self._clock
            fleets = {
                key: [json.loads(scope.entries[sid].blob) for sid in scope.server_ids()]
                for key, scope in self._scopes.items()
            }
        plan = fleet.plan_churn(
            fleets,
            interval=interval,
            now=now,
            state_fraction=state_fraction,
            replace_fraction=replace_fraction,
            seed=seed,
        )
        for (account_id, region), servers in plan.updated.items():
            self.add_source_servers(account_id, region, servers)
        for (account_id, region), removed in plan.removed.items():
            for server_id in removed:
                self.remove_source_server(account_id, region, server_id)
        for (account_id, region), added in plan.added.items():
            self.add_source_servers(account_id, region, added)
        return {
            "servers": sum(len(servers) for servers in fleets.values()),
            "volatileMoved": plan.volatile_moved,
            "stateChanged": plan.state_changed,
            "replaced": plan.replaced,
            "now": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def add_raw_records(self, account_id: str, region: str, records: Iterable[Any]) -> int:
        """Serve `records` as they are inside `items` of (account, region)'s DescribeSourceServers.

        Nothing is validated: a record may lack `sourceServerID`, hold numbers such as 1e200 or
        10**40, name another account or region in its ARN, repeat an existing server's ARN or
        id, or be no object at all (a string, null). Each gets a synthetic key (see `_raw_key`),
        so pages stay stable: a record whose `sourceServerID` is a string follows that id in
        page order, any other record follows every server, in the order added. Unfiltered
        listings serve raw records; the hardwareId, stagingAccountIDs and sourceServerIDs
        filters never select them. They are not counted by `scope_counts` or listed by
        `source_server_ids`; `clear_source_servers` and `set_source_servers` remove them.

        What a stock boto3 `drs` client (botocore's rest-json parser) returns for them:
        - an object: only the members of the SourceServer shape, values as in the JSON
          (an object without any, e.g. `{"foo": 1}`, becomes `{}`; 10**40 stays an int,
          1e200 a float; nothing is checked against the model);
        - null: kept as `None` in `items`;
        - a string, number or list: the parser raises a bare AttributeError out of the client
          call (not a ClientError or BotoCoreError), and the whole page is lost.

        Returns the number of records added. Raises ValueError, storing nothing, for a record
        that is not strict JSON (NaN, infinity, a non-JSON type).
        """
        materialised = list(records)
        entries = [_raw_entry(record) for record in materialised]
        with self._lock:
            scope = self._scopes.setdefault((account_id, region), _Scope())
            for record, entry in zip(materialised, entries, strict=True):
                key = _raw_key(record, next(self._raw_sequence))
                scope.entries[key] = entry
                scope.raw_keys.add(key)
                scope.ids.append(key)
            scope.ids.sort()
        return len(entries)

    def remove_source_server(self, account_id: str, region: str, source_server_id: str) -> bool:
        """Remove one server; True if it existed."""
        with self._lock:
            scope = self._scopes.get((account_id, region))
            if scope is None or scope.entries.pop(source_server_id, None) is None:
                return False
            scope.raw_keys.discard(source_server_id)
            del scope.ids[bisect.bisect_left(scope.ids, source_server_id)]
            return True

    def clear_source_servers(
        self, account_id: str | None = None, region: str | None = None
    ) -> None:
        """Remove servers of every scope matching account/region (None matches any)."""
        with self._lock:
            for key in list(self._scopes):
                if account_id in (None, key[0]) and region in (None, key[1]):
                    del self._scopes[key]

    def source_server_ids(self, account_id: str, region: str) -> list[str]:
        """The ids stored for (account, region), in page order."""
        with self._lock:
            scope = self._scopes.get((account_id, region))
            return scope.server_ids() if scope else []

    def source_servers(self, account_id: str, region: str) -> list[dict[str, Any]]:
        """The records stored for (account, region) as DRS would list them (no fault, no
        latency), raw records left out: what a test compares the inventory with."""
        with self._lock:
            scope = self._scopes.get((account_id, region))
            blobs = [scope.entries[key].blob for key in scope.server_ids()] if scope else []
        return [json.loads(blob) for blob in blobs]

    def scope_counts(self) -> dict[tuple[str, str], int]:
        """Number of servers per (account, region), raw records left out."""
        with self._lock:
            counts = {
                key: len(scope.ids) - len(scope.raw_keys) for key, scope in self._scopes.items()
            }
        return {key: count for key, count in counts.items() if count}

    # -- changes that DRS announces (events) --

    def _change_server(
        self,
        account_id: str,
        region: str,
        source_server_id: str,
        change: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any]:
        """Apply `change` to the stored record of one server; the record after it.

        Raises KeyError when (account, region) has no such server."""
        with self._lock:
            scope = self._scopes.get((account_id, region))
            if (
                scope is None
                or source_server_id not in scope.entries
                or source_server_id in scope.raw_keys
            ):
                raise KeyError(f"no server {source_server_id} in {account_id}/{region}")
            record = json.loads(scope.entries[source_server_id].blob)
            change(record)
            scope.entries[source_server_id] = _entry_for(record)
        return record

    def set_replication_state(
        self, account_id: str, region: str, source_server_id: str, state: str
    ) -> dict[str, Any]:
        """Set `dataReplicationInfo.dataReplicationState` (e.g. STALLED). Entering or leaving
        STALLED puts "DRS Source Server Data Replication Stalled Change". Returns the record;
        raises KeyError for an unknown server."""
        before: list[str | None] = []

        def change(record: dict[str, Any]) -> None:
            info = record.setdefault("dataReplicationInfo", {})
            before.append(info.get("dataReplicationState"))
            info["dataReplicationState"] = state

        record = self._change_server(account_id, region, source_server_id, change)
        if (before[0] == drs_events.STALLED) != (state == drs_events.STALLED):
            self._put_event(
                account_id,
                region,
                drs_events.stalled_change(
                    account_id, region, source_server_id, state == drs_events.STALLED
                ),
            )
        return record

    def launch(
        self,
        account_id: str,
        region: str,
        source_server_id: str,
        state: str = "RECOVERY_LAUNCH_SUCCEEDED",
        job_id: str | None = None,
    ) -> dict[str, Any]:
        """Record the end of a recovery or drill launch (`lifeCycle.lastLaunch`) and put
        "DRS Source Server Launch Result". Returns the record; raises KeyError for an unknown
        server, ValueError for a state outside drs_events.LAUNCH_STATES."""
        event = drs_events.launch_result(
            account_id, region, source_server_id, state, job_id or _job_id()
        )
        job = json.loads(event["Detail"])["job-id"]

        def change(record: dict[str, Any]) -> None:
            life_cycle = record.setdefault("lifeCycle", {})
            life_cycle["lastLaunch"] = {
                "initiated": {
                    "apiCallDateTime": event["Time"].strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
                    "jobID": job,
                    "type": "DRILL" if state.startswith("DRILL") else "RECOVERY",
                },
                "status": "LAUNCHED" if state.endswith("SUCCEEDED") else "FAILED",
            }

        record = self._change_server(account_id, region, source_server_id, change)
        self._put_event(account_id, region, event)
        return record

    def disconnect_source_server(
        self, account_id: str, region: str, source_server_id: str
    ) -> dict[str, Any]:
        """DisconnectSourceServer: replication DISCONNECTED, lifeCycle.state DISCONNECTED; puts
        its CloudTrail event. Returns the record; raises KeyError for an unknown server."""

        def change(record: dict[str, Any]) -> None:
            record.setdefault("dataReplicationInfo", {})["dataReplicationState"] = "DISCONNECTED"
            record.setdefault("lifeCycle", {})["state"] = "DISCONNECTED"

        record = self._change_server(account_id, region, source_server_id, change)
        self._put_api_call(
            account_id, region, "DisconnectSourceServer", {"sourceServerID": source_server_id}
        )
        return record

    def tag_source_server(
        self, account_id: str, region: str, source_server_id: str, tags: Mapping[str, str]
    ) -> dict[str, Any]:
        """TagResource on the server's ARN; puts its CloudTrail event. Returns the record;
        raises KeyError for an unknown server."""
        arn = drs_events.source_server_arn(account_id, region, source_server_id)

        def change(record: dict[str, Any]) -> None:
            record["tags"] = {**(record.get("tags") or {}), **tags}

        record = self._change_server(account_id, region, source_server_id, change)
        self._put_api_call(
            account_id, region, "TagResource", {"resourceArn": arn, "tags": dict(tags)}
        )
        return record

    def untag_source_server(
        self, account_id: str, region: str, source_server_id: str, tag_keys: Iterable[str]
    ) -> dict[str, Any]:
        """UntagResource on the server's ARN; puts its CloudTrail event. Returns the record;
        raises KeyError for an unknown server."""
        keys = list(tag_keys)
        arn = drs_events.source_server_arn(account_id, region, source_server_id)

        def change(record: dict[str, Any]) -> None:
            record["tags"] = {k: v for k, v in (record.get("tags") or {}).items() if k not in keys}

        record = self._change_server(account_id, region, source_server_id, change)
        self._put_api_call(
            account_id, region, "UntagResource", {"resourceArn": arn, "tagKeys": keys}
        )
        return record

    def delete_source_server(self, account_id: str, region: str, source_server_id: str) -> bool:
        """DeleteSourceServer: remove the server and put its CloudTrail event; True if it
        existed (nothing is put otherwise: DRS would have refused the call)."""
        removed = self.remove_source_server(account_id, region, source_server_id)
        if removed:
            self._put_api_call(
                account_id, region, "DeleteSourceServer", {"sourceServerID": source_server_id}
            )
        return removed

    def _put_api_call(
        self,
        account_id: str,
        region: str,
        event_name: str,
        request_parameters: Mapping[str, Any],
    ) -> None:
        entry = drs_events.api_call(account_id, region, event_name, request_parameters)
        self._put_event(account_id, region, entry)

    def _put_event(self, account_id: str, region: str, entry: dict[str, Any]) -> None:
        """Queue `entry` for the default bus of (account, region), as DRS and CloudTrail put
        their events after the change (best effort; see `EventEmitter`). No endpoint: nothing."""
        if self._emitter is not None:
            self._emitter.put(account_id, region, entry)

    def event_stats(self) -> dict[str, Any]:
        """The emitter's counts and times (`EventEmitterStats.to_dict`, and `pending`)."""
        return self._emitter.stats() if self._emitter is not None else {}

    def reset_event_stats(self) -> None:
        """Start the emitter's counts and times afresh (what is queued stays queued)."""
        if self._emitter is not None:
            self._emitter.reset_stats()

    def flush_events(self, timeout: float = 30.0) -> bool:
        """Wait until every event queued so far is on its bus (or failed); False after
        `timeout` seconds."""
        return self._emitter.flush(timeout) if self._emitter is not None else True

    # -- callers --

    def map_access_key(self, access_key_id: str, account_id: str) -> None:
        """Attribute `access_key_id` to `account_id` without asking the resolver."""
        with self._lock:
            self._access_keys[access_key_id] = account_id

    # -- faults, latency, counters --

    def set_fault(self, account_id: str | None, region: str | None, fault: Fault) -> None:
        """Arm `fault` for requests from (account, region); None matches any account/region.

        One fault per (account, region, fault.operation): setting again replaces it. The most
        specific armed fault that applies to the request wins (account over region over
        operation-less); while it is skipping requests, they pass untouched.
        """
        with self._lock:
            armed = _ArmedFault(fault, fault.count, fault.skip)
            self._faults[(account_id, region, fault.operation)] = armed

    def clear_faults(self, account_id: str | None = None, region: str | None = None) -> None:
        """Disarm faults set for the account/region given (None: any); no arguments = all."""
        with self._lock:
            for key in list(self._faults):
                if account_id in (None, key[0]) and region in (None, key[1]):
                    del self._faults[key]

    def faults(self) -> list[dict[str, Any]]:
        """Armed faults as JSON-ready dicts: accountId, region, fault, remaining, toSkip."""
        with self._lock:
            return [
                {
                    "accountId": key[0],
                    "region": key[1],
                    "fault": armed.fault.to_dict(),
                    "remaining": armed.remaining,
                    "toSkip": armed.to_skip,
                }
                for key, armed in self._faults.items()
            ]

    def set_latency(
        self,
        ms: float,
        jitter_ms: float = 0.0,
        *,
        account_id: str | None = None,
        region: str | None = None,
    ) -> None:
        """Delay every request from (account, region) (None: any) by ms + U(0, jitter_ms).

        The most specific setting applies; `ms == jitter_ms == 0` removes the setting.
        The delay runs in the request's own thread, so it never blocks other requests.
        """
        if ms < 0 or jitter_ms < 0:
            raise ValueError("latency must be >= 0")
        with self._lock:
            if ms == 0 and jitter_ms == 0:
                self._latency.pop((account_id, region), None)
            else:
                self._latency[(account_id, region)] = Latency(ms, jitter_ms)

    def clear_latency(self) -> None:
        with self._lock:
            self._latency.clear()

    def request_counts(self) -> dict[tuple[str, str, str], int]:
        """Requests per (operation, account, region), faults and retries included.

        Requests that could not be attributed to an account are not counted.
        """
        with self._lock:
            return dict(self._counts)

    def request_count(
        self,
        operation: str | None = None,
        account_id: str | None = None,
        region: str | None = None,
    ) -> int:
        """Sum of `request_counts()` entries matching the arguments (None matches any)."""
        return count_matching(self.request_counts(), operation, account_id, region)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def reset(self) -> None:
        """Forget servers, faults, latency, counters and churn's clock (access-key mappings
        stay)."""
        with self._lock:
            self._scopes.clear()
            self._faults.clear()
            self._latency.clear()
            self._counts.clear()
            self._clock = fleet.DEFAULT_NOW
            self._churn_intervals = 0

    # -- request handling --

    def handle(self, request: SimRequest) -> SimResponse:
        """Answer one HTTP request (DRS API or control API). Never raises."""
        try:
            if request.path.startswith(CONTROL_PREFIX):
                return self._handle_control(request)
            return self._handle_api(request)
        except DrsApiError as error:
            return _error_response(error)
        except Exception as exc:  # a simulator bug must still answer, not drop the connection
            LOG.exception("DRS simulator failed on %s %s", request.method, request.path)
            return _error_response(DrsApiError(INTERNAL_ERROR, f"simulator error: {exc}"))

    def _handle_api(self, request: SimRequest) -> SimResponse:
        caller = self._caller(request.headers)
        operation = _operation_for(request.method, request.path)
        with self._lock:
            self._counts[(operation or "Unknown", caller.account_id, caller.region)] += 1
            latency = self._latency_for(caller)
            fault = self._take_fault(caller, operation) if operation else None
        if latency is not None:
            self._stopping.wait(latency.sample_seconds())
        if fault is not None and fault.kind == ERROR_KIND:
            assert fault.error_code is not None  # Fault checks it for this kind
            raise fault_error(fault.error_code, fault.message, fault.retry_after_seconds)
        if fault is not None and fault.kind == HANG:
            # Not under the lock: other requests and the control API go on meanwhile.
            self._stopping.wait(fault.hang_seconds)
        if operation is None:
            raise _validation_error(
                f"No DRS operation matches {request.method} {request.path}", "unknownOperation"
            )
        handler = self._operations().get(operation)
        if handler is None:
            raise DrsApiError(
                "NotImplementedException",
                f"The DRS simulator does not implement {operation}; it implements "
                f"{', '.join(IMPLEMENTED_OPERATIONS)}",
            )
        operation_model = service_model().operation_model(operation)
        params = self._input_params(request, operation_model)
        if operation_model.input_shape is not None:
            _validate(params, operation_model.input_shape, "")
        if fault is not None and fault.kind in RESPONSE_SHAPE_KINDS:
            return self._describe_source_servers(caller, params, shape_fault=fault.kind)
        return handler(caller, params)

    def _operations(self) -> dict[str, Callable[[_Caller, dict[str, Any]], SimResponse]]:
        return {
            "DescribeSourceServers": self._describe_source_servers,
            "DescribeRecoveryInstances": self._describe_recovery_instances,
            "ListStagingAccounts": self._list_staging_accounts,
        }

    def _caller(self, headers: Mapping[str, str]) -> _Caller:
        match = _AUTH_SCOPE.search(headers.get("authorization", ""))
        if match is None:
            raise DrsApiError("MissingAuthenticationTokenException", "Missing Authentication Token")
        access_key_id, region = match.group(1), match.group(3)
        with self._lock:
            account_id = self._access_keys.get(access_key_id)
        if account_id is None and self._resolver is not None:
            try:
                account_id = self._resolver(access_key_id)
            except AccountResolutionError as exc:
                raise DrsApiError(INTERNAL_ERROR, f"cannot attribute caller: {exc}") from exc
        account_id = account_id or self._default_account_id
        if account_id is None:
            raise fault_error(UNRECOGNIZED_CLIENT)
        return _Caller(account_id, region)

    def _latency_for(self, caller: _Caller) -> Latency | None:
        for key in (
            (caller.account_id, caller.region),
            (caller.account_id, None),
            (None, caller.region),
            (None, None),
        ):
            if key in self._latency:
                return self._latency[key]
        return None

    def _take_fault(self, caller: _Caller, operation: str) -> Fault | None:
        """The most specific armed fault for this request, consuming one of its uses (locked).

        None while that fault is still skipping requests (one skip is used up then).
        """
        for account in (caller.account_id, None):
            for region in (caller.region, None):
                for op in (operation, None):
                    armed = self._faults.get((account, region, op))
                    if armed is None or not armed.fault.applies_to(operation):
                        continue
                    if armed.to_skip > 0:
                        armed.to_skip -= 1
                        return None
                    if armed.remaining is not None:
                        armed.remaining -= 1
                        if armed.remaining <= 0:
                            del self._faults[(account, region, op)]
                    return armed.fault
        return None

    @staticmethod
    def _input_params(request: SimRequest, operation_model: OperationModel) -> dict[str, Any]:
        """Collect the operation's input from the JSON body and query string, as the model says."""
        params: dict[str, Any] = {}
        if request.body.strip():
            try:
                params = json.loads(request.body)
            except ValueError as exc:
                raise _validation_error("Request body is not valid JSON", "cannotParse") from exc
            if not isinstance(params, dict):
                raise _validation_error("Request body must be a JSON object", "cannotParse")
        shape = operation_model.input_shape
        for name, member in shape.members.items() if shape else ():
            if member.serialization.get("location") != "querystring":
                continue
            values = request.query.get(member.serialization.get("name", name))
            if not values:
                continue
            value: Any = values[0]
            if member.type_name in ("integer", "long"):
                try:
                    value = int(value)
                except ValueError as exc:
                    raise _validation_error(
                        f"{name}: expected an integer", "fieldValidationFailed", name
                    ) from exc
            params[name] = value
        return params

    def _page_size(self, params: Mapping[str, Any], model_max: int | None = None) -> int:
        limit = params.get("maxResults") or self.default_page_size
        return min(limit, model_max or self.max_page_size, self.max_page_size)

    def _describe_source_servers(
        self, caller: _Caller, params: dict[str, Any], shape_fault: str | None = None
    ) -> SimResponse:
        """One page of the caller's servers; `shape_fault` is a kind of RESPONSE_SHAPE_KINDS."""
        operation = "DescribeSourceServers"
        if shape_fault == MISSING_ITEMS:
            return SimResponse(200, b"{}")
        if shape_fault == ITEMS_NOT_LIST:
            return SimResponse(200, b'{"items":"oops"}')
        filters = params.get("filters") or {}
        wanted_ids = filters.get("sourceServerIDs") or None
        hardware_id = filters.get("hardwareId") or None
        staging_ids = set(filters.get("stagingAccountIDs") or ()) or None
        token = params.get("nextToken")
        after = _decode_token(token, operation, caller) if token else None
        if shape_fault == REPEAT_TOKEN:
            after = None  # the first page again, whatever the token asked for
        limit = self._page_size(params)

        def selected(entry: _Entry) -> bool:
            if hardware_id is not None and hardware_id not in entry.hardware_ids:
                return False
            return staging_ids is None or entry.staging_account_id in staging_ids

        unfiltered = hardware_id is None and staging_ids is None
        with self._lock:
            scope = self._scopes.get((caller.account_id, caller.region)) or _Scope()
            candidates = (
                scope.ids
                if wanted_ids is None
                else sorted(set(wanted_ids).intersection(scope.entries))
            )
            start = bisect.bisect_right(candidates, after) if after is not None else 0
            if unfiltered:
                page = candidates[start : start + limit]
                more = start + len(page) < len(candidates)
            else:
                page = []
                more = False
                for sid in candidates[start:]:
                    if selected(scope.entries[sid]):
                        if len(page) == limit:
                            more = True  # one more match exists: no empty trailing page
                            break
                        page.append(sid)
            blobs = [scope.entries[sid].blob for sid in page]
        # Pre-serialised items: a 1000-server page is a join, not 1000 json.dumps calls.
        body = b'{"items":[' + b",".join(blobs) + b"]"
        next_token = _encode_token(operation, caller, page[-1]) if more else None
        if shape_fault in (REPEAT_TOKEN, ENDLESS_PAGES):
            # Always a token; once the fault disarms, the listing resumes where it stands.
            position = page[-1] if page else (after or "")
            nonce = uuid.uuid4().hex if shape_fault == ENDLESS_PAGES else None
            next_token = _encode_token(operation, caller, position, nonce)
        if next_token is not None:
            body += b',"nextToken":' + json.dumps(next_token).encode()
        return SimResponse(200, body + b"}", {})

    def _describe_recovery_instances(self, caller: _Caller, params: dict[str, Any]) -> SimResponse:
        # No recoveries are simulated; still validate the token like the real listing would.
        token = params.get("nextToken")
        if token:
            _decode_token(token, "DescribeRecoveryInstances", caller)
        return _json_response(200, {"items": []})

    def _list_staging_accounts(self, caller: _Caller, params: dict[str, Any]) -> SimResponse:
        operation = "ListStagingAccounts"
        token = params.get("nextToken")
        after = _decode_token(token, operation, caller) if token else ""
        with self._lock:
            scope = self._scopes.get((caller.account_id, caller.region)) or _Scope()
            accounts = sorted(
                {e.staging_account_id for e in scope.entries.values() if e.staging_account_id}
            )
        model_max = 50  # ListStagingAccountsRequestMaxResultsInteger's max
        limit = min(params.get("maxResults") or model_max, model_max)
        remaining = [account for account in accounts if account > after]
        page = remaining[:limit]
        payload: dict[str, Any] = {"accounts": [{"accountID": account} for account in page]}
        if len(remaining) > limit:
            payload["nextToken"] = _encode_token(operation, caller, page[-1])
        return _json_response(200, payload)

    # -- control API --

    def _handle_control(self, request: SimRequest) -> SimResponse:
        parts = [
            urllib.parse.unquote(p) for p in request.path[len(CONTROL_PREFIX) :].split("/") if p
        ]
        try:
            body = json.loads(request.body) if request.body.strip() else {}
            return self._control_route(request.method, parts, body, request.query)
        except DrsApiError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            return _json_response(400, {"message": f"bad control request: {exc!r}"})

    def _control_route(
        self,
        method: str,
        parts: list[str],
        body: Any,
        query: Mapping[str, list[str]],
    ) -> SimResponse:
        def arg(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        route = (method, parts[0] if parts else "", len(parts))
        if route == ("GET", "health", 1):
            return _json_response(
                200, {"status": "ok", "servers": sum(self.scope_counts().values())}
            )
        if route == ("GET", "servers", 1):
            scopes = [
                {"accountId": account, "region": region, "count": count}
                for (account, region), count in sorted(self.scope_counts().items())
            ]
            return _json_response(200, {"scopes": scopes})
        if parts[:1] == ["servers"] and len(parts) == 3:
            account_id, region = parts[1], parts[2]
            if method == "GET":
                return _json_response(
                    200, {"sourceServerIDs": self.source_server_ids(account_id, region)}
                )
            if method == "PUT":
                return _json_response(
                    200, {"count": self.set_source_servers(account_id, region, body["servers"])}
                )
            if method == "POST":
                return _json_response(
                    200, {"count": self.add_source_servers(account_id, region, body["servers"])}
                )
            if method == "DELETE":
                self.clear_source_servers(account_id, region)
                return _json_response(200, {})
        if route == ("DELETE", "servers", 4):
            removed = self.delete_source_server(parts[1], parts[2], parts[3])
            return _json_response(200 if removed else 404, {"removed": removed})
        if len(parts) == 4 and parts[0] in _SERVER_CHANGES and method == "POST":
            account_id, region, server_id = parts[1], parts[2], parts[3]
            try:
                record = _SERVER_CHANGES[parts[0]](self, account_id, region, server_id, body)
            except KeyError as exc:
                return _json_response(404, {"message": str(exc)})
            return _json_response(200, {"sourceServer": record})
        if route == ("POST", "raw-records", 3):
            count = self.add_raw_records(parts[1], parts[2], body["records"])
            return _json_response(200, {"count": count})
        if route == ("POST", "churn", 1):
            counts = self.churn(
                state_fraction=float(body.get("stateFraction", 0.02)),
                replace_fraction=float(body.get("replaceFraction", 0.001)),
                seed=int(body.get("seed", 0)),
                interval_seconds=float(body.get("intervalSeconds", 900.0)),
            )
            return _json_response(200, counts)
        if route == ("POST", "fleet", 3):
            kwargs = _fleet_kwargs(body)
            count = self.generate_fleet(parts[1], parts[2], int(body["count"]), **kwargs)
            return _json_response(200, {"count": count})
        if route == ("GET", "faults", 1):
            return _json_response(200, {"faults": self.faults()})
        if route == ("POST", "faults", 1):
            self.set_fault(
                body.get("accountId"), body.get("region"), Fault.from_dict(body["fault"])
            )
            return _json_response(200, {})
        if route == ("DELETE", "faults", 1):
            self.clear_faults(arg("accountId"), arg("region"))
            return _json_response(200, {})
        if route == ("PUT", "latency", 1):
            self.set_latency(
                float(body["ms"]),
                float(body.get("jitterMs", 0.0)),
                account_id=body.get("accountId"),
                region=body.get("region"),
            )
            return _json_response(200, {})
        if route == ("DELETE", "latency", 1):
            self.clear_latency()
            return _json_response(200, {})
        if route == ("GET", "counts", 1):
            counts = [
                {"operation": op, "accountId": account, "region": region, "count": count}
                for (op, account, region), count in sorted(self.request_counts().items())
            ]
            return _json_response(200, {"counts": counts})
        if route == ("DELETE", "counts", 1):
            self.reset_counts()
            return _json_response(200, {})
        if route == ("GET", "events", 1):
            return _json_response(200, self.event_stats())
        if route == ("DELETE", "events", 1):
            self.reset_event_stats()
            return _json_response(200, {})
        if route == ("POST", "events", 2) and parts[1] == "flush":
            flushed = self.flush_events(float(body.get("timeout", 30.0)))
            return _json_response(200, {"flushed": flushed, **self.event_stats()})
        if route == ("POST", "access-keys", 1):
            self.map_access_key(body["accessKeyId"], body["accountId"])
            return _json_response(200, {})
        if route == ("POST", "reset", 1):
            self.reset()
            return _json_response(200, {})
        return _json_response(
            404, {"message": f"no control route {method} /_sim/{'/'.join(parts)}"}
        )


def _job_id() -> str:
    """A DRS job id: drsjob- and 17 letters and digits."""
    return "drsjob-" + uuid.uuid4().hex[:17]


# POST /_sim/NAME/ACCOUNT/REGION/SERVER_ID with a JSON body: the changes DRS announces.
_SERVER_CHANGES: dict[str, Callable[[DrsSimulator, str, str, str, Any], dict[str, Any]]] = {
    "replication-state": lambda sim, a, r, s, body: sim.set_replication_state(
        a, r, s, body["state"]
    ),
    "launch": lambda sim, a, r, s, body: sim.launch(
        a, r, s, body.get("state", "RECOVERY_LAUNCH_SUCCEEDED"), body.get("jobId")
    ),
    "disconnect": lambda sim, a, r, s, body: sim.disconnect_source_server(a, r, s),
    "tag": lambda sim, a, r, s, body: sim.tag_source_server(a, r, s, body["tags"]),
    "untag": lambda sim, a, r, s, body: sim.untag_source_server(a, r, s, body["tagKeys"]),
}


def _fleet_kwargs(body: Mapping[str, Any]) -> dict[str, Any]:
    """Control-API fleet options (camelCase) -> `fleet.generate_fleet` keyword arguments."""
    kwargs: dict[str, Any] = {}
    simple = {
        "seed": "seed",
        "startIndex": "start_index",
        "ec2Fraction": "ec2_fraction",
        "extendedFraction": "extended_fraction",
        "stagingAccountIds": "staging_account_ids",
        "originAccountId": "origin_account_id",
        "originRegion": "origin_region",
    }
    for key, name in simple.items():
        if key in body:
            kwargs[name] = body[key]
    if "ec2InstanceIds" in body:
        kwargs["ec2_instance_ids"] = list(body["ec2InstanceIds"])
    if "ec2Origins" in body:  # {instanceId: {accountId, region, availabilityZone?, ...}}
        kwargs["ec2_instance_ids"] = {
            instance_id: fleet.Ec2Origin(
                account_id=origin["accountId"],
                region=origin["region"],
                availability_zone=origin.get("availabilityZone"),
                private_ip=origin.get("privateIp"),
                hostname=origin.get("hostname"),
            )
            for instance_id, origin in body["ec2Origins"].items()
        }
    return kwargs


# ---- HTTP plumbing ----------------------------------------------------------------------------


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps botocore's pooled connections open between requests.
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection is dropped after this; clients reconnect transparently.
    timeout = 120
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # stalls every response by ~40 ms. TCP_NODELAY sends them at once.
    disable_nagle_algorithm = True
    server: _SimulatorHttpServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(SimResponse(411, b'{"message":"Content-Length required"}'))
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        # Always drain the body, even for errors, so the next request on the connection parses.
        body = self.rfile.read(length) if length > 0 else b""
        url = urllib.parse.urlsplit(self.path)
        request = SimRequest(
            method=self.command,
            path=url.path,
            query=urllib.parse.parse_qs(url.query),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
        )
        self._send(self.server.simulator.handle(request))

    def _send(self, response: SimResponse) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s " + format, self.address_string(), *args)


class _SimulatorHttpServer(ThreadingHTTPServer):
    """Thread per connection; remembers open connections so `close_all` can end idle keep-alives."""

    daemon_threads = True
    # The default listen backlog of 5 drops bursts of new connections from a concurrent sync
    # (each drop costs the client a 1 s SYN retry); real endpoints accept far more.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], simulator: DrsSimulator) -> None:
        self.simulator = simulator
        self._open: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        with self._open_lock:
            self._handler_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
                self._handler_threads.discard(threading.current_thread())
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-request are normal (timeouts, retries); keep stderr quiet.
        LOG.debug("connection from %s failed", client_address, exc_info=True)

    def close_all(self, timeout: float = 5.0) -> None:
        """Unblock handlers waiting on idle keep-alive connections and wait for them to end."""
        with self._open_lock:
            sockets = list(self._open)
            threads = list(self._handler_threads)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by the peer
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


# ---- remote control client --------------------------------------------------------------------


class SimulatorControlError(Exception):
    """The control API answered an error status."""


class SimulatorControl:
    """Drive a simulator running elsewhere (another process) over its `/_sim/` control API."""

    def __init__(self, endpoint: str, timeout: float = 60.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        query: Mapping[str, str | None] | None = None,
        allow: tuple[int, ...] = (),
    ) -> Any:
        url = f"{self.endpoint}{CONTROL_PREFIX}{path}"
        params = {key: value for key, value in (query or {}).items() if value is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            if exc.code in allow:
                return json.loads(text or "{}")
            raise SimulatorControlError(f"{method} {url} -> {exc.code}: {text}") from exc

    @staticmethod
    def _scope_path(prefix: str, account_id: str, region: str) -> str:
        return f"{prefix}/{urllib.parse.quote(account_id)}/{urllib.parse.quote(region)}"

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "health"))

    def wait_until_healthy(self, timeout: float = 10.0) -> None:
        """Poll `health` until it answers. Raises SimulatorControlError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except (OSError, SimulatorControlError) as exc:
                if time.monotonic() > deadline:
                    raise SimulatorControlError(f"{self.endpoint} not healthy: {exc}") from exc
                time.sleep(0.05)

    def add_source_servers(
        self, account_id: str, region: str, servers: list[dict[str, Any]]
    ) -> int:
        path = self._scope_path("servers", account_id, region)
        return int(self._call("POST", path, {"servers": servers})["count"])

    def set_source_servers(
        self, account_id: str, region: str, servers: list[dict[str, Any]]
    ) -> int:
        path = self._scope_path("servers", account_id, region)
        return int(self._call("PUT", path, {"servers": servers})["count"])

    def generate_fleet(self, account_id: str, region: str, count: int, **options: Any) -> int:
        """Generate servers inside the simulator (no 100 MB uploads for big fleets).

        `options` are the control API's camelCase keys: seed, startIndex, ec2Fraction,
        extendedFraction, stagingAccountIds, originAccountId, originRegion, ec2InstanceIds,
        ec2Origins ({instanceId: {accountId, region, availabilityZone?, privateIp?, hostname?}}).
        """
        path = self._scope_path("fleet", account_id, region)
        return int(self._call("POST", path, {"count": count, **options})["count"])

    def churn(
        self,
        state_fraction: float = 0.02,
        replace_fraction: float = 0.001,
        seed: int = 0,
        interval_seconds: float = 900.0,
    ) -> dict[str, Any]:
        """See `DrsSimulator.churn`; returns its counts."""
        payload = {
            "stateFraction": state_fraction,
            "replaceFraction": replace_fraction,
            "seed": seed,
            "intervalSeconds": interval_seconds,
        }
        return dict(self._call("POST", "churn", payload))

    def add_raw_records(self, account_id: str, region: str, records: list[Any]) -> int:
        """See `DrsSimulator.add_raw_records`; returns the number of records added."""
        path = self._scope_path("raw-records", account_id, region)
        return int(self._call("POST", path, {"records": records})["count"])

    def remove_source_server(self, account_id: str, region: str, source_server_id: str) -> bool:
        path = self._scope_path("servers", account_id, region) + "/" + source_server_id
        return bool(self._call("DELETE", path, allow=(404,))["removed"])

    def clear_source_servers(self, account_id: str, region: str) -> None:
        self._call("DELETE", self._scope_path("servers", account_id, region))

    def _change(
        self, name: str, account_id: str, region: str, server_id: str, body: Any
    ) -> dict[str, Any]:
        path = self._scope_path(name, account_id, region) + "/" + urllib.parse.quote(server_id)
        return dict(self._call("POST", path, body)["sourceServer"])

    def set_replication_state(
        self, account_id: str, region: str, source_server_id: str, state: str
    ) -> dict[str, Any]:
        """See `DrsSimulator.set_replication_state`; "STALLED" stalls the server."""
        return self._change(
            "replication-state", account_id, region, source_server_id, {"state": state}
        )

    def launch(
        self,
        account_id: str,
        region: str,
        source_server_id: str,
        state: str = "RECOVERY_LAUNCH_SUCCEEDED",
        job_id: str | None = None,
    ) -> dict[str, Any]:
        """See `DrsSimulator.launch`."""
        body = {"state": state, "jobId": job_id}
        return self._change("launch", account_id, region, source_server_id, body)

    def disconnect_source_server(
        self, account_id: str, region: str, source_server_id: str
    ) -> dict[str, Any]:
        return self._change("disconnect", account_id, region, source_server_id, {})

    def tag_source_server(
        self, account_id: str, region: str, source_server_id: str, tags: Mapping[str, str]
    ) -> dict[str, Any]:
        return self._change("tag", account_id, region, source_server_id, {"tags": dict(tags)})

    def untag_source_server(
        self, account_id: str, region: str, source_server_id: str, tag_keys: list[str]
    ) -> dict[str, Any]:
        return self._change("untag", account_id, region, source_server_id, {"tagKeys": tag_keys})

    def source_server_ids(self, account_id: str, region: str) -> list[str]:
        return list(
            self._call("GET", self._scope_path("servers", account_id, region))["sourceServerIDs"]
        )

    def scope_counts(self) -> dict[tuple[str, str], int]:
        return {
            (scope["accountId"], scope["region"]): scope["count"]
            for scope in self._call("GET", "servers")["scopes"]
        }

    def map_access_key(self, access_key_id: str, account_id: str) -> None:
        self._call("POST", "access-keys", {"accessKeyId": access_key_id, "accountId": account_id})

    def set_fault(self, account_id: str | None, region: str | None, fault: Fault) -> None:
        payload = {"accountId": account_id, "region": region, "fault": fault.to_dict()}
        self._call("POST", "faults", payload)

    def clear_faults(self, account_id: str | None = None, region: str | None = None) -> None:
        self._call("DELETE", "faults", query={"accountId": account_id, "region": region})

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "faults")["faults"])

    def set_latency(
        self,
        ms: float,
        jitter_ms: float = 0.0,
        *,
        account_id: str | None = None,
        region: str | None = None,
    ) -> None:
        payload = {"ms": ms, "jitterMs": jitter_ms, "accountId": account_id, "region": region}
        self._call("PUT", "latency", payload)

    def clear_latency(self) -> None:
        self._call("DELETE", "latency")

    def request_counts(self) -> dict[tuple[str, str, str], int]:
        return {
            (row["operation"], row["accountId"], row["region"]): row["count"]
            for row in self._call("GET", "counts")["counts"]
        }

    def request_count(
        self,
        operation: str | None = None,
        account_id: str | None = None,
        region: str | None = None,
    ) -> int:
        return count_matching(self.request_counts(), operation, account_id, region)

    def reset_counts(self) -> None:
        self._call("DELETE", "counts")

    def event_stats(self) -> dict[str, Any]:
        """See `DrsSimulator.event_stats`."""
        return dict(self._call("GET", "events"))

    def reset_event_stats(self) -> None:
        self._call("DELETE", "events")

    def flush_events(self, timeout: float = 30.0) -> dict[str, Any]:
        """See `DrsSimulator.flush_events`: its `event_stats` with `flushed` (True when
        nothing is left to put)."""
        return dict(self._call("POST", "events/flush", {"timeout": timeout}))

    def reset(self) -> None:
        self._call("POST", "reset")


# ---- process entry point ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve the DRS simulator on 127.0.0.1 until stopped."
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--sts-endpoint", help="STS (moto) endpoint that attributes access keys")
    parser.add_argument("--default-account-id", help="account for keys nobody can attribute")
    parser.add_argument(
        "--access-key",
        action="append",
        default=[],
        metavar="AKID=ACCOUNT",
        help="static access key attribution (repeatable)",
    )
    parser.add_argument("--max-page-size", type=int, default=MAX_PAGE_SIZE)
    parser.add_argument(
        "--events-endpoint", help="EventBridge (moto) that receives DRS's events (default: none)"
    )
    args = parser.parse_args(argv)
    access_keys = dict(item.split("=", 1) for item in args.access_key)
    if not (args.sts_endpoint or args.default_account_id or access_keys):
        parser.error("give --sts-endpoint, --default-account-id or --access-key")

    simulator = DrsSimulator(
        port=args.port,
        sts_endpoint=args.sts_endpoint,
        access_keys=access_keys,
        default_account_id=args.default_account_id,
        default_page_size=min(DEFAULT_PAGE_SIZE, args.max_page_size),
        max_page_size=args.max_page_size,
        events_endpoint=args.events_endpoint,
    )
    stopped = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    simulator.start()
    print(f"DRS_ENDPOINT={simulator.endpoint}", flush=True)
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
