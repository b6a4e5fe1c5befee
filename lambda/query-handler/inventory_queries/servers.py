"""`list_source_servers` and `get_source_server`: inventory items, read from DynamoDB only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inventory_queries.exceptions import AmbiguousSourceServerError
from inventory_queries.expressions import Expressions
from inventory_queries.jsonable import to_json_value
from inventory_queries.matching import has_tag, hostname_contains, is_deleted
from inventory_queries.paging import (
    Predicate,
    check_limit,
    collect,
    deadline_guard,
    decode_next_token,
    encode_next_token,
    listing_id,
)
from inventory_queries.params import (
    FIELD_ACCOUNT_ID,
    FIELD_HOSTNAME,
    FIELD_NEXT_TOKEN,
    FIELD_REGION,
    FIELD_REPLICATION_STATE,
    FIELD_SOURCE_SERVER_ARN,
    FIELD_SOURCE_SERVER_ID,
    FIELD_TAG_KEY,
    FIELD_TAG_VALUE,
    check_configured_region,
    check_replication_state,
)
from inventory_queries.reader import InventoryReader, ServerSelection
from shared.exceptions import InvalidParameterError, NotFoundError
from shared.operations import Field, check_params

LIST_OPERATION = "list_source_servers"
LIST_PARAMS = {
    "accountId": FIELD_ACCOUNT_ID,
    "region": FIELD_REGION,
    "replicationState": FIELD_REPLICATION_STATE,
    "tagKey": FIELD_TAG_KEY,
    "tagValue": FIELD_TAG_VALUE,
    "hostname": FIELD_HOSTNAME,
    "includeDeleted": Field((bool,)),
    "limit": Field((int,)),
    "nextToken": FIELD_NEXT_TOKEN,
}
# The parameters that decide *what* is listed (a token is valid only for the same ones).
LIST_CRITERIA = (
    "accountId",
    "region",
    "replicationState",
    "tagKey",
    "tagValue",
    "hostname",
    "includeDeleted",
)

GET_OPERATION = "get_source_server"
GET_PARAMS = {
    "sourceServerArn": FIELD_SOURCE_SERVER_ARN,
    "sourceServerID": FIELD_SOURCE_SERVER_ID,
    "accountId": FIELD_ACCOUNT_ID,
    "region": FIELD_REGION,
    "includeDeleted": Field((bool,)),
}


def list_source_servers(
    params: dict[str, Any], context: Any = None, *, reader: InventoryReader | None = None
) -> dict[str, Any]:
    """One page of inventory items matching every given filter.

    Params (all optional): accountId, region, replicationState (a DRS DataReplicationState),
    tagKey (+ tagValue; matched on the effective tags, DRS over EC2, see `matching`),
    hostname (case-insensitive substring), includeDeleted (default false), limit (1-1000,
    default 100), nextToken (from the previous page, with the same filters).

    With accountId the scope index is queried (accountId [+ region] as key condition);
    otherwise the table is scanned, page by page. Either way filters run on every page and
    pages are read until `limit` items or the end. The index holds every attribute but
    `drs`: the page it fills is then read from the table by key (BatchGetItem), in the same
    order, so both paths return whole inventory items; a server whose item expired between
    the two reads is left out. A page shorter than `limit` with a nextToken only happens
    when the 5 MB response budget or the invocation's deadline stopped it, or when such an
    item was left out.

    Returns {"items": [inventory item, ...], "nextToken": str | None}. Raises
    InvalidParameterError for an unknown parameter, a wrong type or value, or a token that
    is malformed or was issued for other filters, and InventoryReadIncompleteError when
    DynamoDB keeps throttling the reads by key.
    """
    check_params(LIST_OPERATION, params, LIST_PARAMS)
    check_configured_region(LIST_OPERATION, params.get("region"))
    check_replication_state(LIST_OPERATION, params.get("replicationState"))
    if params.get("tagValue") is not None and params.get("tagKey") is None:
        raise InvalidParameterError(f"{LIST_OPERATION}: tagValue needs tagKey")
    limit = check_limit(LIST_OPERATION, params.get("limit"))
    criteria = {name: params.get(name) for name in LIST_CRITERIA}
    criteria["includeDeleted"] = bool(params.get("includeDeleted", False))
    selection = ServerSelection(params.get("accountId"), params.get("region"))
    listing = listing_id(LIST_OPERATION, criteria)
    start_key = None
    if "nextToken" in params:
        start_key = decode_next_token(LIST_OPERATION, params["nextToken"], listing, selection)

    expressions = Expressions()
    _add_server_filters(expressions, criteria)
    keep = _exact_match(criteria)
    reader = reader or InventoryReader.from_env()
    pages = reader.server_pages(
        selection,
        expressions,
        start_key=start_key,
        page_limit=limit,
    )
    out_of_time = deadline_guard(context)
    page = collect(
        pages,
        key_attributes=selection.key_attributes,
        limit=limit,
        keep=keep,
        shape=to_json_value,
        out_of_time=out_of_time,
    )
    if selection.uses_scope_index and page.items:
        # The same page, whole: collected again so the response budget and the deadline
        # hold for the items as returned (with `drs`), and a page cut short by them resumes
        # right after its last item.
        page = collect(
            reader.full_pages(page.items, page.resume_key),
            key_attributes=selection.key_attributes,
            limit=len(page.items),
            keep=lambda item: True,
            shape=to_json_value,
            out_of_time=out_of_time,
        )
    return {"items": page.items, "nextToken": encode_next_token(page.resume_key, listing)}


def _add_server_filters(expressions: Expressions, criteria: Mapping[str, Any]) -> None:
    """Push every filter DynamoDB can evaluate into the FilterExpression.

    Tags and hostname get a necessary condition here (the attribute exists) and their exact
    test on the client: DynamoDB can neither fold case nor express "DRS tag, else EC2 tag"
    without duplicating the precedence rule that `matching` owns.
    """
    if not criteria["includeDeleted"]:
        expressions.filter(f"attribute_not_exists({expressions.path('deletedAt')})")
    if criteria.get("replicationState") is not None:
        state = expressions.path("replicationState")
        expressions.filter(f"{state} = {expressions.value(criteria['replicationState'])}")
    if criteria.get("tagKey") is not None:
        drs_tag = expressions.path("tags", criteria["tagKey"])
        ec2_tag = expressions.path("ec2", "tags", criteria["tagKey"])
        expressions.filter(f"(attribute_exists({drs_tag}) OR attribute_exists({ec2_tag}))")
    if criteria.get("hostname") is not None:
        expressions.filter(f"attribute_exists({expressions.path('hostname')})")


def _exact_match(criteria: Mapping[str, Any]) -> Predicate:
    """The client-side part of the filters (see `_add_server_filters`)."""
    tag_key = criteria.get("tagKey")
    tag_value = criteria.get("tagValue")
    hostname = criteria.get("hostname")

    def keep(item: Mapping[str, Any]) -> bool:
        if tag_key is not None and not has_tag(item, tag_key, tag_value):
            return False
        return hostname is None or hostname_contains(item, hostname)

    return keep


def get_source_server(
    params: dict[str, Any], context: Any = None, *, reader: InventoryReader | None = None
) -> dict[str, Any]:
    """One inventory item, by sourceServerArn (GetItem) or by sourceServerID.

    Params: exactly one of sourceServerArn / sourceServerID; with sourceServerID, optional
    accountId and region narrow the search (accountId makes it a scope-index Query, neither
    a paginated Scan). includeDeleted (default false): whether a soft-deleted item counts.

    Returns {"item": inventory item}. Raises InvalidParameterError (bad or conflicting
    parameters), NotFoundError (no such server, or only soft-deleted while includeDeleted is
    false; the message says which), AmbiguousSourceServerError (the ID matches several
    items; the error lists them) and InventoryReadIncompleteError (reads by key throttled).
    """
    check_params(GET_OPERATION, params, GET_PARAMS)
    arn = params.get("sourceServerArn")
    server_id = params.get("sourceServerID")
    if (arn is None) == (server_id is None):
        raise InvalidParameterError(
            f"{GET_OPERATION}: give exactly one of sourceServerArn or sourceServerID"
        )
    if arn is not None and (params.get("accountId") or params.get("region")):
        raise InvalidParameterError(
            f"{GET_OPERATION}: accountId/region narrow a sourceServerID lookup; "
            "a sourceServerArn already names one server"
        )
    check_configured_region(GET_OPERATION, params.get("region"))
    include_deleted = bool(params.get("includeDeleted", False))
    reader = reader or InventoryReader.from_env()

    if arn is not None:
        item = reader.get_server(arn)
        if item is None:
            raise NotFoundError(f"{GET_OPERATION}: no source server {arn} in the inventory")
        candidates = [item]
        described = arn
    else:
        candidates = _items_with_id(
            reader, server_id, params.get("accountId"), params.get("region")
        )
        if not candidates:
            raise NotFoundError(
                f"{GET_OPERATION}: no source server {server_id} in the inventory"
                + _where(params.get("accountId"), params.get("region"))
            )
        described = str(server_id)

    live = [item for item in candidates if not is_deleted(item)]
    chosen = candidates if include_deleted else live
    if not chosen:
        deleted_at = ", ".join(sorted(str(item["deletedAt"]) for item in candidates))
        raise NotFoundError(
            f"{GET_OPERATION}: source server {described} was soft-deleted ({deleted_at}); "
            "pass includeDeleted=true to read it"
        )
    if len(chosen) > 1:
        raise AmbiguousSourceServerError(
            str(server_id),
            [
                {
                    "sourceServerArn": item["sourceServerArn"],
                    "accountId": item.get("accountId"),
                    "region": item.get("region"),
                    **({"deletedAt": item["deletedAt"]} if is_deleted(item) else {}),
                }
                for item in sorted(chosen, key=lambda i: str(i["sourceServerArn"]))
            ],
        )
    return {"item": to_json_value(chosen[0])}


def _items_with_id(
    reader: InventoryReader, server_id: Any, account_id: str | None, region: str | None
) -> list[dict[str, Any]]:
    """Every item whose sourceServerID is `server_id`, whole (the scope index lacks `drs`:
    its matches are read again by key, and one that expired meanwhile is not a match)."""
    expressions = Expressions()
    expressions.filter(f"{expressions.path('sourceServerID')} = {expressions.value(server_id)}")
    selection = ServerSelection(account_id, region)
    matches = [item for page in reader.server_pages(selection, expressions) for item in page.items]
    if not selection.uses_scope_index or not matches:
        return matches
    stored = reader.get_servers([item["sourceServerArn"] for item in matches])
    return [stored[arn] for arn in (item["sourceServerArn"] for item in matches) if arn in stored]


def _where(account_id: str | None, region: str | None) -> str:
    parts = [f"account {account_id}" if account_id else "", f"region {region}" if region else ""]
    scope = ", ".join(part for part in parts if part)
    return f" ({scope})" if scope else ""
