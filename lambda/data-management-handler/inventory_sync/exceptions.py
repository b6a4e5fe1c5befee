"""Errors of the inventory sync."""

from __future__ import annotations

from typing import Any

from shared.exceptions import OrchestrationError


class InventorySyncError(OrchestrationError):
    """Base class of the sync's own errors."""

    error_code = "InventorySyncError"


class SyncFailedError(InventorySyncError):
    """Nothing could be listed. Raised after region status is recorded, so the invocation
    fails visibly (Lambda Errors, alarms) while the tables still say what happened."""

    error_code = "SyncFailed"

    def __init__(self, summary: dict[str, Any]) -> None:
        self.summary = summary
        failures = summary.get("failures", [])
        first = failures[0] if failures else {}
        super().__init__(
            f"inventory sync {summary.get('runId')} FAILED: no scope could be listed "
            f"({len(failures)} failed scopes; first: "
            f"{first.get('accountId')}/{first.get('region')} "
            f"{first.get('errorCode')}: {first.get('message')})"
        )


class DeadlineReachedError(InventorySyncError):
    """The run's deadline came before this piece of work: it stops and writes nothing more."""

    error_code = "DeadlineReached"


class UnstorableRecordError(InventorySyncError):
    """One DRS record cannot become an inventory item (no identity, another scope's ARN,
    numbers DynamoDB cannot hold, too large). The record is skipped, never its scope."""

    error_code = "RecordRejected"
