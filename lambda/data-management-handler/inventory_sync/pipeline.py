"""One scope's pipeline: list, judge the answer, check each record, enrich, write, soft-delete.

Everything a scope does happens here, on one worker thread, and ends in a ScopeOutcome that
is filled in as the work goes (so a scope that fails half-way still reports what it wrote).
The rules that keep the inventory true live here:
- a "no DRS here" answer that contradicts what the inventory holds is a failure;
- one bad record is rejected and counted, never its scope, and never written over another
  scope's item;
- absence means deletion only after a complete listing, and never for more than the
  mass-deletion guard allows without an operator's confirmation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from change_feed import Change, ChangeFeed, Kind
from inventory_sync.changes import bounded, changed_fields, empty_kinds, server_entry
from inventory_sync.deadline import DEADLINE_CODE, Deadline
from inventory_sync.enrichment import enrich
from inventory_sync.exceptions import DeadlineReachedError, UnstorableRecordError
from inventory_sync.listing import list_scope
from inventory_sync.models import (
    NO_DRS_STATUSES,
    Scope,
    ScopeListing,
    ScopeOutcome,
    ScopeStatus,
    SyncSettings,
)
from inventory_sync.records import (
    CONTENT_DIGEST,
    content_digest,
    ec2_origin,
    inventory_item,
    record_identity,
    refresh_due,
)
from inventory_sync.store import BatchResult, SyncStore
from shared.aws import error_code, error_message
from shared.messages import (
    INVENTORY_TABLE_FAILED,
    INVENTORY_WRITE_FAILED,
    MASS_DELETION_HELD,
    UNEXPECTED_ERROR,
    reader_message,
)
from shared.observability import get_logger

logger = get_logger("data-management-handler")


@dataclass
class RunContext:
    """What every scope of one run shares."""

    store: SyncStore
    settings: SyncSettings
    deadline: Deadline
    run_id: str
    run_time: str  # ISO-8601 start of the run: lastSyncTime of every item it writes
    started_epoch: int  # the same instant in epoch seconds (volatile bands, refresh slots)
    dry_run: bool
    previous_status: dict[Scope, dict[str, Any]]
    confirm_deletions: frozenset[Scope]
    ec2_sources: dict[str, frozenset[str]]  # listing account -> accounts its EC2 may be read in
    drs_client: Callable[[Scope], Any]
    release_drs_client: Callable[[Scope], None]
    ec2_client: Callable[[str, str], Any]
    # Live items per scope, counted from a full run's start-of-run scan (None: narrowed run,
    # each "no DRS here" scope counts its own with a COUNT query).
    live_counts: dict[Scope, int] | None = None
    # ARNs listed by DRS but not written (rejected records): never swept as vanished.
    listed_unwritten: set[str] = field(default_factory=set)
    # The change feed (real runs): each scope publishes what its landed writes changed.
    feed: ChangeFeed | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def sync_scope(scope: Scope, run: RunContext) -> ScopeOutcome:
    """Run `scope` through the pipeline. Never raises: every failure is the outcome's."""
    outcome = ScopeOutcome(scope, ScopeStatus.SKIPPED)
    if run.deadline.reached():
        outcome.fail(ScopeStatus.SKIPPED, DEADLINE_CODE, "not started: the run's deadline came")
        return outcome
    try:
        _run(scope, run, outcome)
    except DeadlineReachedError as exc:
        outcome.fail(ScopeStatus.SKIPPED, DEADLINE_CODE, f"not finished: {exc}")
    except (ClientError, BotoCoreError) as exc:
        # The listing and the enrichment keep their own AWS failures: what reaches here is
        # the inventory table's. Its AWS code and text go to the logs with the scope's line.
        aws_code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        aws_text = error_message(exc) if isinstance(exc, ClientError) else str(exc)
        outcome.fail(
            ScopeStatus.ERROR,
            INVENTORY_TABLE_FAILED,
            reader_message(INVENTORY_TABLE_FAILED),
            f"{aws_code}: {aws_text}",
        )
    except Exception as exc:  # one scope's surprise must not stop the others
        logger.exception(
            "scope failed unexpectedly",
            extra={"accountId": scope.account_id, "region": scope.region},
        )
        outcome.fail(
            ScopeStatus.ERROR,
            UNEXPECTED_ERROR,
            reader_message(UNEXPECTED_ERROR),
            f"{type(exc).__name__}: {exc}",
        )
    return outcome


