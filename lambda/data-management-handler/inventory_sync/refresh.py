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
- **Idempotent.** An unchanged server (same content digest, not soft-deleted) costs no
  write, so a redelivered event writes nothing the second time.
- **Region status is the full sync's.** Nothing here writes it.
- **No lease.** Refreshes run alongside syncs; the conditional writes keep them apart. The
  sync's soft-delete condition stays right with refreshes interleaved: the sync removes an
  item only if its `lastSyncTime` is earlier than the sync's start. A refresh's write
  carries the time it read DRS, so a refresh that read after the sync started (and saw the
  server alive) keeps the sync from hiding it; the next sync decides again from its own
  listing. A refresh that read before the sync started wrote an older stamp: the sync's
  later, complete listing is the newer truth, and its soft-delete goes through. The sync's
  upserts are unconditional batch writes stamped with the sync's start time, not its read
  time: a sync write can replace a refresh's newer read in the minutes a scope takes, and a
  refresh can then overwrite that sync write with its own read; either way the next event
  or sync reads DRS again, and nothing is ever soft-deleted without a complete answer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from change_feed import Change, PublishResult, publish_changes
from inventory_sync.changes import changed_fields
from inventory_sync.enrichment import enrich
from inventory_sync.exceptions import InventorySyncError
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
from inventory_sync.store import SyncStore
from shared.aws import (
    AccountAccess,
    ClientFactory,
    deployment_name,
    error_code,
    hub_source_identity,
    make_config,
)
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
Clock = Callable[[], datetime]

OPERATION = "refresh_source_servers"
FILTER_MAX_IDS = 200  # DescribeSourceServers filters.sourceServerIDs: at most 200 ids
MAX_OPERATOR_IDS = FILTER_MAX_IDS  # an operator's call is one DescribeSourceServers
MAX_PAGES = 20  # of one filtered call: 200 ids fill at most a page or two
MAX_CHANGES = 500  # `changes` entries a result lists (the rest counted in `moreChanges`)
MAX_FAILURES = 100  # `failures` entries a result lists
MAX_CONCURRENCY = 8  # scopes read at once

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
    scope: Scope
    ids: list[str]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    changes: list[dict[str, Any]] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    describe_calls: int = 0

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


@dataclass(frozen=True)
class RefreshOutcome:
    """The result (see the module's operation) and the scopes whose refresh failed."""

    result: dict[str, Any]
    failed_scopes: frozenset[Scope]


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
    region not in DRS_REGIONS; RefreshFailedError when DRS could not be read.
    """
    check_params(OPERATION, params, PARAMS)
    refs = [
        ServerRef(params["accountId"], params["region"], server_id)
        for server_id in dict.fromkeys(params["sourceServerIDs"])
    ]
    outcome = _Refresh(factory, settings, clock).run(refs, strict=True)
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
    the caller could not parse) and never read. Never raises for an AWS failure: a scope
    that failed is in `failed_scopes` (its events are to be retried).
    """
    return _Refresh(factory, settings, clock).run(list(refs), unattributed=unattributed)


def _utc_now() -> datetime:
    return datetime.now(UTC)


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


