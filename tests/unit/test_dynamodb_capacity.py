"""DynamoDB item sizes and capacity units, checked against items sized by hand.

The arithmetic of each expected figure is written next to it, by the rules of "DynamoDB
item sizes and formats": names and strings in UTF-8 bytes, numbers 1 byte per two
significant digits + 1, BOOL/NULL 1 byte, lists and maps 3 bytes + 1 per element.
"""

from __future__ import annotations

import base64

import pytest
from moto.dynamodb.models.dynamo_type import DynamoType

from scripts.local.dynamodb_capacity import (
    CapacityMeter,
    IndexSpec,
    ItemState,
    attribute_value_size,
    index_entry,
    index_write_units,
    item_size,
    moto_item_size,
    number_size,
    read_units,
    write_units,
)


@pytest.mark.parametrize(
    ("number", "size"),
    [
        ("0", 1),  # zero: no significant digit, the 1 byte alone
        ("7", 2),  # 1 digit -> ceil(1/2) = 1, + 1
        ("12345", 4),  # 5 digits -> 3, + 1
        ("1200", 2),  # trailing zeros trimmed: "12" -> 1, + 1
        ("0.0012", 2),  # leading zeros trimmed: "12" -> 1, + 1
        ("-12.5", 4),  # "125" -> 2, + 1, + 1 for the sign
        ("1E+3", 2),  # "1" -> 1, + 1
        ("3.14159265358979323846264338327950288", 19),  # 36 digits -> 18, + 1
    ],
)
def test_number_sizes(number: str, size: int) -> None:
    assert number_size(number) == size


def test_scalar_and_container_values() -> None:
    assert attribute_value_size({"S": "héllo"}) == 6  # é is 2 bytes in UTF-8: 4 + 2
    assert attribute_value_size({"B": base64.b64encode(b"\x00\x01\x02").decode()}) == 3  # raw
    assert attribute_value_size({"BOOL": False}) == 1
    assert attribute_value_size({"NULL": True}) == 1
    assert attribute_value_size({"L": []}) == 3  # empty list: the 3 bytes alone
    assert attribute_value_size({"M": {}}) == 3
    # ["ab", 5]: 3 + (1 + 2) + (1 + 2) = 9
    assert attribute_value_size({"L": [{"S": "ab"}, {"N": "5"}]}) == 9
    # {"k": "vv", "n": {"x": true}}: 3 + (1 + 1 + 2) + (1 + 1 + (3 + (1 + 1 + 1))) = 15
    nested = {"M": {"k": {"S": "vv"}, "n": {"M": {"x": {"BOOL": True}}}}}
    assert attribute_value_size(nested) == 15
    assert attribute_value_size({"SS": ["a", "bc"]}) == 3  # sets: elements only, 1 + 2
    assert attribute_value_size({"NS": ["1", "22"]}) == 4  # 2 + 2


def test_a_realistic_inventory_item() -> None:
    item = {
        "sourceServerArn": {"S": "arn:aws:drs:us-east-1:123456789012:source-server/s-1"},
        "accountId": {"S": "123456789012"},
        "region": {"S": "us-east-1"},
        "expiresAt": {"N": "1767225600"},
        "tags": {"M": {"Name": {"S": "web-1"}}},
    }
    expected = (
        (15 + 52)  # "sourceServerArn" + the 52-byte ARN
        + (9 + 12)  # "accountId" + 12 digits as a string
        + (6 + 9)  # "region" + "us-east-1"
        + (9 + 5)  # "expiresAt" + "1767225600": 8 significant digits -> 4, + 1
        + (4 + 3 + 1 + 4 + 5)  # "tags" + map: 3 + (1 + "Name" + "web-1")
    )
    assert item_size(item) == expected == 134


def test_wire_and_moto_sizes_agree() -> None:
    item = {
        "a": {"S": "x" * 10},
        "n": {"N": "-1.50"},
        "m": {"M": {"l": {"L": [{"N": "1"}, {"NULL": True}, {"SS": ["p", "q"]}]}}},
    }
    attrs = {name: DynamoType(value) for name, value in item.items()}
    assert moto_item_size(attrs) == item_size(item)


