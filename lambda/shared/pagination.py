"""Opaque continuation tokens over DynamoDB's LastEvaluatedKey."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from shared.exceptions import InvalidParameterError


def encode_token(last_evaluated_key: dict[str, Any] | None) -> str | None:
    """Turn a LastEvaluatedKey (plain JSON values) into an opaque string; None stays None."""
    if not last_evaluated_key:
        return None
    raw = json.dumps(last_evaluated_key, sort_keys=True, default=str).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str, expected_keys: set[str]) -> dict[str, Any]:
    """Turn a token from `encode_token` back into an ExclusiveStartKey.

    Raises InvalidParameterError when the token is not one this API issued.
    """
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise InvalidParameterError("nextToken is malformed; pass back the token you got") from exc
    if not isinstance(key, dict) or set(key) != expected_keys:
        raise InvalidParameterError("nextToken does not belong to this listing")
    return key
