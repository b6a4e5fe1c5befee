"""Read-only access to the inventory and region-status tables.

This is the only module of the query-handler that talks to DynamoDB, and it only reads:
GetItem, Query and Scan, every Query/Scan page by page on LastEvaluatedKey. Tables are
injected (boto3 resource `Table` objects) so tests can hook them; `from_env` builds them
lazily from the function's environment when nothing is injected.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from inventory_queries.expressions import Expressions
from shared.config import table_names
from shared.validation import ACCOUNT_ID

SCOPE_INDEX = "scope-index"
# The key attributes a LastEvaluatedKey (hence a continuation token) holds per access path.
TABLE_KEY = ("sourceServerArn",)
SCOPE_INDEX_KEY = ("sourceServerArn", "accountId", "region")
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
    """Reads of the inventory table (`inventory`) and the region-status table (`status`)."""

    def __init__(self, inventory: Any, status: Any) -> None:
        self._inventory = inventory
        self._status = status

    @classmethod
    def from_env(
        cls, resource: Any | None = None, environ: Mapping[str, str] | None = None
    ) -> InventoryReader:
        """Tables named by the function environment, on `resource` (default: a new boto3
        DynamoDB resource, built now, not at import). Raises ConfigurationError when a table
        name is missing."""
        names = table_names(environ)
        dynamodb = resource if resource is not None else boto3.resource("dynamodb")
        return cls(dynamodb.Table(names.inventory), dynamodb.Table(names.region_status))

    # --- inventory ---------------------------------------------------------------------------
    def get_server(self, source_server_arn: str) -> dict[str, Any] | None:
        """The inventory item of one ARN (GetItem), or None."""
        response = self._inventory.get_item(Key={"sourceServerArn": source_server_arn})
        item: dict[str, Any] | None = response.get("Item")
        return item

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