def test_write_and_read_rounding() -> None:
    assert write_units(0) == 1  # a delete of a missing item still costs 1
    assert write_units(1024) == 1 and write_units(1025) == 2 and write_units(3 * 1024 + 1) == 4
    assert read_units(0, consistent=False) == 0.5
    assert read_units(4096, consistent=True) == 1.0
    assert read_units(4097, consistent=True) == 2.0
    assert read_units(10_000, consistent=False) == 1.5  # ceil(10000 / 4096) = 3, halved


def _attrs(**values: str) -> dict[str, DynamoType]:
    return {name: DynamoType({"S": value}) for name, value in values.items()}


def test_index_writes_follow_the_projection() -> None:
    table_key = ("pk",)
    everything = IndexSpec("all", ("acct", "reg"), table_key, None)
    slim = IndexSpec.from_description(
        {
            "IndexName": "slim",
            "KeySchema": [
                {"AttributeName": "acct", "KeyType": "HASH"},
                {"AttributeName": "reg", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["state"]},
        },
        table_key,
    )
    old = _attrs(pk="p1", acct="a", reg="r", state="OK", blob="x" * 2000)
    # ALL: every attribute; (2 + 2) + (4 + 1) + (3 + 1) + (5 + 2) + (4 + 2000) = 2024 bytes
    entry = index_entry(old, everything)
    assert entry is not None and entry.size == 2024
    # INCLUDE state: pk + acct + reg + state = 4 + 5 + 4 + 7 = 20 bytes
    slim_entry = index_entry(old, slim)
    assert slim_entry is not None and slim_entry.size == 20

    # A change outside the projection writes the ALL index, not the slim one.
    new_blob = _attrs(pk="p1", acct="a", reg="r", state="OK", blob="y" * 2000)
    assert index_write_units(entry, index_entry(new_blob, everything)) == 2  # 2024 B -> 2 KB
    assert index_write_units(slim_entry, index_entry(new_blob, slim)) == 0
    # A projected change writes once; a key change deletes and puts.
    new_state = _attrs(pk="p1", acct="a", reg="r", state="BAD", blob="x" * 2000)
    assert index_write_units(slim_entry, index_entry(new_state, slim)) == 1
    moved = _attrs(pk="p1", acct="a", reg="r2", state="OK")
    assert index_write_units(slim_entry, index_entry(moved, slim)) == 2
    # Sparse: an item without the index key is not in it; entering or leaving costs one write.
    assert index_entry(_attrs(pk="p1", acct="a"), slim) is None
    assert index_write_units(None, slim_entry) == 1 and index_write_units(slim_entry, None) == 1
    assert index_write_units(None, None) == 0


def test_meter_adds_table_and_index_units() -> None:
    meter = CapacityMeter()
    index = IndexSpec("scope", ("acct",), ("pk",), None)
    new = _attrs(pk="p1", acct="a", blob="z" * 1500)  # 2 + (4 + 1) + (4 + 1500) = 1511 B
    meter.request("t", "PutItem")
    meter.write("t", ItemState.of(None, [index]), ItemState.of(new, [index]))
    # A failed condition: units of the larger of stored and sent, no index write.
    meter.write("t", ItemState.of(new, [index]), None, request_size=3000)
    meter.read("t", "scope", 9000, consistent=False)
    usage = meter.snapshot()["t"]
    assert usage["tableWriteUnits"] == 2 + 3  # 1511 B -> 2; max(1511, 3000) -> 3
    assert usage["indexWriteUnits"] == {"scope": 2}
    assert usage["writeUnits"] == 7 and usage["itemsWritten"] == 1
    assert usage["indexReadUnits"] == {"scope": 1.5}  # ceil(9000 / 4096) = 3, halved
    assert usage["requests"] == {"PutItem": 1}
    meter.reset()
    assert meter.snapshot() == {}
