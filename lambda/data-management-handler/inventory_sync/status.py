"""Region status, recorded as each scope finishes.

Workers hand each finished scope to the recorder; it writes them in small batches (at most
`batch_size` scopes, or what finished within `max_wait` seconds), so a run killed by its
Lambda timeout keeps the status of every scope it finished, give or take the last second.
A status that cannot be written is remembered: the run is then PARTIAL (`StatusWriteFailed`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inventory_sync.exceptions import DeadlineReachedError
from inventory_sync.models import Scope, ScopeOutcome, ScopeStatus
from inventory_sync.store import BatchResult, SyncStore
from shared.aws import error_code, error_message
from shared.messages import reader_message
from shared.observability import get_logger

logger = get_logger("data-management-handler")


def status_item(
    outcome: ScopeOutcome, previous: dict[str, Any], run_id: str, run_time: str
) -> dict[str, Any]:
    """The region-status item of a finished scope.

    A confirmed scope (complete listing, every write landed, or a true "no DRS here") gets
    this run as its `lastSuccessTime` and its listed count; any other keeps the last known
    success and count, so readers see how old the data they hold really is. `errorMessage`
    is the generic message of the error code (`shared.messages`), never AWS text: the item
    is read by anyone with access to the table, the AWS text is in the scope's log line.
    """
    last_success: str | None
    if outcome.confirmed:
        count = outcome.servers_seen if outcome.status is ScopeStatus.ACTIVE else 0
        last_success = run_time
    else:
        count = previous.get("serverCount", 0)
        last_success = previous.get("lastSuccessTime")
    return {
        "accountId": outcome.scope.account_id,
        "region": outcome.scope.region,
        "status": str(outcome.status),
        "serverCount": count,
        "lastSyncTime": run_time,
        "lastSuccessTime": last_success,
        "errorCode": outcome.error_code,
        "errorMessage": reader_message(outcome.error_code, outcome.status),
        "runId": run_id,
    }


class StatusRecorder:
    """Writes scopes' status items as they finish (thread-safe)."""

    def __init__(
        self,
        store: SyncStore,
        previous: dict[Scope, dict[str, Any]],
        run_id: str,
        run_time: str,
        *,
        batch_size: int = 10,
        max_wait: float = 1.0,
    ) -> None:
        self._store = store
        self._previous = previous
        self._run_id = run_id
        self._run_time = run_time
        self._batch_size = batch_size
        self._max_wait = max_wait
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._oldest: float | None = None
        self.recorded: set[Scope] = set()
        self.failed: set[Scope] = set()
        self._in_flight: dict[Scope, dict[str, Any]] = {}  # items of writes not yet answered
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_now_and_then, daemon=True)
        self._flusher.start()

    def item_for(self, outcome: ScopeOutcome) -> dict[str, Any]:
        return status_item(
            outcome, self._previous.get(outcome.scope, {}), self._run_id, self._run_time
        )

    def enqueue(self, outcome: ScopeOutcome) -> bool:
        """Queue `outcome`'s status without writing; True when the queue is due a flush."""
        with self._lock:
            self._pending.append(self.item_for(outcome))
            if self._oldest is None:
                self._oldest = time.monotonic()
            return len(self._pending) >= self._batch_size

    def flush(self) -> None:
        """Write every queued status now (in the calling thread)."""
        self.write_with(self._store, self.take_pending())

    def take_pending(self) -> list[dict[str, Any]]:
        """Empty the queue and return what it held (not written)."""
        with self._lock:
            batch, self._pending, self._oldest = self._pending, [], None
        return batch

    def write_with(self, store: SyncStore, batch: list[dict[str, Any]]) -> None:
        """Write `batch` through `store`, remembering which scopes were and were not recorded."""
        if not batch:
            return
        scopes = [Scope(item["accountId"], item["region"]) for item in batch]
        result = BatchResult()
        code: str = "UnprocessedItems"
        detail: str | None = None
        with self._lock:
            self._in_flight.update(zip(scopes, batch, strict=True))
        try:
            store.put_region_statuses(batch, result)
        except ClientError as exc:
            code, detail = error_code(exc), error_message(exc)
        except (BotoCoreError, DeadlineReachedError) as exc:
            code, detail = type(exc).__name__, str(exc)
        finally:
            with self._lock:
                for scope in scopes:
                    self._in_flight.pop(scope, None)
        # What landed is recorded, even when the batch stopped half-way; the rest is not.
        landed = {Scope(i["accountId"], i["region"]) for i in result.written_items}
        with self._lock:
            self.recorded.update(landed)
        unwritten = sorted(set(scopes) - landed)
        if unwritten:
            self._failed(unwritten, code, detail)

    def _failed(self, scopes: list[Scope], code: str, aws_text: str | None) -> None:
        with self._lock:
            self.failed.update(scopes)
        logger.error(
            "region status not written",
            extra={
                "errorCode": code,
                "error": aws_text,
                "scopes": [f"{s.account_id}/{s.region}" for s in scopes[:20]],
                "count": len(scopes),
            },
        )

    def stop(self, wait: float = 0.0) -> list[dict[str, Any]]:
        """Stop the background flusher (what is queued stays queued), waiting up to `wait`
        seconds for a write it has in flight (its retries of a throttled table can take
        seconds). Returns the items of a write still in flight then: the invocation must not
        return counting on them."""
        self._stop.set()
        if self._flusher is not threading.current_thread():
            self._flusher.join(timeout=max(0.0, wait))
        with self._lock:
            return list(self._in_flight.values())

    def unrecorded(self) -> set[Scope]:
        """Scopes whose status no write of this run landed (a scope whose first write failed
        and a later one landed is recorded)."""
        with self._lock:
            return self.failed - self.recorded

    def _flush_now_and_then(self) -> None:
        # A scope that finishes alone (the others still listing) is written within max_wait.
        while not self._stop.wait(self._max_wait / 2):
            with self._lock:
                due = self._oldest is not None and (
                    time.monotonic() - self._oldest >= self._max_wait
                )
            if due:
                self.flush()
