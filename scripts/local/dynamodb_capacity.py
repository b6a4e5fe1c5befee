"""DynamoDB capacity units of requests, by DynamoDB's item-size rules (what on-demand bills).

Sizes follow "DynamoDB item sizes and formats" (Amazon DynamoDB Developer Guide):

- an item is the sum over its attributes of (UTF-8 bytes of the name) + (size of the value);
- S: UTF-8 bytes; B: raw bytes (the wire carries base64; the decoded length counts);
- N: 1 byte per two significant digits + 1 byte ("approximately", says the guide: leading
  and trailing zeros are trimmed; a negative number is counted one byte more, as public
  calculators do; DynamoDB's exact packing can differ by a byte for some numbers);
- BOOL and NULL: 1 byte;
- L and M: 3 bytes + 1 byte per element + the elements' sizes (a map element's size
  includes its key's UTF-8 bytes);
- SS/NS/BS: the sum of the elements' sizes (the guide names no set overhead).

Units ("Read and write operations" and "Global secondary indexes", same guide):

- a write (PutItem, UpdateItem, DeleteItem, each request of a BatchWriteItem) costs
  ceil(max(size before, size after) / 1 KB) units, at least 1 (a delete of a missing item
  costs 1); a write whose condition fails costs the same for the larger of the stored item
  and the item sent, and writes no index;
- each global secondary index the item is in, before or after, costs its own write of the
  projected entry (table key + index key + projected attributes): a put when the item enters
  the index, a delete when it leaves, a delete plus a put when its index key changes, one
  write of the larger entry when projected attributes change, nothing when they do not;
- Query and Scan cost ceil(sum of the sizes of the items evaluated / 4 KB) per request,
  whatever the projection, filter or Select=COUNT (on an index: the projected entries);
  GetItem ceil(size / 4 KB) per item; at least 1 per request or item; eventually consistent
  reads cost half.

Approximations (documented, not hidden): a Query or Scan that reads nothing is charged one
unit (DynamoDB charges "based on the number of partitions searched"); the projected entry
carries no per-entry overhead (the 100 bytes per item are storage, not throughput);
transactions are counted as requests but not metered.
"""

from __future__ import annotations

