"""Pure predicates over inventory items: tags (with precedence), hostname, deletion.

Tag precedence: an item has two tag maps, `tags` (the DRS source server's tags) and
`ec2.tags` (its origin EC2 instance's tags, only for EC2-origin servers that were found).
The *effective* tags are the EC2 tags overlaid by the DRS tags: **on the same key the DRS
tag wins**, because DRS tags are what protection groups and recovery plans are defined on
and they are set deliberately on the DRS record; an EC2 tag fills in only keys the DRS
record does not have. Keys and values compare exactly (case-sensitive), as AWS tags do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def effective_tags(item: Mapping[str, Any]) -> dict[str, str]:
    """The item's tags for matching: EC2 tags, then DRS tags over them (DRS wins)."""
    ec2 = item.get("ec2") or {}
    merged = {str(k): str(v) for k, v in (ec2.get("tags") or {}).items()}
    merged.update({str(k): str(v) for k, v in (item.get("tags") or {}).items()})
    return merged


def tags_match(item: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    """True when every wanted key is among the effective tags with exactly the wanted value."""
    tags = effective_tags(item)
    return all(key in tags and tags[key] == value for key, value in wanted.items())


def has_tag(item: Mapping[str, Any], key: str, value: str | None = None) -> bool:
    """True when the effective tags hold `key` (with `value`, when given)."""
    tags = effective_tags(item)
    return key in tags and (value is None or tags[key] == value)


def hostname_contains(item: Mapping[str, Any], fragment: str) -> bool:
    """Case-insensitive substring match on `hostname` (DNS names are case-insensitive)."""
    hostname = item.get("hostname")
    return isinstance(hostname, str) and fragment.casefold() in hostname.casefold()


def is_deleted(item: Mapping[str, Any]) -> bool:
    """Soft-deleted items carry `deletedAt` (and a TTL `expiresAt`) until DynamoDB expires them."""
    return bool(item.get("deletedAt"))
