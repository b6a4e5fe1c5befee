"""Faster moto DynamoDB hot paths for the local server: the same answers, less time under the lock.

The local moto server answers one request at a time (moto is not thread-safe), so every
millisecond moto spends inside a request is a millisecond every other caller waits. At the
benchmark's scale (30,000 items of ~3 KB), moto 5's generic code made single requests take
seconds, and a sync's 16 workers queued behind them past botocore's 30 s read timeout:

- `Item.project` converts the whole item to plain JSON and back once per projected path
  (`to_regular_json` deep-copies every nested value);
- `Table.query` on an index sorts every item of the table by DynamoType comparisons before
  selecting the partition (for each of a sync's 1,120 scopes, most of them empty),
  deep-copies every selected item, and sizes each one twice;
- `Table.scan` sorts the whole table again for every page and walks past the previous pages
  item by item;
- building an `Item` re-sizes every attribute already set for each attribute added
  (`LimitedSizeDict`), so one write is quadratic in the item's attributes;
- a Query or Scan answer is serialised by walking botocore's output shape value by value,
  about half of a 1 MB page's time.

`install()` replaces those with equivalents that find a partition in an index kept up to
date by every put, delete and update, select before sorting, skip to a page's
start by bisection, share values instead of deep-copying them (a request's answer is built
and serialised under the server's lock, so nothing changes them meanwhile) and size in one
pass, and write a Query or Scan answer with json.dumps (the same JSON the shape walk
writes; binary values base64-encoded as on the wire). Requests the fast paths do not cover
(legacy QueryFilter/ScanFilter, index scans, parallel scan segments, multi-attribute keys)
go to moto's own code unchanged.

The fast Query and Scan also report what each request evaluated to a read observer, which
the capacity meter (`scripts.local.dynamodb_capacity`) turns into read units.

Only installed by the local server when asked (`--fast-dynamodb`), and only on the moto
major version whose internals it mirrors; tests compare its answers with moto's own.
"""

from __future__ import annotations

import base64
import bisect
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import moto
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import table as moto_table
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import GlobalSecondaryIndex, Table
from moto.dynamodb.responses import DynamoHandler

from scripts.local.dynamodb_capacity import IndexSpec, moto_value_size

LOG = logging.getLogger(__name__)

SUPPORTED_MOTO_MAJOR = "5"
# moto's own item size limit (LimitedSizeDict): "between 409 and 410KB" by its authors' tests.
MOTO_ITEM_SIZE_LIMIT = 405_000
RESULT_SIZE_LIMIT = moto_table.RESULT_SIZE_LIMIT

# (table name, index name or None, bytes evaluated, consistent read): one call per request.
ReadObserver = Callable[[str, "str | None", int, bool], None]
_read_observer: ReadObserver | None = None

_EXPECTED_QUERY_PARAMETERS = [
    "self",
    "hash_key",
    "range_comparison",
    "range_objs",
    "limit",
    "exclusive_start_key",
    "scan_index_forward",
    "projection_expressions",
    "index_name",
    "consistent_read",
    "filter_expression",
    "hash_key_conditions",
    "range_key_conditions",
    "filter_kwargs",
]
_EXPECTED_SCAN_PARAMETERS = [
    "self",
    "filters",
    "limit",
    "exclusive_start_key",
    "filter_expression",
    "index_name",
    "consistent_read",
    "projection_expression",
    "segments",
]

_originals: dict[str, Any] = {}


# ---- sizes, items and projections (moto's semantics, one pass) ---------------------------------


def _bytesize(value: str | bytes) -> int:
    return len(value if isinstance(value, bytes) else value.encode("utf-8"))


