"""`get_region_status` and `get_inventory_summary`: how much is inventoried, and how fresh."""

from __future__ import annotations

from collections import Counter
from typing import Any

from inventory_queries.expressions import Expressions
from inventory_queries.freshness import Clock, freshness_seconds, iso, scope_view, utc_now
from inventory_queries.jsonable import to_json_value
from inventory_queries.matching import is_deleted
from inventory_queries.params import FIELD_ACCOUNT_ID
from inventory_queries.reader import InventoryReader, ServerSelection
from shared.operations import Field, check_params

STATUS_OPERATION = "get_region_status"
SUMMARY_OPERATION = "get_inventory_summary"
SCOPE_PARAMS = {"accountId": FIELD_ACCOUNT_ID, "freshnessSeconds": Field((int,))}
UNKNOWN_STATE = "UNKNOWN"  # an item without replicationState (DRS omitted it)
# What the summary needs of each item; the rest (the bulky `drs` record) is not transferred.
SUMMARY_PROJECTION = ("accountId", "region", "replicationState", "deletedAt")


def get_region_status(
    params: dict[str, Any],
    context: Any = None,
    *,
    reader: InventoryReader | None = None,
    clock: Clock = utc_now,
) -> dict[str, Any]:
    """Every scope's sync status (or one account's), each with `ageSeconds` and `fresh`.

    Params (optional): accountId (one account's scopes, by Query; all scopes by Scan),
    freshnessSeconds (threshold override, see `freshness`).

    Returns {"asOf": ISO-8601 now, "freshnessSeconds": int, "scopes": [{accountId, region,
    status, serverCount, lastSyncTime, lastSuccessTime, errorCode, errorMessage, runId,
    ageSeconds, fresh}, ...] sorted by (accountId, region)}. `ageSeconds` is the age of the
    data (seconds since lastSuccessTime), null when the scope never synced successfully.
    Raises InvalidParameterError (bad parameter) and ConfigurationError (bad environment).
    """
    check_params(STATUS_OPERATION, params, SCOPE_PARAMS)
    threshold = freshness_seconds(params.get("freshnessSeconds"))
    reader = reader or InventoryReader.from_env()
    now = clock()
    scopes = [
        scope_view(item, now, threshold) for item in reader.scope_statuses(params.get("accountId"))
    ]
    return to_json_value({"asOf": iso(now), "freshnessSeconds": threshold, "scopes": scopes})


def get_inventory_summary(
    params: dict[str, Any],
    context: Any = None,
    *,
    reader: InventoryReader | None = None,
    clock: Clock = utc_now,
) -> dict[str, Any]:
    """Totals of the inventory (or of one account's part of it) and the health of its scopes.

    Params (optional): accountId (summarise one account: scope-index and status Query
    instead of Scans), freshnessSeconds (threshold override).

    Reads every inventory item (paginated, projected to the counted attributes) and every
    scope status. Returns {"asOf", "freshnessSeconds", "totalServers" (live, i.e. not
    soft-deleted), "softDeletedServers", "byAccount", "byRegion", "byReplicationState"
    (live servers; a missing state counts as "UNKNOWN"), "scopeCount", "scopesByStatus",
    "freshScopes", "staleScopes": [scope view, ...] (stale or never succeeded),
    "oldestLastSuccessTime" (earliest lastSuccessTime over scopes that ever succeeded, or
    null), "oldestLastSuccessScope" ({accountId, region} or null)}.
    Raises InvalidParameterError (bad parameter) and ConfigurationError (bad environment).
    """
    check_params(SUMMARY_OPERATION, params, SCOPE_PARAMS)
    account_id = params.get("accountId")
    threshold = freshness_seconds(params.get("freshnessSeconds"))
    reader = reader or InventoryReader.from_env()
    now = clock()

    by_account: Counter[str] = Counter()
    by_region: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    soft_deleted = 0
    pages = reader.server_pages(
        ServerSelection(account_id), Expressions(), projection=SUMMARY_PROJECTION
    )
    for page in pages:
        for item in page.items:
            if is_deleted(item):
                soft_deleted += 1
                continue
            by_account[str(item.get("accountId"))] += 1
            by_region[str(item.get("region"))] += 1
            by_state[str(item.get("replicationState") or UNKNOWN_STATE)] += 1

    scopes = [scope_view(item, now, threshold) for item in reader.scope_statuses(account_id)]
    succeeded = [scope for scope in scopes if scope["ageSeconds"] is not None]
    # The largest age is the oldest success; ages come from the same parse as `fresh`.
    oldest = max(succeeded, key=lambda scope: scope["ageSeconds"], default=None)
    stale = [scope for scope in scopes if not scope["fresh"]]
    return to_json_value(
        {
            "asOf": iso(now),
            "freshnessSeconds": threshold,
            "totalServers": sum(by_account.values()),
            "softDeletedServers": soft_deleted,
            "byAccount": dict(sorted(by_account.items())),
            "byRegion": dict(sorted(by_region.items())),
            "byReplicationState": dict(sorted(by_state.items())),
            "scopeCount": len(scopes),
            "scopesByStatus": dict(sorted(Counter(str(s["status"]) for s in scopes).items())),
            "freshScopes": len(scopes) - len(stale),
            "staleScopes": stale,
            "oldestLastSuccessTime": oldest["lastSuccessTime"] if oldest else None,
            "oldestLastSuccessScope": (
                {"accountId": oldest["accountId"], "region": oldest["region"]} if oldest else None
            ),
        }
    )