def _run(scope: Scope, run: RunContext, outcome: ScopeOutcome) -> None:
    try:
        listing = list_scope(
            scope,
            run.drs_client,
            run.settings.page_size,
            max_pages=run.settings.max_pages,
            deadline=run.deadline,
            on_call=lambda: _counted(outcome),
        )
    finally:
        # This scope is the DRS client's only user: free its connection now, not at run end.
        run.release_drs_client(scope)
    outcome.status = listing.status
    outcome.error_code = listing.error_code
    outcome.error_message = listing.error_message
    outcome.error_detail = listing.error_detail
    outcome.pages = listing.pages
    if listing.status in NO_DRS_STATUSES:
        _judge_no_drs_answer(listing, run, outcome)
        return
    if not listing.complete:
        return
    _sync_listed(scope, listing, run, outcome)


def _counted(outcome: ScopeOutcome) -> None:
    outcome.describe_calls += 1


def _judge_no_drs_answer(listing: ScopeListing, run: RunContext, outcome: ScopeOutcome) -> None:
    """ "No DRS here" is the truth only for a scope that never held servers: after a page
    succeeded, or where the inventory holds live servers, or where the last run listed
    the scope, it contradicts what we know and is a failure (items untouched)."""
    scope = listing.scope
    code = listing.error_code or str(listing.status)
    previous = run.previous_status.get(scope, {})
    if listing.pages > 0:
        reason = f"after {listing.pages} page(s) of the same listing succeeded"
    elif previous.get("status") == ScopeStatus.ACTIVE.value:
        reason = "although the scope was ACTIVE on the last run"
    else:
        counts = run.live_counts
        live = counts.get(scope, 0) if counts is not None else run.store.live_item_count(scope)
        if live == 0:
            outcome.confirmed = True  # a true, complete answer: nothing is here
            return
        reason = f"although the inventory holds {live} live server(s) of this scope"
    outcome.fail(
        ScopeStatus.ERROR,
        code,
        f"DRS answered {code} {reason}; items kept as they were",
        listing.error_detail,
    )


@dataclass
class _Records:
    """A listing's records after checking them one by one."""

    servers: dict[str, dict[str, Any]] = field(default_factory=dict)  # by ARN, duplicates merged
    unwritten: set[str] = field(default_factory=set)  # listed ARNs that will not be written
    unidentified: int = 0  # records with no usable identity: they could be any server


def _check_records(listing: ScopeListing, outcome: ScopeOutcome) -> _Records:
    records = _Records()
    scope = listing.scope
    for index, server in enumerate(listing.servers):
        try:
            arn = record_identity(server, scope)
        except UnstorableRecordError as exc:
            outcome.records_rejected += 1
            if not isinstance(server, dict) or not isinstance(server.get("arn"), str):
                records.unidentified += 1
            logger.warning(
                "record rejected",
                extra={
                    "accountId": scope.account_id,
                    "region": scope.region,
                    "recordIndex": index,
                    "reason": str(exc),
                },
            )
            continue
        if arn in records.servers:
            outcome.records_duplicate += 1
        records.servers[arn] = server
    return records


