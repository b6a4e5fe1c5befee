"""The run: plan the scopes, hold the lease, sync scopes concurrently, sweep, report.

A scope is one (account, region). Each scope is listed, enriched, written and swept on its
own worker, so one scope's failure never stops another and memory holds only the scopes
in flight. Soft-deletion happens only inside a scope whose listing completed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from inventory_sync.enrichment import enrich
from inventory_sync.exceptions import SyncFailedError
from inventory_sync.listing import list_scope, use_fast_page_parsing
from inventory_sync.models import (
    HEALTHY_STATUSES,
    Plan,
    Scope,
    ScopeListing,
    ScopeOutcome,
    ScopeStatus,
    SyncSettings,
)
from inventory_sync.records import ec2_origin, inventory_item
from inventory_sync.store import SyncStore, use_wire_form_batch_writes
from shared.aws import AccountAccess, ClientFactory, make_config
from shared.config import drs_regions, table_names
from shared.exceptions import InvalidParameterError
from shared.observability import emit_metrics, get_logger
from shared.operations import Field, check_params

OPERATION = "sync_source_server_inventory"
PARAMS = {
    "accountIds": Field((list,), items=str),
    "regions": Field((list,), items=str),
    "dryRun": Field((bool,)),
}
DEADLINE_SKIP_CODE = "DeadlineReached"

logger = get_logger("data-management-handler")
Clock = Callable[[], datetime]


def iso(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC with milliseconds, so strings compare in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sync_source_server_inventory(
    params: dict[str, Any],
    context: Any = None,
    *,
    factory: ClientFactory | None = None,
    settings: SyncSettings | None = None,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """Sync every DRS source server of the hub and the enabled target accounts.

    Params (all optional): accountIds (list), regions (list), dryRun (bool).
    Returns the run summary (see README, "The sync's result"). Raises InvalidParameterError
    for bad parameters (nothing written) and SyncFailedError when no scope could be listed
    (after region status is recorded).
    """
    check_params(OPERATION, params, PARAMS)
    settings = settings or SyncSettings.from_env()
    factory = factory or ClientFactory(
        config=make_config(max_pool_connections=settings.max_concurrency + 4)
    )
    return SyncRun(
        params, context, factory, settings, clock or (lambda: datetime.now(UTC))
    ).execute()


class SyncRun:
    """One execution of the sync. Not reused."""

    def __init__(
        self,
        params: dict[str, Any],
        context: Any,
        factory: ClientFactory,
        settings: SyncSettings,
        clock: Clock,
    ) -> None:
        self.params = params
        self.factory = factory
        self.settings = settings
        self.dry_run = bool(params.get("dryRun", False))
        self.run_id = uuid.uuid4().hex
        self.started = clock()
        self.clock = clock
        self.run_time = iso(self.started)
        self.tables = table_names()
        self.home_region = factory.home_region
        # Writes are built here from typed records: botocore's validation of them is pure cost.
        dynamodb = factory.client("dynamodb", self.home_region, validate=False)
        use_wire_form_batch_writes(dynamodb)
        self.store = SyncStore(dynamodb, self.tables)
        self._describe_calls = 0
        self._lock = threading.Lock()
        self._done = 0
        self._mono_start = time.monotonic()
        remaining = _remaining_seconds(context)
        if remaining is None:
            self.stop_starting_at = float("inf")
            self.lease_seconds = settings.default_lease_seconds
        else:
            reserve = min(settings.deadline_reserve_seconds, remaining / 4)
            self.stop_starting_at = self._mono_start + remaining - reserve
            # Held at least as long as the function can run, so no second run overlaps.
            self.lease_seconds = int(remaining) + 60

    # --- the run -----------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        logger.append_keys(runId=self.run_id)
        try:
            plan = self._plan()
            if not self.dry_run and not self.store.acquire_lease(
                self.run_id, int(self.started.timestamp()), self.lease_seconds, self.run_time
            ):
                holder = self.store.lease_holder()
                logger.warning("another sync holds the lease; skipping", extra={"holder": holder})
                return self._summary(plan, [], [], status="SKIPPED", skipped_by=holder)
            try:
                outcomes, unregistered = self._sync(plan)
            finally:
                if not self.dry_run:
                    self.store.release_lease(self.run_id)
            summary = self._summary(plan, outcomes, unregistered)
            self._report(summary)
            if summary["status"] == "FAILED":
                raise SyncFailedError(summary)
            return summary
        finally:
            logger.remove_keys(["runId"])

    def _plan(self) -> Plan:
        hub = self.factory.hub_account_id()
        self.factory.register(AccountAccess(hub))
        registry = self.store.registered_accounts()
        self.registered = {hub} | {str(a["accountId"]) for a in registry}
        enabled = {hub}
        for account in registry:
            if account.get("enabled", True) and account["accountId"] != hub:
                enabled.add(account["accountId"])
                self.factory.register(
                    AccountAccess(
                        account["accountId"], account.get("roleArn"), account.get("externalId")
                    )
                )
        configured_regions = drs_regions()
        accounts = sorted(enabled)
        regions = configured_regions
        wanted_accounts = self.params.get("accountIds")
        if wanted_accounts:
            unknown = sorted(set(wanted_accounts) - enabled)
            if unknown:
                raise InvalidParameterError(
                    f"{OPERATION}: accountIds {', '.join(unknown)} are not the hub or an enabled "
                    f"target account; valid accountIds: {', '.join(accounts)}"
                )
            accounts = sorted(set(wanted_accounts))
        wanted_regions = self.params.get("regions")
        if wanted_regions:
            unknown = sorted(set(wanted_regions) - set(configured_regions))
            if unknown:
                raise InvalidParameterError(
                    f"{OPERATION}: regions {', '.join(unknown)} are not DRS regions this "
                    f"function syncs; valid regions: {', '.join(configured_regions)}"
                )
            regions = sorted(set(wanted_regions))
        plan = Plan(
            accounts,
            regions,
            narrowed=bool(wanted_accounts or wanted_regions),
            dry_run=self.dry_run,
        )
        # Region-major order: the first workers start on different accounts, so their single
        # AssumeRoles run in parallel instead of every worker queueing behind one account's.
        plan.scopes = [Scope(a, r) for r in regions for a in accounts]
        logger.info(
            "sync planned",
            extra={
                "accounts": len(accounts),
                "regions": len(regions),
                "scopes": len(plan.scopes),
                "dryRun": self.dry_run,
            },
        )
        return plan

    def _sync(self, plan: Plan) -> tuple[list[ScopeOutcome], list[dict[str, Any]]]:
        before = self.store.region_statuses()
        self._total = len(plan.scopes)
        workers = max(1, min(self.settings.max_concurrency, len(plan.scopes)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scope") as pool:
            outcomes = list(pool.map(self._sync_scope, plan.scopes))
        unregistered = [] if plan.narrowed else self._sweep_unregistered(before)
        if not self.dry_run:
            statuses = [self._region_status(o, before.get(o.scope, {})) for o in outcomes]
            failed = self.store.put_region_statuses(statuses)
            if failed:
                logger.error("region status items not written", extra={"unwritten": failed})
        return outcomes, unregistered

    # --- one scope ---------------------------------------------------------------------------
    def _sync_scope(self, scope: Scope) -> ScopeOutcome:
        if time.monotonic() >= self.stop_starting_at:
            listing = ScopeListing(
                scope,
                ScopeStatus.SKIPPED,
                error_code=DEADLINE_SKIP_CODE,
                error_message="not started: the run's deadline was reached",
            )
            return self._finish(
                ScopeOutcome(listing, listing.status, listing.error_code, listing.error_message)
            )
        try:
            return self._finish(self._sync_listed_scope(scope))
        except Exception as exc:  # one scope's surprise must not stop the others
            logger.exception(
                "scope failed unexpectedly",
                extra={"accountId": scope.account_id, "region": scope.region},
            )
            listing = ScopeListing(
                scope, ScopeStatus.ERROR, error_code=type(exc).__name__, error_message=str(exc)
            )
            return self._finish(
                ScopeOutcome(listing, ScopeStatus.ERROR, listing.error_code, listing.error_message)
            )

    def _sync_listed_scope(self, scope: Scope) -> ScopeOutcome:
        listing, calls = list_scope(scope, self._drs_client, self.settings.page_size)
        # This scope is the DRS client's only user: free its connection now, not at run end.
        self.factory.release("drs", scope.region, scope.account_id)
        with self._lock:
            self._describe_calls += calls
        outcome = ScopeOutcome(
            replace(listing, servers=()),  # the outcome outlives the scope: keep no records
            listing.status,
            listing.error_code,
            listing.error_message,
            servers_seen=len(listing.servers),
        )
        if not listing.complete:
            return outcome

        existing = self.store.scope_items(scope)
        enrichment = enrich(listing.servers, self._ec2_client, self.settings.ec2_batch_size)
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

        items = []
        for server in listing.servers:
            previous = existing.get(server["arn"])
            if previous is None:
                outcome.servers_new += 1
            elif "deletedAt" in previous:
                outcome.servers_revived += 1
            ec2 = None
            origin = ec2_origin(server)
            if origin is not None:
                ec2 = enrichment.instances.get(origin)
                if ec2 is not None:
                    outcome.ec2_enriched += 1
                elif origin in enrichment.unavailable:
                    # Could not look: keep what we knew rather than erase it.
                    ec2 = (previous or {}).get("ec2")
                    outcome.ec2_unavailable += 1
                else:
                    outcome.ec2_not_found += 1
            items.append(inventory_item(server, scope, self.run_time, ec2))

        listed = {server["arn"] for server in listing.servers}
        vanished = [
            arn for arn, item in existing.items() if arn not in listed and "deletedAt" not in item
        ]
        if self.dry_run:
            outcome.servers_written = len(items)
            outcome.servers_soft_deleted = len(vanished)
            return outcome

        outcome.write_failures = self.store.put_inventory_items(items)
        outcome.servers_written = len(items) - outcome.write_failures
        if outcome.write_failures:
            outcome.status = ScopeStatus.ERROR
            outcome.error_code = "InventoryWriteFailed"
            outcome.error_message = (
                f"{outcome.write_failures} of {len(items)} items stayed unprocessed after retries"
            )
        outcome.servers_soft_deleted = self._soft_delete(scope, vanished)
        return outcome

    def _soft_delete(self, scope: Scope, arns: list[str]) -> int:
        deleted_at = self.run_time
        expires_at = int(self.started.timestamp()) + self.settings.soft_delete_ttl_days * 86400
        return sum(
            1
            for arn in arns
            if self.store.soft_delete(arn, scope, self.run_time, deleted_at, expires_at)
        )

    def _finish(self, outcome: ScopeOutcome) -> ScopeOutcome:
        with self._lock:
            self._done += 1
            done = self._done
        level = logger.info if outcome.status in HEALTHY_STATUSES else logger.warning
        level(
            "scope synced",
            extra={
                "accountId": outcome.scope.account_id,
                "region": outcome.scope.region,
                "status": str(outcome.status),
                "servers": outcome.servers_seen,
                "written": outcome.servers_written,
                "softDeleted": outcome.servers_soft_deleted,
                "errorCode": outcome.error_code,
                "progress": f"{done}/{self._total}",
            },
        )
        return outcome

    def _drs_client(self, scope: Scope) -> Any:
        client = self.factory.client("drs", scope.region, scope.account_id)
        use_fast_page_parsing(client)
        return client

    def _ec2_client(self, account_id: str, region: str) -> Any:
        return self.factory.client("ec2", region, account_id)

    # --- accounts no longer registered -------------------------------------------------------
    def _sweep_unregistered(self, before: dict[Scope, dict[str, Any]]) -> list[dict[str, Any]]:
        swept = []
        for scope in sorted(s for s in before if s.account_id not in self.registered):
            vanished = [
                arn
                for arn, item in self.store.scope_items(scope).items()
                if "deletedAt" not in item
            ]
            if self.dry_run:
                deleted = len(vanished)
            else:
                deleted = self._soft_delete(scope, vanished)
                self.store.delete_region_status(scope)
            swept.append(
                {"accountId": scope.account_id, "region": scope.region, "softDeleted": deleted}
            )
            logger.info(
                "unregistered account swept",
                extra={
                    "accountId": scope.account_id,
                    "region": scope.region,
                    "softDeleted": deleted,
                },
            )
        return swept

    # --- results -----------------------------------------------------------------------------
    def _region_status(self, outcome: ScopeOutcome, previous: dict[str, Any]) -> dict[str, Any]:
        healthy = outcome.status in HEALTHY_STATUSES
        if outcome.status is ScopeStatus.ACTIVE:
            count = outcome.servers_seen
        elif healthy:
            count = 0
        else:
            count = previous.get("serverCount", 0)  # not listed: the last known count stands
        return {
            "accountId": outcome.scope.account_id,
            "region": outcome.scope.region,
            "status": str(outcome.status),
            "serverCount": count,
            "lastSyncTime": self.run_time,
            "lastSuccessTime": self.run_time if healthy else previous.get("lastSuccessTime"),
            "errorCode": outcome.error_code,
            "errorMessage": outcome.error_message,
            "runId": self.run_id,
        }

    def _summary(
        self,
        plan: Plan,
        outcomes: list[ScopeOutcome],
        unregistered: list[dict[str, Any]],
        *,
        status: str | None = None,
        skipped_by: str | None = None,
    ) -> dict[str, Any]:
        finished = self.clock()
        failures = [
            {
                "accountId": o.scope.account_id,
                "region": o.scope.region,
                "status": str(o.status),
                "errorCode": o.error_code,
                "message": o.error_message,
            }
            for o in outcomes
            if o.status not in HEALTHY_STATUSES
        ]
        if status is None:
            if outcomes and len(failures) == len(outcomes):
                status = "FAILED"
            else:
                status = "PARTIAL" if failures else "SUCCEEDED"
        by_status = Counter(str(o.status) for o in outcomes)
        unregistered_deleted = sum(entry["softDeleted"] for entry in unregistered)
        counts = {
            "accounts": len(plan.accounts),
            "regions": len(plan.regions),
            "scopes": len(outcomes),
            "scopesByStatus": dict(sorted(by_status.items())),
            "scopesFailed": len(failures),
            "serversSeen": sum(o.servers_seen for o in outcomes),
            "serversWritten": sum(o.servers_written for o in outcomes),
            "serversNew": sum(o.servers_new for o in outcomes),
            "serversRevived": sum(o.servers_revived for o in outcomes),
            "serversSoftDeleted": sum(o.servers_soft_deleted for o in outcomes)
            + unregistered_deleted,
            "serversWriteFailed": sum(o.write_failures for o in outcomes),
            "unregisteredAccountsSwept": sorted({entry["accountId"] for entry in unregistered}),
            "ec2Enriched": sum(o.ec2_enriched for o in outcomes),
            "ec2NotFound": sum(o.ec2_not_found for o in outcomes),
            "ec2Unavailable": sum(o.ec2_unavailable for o in outcomes),
            # Calls this code made (botocore's retries inside a call not counted).
            "apiCalls": {
                "describeSourceServers": self._describe_calls,
                "describeInstances": sum(o.describe_instances_calls for o in outcomes),
                "assumeRole": self.factory.assume_role_calls,
                "dynamodbReads": self.store.reads,
                "dynamodbWrites": self.store.writes,
            },
        }
        summary: dict[str, Any] = {
            "operation": OPERATION,
            "status": status,
            "runId": self.run_id,
            "startedAt": self.run_time,
            "finishedAt": iso(finished),
            "durationMs": int((finished - self.started).total_seconds() * 1000),
            "dryRun": self.dry_run,
            "narrowed": plan.narrowed,
            "counts": counts,
            "failures": failures,
        }
        if skipped_by is not None:
            summary["skippedBecause"] = f"sync run {skipped_by} holds the lease"
        return summary

    def _report(self, summary: dict[str, Any]) -> None:
        counts = summary["counts"]
        logger.info(
            "sync finished",
            extra={
                "status": summary["status"],
                "durationMs": summary["durationMs"],
                "counts": counts,
            },
        )
        if self.dry_run:
            return
        emit_metrics(
            "data-management-handler",
            counts={
                "ServersSeen": counts["serversSeen"],
                "ServersWritten": counts["serversWritten"],
                "ServersSoftDeleted": counts["serversSoftDeleted"],
                "ScopesFailed": counts["scopesFailed"],
                "SyncSucceeded": 0 if summary["status"] == "FAILED" else 1,
            },
            durations_ms={"SyncDurationMs": summary["durationMs"]},
        )


def _remaining_seconds(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return float(remaining()) / 1000.0
