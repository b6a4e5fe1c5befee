"""The run: plan the scopes, hold the lease, sync scopes concurrently, sweep, report.

The invocation's thread is a supervisor: the run's work happens on a background thread
(and its scope workers), and the supervisor waits for it only until the run's deadline.
Whatever still runs then (a hung DRS, EC2, STS or DynamoDB call) is abandoned: it can
write nothing more (every write passes the deadline's gate), its scopes are recorded as
SKIPPED with `DeadlineReached` and their items untouched, the lease is released, and the
invocation returns before Lambda's timeout.

Stages, each in its own module: params (what was asked), lease (one run at a time),
pipeline (one scope), status (region status as scopes finish), sweep (what no scope
accounts for), report (summary and metrics).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from change_feed import ChangeFeed
from inventory_sync.deadline import Deadline
from inventory_sync.exceptions import DeadlineReachedError, SyncFailedError
from inventory_sync.lease import DRY_RUN_LEASE, SYNC_LEASE, Lease
from inventory_sync.models import Plan, Scope, ScopeOutcome, ScopeStatus, SyncSettings
from inventory_sync.params import OPERATION, SyncRequest, parse_sync_params
from inventory_sync.pipeline import RunContext, deadline_outcome, sync_scope
from inventory_sync.report import RunFacts, iso, publish, summary
from inventory_sync.run_setup import Clock, RunSetup, name_sessions
from inventory_sync.sdk_fast_paths import JSON_LISTING, WIRE_BATCH_WRITES, FastPaths
from inventory_sync.status import StatusRecorder
from inventory_sync.store import SyncStore
from inventory_sync.sweep import SweepResult, sweep
from shared.aws import AccountAccess, ClientFactory, error_code
from shared.config import drs_regions, inventory_event_bus, sync_lease_table, table_names
from shared.exceptions import InvalidParameterError
from shared.observability import get_logger
from shared.validation import listed

logger = get_logger("data-management-handler")
# AssumeRole sessions: drs-inventory-<environment>-<run id>.
SESSION_PREFIX = "drs-inventory"
# What a run that finished early may spend of its own remaining time on its last writes.
FINAL_SPARE_SECONDS = 5.0


def sync_source_server_inventory(
    params: dict[str, Any],
    context: Any = None,
    *,
    factory: ClientFactory | None = None,
    settings: SyncSettings | None = None,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """Sync every DRS source server of the hub and the enabled target accounts.

    Params (all optional): accountIds (list), regions (list), dryRun (bool),
    confirmDeletions (list of {accountId, region}). Returns the run summary (see README,
    "The sync's result"). Raises InvalidParameterError for bad parameters (nothing written)
    and SyncFailedError when no scope has a true answer (after region status is recorded).
    """
    request = parse_sync_params(params)
    setup = RunSetup.for_invocation(
        context, session_prefix=SESSION_PREFIX, factory=factory, settings=settings, clock=clock
    )
    return SyncRun(
        request, setup.factory, setup.settings, setup.deadline, setup.clock, run_id=setup.run_id
    ).execute()


class SyncRun:
    """One execution of the sync. Not reused."""

    def __init__(
        self,
        request: SyncRequest,
        factory: ClientFactory,
        settings: SyncSettings,
        deadline: Deadline,
        clock: Clock,
        *,
        run_id: str | None = None,
    ) -> None:
        """`factory`, `settings`, `deadline` and `clock` as RunSetup makes them; `run_id` the
        setup's (its factory already names sessions after it), or None: a new one, and the
        factory's sessions named after it here."""
        self.request = request
        self.factory = factory
        self.settings = settings
        self.deadline = deadline
        self.clock = clock
        self.dry_run = request.dry_run
        self.run_id = run_id or name_sessions(factory, SESSION_PREFIX, settings)
        self.started = clock()
        self.run_time = iso(self.started)
        self.tables = table_names()
        self.lease_table = sync_lease_table()
        self.home_region = factory.home_region
        # Writes are built here from typed records: botocore's validation of them is pure cost.
        self.dynamodb = factory.client("dynamodb", self.home_region, validate=False)
        self.fast_paths = FastPaths.detect()
        # The wire-form serializer goes on a client of its own, used for BatchWriteItem only.
        batch_writer = factory.client(
            "dynamodb", self.home_region, validate=False, label=WIRE_BATCH_WRITES
        )
        self.sdk = self.fast_paths.describe(
            {
                JSON_LISTING: self.fast_paths.enabled,
                WIRE_BATCH_WRITES: self.fast_paths.use_wire_batch_writes(batch_writer),
            }
        )
        self.store = SyncStore(
            self.dynamodb, self.tables, gate=self._may_write, batch_client=batch_writer
        )
        lease_name = DRY_RUN_LEASE if self.dry_run else SYNC_LEASE
        if request.shard is not None:
            lease_name = f"{lease_name}#{request.shard}"  # shards of one fan-out run together
        self.lease = Lease(self.dynamodb, self.lease_table, lease_name, self.run_id)
        self.feed = None if self.dry_run else self._change_feed()
        # Filled in by the background work; read by the supervisor.
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self.plan: Plan | None = None
        self.previous: dict[Scope, dict[str, Any]] = {}
        self.lease_taken = False
        self.skipped_by: str | None = None
        self.outcomes: dict[Scope, ScopeOutcome] = {}
        self.recorder: StatusRecorder | None = None
        self.sweep_result: SweepResult | None = None
        self.context: RunContext | None = None
        self.sweep_error: str | None = None
        self.snapshot: list[dict[str, Any]] | None = None
        self.live_counts: dict[Scope, int] | None = None
        self._finished_scopes = 0
        self._closed = False  # set by the supervisor: abandoned workers report nothing more

    def _change_feed(self) -> ChangeFeed:
        """The run's change feed on INVENTORY_EVENT_BUS; off (and said once) when unset."""
        bus = inventory_event_bus()
        if bus is None:
            logger.info("change feed off: INVENTORY_EVENT_BUS is unset")
        return ChangeFeed(
            bus,
            lambda: self.factory.client("events", self.home_region),
            origin_key="runId",
            origin=self.run_id,
            deadline=self.deadline,
        )

    def _may_write(self) -> bool:
        return not self.dry_run and not self.deadline.reached()

    # --- the supervisor ----------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        logger.append_keys(runId=self.run_id)
        try:
            worker = threading.Thread(target=self._work, name="sync-run", daemon=True)
            worker.start()
            in_time = self._done.wait(timeout=max(0.0, self.deadline.left()))
            if not in_time:
                self.deadline.abandon()
                with self._lock:
                    self._closed = True
                logger.warning(
                    "deadline reached: unfinished work abandoned",
                    extra={"finishedScopes": len(self.outcomes)},
                )
            if in_time and self._error is not None and not self.lease_taken:
                raise self._error
            result = self._finish(in_time)
            if self._error is not None and not isinstance(self._error, DeadlineReachedError):
                raise self._error
            if result["status"] == "FAILED":
                raise SyncFailedError(result)
            return result
        finally:
            logger.remove_keys(["runId"])

    def _finish(self, in_time: bool) -> dict[str, Any]:
        """Record what did not finish, release the lease, report. Runs on the supervisor."""
        plan = self.plan
        final_store = None
        if self.lease_taken:
            final_store, release_deadline = self._final_store()
            if plan is not None and self.context is not None:
                for scope in plan.scopes:
                    if scope not in self.outcomes:
                        self.outcomes[scope] = deadline_outcome(scope)
            if not self.dry_run:
                self._record_remaining(final_store, in_time, release_deadline)
            if not release_deadline.reached():
                self.lease.release(final_store.client)
            else:
                logger.warning("lease left to expire on its own: no time left to release it")
        ordered = [self.outcomes[s] for s in (plan.scopes if plan else []) if s in self.outcomes]
        facts = RunFacts(
            run_id=self.run_id,
            started=self.started,
            finished=self.clock(),
            dry_run=self.dry_run,
            plan=plan,
            plan_limit=self.settings.plan_limit,
            outcomes=ordered,
            sweep=self.sweep_result,
            status_unwritten=self.recorder.unrecorded() if self.recorder else set(),
            api_calls={
                "assumeRole": self.factory.assume_role_calls,
                "dynamodbReads": self.store.reads + (final_store.reads if final_store else 0),
                "dynamodbWrites": self.store.writes
                + (final_store.writes if final_store else 0)
                + self.lease.requests,
            },
            skipped_by=self.skipped_by,
            sweep_error=self.sweep_error,
        )
        if self.feed is not None:
            facts.changes_published, facts.changes_failed = self.feed.counts()
        result = summary(facts)
        publish(result, dry_run=self.dry_run)
        return result

    def _final_store(self) -> tuple[SyncStore, Deadline]:
        """A store for the supervisor's last status writes, and the deadline of the lease's
        release after them: short timeouts, their own gates, so a hung DynamoDB can delay
        the return by seconds, never past Lambda's timeout. The status writes stop at 70% of
        the budget, so retries of a throttled status table never eat the release's turn."""
        # A run that finished early also spends up to FINAL_SPARE_SECONDS of its own time,
        # which ends `reserve` before Lambda's timeout: a slow status table then costs a few
        # seconds, not the scopes' status. One abandoned at its deadline has none left.
        # Worst case with the default 30 s reserve: the last call starts at 12 s (+ spare)
        # and takes two attempts of connect + read timeout (9 s): the invocation returns
        # within the reserve. The floor keeps a loaded local fake from failing a tiny
        # reserve's writes.
        reserve = self.deadline.reserve
        spare = min(max(0.0, self.deadline.left()), FINAL_SPARE_SECONDS)
        last_writes = Deadline(max(1.0, reserve * 0.4 + spare))
        config = Config(
            connect_timeout=max(0.5, min(2.0, reserve / 20)),
            read_timeout=max(1.0, min(5.0, reserve / 10)),
            retries={"mode": "standard", "max_attempts": 2},
        )
        client = self.factory.client(
            "dynamodb", self.home_region, validate=False, config=config, label="final"
        )
        status_writes = Deadline(last_writes.left() * 0.7)
        store = SyncStore(client, self.tables, gate=lambda: not status_writes.reached())
        return store, last_writes

    def _record_remaining(
        self, final_store: SyncStore, in_time: bool, last_writes: Deadline
    ) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        # The supervisor writes through the bounded final store only (never the run's client,
        # whose timeouts are sized for the work): what the workers queued, then every scope
        # they did not finish, unless a worker's own write of that scope landed first.
        # A background flush still retrying is waited for; one still in flight after that is
        # cut off (the run's gate closes, so it sends nothing more, in this invocation or a
        # later one that thaws this process) and its items are written here instead.
        stuck = recorder.stop(wait=last_writes.left() / 2)
        if stuck:
            self.deadline.abandon()
            logger.warning("status flush still in flight: written by the supervisor instead")
        recorder.write_with(final_store, recorder.take_pending())
        for item in stuck:
            scope = Scope(item["accountId"], item["region"])
            try:
                final_store.put_region_status_unless_recorded(item)
                recorder.recorded.add(scope)
            except Exception:  # any failure here is reported as StatusWriteFailed
                recorder.failed.add(scope)
        if in_time:
            return  # every scope finished and was queued: nothing else to record
        for scope, outcome in self.outcomes.items():
            if scope in recorder.recorded or scope in recorder.failed:
                continue
            item = recorder.item_for(outcome)
            try:
                final_store.put_region_status_unless_recorded(item)
                recorder.recorded.add(scope)
            except Exception:  # any failure here is reported as StatusWriteFailed
                recorder.failed.add(scope)

    # --- the work ----------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            self.plan = self._plan()
            if not self.lease.acquire(int(time.time()), self._lease_expiry(), self.run_time):
                self.skipped_by = self.lease.holder() or "(unknown)"
                logger.warning(
                    "another sync holds the lease; skipping", extra={"holder": self.skipped_by}
                )
                return
            self.lease_taken = True
            self.previous = self.store.region_statuses()
            if not self.plan.narrowed:
                self._read_snapshot()
            if not self.request.sweep_only:
                self._sync_scopes(self.plan)
            if not self.plan.narrowed:
                self._sweep(self.plan)
        except BaseException as exc:  # handed to the supervisor, which decides
            self._error = exc
        finally:
            self._done.set()

    def _read_snapshot(self) -> None:
        """A full run reads the inventory's keys once, at its start: the live items per scope
        (the contradiction check of every "no DRS here" scope, instead of a COUNT query
        each) and what the sweep looks through. A failed read leaves both to their own
        queries later."""
        try:
            snapshot = list(
                self.store.inventory_keys(check=lambda: self.deadline.check("inventory scan"))
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "inventory scan failed; scopes count their own items",
                extra={"errorCode": error_code(exc) if isinstance(exc, ClientError) else None},
            )
            return
        counts: dict[Scope, int] = {}
        for item in snapshot:
            account, region = item.get("accountId"), item.get("region")
            if "deletedAt" not in item and isinstance(account, str) and isinstance(region, str):
                scope = Scope(account, region)
                counts[scope] = counts.get(scope, 0) + 1
        self.snapshot = snapshot
        self.live_counts = counts

    def _lease_expiry(self) -> int:
        # Held while this run can work and record, never into the next schedule's start.
        return int(self.deadline.wall_epoch() + self.settings.deadline_reserve_seconds)

    def _plan(self) -> Plan:
        hub = self.factory.hub_account_id()
        self.factory.register(AccountAccess(hub))
        registry = self.store.registered_accounts()
        registered = {hub} | {str(a["accountId"]) for a in registry}
        enabled = {hub}
        for account in registry:
            if account["accountId"] == hub:
                continue
            # Every registered account is reachable (a disabled one only as a declared EC2
            # source); only enabled ones are synced.
            self.factory.register(
                AccountAccess(
                    account["accountId"], account.get("roleArn"), account.get("externalId")
                )
            )
            if account.get("enabled", True):
                enabled.add(account["accountId"])
        configured_regions = drs_regions()
        accounts = sorted(enabled)
        regions = configured_regions
        request = self.request
        if request.account_ids:
            unknown = sorted(set(request.account_ids) - enabled)
            if unknown:
                raise InvalidParameterError(
                    f"{OPERATION}: accountIds {listed(unknown)} are not the hub or an enabled "
                    f"target account; valid accountIds: {listed(accounts)}"
                )
            accounts = sorted(set(request.account_ids))
        if request.regions:
            unknown = sorted(set(request.regions) - set(configured_regions))
            if unknown:
                raise InvalidParameterError(
                    f"{OPERATION}: regions {listed(unknown)} are not DRS regions this "
                    f"function syncs; valid regions: {listed(configured_regions)}"
                )
            regions = sorted(set(request.regions))
        # Region-major order: the first workers start on different accounts, so their single
        # AssumeRoles run in parallel instead of every worker queueing behind one account's.
        scopes = [] if request.sweep_only else [Scope(a, r) for r in regions for a in accounts]
        confirm = frozenset(Scope(a, r) for a, r in request.confirm_deletions)
        outside = sorted(confirm - set(scopes))
        if outside:
            raise InvalidParameterError(
                f"{OPERATION}: confirmDeletions names scopes this run does not cover: "
                f"{listed([f'{s.account_id}/{s.region}' for s in outside])}; a confirmation "
                "applies only to a scope the same run lists"
            )
        ec2_sources = {account: frozenset({account}) for account in enabled}
        for item in registry:
            listing = str(item["accountId"])
            if listing in enabled:
                declared = {str(a) for a in item.get("ec2SourceAccountIds") or ()}
                # An origin is read with its own role: registered (enabled or not, e.g. a
                # source account without DRS), and never the hub.
                ec2_sources[listing] |= (declared & registered) - {hub}
        plan = Plan(
            accounts,
            regions,
            narrowed=bool(request.account_ids or request.regions),
            dry_run=self.dry_run,
            registered=frozenset(registered),
            confirm_deletions=confirm,
            scopes=scopes,
            ec2_sources=ec2_sources,
        )
        logger.info(
            "sync planned",
            extra={
                "accounts": len(accounts),
                "regions": len(regions),
                "scopes": len(scopes),
                "dryRun": self.dry_run,
                **self.sdk,
            },
        )
        return plan

    def _sync_scopes(self, plan: Plan) -> None:
        if not self.dry_run:
            self.recorder = StatusRecorder(self.store, self.previous, self.run_id, self.run_time)
        self.context = RunContext(
            store=self.store,
            settings=self.settings,
            deadline=self.deadline,
            run_id=self.run_id,
            run_time=self.run_time,
            started_epoch=int(self.started.timestamp()),
            dry_run=self.dry_run,
            previous_status=self.previous,
            confirm_deletions=plan.confirm_deletions,
            ec2_sources=plan.ec2_sources,
            live_counts=self.live_counts,
            feed=self.feed,
            drs_client=self._drs_client,
            release_drs_client=lambda s: self.factory.release("drs", s.region, s.account_id),
            ec2_client=lambda account, region: self.factory.client("ec2", region, account),
        )
        pending: queue.SimpleQueue[Scope] = queue.SimpleQueue()
        for scope in plan.scopes:
            pending.put(scope)
        workers = [
            threading.Thread(target=self._worker, args=(pending,), name=f"scope-{n}", daemon=True)
            for n in range(max(1, min(self.settings.max_concurrency, len(plan.scopes))))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _worker(self, pending: queue.SimpleQueue[Scope]) -> None:
        assert self.context is not None
        while True:
            try:
                scope = pending.get_nowait()
            except queue.Empty:
                return
            outcome = sync_scope(scope, self.context)
            with self._lock:
                if self._closed:
                    return  # abandoned: the supervisor reports this scope as unfinished
                self.outcomes[scope] = outcome
                self._finished_scopes += 1
                done = self._finished_scopes
                due = self.recorder.enqueue(outcome) if self.recorder is not None else False
            if due and self.recorder is not None:
                self.recorder.flush()
            self._log_scope(outcome, done)
            self._publish(outcome)

    def _publish(self, outcome: ScopeOutcome) -> None:
        """Publish a finished scope's changes, after its outcome is recorded: a slow or hung
        PutEvents delays the worker's next scope, never this scope's status. Per scope, as
        it finishes, rather than once after all scopes: the changes are few and already in
        memory (a run-wide list would hold every server of a first run), and subscribers
        hear a long run's first scopes minutes before its last."""
        changes, outcome.changes = outcome.changes, []
        if self.feed is not None and changes:
            self.feed.publish(changes)

    def _log_scope(self, outcome: ScopeOutcome, done: int) -> None:
        # The one line per scope, a warning for a failed one. It alone carries the AWS error
        # text (`error`): status items and the run's result get the code and a generic
        # message (shared.messages), so this line is where an operator finds the details.
        level = logger.info if outcome.healthy else logger.warning
        level(
            "scope synced",
            extra={
                "runId": self.run_id,
                "accountId": outcome.scope.account_id,
                "region": outcome.scope.region,
                "status": str(outcome.status),
                "servers": outcome.servers_seen,
                "written": outcome.servers_written,
                "softDeleted": outcome.servers_soft_deleted,
                "rejected": outcome.records_rejected,
                "errorCode": outcome.error_code,
                "error": outcome.error_detail or outcome.error_message,
                "progress": f"{done}/{len(self.plan.scopes) if self.plan else 0}",
            },
        )

    def _drs_client(self, scope: Scope) -> Any:
        client = self.factory.client("drs", scope.region, scope.account_id)
        self.fast_paths.use_json_listing(client)
        return client

    def _sweep(self, plan: Plan) -> None:
        confirmed = frozenset(
            scope
            for scope, outcome in self.outcomes.items()
            if outcome.confirmed and outcome.status is ScopeStatus.ACTIVE
        )
        self.sweep_result = SweepResult()
        try:
            sweep(
                self.store,
                registered=plan.registered,
                confirmed=confirmed,
                listed_unwritten=self.context.listed_unwritten if self.context else set(),
                previous_status=self.previous,
                deadline=self.deadline,
                dry_run=self.dry_run,
                run_time=self.run_time,
                expires_at=int(self.started.timestamp())
                + self.settings.soft_delete_ttl_days * 86400,
                snapshot=self.snapshot,
                plan_limit=self.settings.plan_limit,
                result=self.sweep_result,
            )
        except DeadlineReachedError:
            logger.warning("sweep stopped at the deadline; the next full run continues it")
        except (ClientError, BotoCoreError) as exc:
            # The scopes' truth stands; the sweep is retried by the next full run.
            self.sweep_error = (
                error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            )
            logger.error("sweep failed", extra={"errorCode": self.sweep_error, "error": str(exc)})
        finally:
            # What the sweep soft-deleted before it stopped, if it stopped, landed: announced.
            if self.feed is not None and self.sweep_result.removed:
                self.feed.publish(
                    [
                        self.feed.change(
                            "Removed",
                            {
                                "sourceServerArn": arn,
                                "accountId": scope.account_id,
                                "region": scope.region,
                            },
                        )
                        for scope, arn in self.sweep_result.removed
                    ]
                )
