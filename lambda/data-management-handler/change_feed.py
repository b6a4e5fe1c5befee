"""The inventory's change feed: what changed, published to the project's event bus.

Subscribers (protection groups, alerting, recovery plans) hear one event per server and
change: `DRS Inventory Server Added`, `... Removed`, `... Revived` or `... Changed` (the
last naming the inventory fields that changed), source `drs-orchestration.inventory`, on
the bus `${ProjectName}-inventory-${Environment}` (INVENTORY_EVENT_BUS). The schema is the
README's "Change feed".

Delivery is best-effort but measured. The inventory write a change describes has already
landed when it is published, so a failure here is counted (`PublishResult.failed`), logged
and never raised: the next write of the same server publishes again, and a subscriber that
must not miss anything reconciles against the inventory (the feed is at-least-once when
it works, and can lose events when EventBridge refuses them past the retries).

How much a run publishes. Every server yields at most one change per run (each is listed in
one scope and is added, revived, changed or removed at most once), so a run publishes at
most as many events as the inventory holds servers. A first run of 30,000 servers publishes
30,000 `Added` events: 3,000 PutEvents calls of 10 entries, about 30 s of calls at 10 ms
each, spread over the sync's scope workers, and $0.03 at EventBridge's $1.00 per million
custom events. That is published in full rather than capped with a summary event: a
subscriber that keeps per-server state (a protection group's membership) would otherwise
have to learn to re-read the inventory on a summary, for a cost this small. What keeps it
bounded in time is the caller's deadline: publishing stops before it, and what it could not
send is counted as failed (`ChangeFeedFailures`).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import error_code
from shared.observability import get_logger

logger = get_logger("data-management-handler")

SOURCE = "drs-orchestration.inventory"
Kind = Literal["Added", "Removed", "Revived", "Changed"]
OriginKey = Literal["runId", "eventId"]
KINDS: tuple[Kind, ...] = ("Added", "Removed", "Revived", "Changed")
DETAIL_TYPE_PREFIX = "DRS Inventory Server "
DETAIL_TYPES = {kind: f"{DETAIL_TYPE_PREFIX}{kind}" for kind in KINDS}

# PutEvents' limits: at most 10 entries, and their total size (as EventBridge counts it, see
# `entry_size`) under 256 KB.
MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024
TIME_BYTES = 14  # what a given `Time` counts for, whatever its text
# Attempts per batch (the first send and the retries of what failed), and the backoff
# between them: full jitter, doubling from BASE to CAP seconds.
MAX_ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 2.0
# No call starts with less than this left before the deadline: a call that cannot finish in
# time would be abandoned with the run, and a later wake-up could still deliver it.
MIN_SECONDS_LEFT = 0.5
# Whole-call failures worth another attempt (others, such as AccessDenied or a missing bus,
# fail every entry of the batch at once).
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "InternalException",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
    }
)


class TimeLeft(Protocol):
    """What publishing needs of a deadline (inventory_sync.deadline.Deadline is one)."""

    def left(self) -> float: ...


@dataclass(frozen=True)
class Change:
    """One server's change, as the feed announces it.

    `fields` names the inventory attributes that changed (Changed only; `drs.<key>` for a key
    of the raw DRS record); `origin_key` says what `origin` is: the full sync's run id
    ("runId") or the DRS event a refresh acted on ("eventId"). `observed_at` is the event's
    `Time` (default: when it is published).
    """

    kind: Kind
    account_id: str
    region: str
    source_server_arn: str
    source_server_id: str
    fields: tuple[str, ...] = ()
    origin_key: OriginKey = "runId"
    origin: str = ""
    observed_at: datetime | None = None

    @classmethod
    def of_item(
        cls,
        kind: Kind,
        item: dict[str, Any],
        *,
        origin_key: OriginKey,
        origin: str,
        fields: Iterable[str] = (),
        observed_at: datetime | None = None,
    ) -> Change:
        """The change of an inventory item (its accountId, region, sourceServerArn and
        sourceServerID; the ID defaults to the ARN's last part)."""
        arn = str(item["sourceServerArn"])
        return cls(
            kind=kind,
            account_id=str(item["accountId"]),
            region=str(item["region"]),
            source_server_arn=arn,
            source_server_id=str(item.get("sourceServerID") or arn.rsplit("/", 1)[-1]),
            fields=tuple(fields),
            origin_key=origin_key,
            origin=origin,
            observed_at=observed_at,
        )

    def detail(self) -> dict[str, Any]:
        """The event's detail (README, "Change feed")."""
        return {
            "accountId": self.account_id,
            "region": self.region,
            "sourceServerArn": self.source_server_arn,
            "sourceServerID": self.source_server_id,
            "changedFields": list(self.fields),
            self.origin_key: self.origin,
        }


@dataclass
class PublishResult:
    """What publishing achieved: events EventBridge accepted, events given up on (refused
    past the retries, unsendable, or not sent at the deadline; `abandoned` counts the last
    kind), and PutEvents calls made. Thread-safe: one result may gather several publishes."""

    published: int = 0
    failed: int = 0
    attempts: int = 0
    abandoned: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self, *, published: int = 0, failed: int = 0, attempts: int = 0, abandoned: int = 0
    ) -> None:
        with self._lock:
            self.published += published
            self.failed += failed + abandoned
            self.attempts += attempts
            self.abandoned += abandoned


