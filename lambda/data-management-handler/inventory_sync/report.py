"""The run report: the summary a caller gets back, the closing log line and the metrics.

The run's status is earned: SUCCEEDED only when every scope is healthy and every write
(items, status, sweep) landed; FAILED when no scope has a true answer; PARTIAL otherwise
(a status that could not be written makes a run PARTIAL, never FAILED).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from inventory_sync.changes import KINDS, bounded, empty_kinds
from inventory_sync.models import Plan, Scope, ScopeOutcome
from inventory_sync.sweep import SweepResult
from shared.messages import STATUS_WRITE_FAILED, reader_message
from shared.observability import emit_metrics, get_logger

OPERATION = "sync_source_server_inventory"
MAX_PLAN_SCOPES = 200  # a dry run's plan lists at most this many scopes with changes
# ... and at most this many servers, and this many bytes of them as JSON, over all of them
# (the rest as each kind's `more`), so its size has a bound whatever the settings or the
# records say. One entry (changes.py) is at most ~90 B of keys and punctuation + an ARN of
# <= 100 B + an ID of 19 B + a hostname of <= 255 characters + 24 field names of <= 48
# characters: ~1.7 KB in ASCII, ~9 KB if every character were escaped (\uXXXX); hence the
# byte budget, which stops listing at 2 MB whatever the characters. With 200 scope headers
# (~0.5 KB each: 0.1 MB) the plan stays under 2.2 MB of Lambda's 6 MB response, leaving
# room for the counts and one failure per scope. A real entry is ~250 B: 1,000 of them
# (0.25 MB) reach the count bound long before the byte bound.
MAX_PLAN_SERVERS = 1_000
MAX_PLAN_SERVER_BYTES = 2_000_000

logger = get_logger("data-management-handler")


def iso(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC with milliseconds, so strings compare in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class RunFacts:
    """Everything the report is made of."""

    run_id: str
    started: datetime
    finished: datetime
    dry_run: bool
    plan: Plan | None
    plan_limit: int = 50  # a dry run's servers per kind and scope (SyncSettings.plan_limit)
    outcomes: list[ScopeOutcome] = field(default_factory=list)
    sweep: SweepResult | None = None
    status_unwritten: set[Scope] = field(default_factory=set)
    api_calls: dict[str, int] = field(default_factory=dict)
    skipped_by: str | None = None
    sweep_error: str | None = None  # the error code that stopped the sweep, if any
    # The change feed: events EventBridge accepted, and changes it did not (refused past the
    # retries, or not sent by the deadline).
    changes_published: int = 0
    changes_failed: int = 0


def _failure(outcome: ScopeOutcome, status_unwritten: set[Scope]) -> dict[str, Any] | None:
    """A failed scope as the result lists it. The message is the sync's own (counts, pages,
    the reason for a contradiction) or the generic one of its code, never AWS text: the
    result is logged and may be stored by whoever invoked the run."""
    unwritten = outcome.scope in status_unwritten
    if outcome.healthy and not unwritten:
        return None
    entry: dict[str, Any] = {
        "accountId": outcome.scope.account_id,
        "region": outcome.scope.region,
        "status": str(outcome.status),
        "errorCode": outcome.error_code,
        "message": outcome.error_message,
    }
    if unwritten:
        entry["statusRecorded"] = False
        if outcome.healthy:
            entry["errorCode"] = STATUS_WRITE_FAILED
            entry["message"] = reader_message(STATUS_WRITE_FAILED)
    return entry


def run_status(facts: RunFacts, failures: list[dict[str, Any]]) -> str:
    if facts.skipped_by is not None:
        return "SKIPPED"
    if facts.outcomes and not any(outcome.healthy for outcome in facts.outcomes):
        return "FAILED"  # not one scope has a true answer
    return "PARTIAL" if failures or facts.sweep_error is not None else "SUCCEEDED"


def summary(facts: RunFacts) -> dict[str, Any]:
    """The run's result (see README, "The sync's result")."""
    outcomes = facts.outcomes
    failures = [f for o in outcomes if (f := _failure(o, facts.status_unwritten)) is not None]
    status = run_status(facts, failures)
    sweep = facts.sweep
    by_status = Counter(str(o.status) for o in outcomes)
    plan = facts.plan

    def total(name: str) -> int:
        return sum(int(getattr(o, name)) for o in outcomes)

    counts: dict[str, Any] = {
        "accounts": len(plan.accounts) if plan else 0,
        "regions": len(plan.regions) if plan else 0,
        "scopes": len(outcomes),
        "scopesByStatus": dict(sorted(by_status.items())),
        "scopesFailed": len(failures),
        "serversSeen": total("servers_seen"),
        "serversWritten": total("servers_written"),
        "serversUnchanged": total("servers_unchanged"),
        "serversKeptNewer": total("servers_kept_newer"),
        "serversNew": total("servers_new"),
        "serversRevived": total("servers_revived"),
        "serversSoftDeleted": total("servers_soft_deleted") + (sweep.soft_deleted if sweep else 0),
        "serversHeld": total("servers_held"),
        "serversWriteFailed": total("write_failures"),
        "recordsRejected": total("records_rejected"),
        "recordsDuplicate": total("records_duplicate"),
        "statusWriteFailed": len(facts.status_unwritten),
        "unregisteredAccountsSwept": sweep.accounts if sweep else [],
        "orphanItemsReported": sweep.orphans_reported if sweep else 0,
        "ec2Enriched": total("ec2_enriched"),
        "ec2NotFound": total("ec2_not_found"),
        "ec2Unavailable": total("ec2_unavailable"),
        "ec2OriginRefused": total("ec2_origin_refused"),
        "changesPublished": facts.changes_published,
        "changesFailed": facts.changes_failed,
        # Calls this code made (botocore's retries inside a call not counted).
        "apiCalls": {
            **facts.api_calls,
            "describeSourceServers": total("describe_calls"),
            "describeInstances": total("describe_instances_calls"),
        },
    }
    result: dict[str, Any] = {
        "operation": OPERATION,
        "status": status,
        "runId": facts.run_id,
        "startedAt": iso(facts.started),
        "finishedAt": iso(facts.finished),
        "durationMs": int((facts.finished - facts.started).total_seconds() * 1000),
        "dryRun": facts.dry_run,
        "narrowed": bool(plan and plan.narrowed),
        "counts": counts,
        "failures": failures,
    }
    if facts.sweep_error is not None:
        result["sweepError"] = facts.sweep_error
    if facts.skipped_by is not None:
        result["skippedBecause"] = f"sync run {facts.skipped_by} holds the lease"
    if facts.dry_run:
        result["plan"] = _dry_run_plan(outcomes, sweep, facts.plan_limit)
    return result