def _value_size(value: DynamoType) -> int:
    """`DynamoType.size()` as moto defines it (a number counts its characters), without
    re-wrapping every nested value in a new DynamoType."""
    kind, data = value.type, value.value
    if kind == "N":
        return len(str(data))
    if kind in ("SS", "NS", "BS"):
        if kind == "NS":
            return sum(len(str(v)) for v in data)
        return sum(_bytesize(v) for v in data)
    if kind == "L":
        return sum(_value_size(_typed(v)) for v in data)
    if kind == "M":
        return sum(_bytesize(k) + _value_size(_typed(v)) for k, v in data.items())
    if isinstance(data, bool):
        return 1
    return _bytesize(data)


def _typed(value: Any) -> DynamoType:
    return value if type(value) is DynamoType else DynamoType(value)


def _item_size(self: Item) -> int:
    return sum(_bytesize(key) + _value_size(value) for key, value in self.attrs.items())


def _dynamo_type_size(self: DynamoType) -> int:
    return _value_size(self)


def _item_init(
    self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]
) -> None:
    """moto's Item.__init__ with its size limit checked once, not once per attribute."""
    self.hash_key = hash_key
    self.range_key = range_key
    built = LimitedSizeDict.__new__(LimitedSizeDict)
    total = 0
    for key, value in attrs.items():
        typed = DynamoType(value)
        total += _bytesize(key) + _value_size(typed)
        dict.__setitem__(built, key, typed)
    if total > MOTO_ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    self.attrs = built


