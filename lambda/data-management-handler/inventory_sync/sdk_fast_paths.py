"""The sync's two shortcuts through botocore internals, and the guard around them.

This is the only module that touches botocore's private parts. Each shortcut replaces a
documented but slow path whose cost was measured (README, Performance):

- `json_listing`: DescribeSourceServers pages read with `json.loads` (a `before-parse`
  handler that hands the page's `items` to botocore through `customized_response_dict`,
  which botocore merges into its parsed result) instead of botocore's shape-walking
  parser: about 0.3 ms of CPU per source server saved, on every listed server of every run.
- `wire_batch_writes`: BatchWriteItem bodies serialised with `json.dumps` alone (the
  client's private `_serializer` replaced) instead of botocore walking AttributeValues the
  sync already built: about 0.25 ms per written item saved.

Guard: both are used only when botocore's version is inside `TESTED_BOTOCORE` (the Lambda
packages bundle the pinned botocore the tests run, so production is inside it) and the
kill switch `SYNC_SDK_FAST_PATHS=off` is not set; otherwise, or when a client does not have
the layout they expect, the documented path runs. Failing closed does not rest on the guard
alone: a listing whose `items` did not come back (botocore stopped merging
`customized_response_dict`) is refused by `list_scope` as MalformedResponse, never read as
an empty scope. The serializer is replaced only on a client of its own (see
`SyncRun`), never on the shared client other code calls.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import botocore
from botocore.serialize import JSONSerializer

KILL_SWITCH_ENV = "SYNC_SDK_FAST_PATHS"
# [lowest, first untested): the fast paths were tested on 1.43.11, the version pinned in
# requirements.txt and bundled into the Lambda package.
TESTED_BOTOCORE = ((1, 43, 11), (1, 44, 0))
JSON_LISTING = "json_listing"
WIRE_BATCH_WRITES = "wire_batch_writes"


def _version(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in text.split(".")[:3])
    except ValueError:
        return None


@dataclass(frozen=True)
class FastPaths:
    """Whether the shortcuts may be used in this process, and why."""

    botocore_version: str
    enabled: bool
    reason: str

    @classmethod
    def detect(cls, environ: Mapping[str, str] | None = None) -> FastPaths:
        env = os.environ if environ is None else environ
        version = str(botocore.__version__)
        parsed = _version(version)
        low, high = TESTED_BOTOCORE
        if env.get(KILL_SWITCH_ENV, "").strip().lower() in {"off", "0", "false", "no"}:
            return cls(version, False, f"{KILL_SWITCH_ENV} is off")
        if parsed is None or not low <= parsed < high:
            tested = f"{'.'.join(map(str, low))} to below {'.'.join(map(str, high))}"
            return cls(version, False, f"botocore {version} is outside the tested {tested}")
        return cls(version, True, "botocore version tested")

    def describe(self, applied: Mapping[str, bool]) -> dict[str, Any]:
        """The log fields of a run: version, whether enabled and why, what was applied."""
        return {
            "botocoreVersion": self.botocore_version,
            "fastPathsEnabled": self.enabled,
            "fastPathsReason": self.reason,
            "fastPaths": sorted(name for name, on in applied.items() if on),
        }

    def use_json_listing(self, drs_client: Any) -> bool:
        """Install the JSON page reader on a DRS client (idempotent). Returns whether it did."""
        if not self.enabled:
            return False
        drs_client.meta.events.register(
            "before-parse.drs.DescribeSourceServers",
            _parse_items_with_json,
            unique_id="inventory-sync-json-items",
        )
        return True

    def use_wire_batch_writes(self, dynamodb_client: Any) -> bool:
        """Give `dynamodb_client` (a client of its own, built without parameter validation)
        the wire-form BatchWriteItem serializer. Returns whether it applied."""
        if not self.enabled:
            return False
        current = type(getattr(dynamodb_client, "_serializer", None))
        if current is _WireFormBatchWrites:
            return True  # a client kept from an earlier run of this environment
        if current is not JSONSerializer:
            return False  # another layout than the one tested: keep botocore's
        dynamodb_client._serializer = _WireFormBatchWrites()
        return True


def _parse_items_with_json(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """`before-parse` handler for DescribeSourceServers: take `items` with json.loads.

    Every member of a SourceServer is JSON-native (strings, integers, booleans, maps,
    lists; no timestamps or blobs), so json.loads yields the record as DRS returned it.
    botocore still parses the rest (nextToken, errors) and merges
    `customized_response_dict` into its result.
    """
    if response_dict.get("status_code") != 200:
        return
    body = json.loads(response_dict["body"] or b"{}")
    if not isinstance(body, dict) or "items" not in body:
        return  # botocore parses it; a listing without items is refused by list_scope
    # Whatever `items` is (a list, or junk a broken answer holds), the caller judges it:
    # botocore's parser would fail on junk with an error that names nothing useful.
    customized_response_dict["items"] = body.pop("items")
    response_dict["body"] = json.dumps(body).encode()


class _WireFormBatchWrites(JSONSerializer):
    """Serialises BatchWriteItem requests with json.dumps alone; every other operation
    takes botocore's generic path."""

    def _serialize(self, serialized: Any, value: Any, shape: Any, key: Any = None) -> None:
        if key is None and shape.name == "BatchWriteItemInput":
            serialized.update(value)
        else:
            super()._serialize(serialized, value, shape, key)  # type: ignore[misc]