def _dry_run_plan(
    outcomes: list[ScopeOutcome], sweep: SweepResult | None, limit: int
) -> dict[str, Any]:
    """The plan of a dry run (README, "The dry run's plan"): per scope with a change, each
    kind's count, first servers and `more`; `totals` per kind over every scope, listed or
    not; `moreScopes` the scopes with changes beyond MAX_PLAN_SCOPES."""
    by_scope: dict[Scope, dict[str, Any]] = {}
    for outcome in outcomes:
        if outcome.plan:
            by_scope[outcome.scope] = {kind: dict(v) for kind, v in outcome.plan.items()}
    unregistered = set(sweep.unregistered) if sweep else set()
    for scope, (count, entries) in (sweep.planned if sweep else {}).items():
        # What the sweep would soft-delete: an unregistered account's items, or orphans
        # (items without accountId/region) of a scope whose listing completed.
        kinds = by_scope.setdefault(scope, empty_kinds())
        deleted = kinds["softDeleted"]
        servers = sorted(deleted["servers"] + entries, key=lambda e: e["sourceServerArn"])
        kinds["softDeleted"] = bounded(servers[:limit], deleted["count"] + count)
    totals = dict.fromkeys(KINDS, 0)
    for kinds in by_scope.values():
        for kind in KINDS:
            totals[kind] += kinds[kind]["count"]
    changing = sorted(s for s, kinds in by_scope.items() if any(v["count"] for v in kinds.values()))
    budget = _Budget()
    scopes = []
    for scope in changing[:MAX_PLAN_SCOPES]:
        entry: dict[str, Any] = {"accountId": scope.account_id, "region": scope.region}
        if scope in unregistered:
            entry["unregistered"] = True  # its account left the registry: every item goes
        for kind in KINDS:
            listed = by_scope[scope][kind]
            servers = [server for server in listed["servers"] if budget.admits(server)]
            entry[kind] = bounded(servers, listed["count"])
        scopes.append(entry)
    return {
        "totals": totals,
        "scopes": scopes,
        "moreScopes": max(0, len(changing) - MAX_PLAN_SCOPES),
    }


@dataclass
class _Budget:
    """What is left of the plan's bounds (MAX_PLAN_SERVERS, MAX_PLAN_SERVER_BYTES)."""

    servers: int = MAX_PLAN_SERVERS
    size: int = MAX_PLAN_SERVER_BYTES

    def admits(self, server: dict[str, Any]) -> bool:
        """Whether `server` still fits (then it is counted), as the response serialises it."""
        size = len(json.dumps(server))
        if self.servers < 1 or size > self.size:
            self.servers = 0  # full: keep the listing a prefix, never skip to smaller ones
            return False
        self.servers -= 1
        self.size -= size
        return True


def publish(result: dict[str, Any], *, dry_run: bool) -> None:
    """The closing log line and, for real runs, the run's metrics (EMF).

    One metric per run status, 1 for the run's own: `SyncSucceeded` (SUCCEEDED only),
    `SyncPartial`, `SyncFailed`, `SyncSkipped`; and `SyncSucceededOrPartial`, 1 for a run
    with at least one true answer (SUCCEEDED or PARTIAL), which the staleness alarm watches.
    Its name says PARTIAL, so no dashboard can read a partial run as a success.
    """
    counts = result["counts"]
    status = result["status"]
    logger.info(
        "sync finished",
        extra={"status": status, "durationMs": result["durationMs"], "counts": counts},
    )
    if dry_run:
        return
    held = sum(1 for f in result["failures"] if f.get("errorCode") == "MassDeletionHeld")
    emit_metrics(
        "data-management-handler",
        counts={
            "ServersSeen": counts.get("serversSeen", 0),
            "ServersWritten": counts.get("serversWritten", 0),
            "ServersSoftDeleted": counts.get("serversSoftDeleted", 0),
            "ScopesFailed": counts.get("scopesFailed", 0),
            "RecordsRejected": counts.get("recordsRejected", 0),
            "StatusWriteFailures": counts.get("statusWriteFailed", 0),
            "ChangeFeedFailures": counts.get("changesFailed", 0),
            "MassDeletionHeld": held,
            "SyncSucceeded": int(status == "SUCCEEDED"),
            "SyncSucceededOrPartial": int(status in ("SUCCEEDED", "PARTIAL")),
            "SyncPartial": int(status == "PARTIAL"),
            "SyncFailed": int(status == "FAILED"),
            "SyncSkipped": int(status == "SKIPPED"),
        },
        durations_ms={"SyncDurationMs": result["durationMs"]},
    )
