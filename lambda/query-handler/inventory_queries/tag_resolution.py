"""`resolve_servers_by_tags`: protection-group resolution from the inventory.

A protection group is defined by tags; its members are the live servers of one (account,
region) whose *effective* tags (see `matching`: DRS tags win over EC2 tags on the same key)
hold every given key with the given value. The answer says how fresh the scope's data is,
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
from shared.operations import Field, check_params

OPERATION = "resolve_servers_by_tags"
PARAMS = {
    "accountId": replace(FIELD_ACCOUNT_ID, required=True),
    "region": replace(FIELD_REGION, required=True),
    "tags": replace(FIELD_TAGS, required=True),
    "freshnessSeconds": Field((int,)),
    "limit": Field((int,)),
    "nextToken": FIELD_NEXT_TOKEN,
}


def resolve_servers_by_tags(
    params: dict[str, Any],
    context: Any = None,
    *,
    reader: InventoryReader | None = None,
    clock: Clock = utc_now,
) -> dict[str, Any]:
    """The live servers of one scope whose effective tags match all of `tags`.

    Params: accountId, region, tags ({key: value, ...}, 1-50 keys) required; optional
    freshnessSeconds (threshold override), limit (1-1000, default 100) and nextToken.

    Matching: effective tags = EC2 instance tags overlaid by DRS source-server tags (the DRS
    tag wins on a shared key); keys and values compare exactly. Soft-deleted servers never
    match. Each item is the inventory item without its raw `drs` record (protection groups
    need identities and tags, and a scope may hold thousands of servers), as the scope index
    holds it: no second read by key.

    Returns {"accountId", "region", "tags", "items": [...], "count": len(items),
    "sourceServerIDs": [...], "nextToken", "fresh", "lastSuccessTime", "ageSeconds",
    "scopeStatus" (the scope's last sync status, null if never synced), "freshnessSeconds",
    "asOf"}. No match is an empty list, not an error. Raises InvalidParameterError.
    """
    check_params(OPERATION, params, PARAMS)
    account_id = params["accountId"]
    region = params["region"]
    check_configured_region(OPERATION, region)
    wanted = check_tag_map(OPERATION, params["tags"])
    threshold = freshness_seconds(params.get("freshnessSeconds"))
    limit = check_limit(OPERATION, params.get("limit"))
    selection = ServerSelection(account_id, region)
    listing = listing_id(OPERATION, {"accountId": account_id, "region": region, "tags": wanted})
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

    status = reader.scope_status(account_id, region)
    view = scope_view(status or {"accountId": account_id, "region": region}, now, threshold)
    return to_json_value(
        {
            "accountId": account_id,
            "region": region,
            "tags": wanted,
            "items": page.items,
            "count": len(page.items),
            "sourceServerIDs": [item["sourceServerID"] for item in page.items],
            "nextToken": encode_next_token(page.resume_key, listing),
            "fresh": view["fresh"],
            "lastSuccessTime": view["lastSuccessTime"],
            "ageSeconds": view["ageSeconds"],
            "scopeStatus": view["status"],
            "freshnessSeconds": threshold,
            "asOf": iso(now),
        }
    )


def _without_raw_record(item: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = to_json_value({k: v for k, v in item.items() if k != "drs"})
    return converted
