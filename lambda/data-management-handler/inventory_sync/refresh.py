"""`refresh_source_servers`: read named DRS source servers now and bring their items up to date.

Two callers: an operator (`{"operation": "refresh_source_servers", "accountId", "region",
"sourceServerIDs": [...]}`), and DRS events delivered through the hub's SQS queue
(`drs_events`, which calls `refresh_batch`). Either way the servers are grouped by scope
(account, region) and each scope is read with DescribeSourceServers filtered on
`sourceServerIDs` (200 ids a call, the API's maximum; so a burst of events in one scope is
one call), through the same ClientFactory (one AssumeRole per account) as the full sync,
and written with the full sync's transform (`records.inventory_item`, `content_digest`,
EC2 enrichment from the server's origin account).

Rules:
- **Version stamp = when DRS was read.** Each scope's read time (taken just before its
  first DescribeSourceServers call) is the `lastSyncTime` of what it writes, and a write
  lands only if the stored item's `lastSyncTime` is not later (conditional PutItem). An
  event older than the stored item still causes a read: what is written is DRS's state
  now, never the event's content. A refresh that read before a newer write landed is
  counted `staleSkipped` and changes nothing.
- **Soft-delete only on DRS's word.** A requested server is soft-deleted (`deletedAt`,
  `expiresAt` = read time + SYNC_SOFT_DELETE_TTL_DAYS, as the sync) only when its scope's
  filtered listing completed and did not list it, under the sync's own condition (same
  scope, not already deleted, `lastSyncTime` earlier than this read). A failed, throttled
  or refused call soft-deletes nothing; a server listed again while soft-deleted is
  revived (the whole item is rewritten, so `deletedAt`/`expiresAt` go).
- **Idempotent.** An unchanged server (same content digest, not soft-deleted) changes
  nothing but its `lastSyncTime`, stamped with this read by the same conditional write: an
  older read still in flight (a sync's, a slower refresh's) then finds the later stamp and
  is kept out, instead of landing last and undoing what this read confirmed. A redelivered
  event publishes nothing. Stored items are read with strongly consistent reads.
- **A deadline, as the sync's** (run_setup.RunSetup): the refresh works until
  SYNC_DEADLINE_RESERVE_SECONDS (default 30, at most a quarter of the time left) before
  Lambda's timeout and at most the sync's max run (840 s by default), so with the
  function's 900 s timeout it answers SQS at least 60 s before the timeout and 120 s
  before the queue's 960 s visibility timeout (done messages are deleted before any
  could be delivered again). Its clients' timeouts and retries are sized to it, every
  write passes its gate, and the change feed stops publishing before it. Work still
  running then (a hung call) is abandoned: the servers it had not refreshed are failures
  with errorCode `DeadlineReached` (their ids in `failures[].sourceServerIDs`,
  `deadlineReached: true`), and the SQS adapter reports exactly the messages naming them
  as batchItemFailures; the others are deleted.
- **Region status is the full sync's.** Nothing here writes it.
- **No lease.** Refreshes run alongside syncs; the conditional writes keep them apart. The
  sync's soft-delete condition stays right with refreshes interleaved: the sync removes an
  item only if its `lastSyncTime` is earlier than the sync's start. A refresh's write
  carries the time it read DRS, so a refresh that read after the sync started (and saw the
  server alive) keeps the sync from hiding it; the next sync decides again from its own
  listing. A refresh that read before the sync started wrote an older stamp: the sync's
  later, complete listing is the newer truth, and its soft-delete goes through. The sync
  writes the servers it found stored with the same conditional PutItem (stamped with its
  start), and keeps an item stamped after its start: a refresh's newer read is never
  replaced by the sync's. Left open: a server new to the inventory when the sync read its
  scope, which a refresh adds before the sync's batch write lands, can get the sync's
  slightly older read until the next event or sync.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from change_feed import Change, ChangeFeed
from inventory_sync.changes import changed_fields
from inventory_sync.deadline import DEADLINE_CODE
from inventory_sync.enrichment import enrich
from inventory_sync.exceptions import DeadlineReachedError, InventorySyncError
from inventory_sync.listing import status_for_error_code
from inventory_sync.models import Scope, ScopeStatus, SyncSettings
from inventory_sync.records import (
    CONTENT_DIGEST,
    content_digest,
    ec2_origin,
    inventory_item,
    record_identity,
)
from inventory_sync.report import iso
from inventory_sync.run_setup import Clock, RunSetup
from inventory_sync.store import SyncStore
from shared.aws import AccountAccess, ClientFactory, error_code
from shared.config import drs_regions, inventory_event_bus, table_names
from shared.exceptions import AssumeRoleError, InvalidParameterError
from shared.messages import (
    INVENTORY_TABLE_FAILED,
    MALFORMED_RESPONSE,
    PAGINATION_LOOP,
    UNEXPECTED_ERROR,
    reader_message,
)
from shared.observability import emit_metrics, get_logger
from shared.operations import Field, check_params
from shared.validation import ACCOUNT_ID, REGION, SOURCE_SERVER_ID, listed

logger = get_logger("data-management-handler")

OPERATION = "refresh_source_servers"
SESSION_PREFIX = "drs-refresh"  # AssumeRole sessions: drs-refresh-<environment>-<refresh id>
FILTER_MAX_IDS = 200  # DescribeSourceServers filters.sourceServerIDs: at most 200 ids
MAX_OPERATOR_IDS = FILTER_MAX_IDS  # an operator's call is one DescribeSourceServers
MAX_PAGES = 20  # of one filtered call: 200 ids fill at most a page or two
MAX_CHANGES = 500  # `changes` entries a result lists (the rest counted in `moreChanges`)
MAX_FAILURES = 100  # `failures` entries a result lists
MAX_CONCURRENCY = 8  # scopes read at once
UNIDENTIFIED = ""  # in refused ids: a listed record without a usable sourceServerID
DEADLINE_MESSAGE = "the refresh's deadline came before these servers were refreshed"

PARAMS = {
    "accountId": Field((str,), required=True, pattern=ACCOUNT_ID),
    "region": Field((str,), required=True, pattern=REGION),
    "sourceServerIDs": Field(
        (list,), required=True, items=str, pattern=SOURCE_SERVER_ID, max_items=MAX_OPERATOR_IDS
    ),
}
COUNTS = (
    "read",
    "written",
    "unchanged",
    "softDeleted",
    "revived",
    "staleSkipped",
    "failed",
    "unattributed",
)


class RefreshFailedError(InventorySyncError):
    """An operator's refresh read nothing (every scope failed): the invocation fails
    visibly. The result (with its failures) is `summary`."""

    error_code = "RefreshFailed"

    def __init__(self, summary: dict[str, Any]) -> None:
        self.summary = summary
        first = (summary.get("failures") or [{}])[0]
        super().__init__(
            f"{OPERATION} FAILED: {first.get('accountId')}/{first.get('region')} "
            f"{first.get('errorCode')}: {first.get('message')}"
        )


@dataclass(frozen=True)
class ServerRef:
    """One source server to refresh, and the event that asked (None/"" for an operator)."""

    account_id: str
    region: str
    source_server_id: str
    event_time: str | None = None
    event_id: str = ""

    @property
    def scope(self) -> Scope:
        return Scope(self.account_id, self.region)


@dataclass
class _ScopeResult:
    """One scope's refresh, filled in as it goes (the supervisor may read it half-way, at
    the deadline). `settled`: the requested ids the refresh has a final answer for (written,
    unchanged, soft-deleted, left to a newer write, or a record DynamoDB cannot hold)."""

    scope: Scope
    ids: list[str]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    changes: list[dict[str, Any]] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    describe_calls: int = 0
    settled: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def settle(self, server_id: str, count: str | None = None) -> None:
        with self._lock:
            self.settled.add(server_id)
            if count is not None:
                self.counts[count] += 1

    def take_progress(self, other: _ScopeResult) -> None:
        """What `other` (the same scope, still running elsewhere) has done so far."""
        with other._lock:
            self.settled = set(other.settled)
            self.counts = dict(other.counts)
            self.changes = list(other.changes)
            self.describe_calls = other.describe_calls

    def unsettled(self) -> list[str]:
        """The requested ids not (yet) refreshed, in request order."""
        with self._lock:
            return [sid for sid in self.ids if sid not in self.settled]

    def fail(self, code: str, message: str, detail: str | None = None) -> None:
        self.error_code = code
        self.error_message = message
        logger.warning(
            "refresh of scope failed",
            extra={
                "accountId": self.scope.account_id,
                "region": self.scope.region,
                "errorCode": code,
                "error": detail or message,
            },
        )

    def close_failed(self) -> None:
        """Count every requested server without a final answer as failed (the scope failed:
        they are to be retried), with the records DynamoDB could not hold."""
        with self._lock:
            rejected = self.counts["failed"]
            self.counts["failed"] = rejected + sum(1 for s in self.ids if s not in self.settled)


@dataclass(frozen=True)
class RefreshOutcome:
    """The result (see the module's operation), the scopes whose refresh failed, and the
    servers (scope, source server id) not refreshed: what a caller should ask for again."""

    result: dict[str, Any]
    failed_scopes: frozenset[Scope]
    unrefreshed: frozenset[tuple[Scope, str]] = frozenset()

    def refreshed(self, ref: ServerRef) -> bool:
        """Whether the refresh has a final answer for `ref` (an unattributed one counts:
        retrying it can never help)."""
        return (ref.scope, ref.source_server_id) not in self.unrefreshed


def refresh_source_servers(
    params: dict[str, Any],
    context: Any = None,
    *,
    factory: ClientFactory | None = None,
    settings: SyncSettings | None = None,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """The operator's form: refresh `sourceServerIDs` (1-200 ids) of `accountId` in `region`.

    Returns the refresh's result. Raises InvalidParameterError (nothing read or written)
    for bad parameters, an account that is not the hub or an enabled target account, or a
    region not in DRS_REGIONS; RefreshFailedError when DRS could not be read or the
    deadline came first.
    """
    check_params(OPERATION, params, PARAMS)
    refs = [
        ServerRef(params["accountId"], params["region"], server_id)
        for server_id in dict.fromkeys(params["sourceServerIDs"])
    ]
    outcome = _Refresh(_setup(context, factory, settings, clock)).run(refs, strict=True)
    if outcome.result["status"] == "FAILED":
        raise RefreshFailedError(outcome.result)
    return outcome.result


def refresh_batch(
    refs: Iterable[ServerRef],
    context: Any = None,
    *,
    unattributed: int = 0,
    factory: ClientFactory | None = None,
    settings: SyncSettings | None = None,
    clock: Clock | None = None,
) -> RefreshOutcome:
    """The events' form: refresh every server `refs` names (duplicates coalesced).

    A server of an account that is not the hub or an enabled target account, or of a
    region not in DRS_REGIONS, is counted `unattributed` (with the `unattributed` records
    the caller could not parse) and never read. Never raises for an AWS failure in a scope
    nor for the deadline: a server not refreshed is in `unrefreshed` (its events are to be
    retried). Raises what reading the registry raises (the whole batch is then retried).
    """
    setup = _setup(context, factory, settings, clock)
    return _Refresh(setup).run(list(refs), unattributed=unattributed)


def _setup(
    context: Any, factory: ClientFactory | None, settings: SyncSettings | None, clock: Clock | None
) -> RunSetup:
    return RunSetup.for_invocation(
        context,
        session_prefix=SESSION_PREFIX,
        concurrency=MAX_CONCURRENCY,
        factory=factory,
        settings=settings,
        clock=clock,
    )


def _partition(region: str) -> str:
    for prefix, partition in (
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
    ):
        if region.startswith(prefix):
            return partition
    return "aws"


def source_server_arn(scope: Scope, server_id: str) -> str:
    """The ARN DRS gives source server `server_id` of `scope`."""
    return (
        f"arn:{_partition(scope.region)}:drs:{scope.region}:{scope.account_id}:"
        f"source-server/{server_id}"
    )


def _by_scope(refs: Iterable[ServerRef]) -> dict[Scope, list[str]]:
    """The requested ids of each scope, in request order, without repeats."""
    by_scope: dict[Scope, list[str]] = {}
    for ref in refs:
        ids = by_scope.setdefault(ref.scope, [])
        if ref.source_server_id not in ids:
            ids.append(ref.source_server_id)
    return by_scope


class _Refresh:
    """One refresh. Not reused.

    The invocation's thread is a supervisor, as in the full sync: the work (reading the
    registry, then the scopes, each publishing its changes when done) runs on background
    threads, and the supervisor waits for it only until the deadline. Work still running
    then (a hung DRS, EC2, STS, DynamoDB or EventBridge call) is abandoned: every write
    passes the deadline's gate, and the servers it had not finished are reported as not
    refreshed (errorCode DeadlineReached), so their events are delivered again.
    """

    def __init__(self, setup: RunSetup) -> None:
        self.settings = setup.settings
        self.factory = setup.factory
        self.deadline = setup.deadline
        self.clock = setup.clock
        self.refresh_id = setup.run_id
        self.event_ids: dict[str, str] = {}  # source server ARN -> the event that asked
        self.event_times: dict[str, datetime] = {}  # ... and that event's `time`
        self.store = SyncStore(
            self.factory.client("dynamodb", self.factory.home_region, validate=False),
            table_names(),
            gate=lambda: not self.deadline.reached(),
        )
        self.regions = frozenset(drs_regions())
        self.ec2_sources: dict[str, frozenset[str]] = {}
        self.feed = ChangeFeed(
            inventory_event_bus(),
            lambda: self.factory.client("events", self.factory.home_region),
            origin_key="runId",
            origin=self.refresh_id,
            deadline=self.deadline,
        )
        # Filled in by the background work; read by the supervisor.
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._closed = False  # set by the supervisor: abandoned workers report nothing more
        self.attributed: dict[Scope, list[str]] | None = None  # None: registry not read yet
        self.unattributed = 0
        self.oldest_event: float | None = None
        self.running: dict[Scope, _ScopeResult] = {}
        self.finished: dict[Scope, _ScopeResult] = {}

    def run(
        self, refs: list[ServerRef], *, strict: bool = False, unattributed: int = 0
    ) -> RefreshOutcome:
        started = time.monotonic()
        logger.append_keys(refreshId=self.refresh_id)
        try:
            # The event that asked for each server (the latest one, when a burst names it
            # more than once): the change feed names it (`eventId`); an operator's has none.
            self.event_ids = {
                source_server_arn(ref.scope, ref.source_server_id): ref.event_id
                for ref in refs
                if ref.event_id
            }
            self.event_times = {
                source_server_arn(ref.scope, ref.source_server_id): moment
                for ref in refs
                if ref.event_id and (moment := _moment(ref.event_time)) is not None
            }
            self.unattributed = unattributed
            worker = threading.Thread(
                target=self._work, args=(refs, strict), name="refresh-run", daemon=True
            )
            worker.start()
            in_time = self._done.wait(timeout=max(0.0, self.deadline.left()))
            if in_time and self._error is not None:
                raise self._error
            if not in_time:
                self.deadline.abandon()
                with self._lock:
                    self._closed = True
                logger.warning(
                    "deadline reached: unfinished refresh abandoned",
                    extra={"finishedScopes": len(self.finished)},
                )
            with self._lock:  # what the work achieved; it adds nothing from now on
                attributed = self.attributed
                finished = dict(self.finished)
                running = dict(self.running)
                unattributed_refs = self.unattributed
                oldest_event = self.oldest_event
            # Before the registry was read (deadline), every requested scope is unfinished.
            scopes = attributed if attributed is not None else _by_scope(refs)
            results = self._results(scopes, finished, running)
            # A worker may also have stopped at the deadline just before the supervisor woke.
            stopped = not in_time or any(r.error_code == DEADLINE_CODE for r in results)
            return self._outcome(
                results, unattributed_refs, started, oldest_event, deadline_reached=stopped
            )
        finally:
            logger.remove_keys(["refreshId"])

    def _results(
        self,
        scopes: dict[Scope, list[str]],
        finished: dict[Scope, _ScopeResult],
        running: dict[Scope, _ScopeResult],
    ) -> list[_ScopeResult]:
        """Every scope's result, in scope order: a scope the deadline came before (not
        started, or abandoned half-way) fails with DeadlineReached, keeping what it had
        settled."""
        results: list[_ScopeResult] = []
        for scope in sorted(scopes):
            result = finished.get(scope)
            if result is None:
                result = _ScopeResult(scope, scopes[scope])
                abandoned = running.get(scope)
                if abandoned is not None:  # a copy: its thread may still change it
                    result.take_progress(abandoned)
                result.fail(DEADLINE_CODE, DEADLINE_MESSAGE)
                result.close_failed()
                # Changes whose writes landed before the deadline: nothing is sent now
                # (the deadline is past), they are counted failed.
                self.feed.publish(self._feed_changes(result.changes))
            results.append(result)
        return results

    # --- the work ----------------------------------------------------------------------------
    def _work(self, refs: list[ServerRef], strict: bool) -> None:
        try:
            enabled = self._accounts() if refs else set()  # only unattributed: no reads
            by_scope, unattributed, oldest_event = self._attribute(refs, enabled, strict)
            with self._lock:
                self.attributed = by_scope
                self.unattributed += unattributed
                self.oldest_event = oldest_event
            pending: queue.SimpleQueue[Scope] = queue.SimpleQueue()
            for scope in sorted(by_scope):
                pending.put(scope)
            workers = [
                threading.Thread(
                    target=self._worker, args=(pending, by_scope), name=f"refresh-{n}", daemon=True
                )
                for n in range(max(1, min(MAX_CONCURRENCY, len(by_scope))))
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        except BaseException as exc:  # handed to the supervisor, which raises it
            self._error = exc
        finally:
            self._done.set()

    def _attribute(
        self, refs: list[ServerRef], enabled: set[str], strict: bool
    ) -> tuple[dict[Scope, list[str]], int, float | None]:
        """The requested ids of each scope this function syncs, how many refs name another
        (refused, for an operator's call), and the oldest event's time (epoch seconds)."""
        attributed: list[ServerRef] = []
        unattributed = 0
        oldest: float | None = None
        for ref in refs:
            scope = ref.scope
            if scope.account_id not in enabled or scope.region not in self.regions:
                if strict:
                    raise InvalidParameterError(self._refusal(scope, enabled))
                unattributed += 1
                logger.warning(
                    "DRS event ignored: not a synced account and region",
                    extra={"accountId": scope.account_id, "region": scope.region},
                )
                continue
            attributed.append(ref)
            when = _epoch(ref.event_time)
            if when is not None:
                oldest = when if oldest is None else min(oldest, when)
        return _by_scope(attributed), unattributed, oldest

    def _worker(self, pending: queue.SimpleQueue[Scope], by_scope: dict[Scope, list[str]]) -> None:
        while True:
            try:
                scope = pending.get_nowait()
            except queue.Empty:
                return
            outcome = _ScopeResult(scope, by_scope[scope])
            with self._lock:
                if self._closed:
                    return
                self.running[scope] = outcome
            self._scope(outcome)
            with self._lock:
                if self._closed:
                    return  # abandoned: the supervisor reports this scope as unfinished
                self.finished[scope] = outcome
            # Published once the scope's result is recorded: a slow or hung PutEvents delays
            # the next scope, never this scope's answer.
            self.feed.publish(self._feed_changes(outcome.changes))

    def _accounts(self) -> set[str]:
        """The hub + the enabled target accounts (registered with the factory, as the sync
        does); fills in whose EC2 each account's servers may be read in."""
        hub = self.factory.hub_account_id()
        self.factory.register(AccountAccess(hub))
        registry = self.store.registered_accounts()
        registered = {hub} | {str(a["accountId"]) for a in registry}
        enabled = {hub}
        for account in registry:
            account_id = str(account["accountId"])
            if account_id == hub:
                continue
            self.factory.register(
                AccountAccess(account_id, account.get("roleArn"), account.get("externalId"))
            )
            if account.get("enabled", True):
                enabled.add(account_id)
        self.ec2_sources = {account: frozenset({account}) for account in enabled}
        for account in registry:
            account_id = str(account["accountId"])
            if account_id in enabled:
                declared = {str(a) for a in account.get("ec2SourceAccountIds") or ()}
                self.ec2_sources[account_id] |= (declared & registered) - {hub}
        return enabled

    def _refusal(self, scope: Scope, enabled: set[str]) -> str:
        if scope.account_id not in enabled:
            return (
                f"{OPERATION}: accountId {scope.account_id} is not the hub or an enabled "
                f"target account; valid accountIds: {listed(sorted(enabled))}"
            )
        return (
            f"{OPERATION}: region {scope.region} is not a DRS region this function syncs; "
            f"valid regions: {listed(sorted(self.regions))}"
        )

    # --- one scope ---------------------------------------------------------------------------
    def _scope(self, outcome: _ScopeResult) -> None:
        """Read and write one scope's requested servers into `outcome`. Never raises."""
        scope, ids = outcome.scope, outcome.ids
        try:
            self._refresh_scope(scope, ids, outcome)
        except DeadlineReachedError as exc:
            outcome.fail(DEADLINE_CODE, DEADLINE_MESSAGE, str(exc))
        except (ClientError, BotoCoreError) as exc:
            code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            outcome.fail(INVENTORY_TABLE_FAILED, reader_message(INVENTORY_TABLE_FAILED), code)
        except Exception as exc:  # one scope's surprise must not stop the others
            logger.exception(
                "refresh of scope failed unexpectedly",
                extra={"accountId": scope.account_id, "region": scope.region},
            )
            outcome.fail(UNEXPECTED_ERROR, reader_message(UNEXPECTED_ERROR), repr(exc))
        if outcome.error_code is not None:
            # Every server of a failed scope without a final answer is to be retried (those
            # it wrote before it failed are settled: their events are not delivered again).
            outcome.close_failed()

    def _refresh_scope(self, scope: Scope, ids: list[str], outcome: _ScopeResult) -> None:
        self.deadline.check(f"refresh of {scope.account_id}/{scope.region}")
        read_at = self.clock()
        read_time, read_epoch = iso(read_at), read_at.timestamp()
        refused_ids: set[str] = set()
        servers = self._read(scope, ids, outcome, refused_ids)
        if servers is None:
            return  # DRS gave no complete answer: nothing is written, nothing soft-deleted
        self.deadline.check(f"refresh of {scope.account_id}/{scope.region}")  # a late answer
        outcome.counts["read"] = len(servers)
        arns = {source_server_arn(scope, sid): sid for sid in ids} | {a: "" for a in servers}
        # Consistent: a write another refresh or the sync just made must be seen here.
        stored = self.store.inventory_items(list(arns), consistent=True)
        enrichment = enrich(
            list(servers.values()),
            self.ec2_sources.get(scope.account_id, frozenset({scope.account_id})),
            lambda account, region: self.factory.client("ec2", region, account),
            self.settings.ec2_batch_size,
        )
        for arn, server in sorted(servers.items()):
            server_id = server["sourceServerID"]
            previous = stored.get(arn)
            origin = ec2_origin(server)
            ec2 = enrichment.instances.get(origin) if origin is not None else None
            if origin is not None and ec2 is None and origin in enrichment.unavailable:
                ec2 = (previous or {}).get("ec2")  # could not look: keep what we knew
            digest = content_digest(server, scope, ec2, read_epoch)
            unchanged = (
                previous is not None
                and "deletedAt" not in previous
                and previous.get(CONTENT_DIGEST) == digest
            )
            try:
                item = inventory_item(server, scope, read_time, ec2, digest)
            except InventorySyncError as exc:  # one record DynamoDB cannot hold: that one only
                outcome.settle(server_id, "failed")  # retrying cannot help: never redelivered
                logger.warning(
                    "record rejected",
                    extra={"accountId": scope.account_id, "arn": arn, "reason": str(exc)},
                )
                continue
            # Unchanged too is written (conditionally, its read time stamped): an older read
            # in flight (a sync's, a slower refresh's) then finds a later write and is kept
            # out; without the stamp it would land last and undo what this read confirmed.
            if not self.store.put_inventory_item_unless_newer(item):
                outcome.settle(server_id, "staleSkipped")
                continue
            if unchanged:
                outcome.settle(server_id, "unchanged")
                continue
            if previous is None:
                outcome.changes.append(_change("Added", item))
            elif "deletedAt" in previous:
                outcome.counts["revived"] += 1
                outcome.changes.append(_change("Revived", item))
            else:
                fields = changed_fields(previous, item, read_epoch)
                outcome.changes.append(_change("Changed", item, fields))
            outcome.settle(server_id, "written")
        expires_at = int(read_epoch) + self.settings.soft_delete_ttl_days * 86400
        listed_ids = {server["sourceServerID"] for server in servers.values()}
        listed_ids |= refused_ids  # listed, if not storable: never taken for gone
        if UNIDENTIFIED in refused_ids:
            # A record without a usable id could be any asked-for server: none is taken for
            # gone (nor retried: DRS would answer the same); the next full sync decides.
            refused_ids |= set(ids) - listed_ids
            listed_ids |= refused_ids
        for server_id in ids:
            if server_id in refused_ids:
                outcome.settle(server_id, "failed")
        for arn, server_id in arns.items():
            # Gone means: its id was asked for and DRS's complete answer did not list it.
            if not server_id or server_id in listed_ids:
                continue
            previous = stored.get(arn)
            if previous is None or "deletedAt" in previous:
                outcome.settle(server_id, "unchanged")  # gone, and the inventory says so
                continue
            if self.store.soft_delete(arn, scope, read_time, read_time, expires_at):
                outcome.changes.append(_change("Removed", previous))
                outcome.settle(server_id, "softDeleted")
            else:
                outcome.settle(server_id, "staleSkipped")

    def _read(
        self, scope: Scope, ids: list[str], outcome: _ScopeResult, refused_ids: set[str]
    ) -> dict[str, dict[str, Any]] | None:
        """The requested servers DRS lists now, by ARN; None when the answer is not
        complete (an AWS failure, a malformed answer), after recording the failure. The ids
        of listed records that cannot be stored go to `refused_ids` (UNIDENTIFIED for one
        without a usable id)."""
        servers: dict[str, dict[str, Any]] = {}
        wanted = set(ids)
        try:
            client = self.factory.client("drs", scope.region, scope.account_id)
            for start in range(0, len(ids), FILTER_MAX_IDS):
                chunk = ids[start : start + FILTER_MAX_IDS]
                token: str | None = None
                seen: set[str] = set()
                for _ in range(MAX_PAGES):
                    # A page as large as the chunk: one call per chunk unless DRS pages anyway.
                    request: dict[str, Any] = {
                        "filters": {"sourceServerIDs": chunk},
                        "maxResults": len(chunk),
                    }
                    if token:
                        request["nextToken"] = token
                    self.deadline.check(f"DescribeSourceServers of {scope}")
                    outcome.describe_calls += 1
                    response = client.describe_source_servers(**request)
                    items = response.get("items")
                    if not isinstance(items, list):
                        outcome.fail(MALFORMED_RESPONSE, reader_message(MALFORMED_RESPONSE))
                        return None
                    for record in items:
                        self._keep(record, scope, wanted, servers, refused_ids)
                    token = response.get("nextToken")
                    if not token:
                        break
                    if not isinstance(token, str) or token in seen:
                        outcome.fail(PAGINATION_LOOP, reader_message(PAGINATION_LOOP))
                        return None
                    seen.add(token)
                else:
                    outcome.fail(PAGINATION_LOOP, reader_message(PAGINATION_LOOP))
                    return None
        except AssumeRoleError as exc:
            status = status_for_error_code(exc.aws_error_code)
            outcome.fail(exc.error_code, reader_message(exc.error_code, status), str(exc))
            return None
        except ClientError as exc:
            code = error_code(exc)
            status = status_for_error_code(code)
            outcome.fail(code, reader_message(code, status), str(exc))
            return None
        except BotoCoreError as exc:
            code = type(exc).__name__
            outcome.fail(code, reader_message(code, ScopeStatus.ERROR), str(exc))
            return None
        return servers

    @staticmethod
    def _keep(
        record: Any,
        scope: Scope,
        wanted: set[str],
        servers: dict[str, dict[str, Any]],
        refused_ids: set[str],
    ) -> None:
        try:
            arn = record_identity(record, scope)
        except InventorySyncError as exc:
            logger.warning(
                "record rejected",
                extra={"accountId": scope.account_id, "region": scope.region, "reason": str(exc)},
            )
            server_id = record.get("sourceServerID") if isinstance(record, dict) else None
            refused_ids.add(server_id if isinstance(server_id, str) else UNIDENTIFIED)
            return
        if record["sourceServerID"] in wanted:
            servers[arn] = record

    # --- the result --------------------------------------------------------------------------
    def _outcome(
        self,
        results: list[_ScopeResult],
        unattributed: int,
        started: float,
        oldest_event: float | None,
        *,
        deadline_reached: bool,
    ) -> RefreshOutcome:
        counts = dict.fromkeys(COUNTS, 0)
        for outcome in results:
            for name, value in outcome.counts.items():
                counts[name] += value
        counts["unattributed"] = unattributed
        unrefreshed = {r.scope: r.unsettled() for r in results if r.error_code is not None}
        failures = [
            {
                "accountId": r.scope.account_id,
                "region": r.scope.region,
                "errorCode": r.error_code,
                "message": r.error_message,
                # What is to be asked again (its events are delivered again).
                "sourceServerIDs": unrefreshed[r.scope][:FILTER_MAX_IDS],
            }
            for r in results
            if r.error_code is not None
        ]
        if results and len(failures) == len(results):
            status = "FAILED"
        elif failures or counts["failed"]:
            status = "PARTIAL"
        else:
            status = "SUCCEEDED"
        changes = [change for r in results for change in r.changes]
        # Whatever is still being published now is counted failed (ChangeFeed.counts).
        counts["changesPublished"], counts["changesFailed"] = self.feed.counts()
        result: dict[str, Any] = {
            "operation": OPERATION,
            "status": status,
            "refreshId": self.refresh_id,
            "requested": sum(len(r.ids) for r in results),
            "scopes": [
                {"accountId": r.scope.account_id, "region": r.scope.region} for r in results
            ][:MAX_FAILURES],
            "counts": counts,
            "apiCalls": {"describeSourceServers": sum(r.describe_calls for r in results)},
            "deadlineReached": deadline_reached,
            "failures": failures[:MAX_FAILURES],
            "changes": changes[:MAX_CHANGES],
            "moreChanges": max(0, len(changes) - MAX_CHANGES),
        }
        duration_ms = (time.monotonic() - started) * 1000
        event_age_ms = (
            max(0.0, (time.time() - oldest_event) * 1000) if oldest_event is not None else None
        )
        self._publish(result, duration_ms, event_age_ms)
        return RefreshOutcome(
            result,
            frozenset(unrefreshed),
            frozenset((scope, sid) for scope, ids in unrefreshed.items() for sid in ids),
        )

    def _feed_changes(self, changes: list[dict[str, Any]]) -> list[Change]:
        """The feed's events of `changes`: each named by the DRS event that asked for the
        server (`eventId`), or by this refresh's id (`runId`) for an operator's call."""
        feed: list[Change] = []
        for change in changes:
            event_id = self.event_ids.get(change["sourceServerArn"], "")
            feed.append(
                Change(
                    kind=change["kind"],
                    account_id=change["accountId"],
                    region=change["region"],
                    source_server_arn=change["sourceServerArn"],
                    source_server_id=change["sourceServerID"],
                    fields=tuple(change["fields"]),
                    origin_key="eventId" if event_id else "runId",
                    origin=event_id or self.refresh_id,
                    observed_at=self.event_times.get(change["sourceServerArn"]),
                )
            )
        return feed

    @staticmethod
    def _publish(result: dict[str, Any], duration_ms: float, event_age_ms: float | None) -> None:
        counts = result["counts"]
        level = logger.warning if result["deadlineReached"] else logger.info
        level(
            "refresh finished",
            extra={
                "status": result["status"],
                "counts": counts,
                "durationMs": int(duration_ms),
                "deadlineReached": result["deadlineReached"],
            },
        )
        durations = {"RefreshDurationMs": duration_ms}
        if event_age_ms is not None:
            durations["RefreshOldestEventAgeMs"] = event_age_ms
        emit_metrics(
            "data-management-handler",
            counts={
                "RefreshServersRead": counts["read"],
                "RefreshServersWritten": counts["written"],
                "RefreshServersUnchanged": counts["unchanged"],
                "RefreshServersSoftDeleted": counts["softDeleted"],
                "RefreshServersRevived": counts["revived"],
                "RefreshStaleSkipped": counts["staleSkipped"],
                "RefreshServersFailed": counts["failed"],
                "RefreshEventsUnattributed": counts["unattributed"],
                "RefreshScopesFailed": len(result["failures"]),
                "RefreshDeadlineReached": int(result["deadlineReached"]),
                "ChangeFeedFailures": counts.get("changesFailed", 0),
            },
            durations_ms=durations,
        )


def _change(kind: str, item: dict[str, Any], fields: list[str] | None = None) -> dict[str, Any]:
    """One entry of `changes`: what the change feed publishes."""
    return {
        "kind": kind,
        "accountId": item.get("accountId"),
        "region": item.get("region"),
        "sourceServerArn": item.get("sourceServerArn"),
        "sourceServerID": item.get("sourceServerID"),
        "fields": (fields or [])[:24],
    }


def _moment(value: str | None) -> datetime | None:
    """An event's ISO-8601 `time` (None when absent or not a time)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _epoch(value: str | None) -> float | None:
    moment = _moment(value)
    return moment.timestamp() if moment is not None else None


__all__ = [
    "OPERATION",
    "RefreshFailedError",
    "RefreshOutcome",
    "ServerRef",
    "refresh_batch",
    "refresh_source_servers",
]