def _sync_listed(
    scope: Scope, listing: ScopeListing, run: RunContext, outcome: ScopeOutcome
) -> None:
    records = _check_records(listing, outcome)
    outcome.servers_seen = len(records.servers)
    servers = list(records.servers.values())
    enrichment = enrich(
        servers,
        run.ec2_sources.get(scope.account_id, frozenset({scope.account_id})),
        run.ec2_client,
        run.settings.ec2_batch_size,
        check=lambda: run.deadline.check(f"EC2 enrichment of {scope.account_id}/{scope.region}"),
    )
    outcome.describe_instances_calls = enrichment.calls
    for account, region, code, message in enrichment.errors:
        logger.warning(
            "EC2 enrichment unavailable",
            extra={
                "accountId": scope.account_id,
                "region": scope.region,
                "originAccountId": account,
                "originRegion": region,
                "errorCode": code,
                "error": message,
            },
        )
    # Read after the enrichment, as close to the writes as can be: what a refresh wrote
    # since this run started is seen (and kept) here, not overwritten with this older read.
    existing = run.store.scope_items(scope)

    items: list[dict[str, Any]] = []
    added: list[str] = []
    revived: list[str] = []
    changed: list[str] = []  # stored, live, and its content digest differs
    for arn, server in records.servers.items():
        previous = existing.get(arn)
        if previous is not None and _written_since_run_started(previous, run):
            outcome.servers_kept_newer += 1  # a refresh read DRS after this run started
            continue
        ec2 = None
        origin = ec2_origin(server)
        if origin is not None:
            ec2 = enrichment.instances.get(origin)
            if ec2 is None and origin in enrichment.unavailable:
                ec2 = (previous or {}).get("ec2")  # could not look: keep what we knew
        try:
            digest = content_digest(server, scope, ec2, run.started_epoch)
            if previous is not None and _still_true(arn, previous, digest, run):
                outcome.servers_unchanged += 1
                _count_enrichment(outcome, origin, ec2, enrichment)
                continue
            item = inventory_item(server, scope, run.run_time, ec2, digest)
        except Exception as exc:  # odd shapes inside one record: that record only
            outcome.records_rejected += 1
            records.unwritten.add(arn)
            logger.warning(
                "record rejected",
                extra={
                    "accountId": scope.account_id,
                    "region": scope.region,
                    "arn": arn,
                    "reason": f"{type(exc).__name__}: {exc}",
                },
            )
            continue
        _count_enrichment(outcome, origin, item.get("ec2"), enrichment)
        if previous is None:
            added.append(arn)
        elif "deletedAt" in previous:
            revived.append(arn)
        elif previous.get(CONTENT_DIGEST) != digest:
            changed.append(arn)
        items.append(item)
    outcome.servers_new = len(added)
    outcome.servers_revived = len(revived)

    listed = set(records.servers)
    vanished = sorted(
        arn for arn, item in existing.items() if arn not in listed and "deletedAt" not in item
    )
    live_before = sum(1 for item in existing.values() if "deletedAt" not in item)
    held = _held_by_guard(scope, len(vanished), live_before, run)
    if records.unidentified and vanished and not held:
        # A record we cannot identify could be any of the vanished servers: keep them all.
        logger.warning(
            "soft-deletes deferred: records without identity in the listing",
            extra={
                "accountId": scope.account_id,
                "region": scope.region,
                "deferred": len(vanished),
                "unidentified": records.unidentified,
            },
        )
        vanished = []

    if run.dry_run:
        outcome.servers_written = len(items)
        _plan(
            outcome,
            run,
            {item["sourceServerArn"]: item for item in items},
            existing,
            _Changes(added, changed, revived, vanished, held),
        )
        if held:
            _hold(outcome, vanished, live_before)
        else:
            outcome.servers_soft_deleted = len(vanished)
            outcome.confirmed = True
        return

    feed = run.feed if run.feed is not None and run.feed.enabled else None
    # A Changed event names its fields: the stored items are read (whole) before they are
    # overwritten. Only servers whose content digest differs are read.
    before = _stored_before(scope, changed, run) if feed is not None else {}
    written = BatchResult()
    removed: list[str] = []
    try:
        _write_listed(
            scope,
            items,
            existing,
            records,
            vanished,
            held,
            live_before,
            run,
            outcome,
            written,
            removed,
        )
    finally:
        # Only for writes that landed: a failed or abandoned batch announces nothing for its
        # items. The scope's worker publishes them (sync.SyncRun._worker).
        if feed is not None:
            kinds = _Changes(added, changed, revived, removed, held)
            outcome.changes = _landed_changes(
                scope, written.written_items, kinds, before, run, feed
            )


