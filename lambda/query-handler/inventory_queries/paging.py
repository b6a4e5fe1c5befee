"""Honest pages over DynamoDB pages, and opaque continuation tokens.

A listing reads DynamoDB page after page (FilterExpression on the server, exact predicates
that DynamoDB cannot express on the client) until it holds `limit` items or the data ends,
so a short page means "no more", except when one of two guards stops it earlier with a
nextToken: the response-size budget (a synchronous Lambda response is at most 6 MB) and
the invocation's deadline. When the page fills in the middle of a DynamoDB page, the token
is the key of the last item returned, so the next call resumes exactly after it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inventory_queries.reader import Page, ServerSelection, key_of
from shared.exceptions import InvalidParameterError
from shared.pagination import decode_token, encode_token
from shared.validation import ACCOUNT_ID, REGION

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Lambda's synchronous response limit is 6 MB; keep room for the envelope and the token.
MAX_RESPONSE_BYTES = 5_000_000
# DynamoDB's limit on a partition key value (bytes; ASCII ARNs have one byte per character).
MAX_KEY_LENGTH = 2048
# Stop reading further DynamoDB pages when less than this is left of the invocation.
DEADLINE_RESERVE_SECONDS = 3.0

Predicate = Callable[[Mapping[str, Any]], bool]
Shape = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Collected:
    """One page of results: shaped items and the key to resume after (None: the end)."""

    items: list[dict[str, Any]]
    resume_key: dict[str, Any] | None


def check_limit(operation: str, limit: int | None) -> int:
    """`limit` or DEFAULT_LIMIT; raises InvalidParameterError outside 1..MAX_LIMIT."""
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameterError(f"{operation}: limit must be 1-{MAX_LIMIT}, got {limit}")
    return limit


def collect(
    pages: Iterable[Page],
    *,
    key_attributes: Sequence[str],
    limit: int,
    keep: Predicate,
    shape: Shape,
    max_bytes: int | None = None,
    out_of_time: Callable[[], bool] = lambda: False,
) -> Collected:
    """Fill one page from `pages`: items passing `keep`, converted by `shape`.

    Stops at `limit` items, before the shaped items would exceed `max_bytes` of JSON
    (default MAX_RESPONSE_BYTES; at least one item is always returned), or after a DynamoDB
    page when `out_of_time()`. When `pages` runs out, the result resumes after its last
    page's key (None when that page was the data's last).
    Reads no DynamoDB page beyond the one that completes the result.
    """
    budget = MAX_RESPONSE_BYTES if max_bytes is None else max_bytes
    items: list[dict[str, Any]] = []
    last_returned: Mapping[str, Any] | None = None
    size = 0
    resume_key: dict[str, Any] | None = None
    for page in pages:
        for item in page.items:
            if not keep(item):
                continue
            shaped = shape(item)
            # Measured as the runtime will serialise it (default separators), not compacted.
            item_bytes = len(json.dumps(shaped).encode())
            if last_returned is not None and (len(items) == limit or size + item_bytes > budget):
                # A match remains in this DynamoDB page: resume right after the last item
                # returned (DynamoDB accepts any item's key as ExclusiveStartKey).
                return Collected(items, key_of(last_returned, key_attributes))
            items.append(shaped)
            last_returned = item
            size += item_bytes
        if page.last_key is None:
            return Collected(items, None)
        resume_key = dict(page.last_key)
        if len(items) == limit or out_of_time():
            return Collected(items, resume_key)
    # `pages` ended on a page with a key (a listing completed by key): resume after it.
    return Collected(items, resume_key)


def listing_id(operation: str, criteria: Mapping[str, Any]) -> str:
    """A short fingerprint of what a listing selects, carried in its tokens, so a token is
    refused when it comes back with different filters (it would skip or repeat items)."""
    canonical = json.dumps({"operation": operation, **criteria}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_next_token(resume_key: Mapping[str, Any] | None, listing: str) -> str | None:
    """The opaque nextToken for `resume_key` (None at the end of the listing)."""
    if not resume_key:
        return None
    return encode_token({"key": dict(resume_key), "listing": listing})


def decode_next_token(
    operation: str, token: str, listing: str, selection: ServerSelection
) -> dict[str, Any]:
    """The ExclusiveStartKey inside a token this listing issued.

    Every value of the key is checked before it can reach DynamoDB: the key attributes of
    `selection`'s access path, each a string; accountId and region strict and equal to the
    ones `selection` queries (DynamoDB refuses a start key outside the key condition).
    Raises InvalidParameterError (never a ClientError, TypeError or RecursionError) when the
    token is malformed in any way, comes from another listing (other filters or operation),
    or does not hold this access path's key.
    """
    decoded = decode_token(token, {"key", "listing"})
    if decoded["listing"] != listing:
        raise InvalidParameterError(
            f"{operation}: nextToken was issued for different filters; repeat the filters "
            "of the call that returned it, or start again without nextToken"
        )
    key = decoded["key"]
    if not isinstance(key, dict) or set(key) != set(selection.key_attributes):
        raise InvalidParameterError(f"{operation}: nextToken is malformed")
    wanted = selection.key_values()
    for name, value in key.items():
        if not _is_key_value(name, value) or wanted.get(name, value) != value:
            raise InvalidParameterError(f"{operation}: nextToken is malformed")
    return key


def _is_key_value(name: str, value: object) -> bool:
    if name == "accountId":
        return ACCOUNT_ID.matches(value)
    if name == "region":
        return REGION.matches(value)
    # sourceServerArn: the table key of a stored item, whatever ARN the sync wrote.
    return isinstance(value, str) and 0 < len(value) <= MAX_KEY_LENGTH


def deadline_guard(
    context: Any, reserve_seconds: float = DEADLINE_RESERVE_SECONDS
) -> Callable[[], bool]:
    """A callable that turns True when the invocation has less than `reserve_seconds` left
    (never, without a Lambda context). Measured from now on the monotonic clock."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if remaining_ms is None:
        return lambda: False
    stop_at = time.monotonic() + float(remaining_ms()) / 1000.0 - reserve_seconds
    return lambda: time.monotonic() >= stop_at