def _new_item(hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> Item:
    item = Item.__new__(Item)
    item.hash_key = hash_key
    item.range_key = range_key
    built = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.update(built, attrs)
    item.attrs = built
    return item


def _top_level(path: list[str]) -> bool:
    return len(path) == 1 and "[" not in path[0]


def _project(self: Item, projection_expressions: list[list[str]]) -> Item:
    """Top-level attributes are picked (values shared); nested paths take moto's way."""
    if not all(_top_level(path) for path in projection_expressions):
        return _originals["Item.project"](self, projection_expressions)  # type: ignore[no-any-return]
    picked = {
        path[0]: self.attrs[path[0]] for path in projection_expressions if path[0] in self.attrs
    }
    return _new_item(self.hash_key, self.range_key, picked)


# ---- Query and Scan ----------------------------------------------------------------------------


def _stored_items(table: Table) -> Iterator[Item]:
    if table.range_key_attr:
        for by_range in table.items.values():
            yield from by_range.values()
    else:
        yield from table.items.values()


def _sort_value(value: DynamoType) -> Any:
    return value.value if value.type == "S" else value.cast_value


def _index_spec(table: Table, index: Any) -> IndexSpec:
    return IndexSpec.from_description(
        {"IndexName": index.name, "KeySchema": index.schema, "Projection": index.projection},
        table.table_key_attrs,
    )


def _start_position(
    keys: list[tuple[Any, ...]], start: tuple[Any, ...] | None, forward: bool
) -> int:
    """Index of the first item after `start` in a list sorted ascending (forward) or
    descending (backward); items at or before the start key were on earlier pages."""
    if start is None:
        return 0
    if forward:
        return bisect.bisect_right(keys, start)
    # Descending keys: count those >= start via the negated order of an ascending copy.
    low, high = 0, len(keys)
    while low < high:
        middle = (low + high) // 2
        if keys[middle] >= start:
            low = middle + 1
        else:
            high = middle
    return low


def _start_key(
    exclusive_start_key: dict[str, Any] | None, attributes: list[str]
) -> tuple[Any, ...] | None | bool:
    """The start key's sort tuple; None without one; False when it lacks a sort attribute."""
    if exclusive_start_key is None:
        return None
    if any(name not in exclusive_start_key for name in attributes):
        return False
    return tuple(_sort_value(DynamoType(exclusive_start_key[name])) for name in attributes)


# Per stored item, per attribute: (moto's size, DynamoDB's size), name included. Reads size
# the same unchanged items run after run; an update changes its item in place, so every
# UpdateItem (transactions' included) drops its item's entry (see `_update_item`).
_SIZES = "_local_attribute_sizes"


def _attribute_sizes(item: Item) -> dict[str, tuple[int, int]]:
    sizes: dict[str, tuple[int, int]] | None = item.__dict__.get(_SIZES)
    if sizes is None:
        sizes = {
            name: (_bytesize(name) + _value_size(value), _bytesize(name) + moto_value_size(value))
            for name, value in item.attrs.items()
        }
        item.__dict__[_SIZES] = sizes
    return sizes


def _stored(table: Table, key: dict[str, Any]) -> Item | None:
    """The item `key` (a request's Key map) names in `table`, or None (any malformed key)."""
    if not isinstance(key, dict) or table.hash_key_attr not in key:
        return None
    ranged = bool(table.range_key_attr) and table.range_key_attr in key
    try:
        return table.get_item(
            DynamoType(key[table.hash_key_attr]),
            DynamoType(key[table.range_key_attr]) if ranged else None,
        )
    except Exception:  # moto answers this key's error itself
        return None


def _update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """moto's update (it changes the stored item in place), then the item's cached sizes
    forgotten and its index partitions corrected, even if the update failed part-way."""
    table = self.tables.get(table_name)
    before = _stored(table, key) if table is not None else None
    groups = _group_keys(table, before) if before is not None else {}
    try:
        return _originals["DynamoDBBackend.update_item"](self, table_name, key, *args, **kwargs)
    finally:
        after = _stored(table, key) if table is not None else None
        if after is not None:
            after.__dict__.pop(_SIZES, None)
        if table is not None:
            _move(table, before, groups, after)


# ---- index partitions -------------------------------------------------------------------------

# Per table, per index queried: {partition key value: {primary key: item}}, kept up to date
# by every put, delete and update, so a Query finds its partition without walking the table
# (the sync asks every one of 1,120 scopes, most of them empty).
_PARTITIONS = "_local_partitions"


def _value_key(value: DynamoType) -> tuple[str, Any]:
    # Numbers by value (moto matches 1 and 1.0), everything else by its wire form.
    return (value.type, value.cast_value if value.type == "N" else value.value)


def _primary_key(item: Item) -> tuple[Any, ...]:
    range_key = item.range_key
    return (
        _value_key(item.hash_key),
        None if range_key is None else _value_key(range_key),
    )


def _partition_indexes(table: Table) -> dict[str, tuple[str, dict[Any, dict[Any, Item]]]]:
    cached: dict[str, tuple[str, dict[Any, dict[Any, Item]]]] = table.__dict__.get(_PARTITIONS, {})
    return cached


def _partitions(table: Table, index_name: str, hash_name: str) -> dict[Any, dict[Any, Item]]:
    """The partitions of `index_name` (partition key attribute `hash_name`), built on first use
    and rebuilt if moto replaced the table's items (a restore)."""
    cached = table.__dict__.setdefault(_PARTITIONS, {})
    entry = cached.get(index_name)
    if entry is None or entry[2] is not table.items:
        groups: dict[Any, dict[Any, Item]] = {}
        for item in _stored_items(table):
            value = item.attrs.get(hash_name)
            if value is not None:
                groups.setdefault(_value_key(value), {})[_primary_key(item)] = item
        entry = (hash_name, groups, table.items)
        cached[index_name] = entry
    return entry[1]


def _group_keys(table: Table, item: Item) -> dict[str, Any]:
    """Per cached index: the partition `item` is in now (None: not in that index)."""
    keys = {}
    for index_name, (hash_name, _groups, _items) in _partition_indexes(table).items():
        value = item.attrs.get(hash_name)
        keys[index_name] = None if value is None else _value_key(value)
    return keys


def _move(table: Table, old: Item | None, old_groups: dict[str, Any], new: Item | None) -> None:
    """Keep every cached partition index right after `old` (in `old_groups`) became `new`."""
    for index_name, (hash_name, groups, _items) in _partition_indexes(table).items():
        if old is not None and old_groups.get(index_name) is not None:
            group = groups.get(old_groups[index_name])
            if group is not None:
                group.pop(_primary_key(old), None)
        if new is not None:
            value = new.attrs.get(hash_name)
            if value is not None:
                groups.setdefault(_value_key(value), {})[_primary_key(new)] = new


def _put_item(self: Table, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Item:
    if not _partition_indexes(self):
        return _originals["Table.put_item"](self, item_attrs, *args, **kwargs)  # type: ignore[no-any-return]
    old = _stored(self, item_attrs)
    old_groups = _group_keys(self, old) if old is not None else {}
    item: Item = _originals["Table.put_item"](self, item_attrs, *args, **kwargs)
    _move(self, old, old_groups, item)
    return item


def _delete_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
    item: Item | None = _originals["Table.delete_item"](self, hash_key, range_key)
    if item is not None and _partition_indexes(self):
        _move(self, item, _group_keys(self, item), None)
    return item


def _page(
    candidates: list[Item],
    position: int,
    limit: int | None,
    matches: Callable[[Item], bool] | None = None,
) -> tuple[list[Item], bool]:
    """The items of one page from `position`: at most `limit` and at most 1 MB (moto's
    sizes); whether more remain. As moto does, the limits are checked before each candidate
    (matching `matches` or not), so a page that fills up reports more while any candidate,
    even one the key condition will leave out, follows it."""
    page: list[Item] = []
    size = 0
    for item in candidates[position:]:
        item_bytes = sum(moto for moto, _ in _attribute_sizes(item).values())
        if len(page) == limit or size + item_bytes > RESULT_SIZE_LIMIT:
            return page, True
        if matches is None or matches(item):
            page.append(item)
            size += item_bytes
    return page, False


def _finish(
    table: Table,
    page: list[Item],
    more: bool,
    index: Any,
    index_name: str | None,
    filter_expression: Any,
    projection: list[list[str]] | None,
) -> tuple[list[Item], int, dict[str, Any] | None]:
    results = [index.project(item) for item in page] if index is not None else list(page)
    if filter_expression is not None:
        results = [item for item in results if filter_expression.expr(item)]
    if projection:
        results = [item.project(projection) for item in results]
    last_key = table._get_last_evaluated_key(page[-1], index_name) if more and page else None
    return results, len(page), last_key


def _observe(table: Table, index: Any, page: Iterable[Item], consistent: bool) -> None:
    observer = _read_observer
    if observer is None:
        return
    if index is None:
        size = sum(ddb for item in page for _, ddb in _attribute_sizes(item).values())
        observer(table.name, None, size, consistent)
        return
    spec = _index_spec(table, index)
    size = sum(
        ddb
        for item in page
        for name, (_, ddb) in _attribute_sizes(item).items()
        if spec.includes(name)
    )
    observer(table.name, index.name, size, consistent)


def _query(
    self: Table,
    hash_key: DynamoType | None,
    range_comparison: str | None,
    range_objs: list[DynamoType],
    limit: int,
    exclusive_start_key: dict[str, Any],
    scan_index_forward: bool,
    projection_expressions: list[list[str]] | None,
    index_name: str | None = None,
    consistent_read: bool = False,
    filter_expression: Any = None,
    hash_key_conditions: list[tuple[str, DynamoType]] | None = None,
    range_key_conditions: list[tuple[str, str, list[DynamoType]]] | None = None,
    **filter_kwargs: Any,
) -> tuple[list[Item], int, dict[str, Any] | None]:
    def moto_query() -> tuple[list[Item], int, dict[str, Any] | None]:
        return _originals["Table.query"](  # type: ignore[no-any-return]
            self,
            hash_key,
            range_comparison,
            range_objs,
            limit,
            exclusive_start_key,
            scan_index_forward,
            projection_expressions,
            index_name,
            consistent_read,
            filter_expression,
            hash_key_conditions=hash_key_conditions,
            range_key_conditions=range_key_conditions,
            **filter_kwargs,
        )

    if filter_kwargs or len(hash_key_conditions or ()) > 1 or len(range_key_conditions or ()) > 1:
        return moto_query()
    index = None
    if index_name is not None:
        index = {ix.name: ix for ix in self.all_indexes()}.get(index_name)
        if index is None or (consistent_read and isinstance(index, GlobalSecondaryIndex)):
            return moto_query()  # moto raises the proper ValidationException
        hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
        ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
        if len(hashes) != 1 or len(ranges) > 1 or (range_comparison and not ranges):
            return moto_query()
        hash_name, range_name = hashes[0], (ranges[0] if ranges else None)
        wanted = hash_key_conditions[0][1] if hash_key_conditions else hash_key
        if wanted is None:
            return moto_query()
        partition = _partitions(self, index_name, hash_name).get(_value_key(wanted), {})
        candidates = [
            item
            for item in partition.values()
            if range_name is None or item.attrs.get(range_name) is not None
        ]
        sort_by = [hash_name, *([range_name] if range_name else []), self.hash_key_attr]
        if self.range_key_attr:
            sort_by.append(self.range_key_attr)
    else:
        if hash_key is None:
            return moto_query()
        stored = self.items.get(hash_key)
        if stored is None:
            candidates = []
        elif self.range_key_attr:
            candidates = list(stored.values())
        else:
            candidates = [stored]
        range_name = self.range_key_attr
        sort_by = [self.hash_key_attr, *([range_name] if range_name else [])]

    matches = None
    if range_comparison:
        compared = range_key_conditions[-1][0] if range_key_conditions else range_name

        def matches(item: Item) -> bool:
            value = item.attrs.get(compared) if compared is not None else None
            return value is not None and bool(value.compare(range_comparison, range_objs))

    start = _start_key(exclusive_start_key, sort_by)
    if start is False:
        return moto_query()
    keyed = sorted(
        ((tuple(_sort_value(item.attrs[name]) for name in sort_by), item) for item in candidates),
        key=lambda pair: pair[0],
        reverse=not scan_index_forward,
    )
    keys = [key for key, _ in keyed]
    ordered = [item for _, item in keyed]
    position = _start_position(keys, start, scan_index_forward)  # type: ignore[arg-type]
    page, more = _page(ordered, position, limit, matches)
    _observe(self, index, page, consistent_read)
    return _finish(self, page, more, index, index_name, filter_expression, projection_expressions)


def _scan(
    self: Table,
    filters: dict[str, Any],
    limit: int,
    exclusive_start_key: dict[str, Any],
    filter_expression: Any = None,
    index_name: str | None = None,
    consistent_read: bool = False,
    projection_expression: list[list[str]] | None = None,
    segments: tuple[None, None] | tuple[int, int] = (None, None),
) -> tuple[list[Item], int, dict[str, Any] | None]:
    sort_by = [self.hash_key_attr, *([self.range_key_attr] if self.range_key_attr else [])]
    start = _start_key(exclusive_start_key, sort_by)
    if filters or index_name or tuple(segments) != (None, None) or start is False:
        return _originals["Table.scan"](  # type: ignore[no-any-return]
            self,
            filters,
            limit,
            exclusive_start_key,
            filter_expression,
            index_name,
            consistent_read,
            projection_expression,
            segments=segments,
        )
    keyed = sorted(
        (
            (tuple(_sort_value(item.attrs[name]) for name in sort_by), item)
            for item in _stored_items(self)
        ),
        key=lambda pair: pair[0],
    )
    keys = [key for key, _ in keyed]
    ordered = [item for _, item in keyed]
    page, more = _page(ordered, _start_position(keys, start, True), limit)  # type: ignore[arg-type]
    _observe(self, None, page, consistent_read)
    return _finish(self, page, more, None, None, filter_expression, projection_expression)


# ---- answers ----------------------------------------------------------------------------------


def _wire_bytes(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_answer(handler_method: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A DynamoHandler method whose answer is written with json.dumps instead of moto's
    shape-walking serializer; errors and anything not a plain dict take moto's way."""

    def answer(self: Any) -> Any:
        result = handler_method(self)
        payload = getattr(result, "result", None)
        if not isinstance(payload, dict):
            return result
        try:
            return json.dumps(payload, default=_wire_bytes, separators=(",", ":"))
        except (TypeError, ValueError):
            return result

    answer.__name__ = getattr(handler_method, "__name__", "answer")
    return answer


# ---- installation ------------------------------------------------------------------------------


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def compatible() -> str | None:
    """None when this moto's internals are the ones mirrored here; else why not."""
    if moto.__version__.split(".", 1)[0] != SUPPORTED_MOTO_MAJOR:
        return f"moto {moto.__version__} (the fast paths mirror moto {SUPPORTED_MOTO_MAJOR}.x)"
    if _parameters(_originals.get("Table.query", Table.query)) != _EXPECTED_QUERY_PARAMETERS:
        return "moto's Table.query signature changed"
    if _parameters(_originals.get("Table.scan", Table.scan)) != _EXPECTED_SCAN_PARAMETERS:
        return "moto's Table.scan signature changed"
    if _parameters(_originals.get("Item.__init__", Item.__init__)) != [
        "self",
        "hash_key",
        "range_key",
        "attrs",
    ]:
        return "moto's Item constructor changed"
    if not hasattr(Table, "_get_last_evaluated_key") or not hasattr(Table, "all_indexes"):
        return "moto's Table helpers changed"
    if not all(hasattr(DynamoHandler, name) for name in ("query", "scan", "call_action")):
        return "moto's DynamoHandler changed"
    update = _originals.get("DynamoDBBackend.update_item", DynamoDBBackend.update_item)
    if _parameters(update)[:3] != ["self", "table_name", "key"]:
        return "moto's DynamoDBBackend.update_item signature changed"
    if _parameters(_originals.get("Table.put_item", Table.put_item))[:2] != ["self", "item_attrs"]:
        return "moto's Table.put_item signature changed"
    delete = _originals.get("Table.delete_item", Table.delete_item)
    if _parameters(delete) != ["self", "hash_key", "range_key"]:
        return "moto's Table.delete_item signature changed"
    return None


def install(read_observer: ReadObserver | None = None) -> bool:
    """Patch moto's DynamoDB model in this process; returns False (and patches nothing)
    when this moto is not one the fast paths mirror. Idempotent; `read_observer` replaces
    any earlier one."""
    global _read_observer
    problem = compatible()
    if problem is not None:
        LOG.warning("moto speedups not installed: %s", problem)
        return False
    _read_observer = read_observer
    if _originals:
        return True
    _originals.update(
        {
            "Item.__init__": Item.__init__,
            "Item.size": Item.size,
            "Item.project": Item.project,
            "DynamoType.size": DynamoType.size,
            "Table.query": Table.query,
            "Table.scan": Table.scan,
            "DynamoHandler.query": DynamoHandler.query,
            "DynamoHandler.scan": DynamoHandler.scan,
            "DynamoDBBackend.update_item": DynamoDBBackend.update_item,
            "Table.put_item": Table.put_item,
            "Table.delete_item": Table.delete_item,
        }
    )
    Item.__init__ = _item_init  # type: ignore[method-assign]
    Item.size = _item_size  # type: ignore[method-assign]
    Item.project = _project  # type: ignore[method-assign]
    DynamoType.size = _dynamo_type_size  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    Table.scan = _scan  # type: ignore[method-assign]
    DynamoHandler.query = _json_answer(_originals["DynamoHandler.query"])  # type: ignore[method-assign]
    DynamoHandler.scan = _json_answer(_originals["DynamoHandler.scan"])  # type: ignore[method-assign]
    DynamoDBBackend.update_item = _update_item  # type: ignore[method-assign]
    Table.put_item = _put_item  # type: ignore[method-assign]
    Table.delete_item = _delete_item  # type: ignore[method-assign]
    return True


def installed() -> bool:
    return bool(_originals)
