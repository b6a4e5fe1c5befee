"""`resolve_servers_by_tags`: protection-group resolution from the inventory.

A protection group is defined by tags; its members are the live servers of one (account,
region), or of every scope when asked (`allScopes`), whose *effective* tags (see
`matching`: DRS tags win over EC2 tags on the same key) hold every given key with the
given value. The answer says how fresh each scope's data is,
because a stale inventory resolves a group to yesterday's members.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from inventory_queries.expressions import Expressions
from inventory_queries.freshness import Clock, freshness_seconds, iso, scope_view, utc_now
from inventory_queries.jsonable import to_json_value
from inventory_queries.matching import tags_match
from inventory_queries.paging import (
    check_limit,
    collect,
    deadline_guard,
    decode_next_token,
    encode_next_token,
    listing_id,
)
from inventory_queries.params import (
    FIELD_ACCOUNT_ID,
    FIELD_NEXT_TOKEN,
    FIELD_REGION,
    FIELD_TAGS,
    check_configured_region,
    check_tag_map,
)
from inventory_queries.reader import InventoryReader, ServerSelection
from shared.exceptions import InvalidParameterError
from shared.operations import Field, check_params

OPERATION = "resolve_servers_by_tags"
PARAMS = {
    "accountId": FIELD_ACCOUNT_ID,
    "region": FIELD_REGION,
    "tags": replace(FIELD_TAGS, required=True),
    "allScopes": Field((bool,)),
    "freshnessSeconds": Field((int,)),
    "limit": Field((int,)),
    "nextToken": FIELD_NEXT_TOKEN,
}
# Without allScopes a resolution names its one scope: a protection group forgetting its
# region must not silently resolve to servers of every region.
ONE_SCOPE_REQUIRED = ("accountId", "region", "tags")


def resolve_servers_by_tags(
    params: dict[str, Any],
    context: Any = None,
    *,
    reader: InventoryReader | None = None,
    clock: Clock = utc_now,
) -> dict[str, Any]:
    """The live servers whose effective tags match all of `tags`, in one scope or in all.

    Params: `tags` ({key: value, ...}, 1-50 keys) always required; `accountId` and `region`
    required too, naming the one scope to search, unless `allScopes` is true: then every
    scope is searched, and `accountId` or `region` (either, both or neither) narrow it.
    Optional: freshnessSeconds (threshold override), limit (1-1000, default 100), nextToken.

    Matching: effective tags = EC2 instance tags overlaid by DRS source-server tags (the DRS
    tag wins on a shared key); keys and values compare exactly. Soft-deleted servers never
    match. Each item is the inventory item without its raw `drs` record (protection groups
    need identities and tags, and a scope may hold thousands of servers).

    Returns {"accountId", "region" (as given, else null), "allScopes", "tags", "items",
    "count", "sourceServerIDs", "nextToken", "scopes", "staleScopes", "fresh",
    "lastSuccessTime", "ageSeconds", "scopeStatus", "freshnessSeconds", "asOf"}:
    - `scopes`: the scope of every item of this page, each with its freshness (`fresh`,
      `ageSeconds`, `lastSuccessTime`, `status`; as get_region_status defines them);
    - `staleScopes`: every searched scope whose data is not fresh (its matches may be
      missing or out of date); `fresh` is true when there is none;
    - lastSuccessTime/ageSeconds/scopeStatus: the searched scope's for a one-scope
      resolution, null for allScopes.
    No match is an empty list, not an error. Raises InvalidParameterError, naming every
    missing required parameter at once.
    """
    all_scopes = params.get("allScopes") is True
    required = ("tags",) if all_scopes else ONE_SCOPE_REQUIRED
    missing = [name for name in required if name not in params]
    if missing:
        raise InvalidParameterError(
            f"{OPERATION}: missing required parameter{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; tags (object of key -> value) is always required, "
            "accountId (12 digits) and region (a DRS region this deployment syncs) name the "
            "scope to search, or pass allScopes: true to search every scope (accountId or "
            "region then narrow it)"
        )
    check_params(OPERATION, params, PARAMS)
    account_id = params.get("accountId")
    region = params.get("region")
    check_configured_region(OPERATION, region)
    wanted = check_tag_map(OPERATION, params["tags"])
    threshold = freshness_seconds(params.get("freshnessSeconds"))
    limit = check_limit(OPERATION, params.get("limit"))
    selection = ServerSelection(account_id, region)
    criteria = {"accountId": account_id, "region": region, "tags": wanted}
    listing = listing_id(OPERATION, {**criteria, "allScopes": True} if all_scopes else criteria)
    start_key = None
    if "nextToken" in params:
        start_key = decode_next_token(OPERATION, params["nextToken"], listing, selection)
    reader = reader or InventoryReader.from_env()
    now = clock()

    expressions = Expressions()
    expressions.filter(f"attribute_not_exists({expressions.path('deletedAt')})")
    # Necessary condition per wanted key (present as a DRS or an EC2 tag); the exact match,
    # with precedence, is `tags_match` on the client.
    for key in wanted:
        drs_tag = expressions.path("tags", key)
        ec2_tag = expressions.path("ec2", "tags", key)
        expressions.filter(f"(attribute_exists({drs_tag}) OR attribute_exists({ec2_tag}))")
    page = collect(
        reader.server_pages(selection, expressions, start_key=start_key, page_limit=limit),
        key_attributes=selection.key_attributes,
        limit=limit,
        keep=lambda item: tags_match(item, wanted),
        shape=_without_raw_record,
        out_of_time=deadline_guard(context),
    )

    views = _searched_scopes(reader, account_id, region, all_scopes, now, threshold)
    holding = sorted({(item["accountId"], item["region"]) for item in page.items})
    for scope in holding:  # a scope with items but no status row yet: unknown, so not fresh
        views.setdefault(
            scope, scope_view({"accountId": scope[0], "region": scope[1]}, now, threshold)
        )
    stale = [view for view in views.values() if not view["fresh"]]
    one = None if all_scopes else views[(str(account_id), str(region))]
    return to_json_value(
        {
            "accountId": account_id,
            "region": region,
            "allScopes": all_scopes,
            "tags": wanted,
            "items": page.items,
            "count": len(page.items),
            "sourceServerIDs": [item["sourceServerID"] for item in page.items],
            "nextToken": encode_next_token(page.resume_key, listing),
            "scopes": [_freshness(views[scope]) for scope in holding],
            "staleScopes": [_freshness(view) for view in stale],
            "fresh": bool(views) and not stale,
            "lastSuccessTime": one["lastSuccessTime"] if one else None,
            "ageSeconds": one["ageSeconds"] if one else None,
            "scopeStatus": one["status"] if one else None,
            "freshnessSeconds": threshold,
            "asOf": iso(now),
        }
    )


def _searched_scopes(
    reader: InventoryReader,
    account_id: str | None,
    region: str | None,
    all_scopes: bool,
    now: Any,
    threshold: int,
) -> dict[tuple[str, str], dict[str, Any]]:
    """The freshness view of every scope the resolution searched, by (account, region):
    the one scope named, or every scope with a status row that the filters select."""
    if not all_scopes and account_id is not None and region is not None:
        status = reader.scope_status(account_id, region)
        item = status or {"accountId": account_id, "region": region}
        return {(account_id, region): scope_view(item, now, threshold)}
    return {
        (item["accountId"], item["region"]): scope_view(item, now, threshold)
        for item in reader.scope_statuses(account_id)
        if region is None or item["region"] == region
    }


def _freshness(view: dict[str, Any]) -> dict[str, Any]:
    keys = ("accountId", "region", "status", "fresh", "ageSeconds", "lastSuccessTime", "errorCode")
    return {key: view[key] for key in keys}


def _without_raw_record(item: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = to_json_value({k: v for k, v in item.items() if k != "drs"})
    return converted
