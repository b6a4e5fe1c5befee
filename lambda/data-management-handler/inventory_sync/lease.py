"""One sync at a time: a lease item in its own table, taken with a conditional write.

The lease lives in the sync-lease table (never among the region-status rows readers list).
A run takes it for exactly as long as it can work (`Deadline`), so a run that crashed or was
killed by its Lambda timeout never makes the next scheduled run SKIPPED. An item whose expiry
is missing, not a number, or absurdly far away (a hand edit, another tool) is taken over.
Dry runs hold a lease of their own: they never block the schedule, but concurrent dry runs
cannot fan out against the target accounts' DRS and EC2 rate limits.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import error_code
from shared.observability import get_logger

SYNC_LEASE = "inventory-sync"
DRY_RUN_LEASE = "inventory-sync-dry-run"
# No run is longer than a Lambda can live: an expiry further away than this is not valid.
MAX_LEASE_SECONDS = 3600

logger = get_logger("data-management-handler")


class Lease:
    """The lease `name` in `table`, as seen by run `run_id`."""

    def __init__(self, client: Any, table: str, name: str, run_id: str) -> None:
        self._client = client
        self._table = table
        self.name = name
        self.run_id = run_id
        self.requests = 0

    def acquire(self, now_epoch: int, expires_epoch: int, acquired_at: str) -> bool:
        """Take the lease until `expires_epoch`. False when another run validly holds it.

        Raises ClientError/BotoCoreError when DynamoDB cannot answer (the run cannot know
        whether it may run, so it does not).
        """
        free = "attribute_not_exists(leaseId)"
        expired = "leaseExpiresAt < :now"
        expiry_not_a_number = "NOT attribute_type(leaseExpiresAt, :numberType)"
        expiry_out_of_reach = "leaseExpiresAt > :farFuture"
        self.requests += 1
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "leaseId": {"S": self.name},
                    "runId": {"S": self.run_id},
                    "acquiredAt": {"S": acquired_at},
                    "leaseExpiresAt": {"N": str(expires_epoch)},
                },
                ConditionExpression=(
                    f"{free} OR {expiry_not_a_number} OR {expired} OR {expiry_out_of_reach}"
                ),
                ExpressionAttributeValues={
                    ":now": {"N": str(now_epoch)},
                    ":numberType": {"S": "N"},
                    ":farFuture": {"N": str(now_epoch + MAX_LEASE_SECONDS)},
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def holder(self) -> str | None:
        """The run id holding the lease now, None when free or unreadable (best effort)."""
        self.requests += 1
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"leaseId": {"S": self.name}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError):
            return None
        item = response.get("Item") or {}
        return (item.get("runId") or {}).get("S")

    def release(self, client: Any = None) -> bool:
        """Give the lease back if this run still holds it (through `client`, default the
        lease's own). Never raises: a lease that cannot be released (throttled, timed out)
        expires on its own, and must not turn a finished run into a failed invocation.
        Returns whether the release was confirmed."""
        self.requests += 1
        try:
            (client or self._client).delete_item(
                TableName=self._table,
                Key={"leaseId": {"S": self.name}},
                ConditionExpression="runId = :runId",
                ExpressionAttributeValues={":runId": {"S": self.run_id}},
            )
        except ClientError as exc:
            code = error_code(exc)
            if code == "ConditionalCheckFailedException":
                return True  # taken over after it expired: nothing of ours to release
            logger.warning(
                "lease not released; it expires on its own",
                extra={"lease": self.name, "errorCode": code},
            )
            return False
        except BotoCoreError as exc:
            logger.warning(
                "lease not released; it expires on its own",
                extra={"lease": self.name, "errorCode": type(exc).__name__},
            )
            return False
        return True