def _write_listed(
    scope: Scope,
    items: list[dict[str, Any]],
    existing: Mapping[str, Any],
    records: _Records,
    vanished: list[str],
    held: bool,
    live_before: int,
    run: RunContext,
    outcome: ScopeOutcome,
    written: BatchResult,
    removed: list[str],
) -> None:
    """Write the listed items (what landed goes to `written`) and soft-delete the vanished
    ones (those that were go to `removed`). Items new to the inventory go in batches; those it
    holds, one conditional write each, so a refresh's newer write (after the scope index
    was read, which is eventually consistent) is never overwritten with this run's read."""
    try:
        run.store.put_inventory_items(
            [i for i in items if i["sourceServerArn"] not in existing], written
        )
        run.store.put_inventory_items_unless_newer(
            [i for i in items if i["sourceServerArn"] in existing], written
        )
    finally:
        outcome.servers_kept_newer += len(written.kept_newer)
        outcome.servers_written = written.written
        outcome.write_failures = len(written.unprocessed)
        outcome.records_rejected += len(written.rejected)
        for item, reason in written.rejected:
            records.unwritten.add(item["sourceServerArn"])
            logger.warning(
                "record rejected by DynamoDB",
                extra={
                    "accountId": scope.account_id,
                    "region": scope.region,
                    "arn": item["sourceServerArn"],
                    "reason": reason,
                },
            )
        if records.unwritten:
            with run.lock:
                run.listed_unwritten.update(records.unwritten)
    if held:
        _hold(outcome, vanished, live_before)
    else:
        expires_at = run.started_epoch + run.settings.soft_delete_ttl_days * 86400
        for arn in vanished:
            if run.store.soft_delete(arn, scope, run.run_time, run.run_time, expires_at):
                outcome.servers_soft_deleted += 1
                removed.append(arn)
    if outcome.write_failures:
        outcome.fail(
            ScopeStatus.ERROR,
            INVENTORY_WRITE_FAILED,
            f"{outcome.write_failures} of {len(items)} items stayed unprocessed after retries",
        )
    elif not held:
        outcome.confirmed = True


def _stored_before(scope: Scope, changed: list[str], run: RunContext) -> dict[str, Any]:
    """The stored items of `changed` (whole), to name a Changed event's fields. A failed read
    costs the names only: those events say `changedFields: []`."""
    if not changed:
        return {}
    run.deadline.check(f"change feed read of {scope.account_id}/{scope.region}")
    try:
        return run.store.inventory_items(changed)
    except (ClientError, BotoCoreError) as exc:
        logger.warning(
            "change feed: stored items unreadable; Changed events without field names",
            extra={"accountId": scope.account_id, "region": scope.region, "error": str(exc)},
        )
        return {}


def _landed_changes(
    scope: Scope,
    written: list[dict[str, Any]],
    kinds: _Changes,
    before: dict[str, dict[str, Any]],
    run: RunContext,
    feed: ChangeFeed,
) -> list[Change]:
    """The changes of a scope's landed writes: each written item that is added, revived or
    changed (its content digest differs; the fields named against `before`, the stored
    item), and each soft-deleted server (`kinds.vanished`) as Removed. A rewrite of the same
    content (the periodic refresh of volatile figures) is no change."""
    kind_of: dict[str, Kind] = {arn: "Added" for arn in kinds.added}
    kind_of.update((arn, "Revived") for arn in kinds.revived)
    kind_of.update((arn, "Changed") for arn in kinds.changed)
    changes: list[Change] = []
    for item in written:
        arn = item["sourceServerArn"]
        kind = kind_of.get(arn)
        if kind is None:
            continue
        stored = before.get(arn)
        fields = (
            changed_fields(stored, item, run.started_epoch)
            if kind == "Changed" and stored is not None
            else []
        )
        changes.append(feed.change(kind, item, fields))
    scope_keys = {"accountId": scope.account_id, "region": scope.region}
    changes.extend(
        feed.change("Removed", {"sourceServerArn": arn, **scope_keys}) for arn in kinds.vanished
    )
    return changes


def _written_since_run_started(stored: dict[str, Any], run: RunContext) -> bool:
    """Whether a write from a read later than this run's start (a refresh's) is stored."""
    stamped = stored.get("lastSyncTime")
    return isinstance(stamped, str) and stamped > run.run_time