import base64
import binascii
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
CONTAINER_OVERHEAD = 3  # a list or map, whatever it holds
ELEMENT_OVERHEAD = 1  # each element of a list or map
SCALAR_ONE_BYTE = 1  # BOOL, NULL


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def number_size(text: str) -> int:
    """Bytes of a DynamoDB number given as its wire string (e.g. "-12.50", "1E+3")."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return _utf8(text)  # not a number DynamoDB would accept: count its characters
    if value.is_zero():
        return SCALAR_ONE_BYTE
    # The digit tuple never holds leading zeros; trailing ones are trimmed here (normalize()
    # would round to the context's 28 digits, and DynamoDB keeps 38).
    digits = value.as_tuple().digits
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:
        significant -= 1
    return math.ceil(significant / 2) + 1 + (1 if value < 0 else 0)


def binary_size(value: str | bytes) -> int:
    """Raw bytes of a binary value (a base64 string as on the wire, or bytes)."""
    if isinstance(value, bytes | bytearray):
        return len(value)
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return _utf8(value)


def attribute_value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one wire-form AttributeValue (`{"S": "x"}`, `{"M": {...}}`, ...), name excluded."""
    ((kind, data),) = value.items()
    if kind == "S":
        return _utf8(data)
    if kind == "N":
        return number_size(data)
    if kind == "B":
        return binary_size(data)
    if kind in ("BOOL", "NULL"):
        return SCALAR_ONE_BYTE
    if kind == "L":
        return CONTAINER_OVERHEAD + sum(ELEMENT_OVERHEAD + attribute_value_size(v) for v in data)
    if kind == "M":
        return CONTAINER_OVERHEAD + sum(
            ELEMENT_OVERHEAD + _utf8(k) + attribute_value_size(v) for k, v in data.items()
        )
    if kind == "SS":
        return sum(_utf8(v) for v in data)
    if kind == "NS":
        return sum(number_size(v) for v in data)
    if kind == "BS":
        return sum(binary_size(v) for v in data)
    raise ValueError(f"unknown AttributeValue type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes of a wire-form item: attribute names plus values."""
    return sum(_utf8(name) + attribute_value_size(value) for name, value in item.items())


def write_units(size_bytes: int) -> int:
    """Write units of one item write: 1 per started KB, at least 1."""
    return max(1, math.ceil(size_bytes / WRITE_UNIT_BYTES))


def read_units(size_bytes: int, consistent: bool) -> float:
    """Read units of one read request (or one GetItem item) of `size_bytes` in total."""
    units = max(1, math.ceil(size_bytes / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


# ---- items as moto stores them -----------------------------------------------------------------


def moto_value_size(value: Any) -> int:
    """`attribute_value_size` of a moto DynamoType (map and list members are DynamoTypes)."""
    kind, data = value.type, value.value
    if kind == "S":
        return _utf8(data)
    if kind == "N":
        return number_size(str(data))
    if kind == "B":
        return binary_size(data)
    if kind in ("BOOL", "NULL"):
        return SCALAR_ONE_BYTE
    if kind == "L":
        return CONTAINER_OVERHEAD + sum(ELEMENT_OVERHEAD + moto_value_size(v) for v in data)
    if kind == "M":
        return CONTAINER_OVERHEAD + sum(
            ELEMENT_OVERHEAD + _utf8(k) + moto_value_size(v) for k, v in data.items()
        )
    if kind == "SS":
        return sum(_utf8(v) for v in data)
    if kind == "NS":
        return sum(number_size(str(v)) for v in data)
    if kind == "BS":
        return sum(binary_size(v) for v in data)
    raise ValueError(f"unknown AttributeValue type {kind!r}")


def _canonical(value: Any) -> Any:
    """A hashable form of a moto DynamoType: equal content, equal form (sets unordered)."""
    kind, data = value.type, value.value
    if kind == "L":
        return (kind, tuple(_canonical(v) for v in data))
    if kind == "M":
        return (kind, tuple(sorted((k, _canonical(v)) for k, v in data.items())))
    if kind in ("SS", "NS", "BS"):
        return (kind, frozenset(data))
    return (kind, data)


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index as the meter needs it: key attributes and what it projects.

    `projected` is None for ProjectionType ALL; otherwise the non-key attributes projected
    (empty for KEYS_ONLY).
    """

    name: str
    key_attributes: tuple[str, ...]  # the index's HASH (and RANGE) attributes
    table_key_attributes: tuple[str, ...]
    projected: frozenset[str] | None

    @classmethod
    def from_description(
        cls, description: Mapping[str, Any], table_key_attributes: Iterable[str]
    ) -> IndexSpec:
        """From a DescribeTable GlobalSecondaryIndexes entry (or CreateTable's)."""
        projection = description.get("Projection") or {}
        kind = projection.get("ProjectionType", "ALL")
        projected = None
        if kind == "KEYS_ONLY":
            projected = frozenset()
        elif kind == "INCLUDE":
            projected = frozenset(projection.get("NonKeyAttributes") or ())
        return cls(
            name=description["IndexName"],
            key_attributes=tuple(key["AttributeName"] for key in description["KeySchema"]),
            table_key_attributes=tuple(table_key_attributes),
            projected=projected,
        )

    def includes(self, attribute: str) -> bool:
        return (
            self.projected is None
            or attribute in self.projected
            or attribute in self.key_attributes
            or attribute in self.table_key_attributes
        )


@dataclass(frozen=True)
class IndexEntry:
    """An item's entry in one index: its index key, projected size and projected content."""

    key: tuple[Any, ...]
    size: int
    content: Any


def index_entry(
    attrs: Mapping[str, Any] | None,
    index: IndexSpec,
    sizes: Mapping[str, int] | None = None,
    canonical: Mapping[str, Any] | None = None,
) -> IndexEntry | None:
    """The entry a moto item (attrs name -> DynamoType) has in `index`; None when absent
    (no item, or an index key attribute missing: the index is sparse). `sizes` and
    `canonical` (per attribute, name included / `_canonical` of the value) save sizing the
    same item once per index."""
    if attrs is None or any(name not in attrs for name in index.key_attributes):
        return None
    size = 0
    content = []
    for name, value in attrs.items():
        if index.includes(name):
            size += sizes[name] if sizes is not None else _utf8(name) + moto_value_size(value)
            form = canonical[name] if canonical is not None else _canonical(value)
            content.append((name, form))
    key = tuple(
        canonical[name] if canonical is not None else _canonical(attrs[name])
        for name in index.key_attributes
    )
    return IndexEntry(key, size, frozenset(content))


def index_write_units(before: IndexEntry | None, after: IndexEntry | None) -> int:
    """Write units one table write costs in one index (see the module docstring)."""
    if before is None and after is None:
        return 0
    if before is None:
        assert after is not None
        return write_units(after.size)
    if after is None:
        return write_units(before.size)
    if before.key != after.key:
        return write_units(before.size) + write_units(after.size)
    if before.content == after.content:
        return 0
    return write_units(max(before.size, after.size))


def moto_item_size(attrs: Mapping[str, Any] | None) -> int:
    """`item_size` of a moto item's attrs (0 for no item)."""
    if attrs is None:
        return 0
    return sum(_utf8(name) + moto_value_size(value) for name, value in attrs.items())


@dataclass(frozen=True)
class ItemState:
    """What the meter keeps of an item before or after a write (the item itself may change)."""

    size: int
    entries: Mapping[str, IndexEntry | None]

    @classmethod
    def of(cls, attrs: Mapping[str, Any] | None, indexes: Iterable[IndexSpec]) -> ItemState:
        indexes = list(indexes)
        if attrs is None:
            return cls(0, {ix.name: None for ix in indexes})
        # Each attribute sized (and its content taken) once, whatever the number of indexes.
        sizes = {name: _utf8(name) + moto_value_size(value) for name, value in attrs.items()}
        canonical = {name: _canonical(value) for name, value in attrs.items()} if indexes else {}
        return cls(
            sum(sizes.values()),
            {ix.name: index_entry(attrs, ix, sizes, canonical) for ix in indexes},
        )


# ---- the meter ---------------------------------------------------------------------------------


@dataclass
class TableUsage:
    """Units and requests one table consumed since the last reset."""

    table_write_units: int = 0
    index_write_units: Counter[str] = field(default_factory=Counter)
    table_read_units: float = 0.0
    index_read_units: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    requests: Counter[str] = field(default_factory=Counter)
    items_written: int = 0
    unmetered: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        index_writes = sum(self.index_write_units.values())
        index_reads = sum(self.index_read_units.values())
        return {
            "writeUnits": self.table_write_units + index_writes,
            "tableWriteUnits": self.table_write_units,
            "indexWriteUnits": dict(self.index_write_units),
            "readUnits": self.table_read_units + index_reads,
            "tableReadUnits": self.table_read_units,
            "indexReadUnits": dict(self.index_read_units),
            "requests": dict(self.requests),
            "itemsWritten": self.items_written,
            "unmeteredRequests": dict(self.unmetered),
        }


class CapacityMeter:
    """Capacity units per table, fed by the local moto server; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, TableUsage] = defaultdict(TableUsage)

    def reset(self) -> None:
        with self._lock:
            self._tables.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {name: usage.to_dict() for name, usage in sorted(self._tables.items())}

    def request(self, table: str, operation: str) -> None:
        with self._lock:
            self._tables[table].requests[operation] += 1

    def unmetered(self, table: str, operation: str) -> None:
        with self._lock:
            self._tables[table].unmetered[operation] += 1

    def write(
        self,
        table: str,
        before: ItemState,
        after: ItemState | None,
        request_size: int = 0,
    ) -> None:
        """One item write. `after` None: the condition failed (nothing changed)."""
        with self._lock:
            usage = self._tables[table]
            if after is None:
                usage.table_write_units += write_units(max(before.size, request_size))
                return
            usage.table_write_units += write_units(max(before.size, after.size))
            usage.items_written += 1
            for name, entry in before.entries.items():
                units = index_write_units(entry, after.entries.get(name))
                if units:
                    usage.index_write_units[name] += units

    def read(self, table: str, index: str | None, size_bytes: int, consistent: bool) -> None:
        """One read request (or one GetItem item) of `size_bytes` evaluated in total."""
        units = read_units(size_bytes, consistent)
        with self._lock:
            usage = self._tables[table]
            if index is None:
                usage.table_read_units += units
            else:
                usage.index_read_units[index] += units
