"""DynamoDB access of the sync: the inventory, region status and target accounts.

Uses the low-level client with explicit (de)serialisation: batch writes for upserts
(unprocessed items retried with backoff; a batch DynamoDB refuses is split to find the one
item it cannot store), one conditional UpdateItem per soft-delete. Every write first asks
the run's gate: work abandoned at the deadline writes nothing afterwards.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from inventory_sync.exceptions import DeadlineReachedError
from inventory_sync.models import Scope
from shared.aws import error_code, error_message
from shared.config import TableNames

BATCH_SIZE = 25  # BatchWriteItem's maximum
GET_BATCH_SIZE = 100  # BatchGetItem's maximum
MAX_BATCH_ATTEMPTS = 8
# DynamoDB's answers to a request rate it will not take now (after the SDK's own retries).
THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
SCOPE_INDEX = "scope-summary-index"
Gate = Callable[[], bool]  # True while this run may still write

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


@dataclass
class BatchResult:
    """What one put_items call achieved."""

    written: int = 0
    written_items: list[dict[str, Any]] = field(default_factory=list)  # the items that landed
    unprocessed: list[dict[str, Any]] = field(default_factory=list)  # items never written
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (item, reason)
    # Conditional writes only: items not written because a newer read's write was there.
    kept_newer: list[dict[str, Any]] = field(default_factory=list)


def _always_open() -> bool:
    return True


class SyncStore:
    """The sync's reads and writes. Counts requests (thread-safe) for the run summary.

    `gate()` is asked before every write; when it says no, the write raises
    DeadlineReachedError instead of being sent. `batch_client` (default `client`) sends the
    BatchWriteItem requests: a client whose serializer may be the wire-form one.
    """

    def __init__(
        self,
        client: Any,
        tables: TableNames,
        gate: Gate = _always_open,
        *,
        batch_client: Any = None,
    ) -> None:
        self._client = client
        self._batch_client = batch_client or client  # BatchWriteItem only (see SyncRun)
        self._tables = tables
        self._gate = gate
        self._lock = threading.Lock()
        self.reads = 0
        self.writes = 0

    def _count(self, reads: int = 0, writes: int = 0) -> None:
        with self._lock:
            self.reads += reads
            self.writes += writes

    @property
    def client(self) -> Any:
        return self._client

    def may_write(self) -> bool:
        """Whether the gate lets writes through now."""
        return self._gate()

    def _may_write(self, what: str) -> None:
        if not self._gate():
            raise DeadlineReachedError(f"{what} not sent: the run's deadline was reached")

    # --- target accounts -------------------------------------------------------------------
    def registered_accounts(self) -> list[dict[str, Any]]:
        """Every item of the target-accounts table (consistent, every page)."""
        return list(self._scan(self._tables.target_accounts, ConsistentRead=True))

    def _scan(self, table: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self._pages(self._client.scan, {"TableName": table, **kwargs}):
            for item in page.get("Items", []):
                yield from_attribute_map(item)

    def _pages(
        self,
        call: Callable[..., dict[str, Any]],
        request: dict[str, Any],
        check: Callable[[], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every page of a Query or Scan, following LastEvaluatedKey; `check()` runs before
        each request (the run's deadline may stop the reading)."""
        while True:
            if check is not None:
                check()
            page = call(**request)
            self._count(reads=1)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    # --- inventory ---------------------------------------------------------------------------
    def scope_items(self, scope: Scope) -> dict[str, dict[str, Any]]:
        """What the inventory holds for `scope`, by ARN: sourceServerID, hostname,
        lastSyncTime, deletedAt, ec2 and contentDigest (all projected into the scope index;
        a Query's capacity is the same whichever of them it returns)."""
        items: dict[str, dict[str, Any]] = {}
        for item in self._query_scope(
            scope,
            ProjectionExpression=(
                "sourceServerArn, sourceServerID, hostname, lastSyncTime, deletedAt, ec2, "
                "contentDigest"
            ),
        ):
            items[item["sourceServerArn"]] = item
        return items

    def live_item_count(self, scope: Scope) -> int:
        """How many items of `scope` are not soft-deleted (a COUNT query: no item is read out)."""
        request = self._scope_request(scope)
        request.update(Select="COUNT", FilterExpression="attribute_not_exists(deletedAt)")
        return sum(int(page.get("Count", 0)) for page in self._pages(self._client.query, request))

    def _scope_request(self, scope: Scope) -> dict[str, Any]:
        return {
            "TableName": self._tables.inventory,
            "IndexName": SCOPE_INDEX,
            "KeyConditionExpression": "#account = :account AND #region = :region",
            "ExpressionAttributeNames": {"#account": "accountId", "#region": "region"},
            "ExpressionAttributeValues": {
                ":account": {"S": scope.account_id},
                ":region": {"S": scope.region},
            },
        }

    def _query_scope(self, scope: Scope, **kwargs: Any) -> Iterator[dict[str, Any]]:
        request = {**self._scope_request(scope), **kwargs}
        for page in self._pages(self._client.query, request):
            for raw in page.get("Items", []):
                yield from_attribute_map(raw)

    def inventory_keys(self, check: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
        """Every inventory item's identity and state (ARN, account, region, lastSyncTime,
        deletedAt), read with a projected Scan. `check()` runs before each page (deadline)."""
        request: dict[str, Any] = {
            "TableName": self._tables.inventory,
            "ProjectionExpression": "sourceServerArn, #account, #region, lastSyncTime, deletedAt",
            "ExpressionAttributeNames": {"#account": "accountId", "#region": "region"},
        }
        for page in self._pages(self._client.scan, request, check):
            for raw in page.get("Items", []):
                yield from_attribute_map(raw)

    def inventory_items(
        self, arns: Iterable[str], projection: str | None = None, *, consistent: bool = False
    ) -> dict[str, dict[str, Any]]:
        """The stored items of `arns` (whole, or the attributes `projection` names), by ARN,
        read with BatchGetItem (100 keys a request, unprocessed keys retried with backoff;
        strongly consistent reads with `consistent`).
        An ARN with no item, or still unprocessed after the retries, is absent from the
        answer. Raises ClientError for any other failure."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(arns))
        table = self._tables.inventory
        for start in range(0, len(wanted), GET_BATCH_SIZE):
            request: dict[str, Any] = {
                "Keys": [
                    {"sourceServerArn": {"S": a}} for a in wanted[start : start + GET_BATCH_SIZE]
                ]
            }
            if projection is not None:
                request["ProjectionExpression"] = projection
            if consistent:
                request["ConsistentRead"] = True
            for attempt in range(MAX_BATCH_ATTEMPTS):
                response = self._client.batch_get_item(RequestItems={table: request})
                self._count(reads=1)
                for raw in response.get("Responses", {}).get(table, []):
                    item = from_attribute_map(raw)
                    found[item["sourceServerArn"]] = item
                unprocessed = response.get("UnprocessedKeys", {}).get(table)
                if not unprocessed or attempt + 1 == MAX_BATCH_ATTEMPTS:
                    break
                request = unprocessed
                time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
        return found

    def put_items(
        self, table: str, items: Iterable[dict[str, Any]], result: BatchResult | None = None
    ) -> BatchResult:
        """Upsert `items` in batches of 25.

        Unprocessed items are retried with backoff; those still unprocessed are returned. A
        batch DynamoDB refuses outright (ValidationException: one item it cannot store) is
        split until the refused item stands alone, and that item is returned as rejected:
        one bad item never costs the others. Raises DeadlineReachedError once the gate
        closes, and ClientError for any other failure; `result` (given by the caller) then
        still says what was written before.
        """
        result = result if result is not None else BatchResult()
        batch: list[dict[str, Any]] = []
        for item in items:
            batch.append(item)
            if len(batch) == BATCH_SIZE:
                self._write_batch(table, batch, result)
                batch = []
        if batch:
            self._write_batch(table, batch, result)
        return result

    def _write_batch(self, table: str, items: list[dict[str, Any]], result: BatchResult) -> None:
        try:
            self._send_batch(table, items, result)
        except ClientError as exc:
            if error_code(exc) != "ValidationException":
                raise
            if len(items) == 1:
                result.rejected.append((items[0], error_message(exc)))
                return
            middle = len(items) // 2
            self._write_batch(table, items[:middle], result)
            self._write_batch(table, items[middle:], result)

    def _send_batch(self, table: str, items: list[dict[str, Any]], result: BatchResult) -> None:
        """One batch with retries of its unprocessed items, recorded in `result` (what landed,
        what stayed unprocessed). When the gate closes between two attempts, what the earlier
        attempts wrote is recorded before DeadlineReachedError goes up: a caller never
        reports as unwritten an item that landed."""
        stored = [to_attribute_map(item) for item in items]
        pending = [{"PutRequest": {"Item": attributes}} for attributes in stored]
        try:
            for attempt in range(MAX_BATCH_ATTEMPTS):
                self._may_write(f"BatchWriteItem to {table}")
                response = self._batch_client.batch_write_item(RequestItems={table: pending})
                self._count(writes=1)
                pending = response.get("UnprocessedItems", {}).get(table, [])
                if not pending:
                    break
                if attempt + 1 < MAX_BATCH_ATTEMPTS:
                    # Full jitter backoff: unprocessed items mean the table is being throttled.
                    time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
        except DeadlineReachedError:
            self._landed(items, stored, pending, result)
            raise
        self._landed(items, stored, pending, result)
        result.unprocessed.extend(from_attribute_map(p["PutRequest"]["Item"]) for p in pending)

    @staticmethod
    def _landed(
        items: list[dict[str, Any]],
        stored: list[dict[str, Any]],
        pending: list[dict[str, Any]],
        result: BatchResult,
    ) -> None:
        left = [p["PutRequest"]["Item"] for p in pending]
        landed = [
            item for item, attributes in zip(items, stored, strict=True) if attributes not in left
        ]
        result.written += len(landed)
        result.written_items.extend(landed)

    def put_inventory_items(
        self, items: Iterable[dict[str, Any]], result: BatchResult | None = None
    ) -> BatchResult:
        return self.put_items(self._tables.inventory, items, result)

    def put_inventory_item_unless_newer(self, item: dict[str, Any]) -> bool:
        """Write one whole inventory item (replacing any stored one, `deletedAt`/`expiresAt`
        included) unless the stored item was written from a newer read of DRS: its
        `lastSyncTime` is later than `item`'s. Returns False (nothing changed) when a newer
        write is already there. The refresh's upsert (inventory_sync.refresh)."""
        self._may_write(f"conditional write of {item['sourceServerArn']}")
        not_stored = "attribute_not_exists(sourceServerArn)"
        never_stamped = "attribute_not_exists(lastSyncTime)"
        not_newer = "lastSyncTime <= :readTime"
        return self._conditional_write(
            self._client.put_item,
            TableName=self._tables.inventory,
            Item=to_attribute_map(item),
            ConditionExpression=f"{not_stored} OR {never_stamped} OR {not_newer}",
            ExpressionAttributeValues={":readTime": {"S": item["lastSyncTime"]}},
        )

    def put_inventory_items_unless_newer(
        self, items: Iterable[dict[str, Any]], result: BatchResult | None = None
    ) -> BatchResult:
        """Write items one conditional PutItem each (put_inventory_item_unless_newer): an item
        whose stored version a newer read wrote (a refresh, after this item's read) is kept,
        and listed in `result.kept_newer`. The sync writes the servers it found stored this
        way, so a refresh's write between the scope's read and its write is never undone.
        A write still throttled after the SDK's retries is unprocessed; an item DynamoDB
        refuses (ValidationException) is rejected, alone. Other failures raise, `result`
        saying what landed before."""
        result = result if result is not None else BatchResult()
        for item in items:
            try:
                landed = self.put_inventory_item_unless_newer(item)
            except ClientError as exc:
                code = error_code(exc)
                if code == "ValidationException":
                    result.rejected.append((item, error_message(exc)))
                    continue
                if code in THROTTLING_CODES:
                    result.unprocessed.append(item)
                    continue
                raise
            if landed:
                result.written += 1
                result.written_items.append(item)
            else:
                result.kept_newer.append(item)
        return result

    def soft_delete(
        self,
        arn: str,
        scope: Scope | None,
        run_time: str,
        deleted_at: str,
        expires_at: int,
    ) -> bool:
        """Mark one item deleted, only if it is still in `scope`, not already deleted, and not
        written since `run_time` (so a newer run's write can never be hidden).

        `scope` None is for an item that has no accountId/region at all (written by something
        other than this sync): the condition then requires that it still has none. Returns
        False when the condition did not hold (nothing changed).
        """
        self._may_write(f"soft-delete of {arn}")
        not_yet_deleted = "attribute_not_exists(deletedAt)"
        # An item nobody stamped (no lastSyncTime) is as old as can be: it may go too.
        not_seen_since_run_started = (
            "(attribute_not_exists(lastSyncTime) OR lastSyncTime < :runTime)"
        )
        values: dict[str, Any] = {
            ":runTime": {"S": run_time},
            ":deletedAt": {"S": deleted_at},
            ":expiresAt": {"N": str(expires_at)},
        }
        if scope is None:
            in_scope = "attribute_not_exists(#account) AND attribute_not_exists(#region)"
        else:
            in_scope = "#account = :account AND #region = :region"
            values[":account"] = {"S": scope.account_id}
            values[":region"] = {"S": scope.region}
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
            ExpressionAttributeValues=values,
        )

    # --- region status -----------------------------------------------------------------------
    def region_statuses(self) -> dict[Scope, dict[str, Any]]:
        """Every scope's status item."""
        return {
            Scope(item["accountId"], item["region"]): item
            for item in self._scan(self._tables.region_status, ConsistentRead=True)
        }

    def put_region_statuses(
        self, items: list[dict[str, Any]], result: BatchResult | None = None
    ) -> BatchResult:
        return self.put_items(self._tables.region_status, items, result)

    def put_region_status_unless_recorded(self, item: dict[str, Any]) -> bool:
        """Write one status item unless this run already recorded the scope (its worker's own
        write came first). Returns False when it was already recorded."""
        self._may_write("region status")
        return self._conditional_write(
            self._client.put_item,
            TableName=self._tables.region_status,
            Item=to_attribute_map(item),
            ConditionExpression="attribute_not_exists(runId) OR runId <> :runId",
            ExpressionAttributeValues={":runId": {"S": item["runId"]}},
        )

    def delete_region_status(self, scope: Scope) -> None:
        self._may_write("region status delete")
        self._client.delete_item(
            TableName=self._tables.region_status,
            Key={"accountId": {"S": scope.account_id}, "region": {"S": scope.region}},
        )
        self._count(writes=1)

    def _conditional_write(self, write: Any, **request: Any) -> bool:
        """Run one conditional write; False (nothing changed) when its condition failed."""
        try:
            write(**request)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        finally:
            self._count(writes=1)
        return True
