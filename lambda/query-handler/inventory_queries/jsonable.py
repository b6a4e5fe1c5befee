"""DynamoDB values -> plain JSON values, so every operation's result passes `json.dumps`.

The boto3 resource returns numbers as Decimal, string/number sets as Python sets and binary
as `Binary`; none of them is JSON. The Lambda runtime would fail to serialise the answer
*after* the work is done, so results are converted before they leave an operation.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary


def to_json_value(value: Any) -> Any:
    """Return `value` with Decimal -> int (integral) or float, set -> sorted list,
    Binary/bytes -> base64 string, recursively through dicts and lists.

    Anything else JSON cannot hold is returned as `str(value)` rather than failing.
    """
    if value is None or isinstance(value, bool | str | int | float):
        return value
    if isinstance(value, Decimal):
        # Integral Decimals (counts, epoch seconds, sizes) must stay ints, not 12.0.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    if isinstance(value, set | frozenset):
        # DynamoDB sets are homogeneous (all strings or all numbers), so this order is total.
        return sorted(
            (to_json_value(item) for item in value), key=lambda v: (isinstance(v, str), v)
        )
    if isinstance(value, Binary):
        wrapped: Any = value  # the stubs omit Binary.value, which boto3 documents
        return base64.b64encode(wrapped.value).decode()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    return str(value)
