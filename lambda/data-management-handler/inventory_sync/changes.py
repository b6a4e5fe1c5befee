"""What a dry run shows per server: pure functions from stored and new items to plan entries.

A plan entry names one server (ARN, ID, hostname) and, for a changed one, the inventory
item attributes whose values would change. Entries are bounded in size so the whole plan
has a worst case (see report.MAX_PLAN_SERVERS).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from inventory_sync.records import CONTENT_DIGEST, stable_view

# The kinds of change a plan lists, in the order a reader sees them.
KINDS = ("added", "changed", "softDeleted", "revived", "held")
# Attributes that say when or how an item was written, not what it says about the server.
BOOKKEEPING = frozenset({"lastSyncTime", CONTENT_DIGEST, "deletedAt", "expiresAt", "drsTruncated"})
# What one entry may hold: a DNS name is at most 253 characters; an item has 14 contract
# attributes and a DRS record fewer than 20 top-level keys, so 24 names with room to spare.
MAX_HOSTNAME_CHARS = 255
MAX_FIELDS = 24
MAX_FIELD_CHARS = 48
# Projection of a stored item for an entry of a server that is not listed (soft-deleted, held).
ENTRY_PROJECTION = "sourceServerArn, sourceServerID, hostname"


def server_entry(item: dict[str, Any], fields: list[str] | None = None) -> dict[str, Any]:
    """The plan entry of an inventory item (stored or about to be written): its ARN, ID and
    hostname, and `fields` (the changed attribute names) when given."""
    arn = str(item.get("sourceServerArn", ""))
    entry: dict[str, Any] = {
        "sourceServerArn": arn,
        "sourceServerID": str(item.get("sourceServerID") or arn.rsplit("/", 1)[-1]),
        "hostname": _bounded_text(item.get("hostname"), MAX_HOSTNAME_CHARS),
    }
    if fields is not None:
        entry["fields"] = [_bounded_text(name, MAX_FIELD_CHARS) for name in fields[:MAX_FIELDS]]
    return entry


def _bounded_text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


def changed_fields(stored: dict[str, Any], new: dict[str, Any], now_epoch: float) -> list[str]:
    """The top-level attributes of `new` (an inventory item) whose values differ from
    `stored` (the same server's item as read back), bookkeeping ignored, sorted. The raw
    DRS record is compared key by key (`drs.<key>`), its volatile figures as the content
    digest sees them (`records.stable_view`), so a lag that moved within its band is no
    change; only when nothing else differs are its raw keys compared."""
    names = (set(stored) | set(new)) - BOOKKEEPING - {"drs"}
    fields = sorted(name for name in names if stored.get(name) != new.get(name))
    old_drs, new_drs = stored.get("drs"), new.get("drs")
    if isinstance(old_drs, dict) and isinstance(new_drs, dict):
        keys = _differing_keys(
            stable_view(_plain(old_drs), now_epoch), stable_view(_plain(new_drs), now_epoch)
        )
        if not keys and not fields:
            # The digest saw a change the stable views at one instant do not (a volatile
            # figure that crossed a band since the stored item was written): name it.
            keys = _differing_keys(old_drs, new_drs)
        fields.extend(f"drs.{key}" for key in keys)
    elif old_drs != new_drs:
        fields.append("drs")
    return fields


def _differing_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(str(key) for key in set(old) | set(new) if old.get(key) != new.get(key))


def _plain(value: Any) -> Any:
    """`value` with DynamoDB's Decimals as ints or floats, as the digest saw the record."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_plain(member) for member in value]
    return value


def bounded(entries: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """One kind of change in one scope: how many, the first entries (by ARN), the rest as
    a count. `entries` are already bounded by the caller (at most the plan limit)."""
    return {"count": count, "servers": entries, "more": max(0, count - len(entries))}


def empty_kinds() -> dict[str, dict[str, Any]]:
    return {kind: bounded([], 0) for kind in KINDS}