def entry(change: Change, bus_name: str, now: datetime) -> dict[str, Any]:
    """The PutEvents request entry of `change` on `bus_name`."""
    return {
        "EventBusName": bus_name,
        "Source": SOURCE,
        "DetailType": DETAIL_TYPES[change.kind],
        "Detail": json.dumps(change.detail(), separators=(",", ":")),
        "Resources": [change.source_server_arn],
        "Time": change.observed_at or now,
    }


def entry_size(request_entry: dict[str, Any]) -> int:
    """The entry's size as EventBridge counts it against PutEvents' 256 KB: 14 bytes for a
    Time, then the UTF-8 bytes of Source, DetailType, Detail and each of Resources (the bus
    name does not count). ("Calculating Amazon EventBridge PutEvents event entry size".)"""
    size = TIME_BYTES if request_entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        text = request_entry.get(name)
        if text is not None:
            size += len(text.encode("utf-8"))
    for resource in request_entry.get("Resources") or ():
        if resource is not None:
            size += len(resource.encode("utf-8"))
    return size


def batches(
    entries: Iterable[dict[str, Any]],
    *,
    max_entries: int = MAX_ENTRIES,
    max_bytes: int = MAX_REQUEST_BYTES,
    on_oversize: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """`entries` in order, grouped into PutEvents requests: at most `max_entries` each, and
    their sizes' sum under `max_bytes`. An entry that alone reaches `max_bytes` can never be
    sent: it goes to `on_oversize` instead (and is dropped when that is None)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for request_entry in entries:
        this = entry_size(request_entry)
        if this >= max_bytes:
            if on_oversize is not None:
                on_oversize(request_entry)
            continue
        if batch and (len(batch) == max_entries or size + this >= max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(request_entry)
        size += this
    if batch:
        yield batch


def publish_changes(
    changes: Iterable[Change],
    *,
    events_client: Any,
    bus_name: str,
    deadline: TimeLeft | None = None,
    result: PublishResult | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    now: datetime | None = None,
) -> PublishResult:
    """Publish `changes` to `bus_name` with PutEvents, in order, in batches (see `batches`).

    Entries EventBridge refuses (`FailedEntryCount` > 0: an `ErrorCode` in their slot of
    `Entries`) and whole calls that are throttled or fail on its side are retried, at most
    `max_attempts` sends per batch, with full-jitter backoff. With a `deadline`, no call
    starts with less than MIN_SECONDS_LEFT before it and no backoff sleeps past it: what is
    still unsent then is counted as abandoned. Nothing is raised: every change ends up
    published or failed in the returned result (`result` when given, added to as batches
    finish, so a caller that stops waiting still reads what was achieved).
    """
    result = result if result is not None else PublishResult()
    stamp = now or datetime.now(UTC)
    unsendable: list[dict[str, Any]] = []
    pending = (entry(change, bus_name, stamp) for change in changes)
    for batch in batches(pending, on_oversize=unsendable.append):
        _send(batch, events_client, deadline, result, max_attempts, sleep)
    if unsendable:
        result.add(failed=len(unsendable))
        logger.warning(
            "change feed: entries over PutEvents' size limit", extra={"count": len(unsendable)}
        )
    return result


def _send(
    batch: list[dict[str, Any]],
    client: Any,
    deadline: TimeLeft | None,
    result: PublishResult,
    max_attempts: int,
    sleep: Callable[[float], None],
) -> None:
    pending = batch
    last_error: str | None = None
    for attempt in range(max_attempts):
        if attempt:
            delay = random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))
            if deadline is not None:
                delay = min(delay, max(0.0, deadline.left() - MIN_SECONDS_LEFT))
            sleep(delay)
        if deadline is not None and deadline.left() < MIN_SECONDS_LEFT:
            result.add(abandoned=len(pending))
            logger.warning(
                "change feed: publishing stopped at the deadline",
                extra={"abandoned": len(pending)},
            )
            return
        try:
            response = client.put_events(Entries=pending)
        except ClientError as exc:
            result.add(attempts=1)
            last_error = error_code(exc)
            if last_error in RETRYABLE_CODES:
                continue
            break
        except BotoCoreError as exc:  # connection trouble: worth another attempt
            result.add(attempts=1)
            last_error = type(exc).__name__
            continue
        result.add(attempts=1)
        answers = response.get("Entries") or []
        refused = [
            request_entry
            for index, request_entry in enumerate(pending)
            if index >= len(answers) or answers[index].get("ErrorCode")
        ]
        result.add(published=len(pending) - len(refused))
        if not refused:
            return
        last_error = next(
            (a["ErrorCode"] for a in answers if a.get("ErrorCode")), "MissingEntryResult"
        )
        pending = refused
    result.add(failed=len(pending))
    logger.warning(
        "change feed: events not published",
        extra={"failed": len(pending), "errorCode": last_error},
    )


class ChangeFeed:
    """One run's publisher: its bus, its events client (built on first use), its deadline and
    origin, and one result gathered across the threads that publish. With no bus (None or
    empty: INVENTORY_EVENT_BUS unset) the feed is off: `publish` does nothing, and both
    counts stay 0."""

    def __init__(
        self,
        bus_name: str | None,
        events_client: Callable[[], Any],
        *,
        origin_key: OriginKey,
        origin: str,
        deadline: TimeLeft | None = None,
    ) -> None:
        self.bus_name = bus_name or ""
        self.origin_key: OriginKey = origin_key
        self.origin = origin
        self.deadline = deadline
        self.result = PublishResult()
        self._events_client = events_client
        self._lock = threading.Lock()
        self._offered = 0

    @property
    def enabled(self) -> bool:
        return bool(self.bus_name)

    def change(self, kind: Kind, item: dict[str, Any], fields: Iterable[str] = ()) -> Change:
        """The change of inventory `item` (see Change.of_item) with this feed's origin."""
        return Change.of_item(
            kind, item, origin_key=self.origin_key, origin=self.origin, fields=fields
        )

    def publish(self, changes: list[Change]) -> None:
        """Publish `changes` (see publish_changes); never raises."""
        if not self.enabled or not changes:
            return
        with self._lock:
            self._offered += len(changes)
        try:
            client = self._events_client()
        except Exception as exc:  # no client, no events: counted, never the caller's failure
            self.result.add(failed=len(changes))
            logger.warning("change feed: no events client", extra={"error": str(exc)})
            return
        publish_changes(
            changes,
            events_client=client,
            bus_name=self.bus_name,
            deadline=self.deadline,
            result=self.result,
        )

    def counts(self) -> tuple[int, int]:
        """(published, failed): every change offered and not (yet) published is failed, so a
        publish still in flight when its caller stopped waiting counts as failed."""
        with self._lock:
            offered = self._offered
        published = self.result.published
        return published, max(0, offered - published)