def _still_true(arn: str, stored: dict[str, Any], digest: str, run: RunContext) -> bool:
    """Whether the stored item already says what a rewrite would (same stable content, not
    soft-deleted) and its volatile figures are not due for their periodic refresh."""
    if "deletedAt" in stored or stored.get(CONTENT_DIGEST) != digest:
        return False
    settings = run.settings
    return not refresh_due(
        arn,
        stored.get("lastSyncTime"),
        run.started_epoch,
        settings.schedule_interval_seconds,
        settings.volatile_refresh_seconds,
    )


def _count_enrichment(
    outcome: ScopeOutcome,
    origin: tuple[str, str, str] | None,
    ec2: dict[str, Any] | None,
    enrichment: Any,
) -> None:
    if origin is None:
        return
    if ec2 is not None and origin in enrichment.instances:
        outcome.ec2_enriched += 1
    elif origin in enrichment.refused:
        outcome.ec2_origin_refused += 1
    elif origin in enrichment.unavailable:
        outcome.ec2_unavailable += 1
    else:
        outcome.ec2_not_found += 1


def _held_by_guard(scope: Scope, vanishing: int, live: int, run: RunContext) -> bool:
    settings = run.settings
    too_many = vanishing > settings.delete_guard_min
    too_large_a_share = vanishing * 100 > settings.delete_guard_percent * live
    return too_many and too_large_a_share and scope not in run.confirm_deletions


def _hold(outcome: ScopeOutcome, vanished: list[str], live: int) -> None:
    outcome.servers_held = len(vanished)
    outcome.fail(
        ScopeStatus.ERROR,
        MASS_DELETION_HELD,
        f"{len(vanished)} of {live} live servers are no longer listed: soft-deletes held "
        "until a run with confirmDeletions for this scope",
    )


@dataclass
class _Changes:
    """The ARNs a scope's run would add, rewrite with new content, revive, or find gone."""

    added: list[str]
    changed: list[str]
    revived: list[str]
    vanished: list[str]
    held: bool  # the vanished stay live: the mass-deletion guard holds them


def _plan(
    outcome: ScopeOutcome,
    run: RunContext,
    new_items: dict[str, dict[str, Any]],
    existing: dict[str, dict[str, Any]],
    changes: _Changes,
) -> None:
    """What a dry run would change in this scope: each kind's count and its first
    `plan_limit` servers by ARN. Only the changed servers listed are read back whole
    (BatchGetItem, at most `plan_limit`), to name the attributes that would change; the
    vanished ones' names come from the scope's own query."""
    limit = run.settings.plan_limit

    def first(arns: list[str]) -> list[str]:
        return sorted(arns)[:limit]

    shown_changed = first(changes.changed)
    stored: dict[str, dict[str, Any]] = {}
    if shown_changed:
        run.deadline.check(f"plan of {outcome.scope.account_id}/{outcome.scope.region}")
        try:
            stored = run.store.inventory_items(shown_changed)
        except (ClientError, BotoCoreError) as exc:
            # The plan's counts stand; the changed servers are listed without their fields.
            logger.warning(
                "plan: stored items unreadable",
                extra={
                    "accountId": outcome.scope.account_id,
                    "region": outcome.scope.region,
                    "error": str(exc),
                },
            )

    def listed(arns: list[str]) -> dict[str, Any]:
        return bounded([server_entry(new_items[arn]) for arn in first(arns)], len(arns))

    changed_entries = [
        server_entry(
            new_items[arn],
            changed_fields(stored[arn], new_items[arn], run.started_epoch)
            if arn in stored
            else [],  # gone since the scope was read: nothing to compare with
        )
        for arn in shown_changed
    ]
    vanished = bounded(
        [server_entry(existing[arn]) for arn in first(changes.vanished)], len(changes.vanished)
    )
    outcome.plan = {
        **empty_kinds(),
        "added": listed(changes.added),
        "changed": bounded(changed_entries, len(changes.changed)),
        "revived": listed(changes.revived),
        ("held" if changes.held else "softDeleted"): vanished,
    }


def deadline_outcome(scope: Scope) -> ScopeOutcome:
    """The outcome of a scope the run gave up on at its deadline."""
    outcome = ScopeOutcome(scope, ScopeStatus.SKIPPED)
    outcome.fail(ScopeStatus.SKIPPED, DEADLINE_CODE, "not finished: the run's deadline was reached")
    return outcome
