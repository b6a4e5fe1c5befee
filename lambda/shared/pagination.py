"""Opaque continuation tokens over DynamoDB's LastEvaluatedKey."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from shared.exceptions import InvalidParameterError

# A token is urlsafe base64 (as `encode_token` writes it) of a small JSON object. Anything
# longer than this was not issued here: refuse it before decoding a megabyte of input.
MAX_TOKEN_LENGTH = 4096
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]+={0,2}", re.ASCII)


def encode_token(last_evaluated_key: dict[str, Any] | None) -> str | None:
    """Turn a LastEvaluatedKey (plain JSON values) into an opaque string; None stays None."""
    if not last_evaluated_key:
        return None
    raw = json.dumps(last_evaluated_key, sort_keys=True, default=str).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: object, expected_keys: set[str]) -> dict[str, Any]:
    """Turn a token from `encode_token` back into the object it encoded.

    Returns a dict whose keys are exactly `expected_keys`; its values are unchecked JSON
    values, which the caller must check before using them as a DynamoDB key.
    Raises InvalidParameterError for anything else, whatever its shape: not a string, too
    long, not base64, base64 of bytes that are not UTF-8 JSON, JSON nested deeper than the
    parser's recursion limit, or JSON that is not an object with those keys.
    """
    malformed = InvalidParameterError("nextToken is malformed; pass back the token you got")
    if (
        not isinstance(token, str)
        or len(token) > MAX_TOKEN_LENGTH
        or len(token) % 4 != 0
        or not _TOKEN_TEXT.fullmatch(token)
    ):
        raise malformed
    try:
        key = json.loads(base64.urlsafe_b64decode(token))
    except (binascii.Error, ValueError, UnicodeError, RecursionError) as exc:
        raise malformed from exc
    if not isinstance(key, dict) or set(key) != expected_keys:
        raise InvalidParameterError("nextToken does not belong to this listing")
    return key