class _Refresh:
    """One refresh. Not reused."""

    def __init__(
        self, factory: ClientFactory | None, settings: SyncSettings | None, clock: Clock | None
    ) -> None:
        self.settings = settings or SyncSettings.from_env()
        self.factory = factory or ClientFactory(
            config=make_config(max_pool_connections=MAX_CONCURRENCY + 4)
        )
        self.clock = clock or _utc_now
        self.refresh_id = uuid.uuid4().hex
        self.event_ids: dict[str, str] = {}  # source server ARN -> the event that asked
        self.factory.identify(
            f"drs-refresh-{deployment_name()}-{self.refresh_id}",
            hub_source_identity() if self.settings.set_source_identity else None,
        )
        self.store = SyncStore(
            self.factory.client("dynamodb", self.factory.home_region, validate=False),
            table_names(),
        )
        self.regions = frozenset(drs_regions())
        self.ec2_sources: dict[str, frozenset[str]] = {}

    def run(
        self, refs: list[ServerRef], *, strict: bool = False, unattributed: int = 0
    ) -> RefreshOutcome:
        started = time.monotonic()
        enabled = self._accounts() if refs else set()  # a batch of only unattributed: no reads
        by_scope: dict[Scope, list[str]] = {}
        # The event that asked for each server (the latest one, when a burst names it more
        # than once): the change feed names it (`eventId`); an operator's call has none.
        self.event_ids = {
            source_server_arn(ref.scope, ref.source_server_id): ref.event_id
            for ref in refs
            if ref.event_id
        }
        oldest_event: float | None = None
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
            ids = by_scope.setdefault(scope, [])
            if ref.source_server_id not in ids:
                ids.append(ref.source_server_id)
            when = _epoch(ref.event_time)
            if when is not None:
                oldest_event = when if oldest_event is None else min(oldest_event, when)
        scopes = sorted(by_scope)
        results: list[_ScopeResult] = []
        if scopes:
            workers = max(1, min(MAX_CONCURRENCY, len(scopes)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh") as pool:
                results = list(pool.map(lambda s: self._scope(s, by_scope[s]), scopes))
        result = self._summary(results, unattributed, started, oldest_event)
        failed = frozenset(r.scope for r in results if r.error_code is not None)
        return RefreshOutcome(result, failed)

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
    def _scope(self, scope: Scope, ids: list[str]) -> _ScopeResult:
        """Read and write one scope's requested servers. Never raises."""
        outcome = _ScopeResult(scope, ids)
        try:
            self._refresh_scope(scope, ids, outcome)
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
            # Every server of a failed scope is unaccounted for (some may have been written).
            done = sum(outcome.counts[k] for k in ("unchanged", "softDeleted", "staleSkipped"))
            done += outcome.counts["written"]
            outcome.counts["failed"] = max(0, len(ids) - done)
        return outcome

    def _refresh_scope(self, scope: Scope, ids: list[str], outcome: _ScopeResult) -> None:
        read_at = self.clock()
        read_time, read_epoch = iso(read_at), read_at.timestamp()
        servers = self._read(scope, ids, outcome)
        if servers is None:
            return  # DRS gave no complete answer: nothing is written, nothing soft-deleted
        outcome.counts["read"] = len(servers)
        arns = {source_server_arn(scope, sid): sid for sid in ids} | {a: "" for a in servers}
        stored = self.store.inventory_items(list(arns))
        enrichment = enrich(
            list(servers.values()),
            self.ec2_sources.get(scope.account_id, frozenset({scope.account_id})),
            lambda account, region: self.factory.client("ec2", region, account),
            self.settings.ec2_batch_size,
        )
        for arn, server in sorted(servers.items()):
            previous = stored.get(arn)
            origin = ec2_origin(server)
            ec2 = enrichment.instances.get(origin) if origin is not None else None
            if origin is not None and ec2 is None and origin in enrichment.unavailable:
                ec2 = (previous or {}).get("ec2")  # could not look: keep what we knew
            digest = content_digest(server, scope, ec2, read_epoch)
            if (
                previous is not None
                and "deletedAt" not in previous
                and previous.get(CONTENT_DIGEST) == digest
            ):
                outcome.counts["unchanged"] += 1
                continue
            try:
                item = inventory_item(server, scope, read_time, ec2, digest)
            except InventorySyncError as exc:  # one record DynamoDB cannot hold: that one only
                outcome.counts["failed"] += 1
                logger.warning(
                    "record rejected",
                    extra={"accountId": scope.account_id, "arn": arn, "reason": str(exc)},
                )
                continue
            if not self.store.put_inventory_item_unless_newer(item):
                outcome.counts["staleSkipped"] += 1
                continue
            outcome.counts["written"] += 1
            if previous is None:
                outcome.changes.append(_change("Added", item))
            elif "deletedAt" in previous:
                outcome.counts["revived"] += 1
                outcome.changes.append(_change("Revived", item))
            else:
                fields = changed_fields(previous, item, read_epoch)
                outcome.changes.append(_change("Changed", item, fields))
        expires_at = int(read_epoch) + self.settings.soft_delete_ttl_days * 86400
        listed_ids = {server["sourceServerID"] for server in servers.values()}
        for arn, server_id in arns.items():
            # Gone means: its id was asked for and DRS's complete answer did not list it.
            if not server_id or server_id in listed_ids:
                continue
            previous = stored.get(arn)
            if previous is None or "deletedAt" in previous:
                outcome.counts["unchanged"] += 1  # gone, and the inventory already says so
                continue
            if self.store.soft_delete(arn, scope, read_time, read_time, expires_at):
                outcome.counts["softDeleted"] += 1
                outcome.changes.append(_change("Removed", previous))
            else:
                outcome.counts["staleSkipped"] += 1

    def _read(
        self, scope: Scope, ids: list[str], outcome: _ScopeResult
    ) -> dict[str, dict[str, Any]] | None:
        """The requested servers DRS lists now, by ARN; None when the answer is not
        complete (an AWS failure, a malformed answer), after recording the failure."""
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
                    outcome.describe_calls += 1
                    response = client.describe_source_servers(**request)
                    items = response.get("items")
                    if not isinstance(items, list):
                        outcome.fail(MALFORMED_RESPONSE, reader_message(MALFORMED_RESPONSE))
                        return None
                    for record in items:
                        self._keep(record, scope, wanted, servers)
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
        record: Any, scope: Scope, wanted: set[str], servers: dict[str, dict[str, Any]]
    ) -> None:
        try:
            arn = record_identity(record, scope)
        except InventorySyncError as exc:
            logger.warning(
                "record rejected",
                extra={"accountId": scope.account_id, "region": scope.region, "reason": str(exc)},
            )
            return
        if record["sourceServerID"] in wanted:
            servers[arn] = record

    # --- the result --------------------------------------------------------------------------
    def _summary(
        self,
        results: list[_ScopeResult],
        unattributed: int,
        started: float,
        oldest_event: float | None,
    ) -> dict[str, Any]:
        counts = dict.fromkeys(COUNTS, 0)
        for outcome in results:
            for name, value in outcome.counts.items():
                counts[name] += value
        counts["unattributed"] = unattributed
        failures = [
            {
                "accountId": r.scope.account_id,
                "region": r.scope.region,
                "errorCode": r.error_code,
                "message": r.error_message,
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
            "failures": failures[:MAX_FAILURES],
            "changes": changes[:MAX_CHANGES],
            "moreChanges": max(0, len(changes) - MAX_CHANGES),
        }
        duration_ms = (time.monotonic() - started) * 1000
        event_age_ms = (
            max(0.0, (time.time() - oldest_event) * 1000) if oldest_event is not None else None
        )
        published = self._feed(changes)
        counts["changesPublished"] = published.published
        counts["changesFailed"] = published.failed
        self._publish(result, duration_ms, event_age_ms)
        return result

    def _feed(self, changes: list[dict[str, Any]]) -> PublishResult:
        """Publish every change (not only those the result lists) to the change feed: named
        by the DRS event that asked for the server (`eventId`), or by this refresh's id
        (`runId`) for an operator's call. Never raises; off without INVENTORY_EVENT_BUS."""
        bus = inventory_event_bus()
        if bus is None or not changes:
            return PublishResult()
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
                )
            )
        events = self.factory.client("events", self.factory.home_region)
        return publish_changes(feed, events_client=events, bus_name=bus)

    @staticmethod
    def _publish(result: dict[str, Any], duration_ms: float, event_age_ms: float | None) -> None:
        counts = result["counts"]
        logger.info(
            "refresh finished",
            extra={"status": result["status"], "counts": counts, "durationMs": int(duration_ms)},
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


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


__all__ = [
    "OPERATION",
    "RefreshFailedError",
    "RefreshOutcome",
    "ServerRef",
    "refresh_batch",
    "refresh_source_servers",
]
