"""No ghosts: after a full run, find what no scope of the run accounts for, from the inventory.

- Items of accounts no longer registered are soft-deleted (found by scanning the inventory
  itself, so items whose region-status rows never existed are found too), and those
  accounts' region-status rows are removed.
- Items without accountId/region (written by something other than this sync) are judged by
  the scope their ARN names: soft-deleted when that scope's listing completed in this run
  and did not list them, otherwise reported (never left silently live).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inventory_sync.changes import ENTRY_PROJECTION, server_entry
from inventory_sync.deadline import Deadline
from inventory_sync.models import Scope
from inventory_sync.records import scope_of_arn
from inventory_sync.store import SyncStore
from shared.observability import get_logger

logger = get_logger("data-management-handler")


@dataclass
class SweepResult:
    unregistered: dict[Scope, int] = field(default_factory=dict)  # scope -> soft-deleted
    orphans_deleted: int = 0
    orphans_reported: int = 0
    status_rows_removed: int = 0
    # Dry runs: per scope, what the sweep would soft-delete there (unregistered accounts'
    # items, orphans by the scope their ARN names): the count and its first entries.
    planned: dict[Scope, tuple[int, list[dict[str, Any]]]] = field(default_factory=dict)
    # Real runs: each server the sweep soft-deleted, (the scope it was in, its ARN), for the
    # change feed's Removed events.
    removed: list[tuple[Scope, str]] = field(default_factory=list)

    @property
    def soft_deleted(self) -> int:
        return sum(self.unregistered.values()) + self.orphans_deleted

    @property
    def accounts(self) -> list[str]:
        return sorted({scope.account_id for scope in self.unregistered})


def sweep(
    store: SyncStore,
    *,
    registered: frozenset[str],
    confirmed: frozenset[Scope],
    listed_unwritten: set[str],
    previous_status: dict[Scope, dict[str, Any]],
    deadline: Deadline,
    dry_run: bool,
    run_time: str,
    expires_at: int,
    snapshot: list[dict[str, Any]] | None = None,
    plan_limit: int = 0,
    result: SweepResult | None = None,
) -> SweepResult:
    """Soft-delete (or, in a dry run, count) what no registered scope accounts for.

    `confirmed` are the scopes whose listing completed in this run; `listed_unwritten` the
    ARNs DRS listed that were not written (rejected records), never swept. `snapshot` is
    the inventory as the run's start-of-run scan read it (None: scan now). A dry run also
    names the first `plan_limit` servers per scope it would soft-delete (`planned`). Stops
    at the deadline (DeadlineReachedError) with what it did so far kept (in `result`, when
    the caller gives one).
    """
    result = result if result is not None else SweepResult()
    unregistered: dict[Scope, list[str]] = {}
    would_delete: dict[Scope, list[str]] = {}  # dry runs: what a real sweep would soft-delete
    orphans: list[tuple[str, Scope | None]] = []
    # The run's start-of-run scan when it has one: what this run wrote since is never an
    # unregistered account's or an orphan's, and every soft-delete below is conditional.
    items = (
        snapshot
        if snapshot is not None
        else store.inventory_keys(check=lambda: deadline.check("sweep"))
    )
    for item in items:
        if "deletedAt" in item:
            continue
        arn = str(item.get("sourceServerArn"))
        account, region = item.get("accountId"), item.get("region")
        if isinstance(account, str) and isinstance(region, str):
            if account not in registered:
                unregistered.setdefault(Scope(account, region), []).append(arn)
        else:
            orphans.append((arn, scope_of_arn(arn)))

    for gone in sorted(set(unregistered) | _unregistered_rows(previous_status, registered)):
        arns = unregistered.get(gone, [])
        deleted = len(arns)
        if not dry_run:
            deleted = 0
            for arn in arns:
                if store.soft_delete(arn, gone, run_time, run_time, expires_at):
                    deleted += 1
                    result.removed.append((gone, arn))
            if gone in previous_status:
                store.delete_region_status(gone)
                result.status_rows_removed += 1
        result.unregistered[gone] = deleted
        if dry_run and arns:
            would_delete.setdefault(gone, []).extend(arns)
        logger.info(
            "unregistered account swept",
            extra={"accountId": gone.account_id, "region": gone.region, "softDeleted": deleted},
        )

    for arn, scope in orphans:
        if scope is None or scope not in confirmed or arn in listed_unwritten:
            result.orphans_reported += 1
            logger.warning(
                "inventory item without accountId/region kept",
                extra={
                    "arn": arn[:300],
                    "reason": "its scope was not completely listed in this run"
                    if scope
                    else "not a source-server ARN",
                },
            )
            continue
        if dry_run or store.soft_delete(arn, None, run_time, run_time, expires_at):
            result.orphans_deleted += 1
            if dry_run:
                would_delete.setdefault(scope, []).append(arn)
            else:
                result.removed.append((scope, arn))
    if dry_run:
        deadline.check("sweep plan")
        result.planned = _planned(store, would_delete, plan_limit)
    return result


def _planned(
    store: SyncStore, would_delete: dict[Scope, list[str]], limit: int
) -> dict[Scope, tuple[int, list[dict[str, Any]]]]:
    """Each scope's soft-delete count and its first `limit` servers by ARN, named from their
    stored items (read with BatchGetItem: the run's scan holds no hostnames)."""
    shown = {scope: sorted(arns)[:limit] for scope, arns in would_delete.items()}
    try:
        stored = store.inventory_items(
            [arn for arns in shown.values() for arn in arns], ENTRY_PROJECTION
        )
    except (ClientError, BotoCoreError) as exc:
        # The counts stand; the entries are named by their ARNs alone.
        logger.warning("sweep plan: stored items unreadable", extra={"error": str(exc)})
        stored = {}
    return {
        scope: (
            len(would_delete[scope]),
            [server_entry(stored.get(arn, {"sourceServerArn": arn})) for arn in arns],
        )
        for scope, arns in sorted(shown.items())
    }


def _unregistered_rows(
    previous_status: dict[Scope, dict[str, Any]], registered: frozenset[str]
) -> set[Scope]:
    return {scope for scope in previous_status if scope.account_id not in registered}
