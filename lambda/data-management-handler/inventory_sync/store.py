"""DynamoDB access of the sync: the inventory, region status, target accounts and the lease.

Uses the low-level client with explicit (de)serialisation: batch writes for upserts
(unprocessed items retried with backoff), one conditional UpdateItem per soft-delete.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from botocore.serialize import JSONSerializer

from inventory_sync.models import Scope
from shared.config import TableNames

BATCH_SIZE = 25  # BatchWriteItem's maximum
MAX_BATCH_ATTEMPTS = 8
SCOPE_INDEX = "scope-index"
# The lease lives in the region-status table under a key no account can have.
LEASE_KEY = {"accountId": {"S": "#sync-lease"}, "region": {"S": "inventory-sync"}}
ACCOUNT_ID = re.compile(r"^\d{12}$")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_attribute_value(value: Any) -> dict[str, Any]:
    """One DynamoDB AttributeValue, as TypeSerializer makes it, for the types items hold.

    A direct type dispatch: TypeSerializer's generic checks cost about 0.4 ms per inventory
    item. Anything other than str/bool/int/Decimal/None/dict/list takes the general path.
    """
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is dict:
        return {"M": {str(k): to_attribute_value(v) for k, v in value.items()}}
    if kind is list:
        return {"L": [to_attribute_value(v) for v in value]}
    if kind is bool:
        return {"BOOL": value}
    if kind is int:
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    return dict(_serializer.serialize(value))


def to_attribute_map(item: dict[str, Any]) -> dict[str, Any]:
    return {key: to_attribute_value(value) for key, value in item.items()}


def from_attribute_map(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


class _WireFormBatchWrites(JSONSerializer):
    """Serialises BatchWriteItem requests with json.dumps alone.

    The sync builds every AttributeValue itself (`to_attribute_value`), so its write
    requests are already in wire form; botocore's generic serializer walks each value
    again, which measured about a third of the sync's CPU (see README, Performance).
    Every other operation takes the generic path.
    """

    def _serialize(self, serialized: Any, value: Any, shape: Any, key: Any = None) -> None:
        if key is None and shape.name == "BatchWriteItemInput":
            serialized.update(value)
        else:
            super()._serialize(serialized, value, shape, key)  # type: ignore[misc]


def use_wire_form_batch_writes(dynamodb_client: Any) -> bool:
    """Give `dynamodb_client` the wire-form BatchWriteItem serializer.

    Only a client built without parameter validation holds a bare JSONSerializer; any
    other client (or another botocore layout) is left as it is. Returns whether it applied.
    """
    if type(getattr(dynamodb_client, "_serializer", None)) is not JSONSerializer:
        return False
    dynamodb_client._serializer = _WireFormBatchWrites()
    return True


class SyncStore:
    """The sync's reads and writes. Counts requests (thread-safe) for the run summary."""

    def __init__(self, client: Any, tables: TableNames) -> None:
        self._client = client
        self._tables = tables
        self._lock = threading.Lock()
        self.reads = 0
        self.writes = 0

    def _count(self, reads: int = 0, writes: int = 0) -> None:
        with self._lock:
            self.reads += reads
            self.writes += writes

    # --- target accounts -------------------------------------------------------------------
    def registered_accounts(self) -> list[dict[str, Any]]:
        """Every item of the target-accounts table (consistent, every page)."""
        return list(self._scan(self._tables.target_accounts, ConsistentRead=True))

    def _scan(self, table: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {"TableName": table, **kwargs}
        while True:
            page = self._client.scan(**request)
            self._count(reads=1)
            for item in page.get("Items", []):
                yield from_attribute_map(item)
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- inventory ---------------------------------------------------------------------------
    def scope_items(self, scope: Scope) -> dict[str, dict[str, Any]]:
        """What the inventory holds for `scope`, by ARN: lastSyncTime, deletedAt, ec2."""
        request: dict[str, Any] = {
            "TableName": self._tables.inventory,
            "IndexName": SCOPE_INDEX,
            "KeyConditionExpression": "#account = :account AND #region = :region",
            "ProjectionExpression": "sourceServerArn, lastSyncTime, deletedAt, ec2",
            "ExpressionAttributeNames": {"#account": "accountId", "#region": "region"},
            "ExpressionAttributeValues": {
                ":account": {"S": scope.account_id},
                ":region": {"S": scope.region},
            },
        }
        items: dict[str, dict[str, Any]] = {}
        while True:
            page = self._client.query(**request)
            self._count(reads=1)
            for raw in page.get("Items", []):
                item = from_attribute_map(raw)
                items[item["sourceServerArn"]] = item
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put_items(self, table: str, items: Iterable[dict[str, Any]]) -> int:
        """Upsert `items` in batches of 25. Returns how many could not be written."""
        failed = 0
        batch: list[dict[str, Any]] = []
        for item in items:
            batch.append({"PutRequest": {"Item": to_attribute_map(item)}})
            if len(batch) == BATCH_SIZE:
                failed += self._write_batch(table, batch)
                batch = []
        if batch:
            failed += self._write_batch(table, batch)
        return failed

    def put_inventory_items(self, items: Iterable[dict[str, Any]]) -> int:
        return self.put_items(self._tables.inventory, items)

    def _write_batch(self, table: str, requests: list[dict[str, Any]]) -> int:
        pending = requests
        for attempt in range(MAX_BATCH_ATTEMPTS):
            response = self._client.batch_write_item(RequestItems={table: pending})
            self._count(writes=1)
            pending = response.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                return 0
            # Full jitter backoff: unprocessed items mean the table is being throttled.
            time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
        return len(pending)

    def soft_delete(
        self, arn: str, scope: Scope, run_time: str, deleted_at: str, expires_at: int
    ) -> bool:
        """Mark one item deleted, only if it is still in `scope`, not already deleted, and not
        written since `run_time` (so a newer run's write can never be hidden).

        Returns False when the condition did not hold (nothing changed).
        """
        in_scope = "#account = :account AND #region = :region"
        not_yet_deleted = "attribute_not_exists(deletedAt)"
        not_seen_since_run_started = "lastSyncTime < :runTime"
        return self._conditional_write(
            self._client.update_item,
            TableName=self._tables.inventory,
            Key={"sourceServerArn": {"S": arn}},
            UpdateExpression="SET deletedAt = :deletedAt, expiresAt = :expiresAt",
            ConditionExpression=(
                f"attribute_exists(sourceServerArn) AND {in_scope} AND {not_yet_deleted} "
                f"AND {not_seen_since_run_started}"
            ),
            ExpressionAttributeNames={"#account": "accountId", "#region": "region"},
            ExpressionAttributeValues={
                ":account": {"S": scope.account_id},
                ":region": {"S": scope.region},
                ":runTime": {"S": run_time},
                ":deletedAt": {"S": deleted_at},
                ":expiresAt": {"N": str(expires_at)},
            },
        )

    # --- region status -----------------------------------------------------------------------
    def region_statuses(self) -> dict[Scope, dict[str, Any]]:
        """Every scope's status item (the lease item excluded)."""
        return {
            Scope(item["accountId"], item["region"]): item
            for item in self._scan(self._tables.region_status, ConsistentRead=True)
            if ACCOUNT_ID.match(str(item.get("accountId", "")))
        }

    def put_region_statuses(self, items: Iterable[dict[str, Any]]) -> int:
        return self.put_items(self._tables.region_status, items)

    def delete_region_status(self, scope: Scope) -> None:
        self._client.delete_item(
            TableName=self._tables.region_status,
            Key={"accountId": {"S": scope.account_id}, "region": {"S": scope.region}},
        )
        self._count(writes=1)

    # --- lease -------------------------------------------------------------------------------
    def acquire_lease(self, run_id: str, now_epoch: int, seconds: int, acquired_at: str) -> bool:
        """Take the one-sync-at-a-time lease for `seconds`. False when another run holds it."""
        return self._conditional_write(
            self._client.put_item,
            TableName=self._tables.region_status,
            Item={
                **LEASE_KEY,
                "runId": {"S": run_id},
                "acquiredAt": {"S": acquired_at},
                "leaseExpiresAt": {"N": str(now_epoch + seconds)},
            },
            ConditionExpression="attribute_not_exists(accountId) OR leaseExpiresAt < :now",
            ExpressionAttributeValues={":now": {"N": str(now_epoch)}},
        )

    def lease_holder(self) -> str | None:
        response = self._client.get_item(
            TableName=self._tables.region_status, Key=LEASE_KEY, ConsistentRead=True
        )
        self._count(reads=1)
        item = response.get("Item")
        return item["runId"]["S"] if item else None

    def release_lease(self, run_id: str) -> None:
        """Give the lease back, only if this run still holds it."""
        self._conditional_write(
            self._client.delete_item,
            TableName=self._tables.region_status,
            Key=LEASE_KEY,
            ConditionExpression="runId = :runId",
            ExpressionAttributeValues={":runId": {"S": run_id}},
        )

    def _conditional_write(self, write: Any, **request: Any) -> bool:
        """Run one conditional write; False (nothing changed) when its condition failed."""
        try:
            write(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        finally:
            self._count(writes=1)
        return True
