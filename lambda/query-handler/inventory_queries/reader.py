"""Read-only access to the inventory and region-status tables.

This is the only module of the query-handler that talks to DynamoDB, and it only reads:
GetItem, BatchGetItem, Query and Scan, every Query/Scan page by page on LastEvaluatedKey.
The DynamoDB resource is injected (its `Table` objects serve GetItem, Query and Scan, the
resource itself BatchGetItem) so tests can hook it; `from_env` builds it lazily, with the
table names of the function's environment, when nothing is injected.

The scope index holds every inventory attribute but the raw DRS record `drs` (the template
says why): what it serves whole must be read again from the table by key (`full_pages`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inventory_queries.exceptions import InventoryReadIncompleteError
from inventory_queries.expressions import Expressions
from shared.aws import environment_pool
from shared.config import table_names
from shared.validation import ACCOUNT_ID

SCOPE_INDEX = "scope-summary-index"
# The key attributes a LastEvaluatedKey (hence a continuation token) holds per access path.
TABLE_KEY = ("sourceServerArn",)
SCOPE_INDEX_KEY = ("sourceServerArn", "accountId", "region")
BATCH_GET_MAX_KEYS = 100  # BatchGetItem's limit per request
# UnprocessedKeys (throttling, or the 16 MB response limit) are asked for again, after
# BATCH_GET_BACKOFF_SECONDS * 2**n (n = 0, 1, ...), in at most this many requests in all.
BATCH_GET_MAX_ATTEMPTS = 5
BATCH_GET_BACKOFF_SECONDS = 0.05
# Region-status items are scopes only when keyed by an account id (ACCOUNT_ID): the sync's
# lease lives in the same table under accountId "#sync-lease" and must never be reported.


@dataclass(frozen=True)
class Page:
    """One DynamoDB page: its items (as stored) and the key to continue after it, if any."""

    items: list[dict[str, Any]]
    last_key: dict[str, Any] | None


@dataclass(frozen=True)
class ServerSelection:
    """Which inventory items a listing reads, and by which access path.

    With `account_id` the scope index is queried (hash key accountId, range key region when
    `region` is also given); without it the table is scanned and `region` becomes a filter.
    """

    account_id: str | None = None
    region: str | None = None

    @property
    def uses_scope_index(self) -> bool:
        return self.account_id is not None

    @property
    def key_attributes(self) -> tuple[str, ...]:
        return SCOPE_INDEX_KEY if self.uses_scope_index else TABLE_KEY

    def key_values(self) -> dict[str, str]:
        """The key attributes this selection fixes: every item (and every start key) of a
        scope-index Query has them; a Scan fixes none (its region is a filter)."""
        if not self.uses_scope_index:
            return {}
        fixed = {"accountId": self.account_id}
        if self.region is not None:
            fixed["region"] = self.region
        return {name: value for name, value in fixed.items() if value is not None}


class InventoryReader:
    """Reads of the inventory table and the region-status table on one DynamoDB resource."""

    def __init__(self, dynamodb: Any, inventory_table: str, status_table: str) -> None:
        self._dynamodb = dynamodb
        self._inventory = dynamodb.Table(inventory_table)
        self._status = dynamodb.Table(status_table)

    @classmethod
    def from_env(
        cls, resource: Any | None = None, environ: Mapping[str, str] | None = None
    ) -> InventoryReader:
        """Tables named by the function environment, on `resource` (default: the execution
        environment's DynamoDB resource, built on the first invocation, not at import, and
        reused by the warm ones). Raises ConfigurationError when a table name is missing."""
        names = table_names(environ)
        dynamodb = resource if resource is not None else environment_pool().resource("dynamodb")
        return cls(dynamodb, names.inventory, names.region_status)

    # --- inventory ---------------------------------------------------------------------------
    def get_server(self, source_server_arn: str) -> dict[str, Any] | None:
        """The inventory item of one ARN (GetItem), or None."""
        response = self._inventory.get_item(Key={"sourceServerArn": source_server_arn})
        item: dict[str, Any] | None = response.get("Item")
        return item

    def get_servers(self, arns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The inventory items of `arns` (distinct), by ARN, read with BatchGetItem in
        requests of at most BATCH_GET_MAX_KEYS keys. An ARN without an item (never stored,
        or expired by TTL since it was seen in the index) has no entry.

        Keys DynamoDB leaves unprocessed are asked for again with exponential backoff;
        raises InventoryReadIncompleteError when some are still unprocessed after
        BATCH_GET_MAX_ATTEMPTS requests (a missing item must never pass for a deleted one).
        """
        distinct = list(dict.fromkeys(arns))  # BatchGetItem refuses a repeated key
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(distinct), BATCH_GET_MAX_KEYS):
            chunk = distinct[start : start + BATCH_GET_MAX_KEYS]
            for item in self._batch_get(chunk):
                found[item["sourceServerArn"]] = item
        return found

    def _batch_get(self, arns: Sequence[str]) -> list[dict[str, Any]]:
        table = self._inventory.name
        pending: dict[str, Any] = {table: {"Keys": [{"sourceServerArn": arn} for arn in arns]}}
        items: list[dict[str, Any]] = []
        for attempt in range(BATCH_GET_MAX_ATTEMPTS):
            if attempt:
                time.sleep(BATCH_GET_BACKOFF_SECONDS * 2 ** (attempt - 1))
            response = self._dynamodb.batch_get_item(RequestItems=pending)
            items += response.get("Responses", {}).get(table, [])
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                return items
        left = len(pending.get(table, {}).get("Keys", []))
        raise InventoryReadIncompleteError(
            f"DynamoDB left {left} of {len(arns)} inventory keys unprocessed after "
            f"{BATCH_GET_MAX_ATTEMPTS} BatchGetItem requests; retry the call"
        )

    def full_pages(
        self, index_items: Sequence[Mapping[str, Any]], last_key: Mapping[str, Any] | None
    ) -> Iterator[Page]:
        """The table's items for `index_items` (read from the scope index, which lacks
        `drs`), in their order, as pages of at most BATCH_GET_MAX_KEYS: one BatchGetItem
        request each (and more for keys left unprocessed), made when the page is consumed.

        A page's `last_key` is the scope-index key of its last index item, and that of the
        last page is `last_key`: a reader that stops after any page resumes right after it.
        Items that vanished since the index was read are left out (see `get_servers`).
        """
        for start in range(0, len(index_items), BATCH_GET_MAX_KEYS):
            chunk = index_items[start : start + BATCH_GET_MAX_KEYS]
            stored = self.get_servers([item["sourceServerArn"] for item in chunk])
            items = [
                stored[item["sourceServerArn"]]
                for item in chunk
                if item["sourceServerArn"] in stored
            ]
            if start + BATCH_GET_MAX_KEYS < len(index_items):
                resume: dict[str, Any] | None = key_of(chunk[-1], SCOPE_INDEX_KEY)
            else:
                resume = dict(last_key) if last_key else None
            yield Page(items=items, last_key=resume)

    def server_pages(
        self,
        selection: ServerSelection,
        expressions: Expressions,
        *,
        start_key: Mapping[str, Any] | None = None,
        page_limit: int | None = None,
        projection: tuple[str, ...] = (),
    ) -> Iterator[Page]:
        """Pages of inventory items for `selection`, starting after `start_key`.

        `expressions` already holds the caller's filter clauses; the access path's own key
        condition (or region filter, for a scan) is added here. `page_limit` caps the items
        DynamoDB *evaluates* (before the filter) in the first page, and doubles for every
        further page: a listing whose filter removes little is served by one small read,
        while a selective filter soon reads full 1 MB pages instead of many tiny ones.
        Without `page_limit` every page is DynamoDB's 1 MB. `projection` limits attributes.
        The iterator ends after the last page; stop consuming it to stop reading.
        """
        request: dict[str, Any] = {}
        if selection.uses_scope_index:
            request["IndexName"] = SCOPE_INDEX
            expressions.key(
                f"{expressions.path('accountId')} = {expressions.value(selection.account_id)}"
            )
            if selection.region is not None:
                expressions.key(
                    f"{expressions.path('region')} = {expressions.value(selection.region)}"
                )
            read = self._inventory.query
        else:
            if selection.region is not None:
                expressions.filter(
                    f"{expressions.path('region')} = {expressions.value(selection.region)}"
                )
            read = self._inventory.scan
        if projection:
            request["ProjectionExpression"] = ", ".join(expressions.path(p) for p in projection)
        request.update(expressions.request_args())
        if start_key:
            request["ExclusiveStartKey"] = dict(start_key)
        yield from _pages(read, request, page_limit)

    # --- region status -----------------------------------------------------------------------
    def scope_status(self, account_id: str, region: str) -> dict[str, Any] | None:
        """The region-status item of one scope (GetItem), or None when never synced."""
        response = self._status.get_item(Key={"accountId": account_id, "region": region})
        item: dict[str, Any] | None = response.get("Item")
        return item

    def scope_statuses(self, account_id: str | None = None) -> list[dict[str, Any]]:
        """Every scope's status item (one account's by Query, all by Scan), every page,
        sorted by (accountId, region); the sync's lease item is never included."""
        expressions = Expressions()
        if account_id is not None:
            expressions.key(f"{expressions.path('accountId')} = {expressions.value(account_id)}")
            pages = _pages(self._status.query, expressions.request_args())
        else:
            pages = _pages(self._status.scan, expressions.request_args())
        items = [
            item
            for page in pages
            for item in page.items
            if ACCOUNT_ID.matches(item.get("accountId"))
        ]
        return sorted(items, key=lambda item: (item["accountId"], item["region"]))


def _pages(read: Any, request: dict[str, Any], first_limit: int | None = None) -> Iterator[Page]:
    """Call `read` (a Table's query or scan) page after page until no LastEvaluatedKey.

    With `first_limit`, page n asks for at most first_limit * 2**n items (see server_pages).
    """
    request = dict(request)
    limit = first_limit
    while True:
        if limit is not None:
            request["Limit"] = limit
            limit *= 2
        response = read(**request)
        last_key = response.get("LastEvaluatedKey")
        yield Page(items=response.get("Items", []), last_key=last_key)
        if not last_key:
            return
        request["ExclusiveStartKey"] = last_key


def key_of(item: Mapping[str, Any], key_attributes: Sequence[str]) -> dict[str, Any]:
    """The values of `key_attributes` in `item`: a start key that resumes right after it."""
    return {name: item[name] for name in key_attributes}
