"""Pure transforms: a DRS source server (+ its EC2 instance) -> one inventory item, and the
digest that says whether a stored item still tells the truth about it."""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import zlib
from datetime import datetime
from decimal import Decimal
from typing import Any

from inventory_sync.exceptions import UnstorableRecordError
from inventory_sync.models import Scope
from shared.validation import SOURCE_SERVER_ARN

# DynamoDB's item limit is 400 KB; stay clear of it with room for attribute names.
MAX_ITEM_BYTES = 350_000
NEVER_LAUNCHED = "NEVER_LAUNCHED"
# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 to 9.9999...E+125.
MAX_NUMBER_DIGITS = 38
MAX_NUMBER_EXPONENT = 125
MIN_NUMBER_EXPONENT = -130
MAX_NESTING = 30  # DynamoDB allows 32 levels of nested maps and lists in an item
# Bump when inventory_item's output changes for the same input: every item is rewritten once.
ITEM_FORMAT = 1
CONTENT_DIGEST = "contentDigest"
# Volatile figures enter the digest as the band they fall in, so a healthy server whose lag
# jitters by seconds costs no write, while one whose lag crosses a band (an RPO that
# matters) is written in the run that sees it. Upper bounds of each band:
LAG_BANDS_SECONDS = (60, 300, 900, 3_600, 21_600, 86_400)
BACKLOG_BANDS_BYTES = (64 * 2**20, 2**30, 16 * 2**30)
LAST_SEEN_BANDS_SECONDS = (3_600, 86_400)
_DURATION = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


def scope_of_arn(arn: Any) -> Scope | None:
    """The (account, region) a source-server ARN names, or None when it is no such ARN."""
    if not SOURCE_SERVER_ARN.matches(arn):
        return None
    match = SOURCE_SERVER_ARN.regex.fullmatch(str(arn))
    return Scope(match["account"], match["region"]) if match else None


def record_identity(server: Any, scope: Scope) -> str:
    """The ARN of one listed record, after checking it belongs to `scope`.

    Raises UnstorableRecordError for a record that is not an object, has no valid
    `arn`/`sourceServerID`, whose ID differs from its ARN's, or whose ARN names another
    account or region than the scope that listed it (never written over that scope's item).
    """
    if not isinstance(server, dict):
        raise UnstorableRecordError(f"record is a {type(server).__name__}, not an object")
    arn = server.get("arn")
    match = SOURCE_SERVER_ARN.regex.fullmatch(str(arn)) if SOURCE_SERVER_ARN.matches(arn) else None
    if match is None:
        raise UnstorableRecordError(f"record has no valid source-server arn: {str(arn)[:200]!r}")
    if server.get("sourceServerID") != match["id"]:
        raise UnstorableRecordError(
            f"record {arn}: sourceServerID {str(server.get('sourceServerID'))[:40]!r} "
            "does not match its arn"
        )
    if (match["account"], match["region"]) != (scope.account_id, scope.region):
        raise UnstorableRecordError(
            f"record {arn} names another scope than {scope.account_id}/{scope.region}"
        )
    return str(arn)


def check_storable(value: Any, depth: int = 0) -> None:
    """Raise UnstorableRecordError for what DynamoDB refuses: numbers out of its range,
    nesting deeper than it allows, empty map keys."""
    if depth > MAX_NESTING:
        raise UnstorableRecordError("record is nested deeper than DynamoDB allows")
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return
    if kind is dict:
        for key, item in value.items():
            if key == "":
                raise UnstorableRecordError("record has an empty attribute name")
            check_storable(item, depth + 1)
    elif kind is list:
        for item in value:
            check_storable(item, depth + 1)
    elif kind is int or isinstance(value, Decimal):
        _check_number(Decimal(value))


def _check_number(number: Decimal) -> None:
    if not number.is_finite():
        raise UnstorableRecordError(f"number {number} cannot be stored")
    if number.is_zero():
        return
    # Counted as written, not normalised: readers (boto3's deserializer among them) refuse
    # to round a 41-digit integer even when DynamoDB could hold it as 1E+40.
    digits = number.as_tuple().digits
    if len(digits) > MAX_NUMBER_DIGITS:
        raise UnstorableRecordError(f"number with {len(digits)} digits cannot be stored")
    exponent = number.adjusted()
    if not MIN_NUMBER_EXPONENT <= exponent <= MAX_NUMBER_EXPONENT:
        raise UnstorableRecordError(f"number {number:.3e} is outside DynamoDB's range")


def dynamodb_safe(value: Any) -> Any:
    """Return `value` with floats as Decimal and datetimes as ISO-8601 strings, recursively."""
    # Exact type checks first: this runs on every member of every record (hot path).
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {str(k): dynamodb_safe(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [dynamodb_safe(v) for v in value]
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): dynamodb_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [dynamodb_safe(v) for v in value]
    if isinstance(value, str | int | Decimal):
        return value
    return str(value)


def tags_map(tags: Any) -> dict[str, str]:
    """DRS tags are already a map; EC2's are [{"Key", "Value"}]. Both become key -> value."""
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):
        return {str(t["Key"]): str(t.get("Value", "")) for t in tags if "Key" in t}
    return {}


def ec2_origin(server: dict[str, Any]) -> tuple[str, str, str] | None:
    """(origin account, origin region, instance id) of an EC2-origin server, else None."""
    cloud = server.get("sourceCloudProperties") or {}
    hints = (server.get("sourceProperties") or {}).get("identificationHints") or {}
    instance_id = hints.get("awsInstanceID")
    account = cloud.get("originAccountID")
    region = cloud.get("originRegion")
    if instance_id and account and region:
        return str(account), str(region), str(instance_id)
    return None


def ec2_summary(instance: dict[str, Any]) -> dict[str, Any]:
    """The `ec2` map of an inventory item from one DescribeInstances instance."""
    summary: dict[str, Any] = {
        "instanceId": instance["InstanceId"],
        "instanceState": (instance.get("State") or {}).get("Name"),
        "vpcId": instance.get("VpcId"),
        "subnetId": instance.get("SubnetId"),
        "privateIp": instance.get("PrivateIpAddress"),
        "securityGroupIds": [g["GroupId"] for g in instance.get("SecurityGroups", [])],
        "instanceProfileArn": (instance.get("IamInstanceProfile") or {}).get("Arn"),
        "tags": tags_map(instance.get("Tags", [])),
    }
    return {key: value for key, value in summary.items() if value is not None}


def life_cycle_state(server: dict[str, Any]) -> str:
    """DRS has no life-cycle state field: this is the last launch's status
    (PENDING|IN_PROGRESS|LAUNCHED|FAILED|TERMINATED), or NEVER_LAUNCHED."""
    last_launch = (server.get("lifeCycle") or {}).get("lastLaunch") or {}
    return str(last_launch.get("status") or NEVER_LAUNCHED)


def duration_seconds(value: Any) -> float | None:
    """Seconds of an ISO-8601 duration as DRS writes them (PT3S, P12DT4H5M6S), else None."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or value in ("P", "PT"):
        return None
    days, hours, minutes = (int(match[k] or 0) for k in ("d", "h", "m"))
    return days * 86_400 + hours * 3_600 + minutes * 60 + float(match["s"] or 0)


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _band(value: float | None, bounds: tuple[int, ...], raw: Any) -> Any:
    """The index of the band `value` falls in; the raw value when it could not be read (so
    any change of an unreadable figure is a change)."""
    return raw if value is None else bisect.bisect_right(bounds, value)


def _share(part: Any, whole: Any) -> Any:
    """`part` of `whole` in tenths, rounded (replication progress: a disk a few bytes short
    of complete is complete), or `part` when they are not numbers."""
    if isinstance(part, int | float) and isinstance(whole, int | float) and whole > 0:
        return round(10 * part / whole)
    return part


def _stable_disk(disk: Any) -> Any:
    if not isinstance(disk, dict):
        return disk
    view = dict(disk)
    total = disk.get("totalStorageBytes")
    for name in ("replicatedStorageBytes", "rescannedStorageBytes"):
        if name in view:
            view[name] = _share(view[name], total)
    if "backloggedStorageBytes" in view:
        backlog = view["backloggedStorageBytes"]
        number = backlog if isinstance(backlog, int | float) else None
        view["backloggedStorageBytes"] = _band(number, BACKLOG_BANDS_BYTES, backlog)
    return view


def stable_view(server: dict[str, Any], now_epoch: float) -> dict[str, Any]:
    """`server` with its volatile figures replaced by what of them matters.

    Volatile (they move on every poll of a healthy server): replication lag (kept as its
    band), the ETA and the agent's last update time (dropped), per-disk replicated and
    rescanned bytes (kept as tenths of the disk) and backlog (kept as its band), the
    elapsed replication time (dropped), and when DRS last saw the server (kept as its age
    band at `now_epoch`). Everything else is stable content, kept as it is.
    """
    view = dict(server)
    info = server.get("dataReplicationInfo")
    if isinstance(info, dict):
        info = dict(info)
        if "lagDuration" in info:
            lag = info["lagDuration"]
            info["lagDuration"] = _band(duration_seconds(lag), LAG_BANDS_SECONDS, lag)
        info.pop("etaDateTime", None)
        disks = info.get("replicatedDisks")
        if isinstance(disks, list):
            info["replicatedDisks"] = [_stable_disk(disk) for disk in disks]
        view["dataReplicationInfo"] = info
    life = server.get("lifeCycle")
    if isinstance(life, dict):
        life = dict(life)
        life.pop("elapsedReplicationDuration", None)
        if "lastSeenByServiceDateTime" in life:
            seen = life["lastSeenByServiceDateTime"]
            when = _epoch(seen)
            age = None if when is None else max(0.0, now_epoch - when)
            life["lastSeenByServiceDateTime"] = _band(age, LAST_SEEN_BANDS_SECONDS, seen)
        view["lifeCycle"] = life
    properties = server.get("sourceProperties")
    if isinstance(properties, dict) and "lastUpdatedDateTime" in properties:
        view["sourceProperties"] = {
            k: v for k, v in properties.items() if k != "lastUpdatedDateTime"
        }
    return view


def content_digest(
    server: dict[str, Any], scope: Scope, ec2: dict[str, Any] | None, now_epoch: float
) -> str:
    """A digest of what the inventory item of `server` says, volatile figures as their
    bands (see `stable_view`): equal digests mean the stored item needs no rewrite."""
    content = [ITEM_FORMAT, scope.account_id, scope.region, stable_view(server, now_epoch), ec2]
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def refresh_due(
    arn: str, last_sync_time: Any, now_epoch: float, interval: int, refresh_seconds: int
) -> bool:
    """Whether an unchanged item is rewritten anyway, to refresh its volatile figures.

    Each item has one slot in every `refresh_seconds` (by a hash of its ARN), so about
    interval/refresh_seconds of the estate is refreshed per run instead of all of it at
    once; an item older than `refresh_seconds` (its slot's runs were missed) is due now.
    """
    if refresh_seconds <= 0:
        return False
    written = _epoch(last_sync_time)
    if written is None:
        return True
    age = now_epoch - written
    if age >= refresh_seconds:
        return True
    slots = max(1, refresh_seconds // max(1, interval))
    slot = int(now_epoch // max(1, interval))
    return age >= interval and zlib.crc32(arn.encode()) % slots == slot % slots


def inventory_item(
    server: dict[str, Any],
    scope: Scope,
    sync_time: str,
    ec2: dict[str, Any] | None,
    digest: str | None = None,
) -> dict[str, Any]:
    """The inventory item for `server`, listed in `scope` at `sync_time` (ISO-8601 UTC).

    `ec2` is the instance summary or None (not EC2-origin, or not found); `digest` (from
    `content_digest`) is stored as `contentDigest`. The result holds
    only DynamoDB-safe values and is kept under MAX_ITEM_BYTES by trimming the raw `drs`
    copy (flagged `drsTruncated`), never the contract attributes. Raises
    UnstorableRecordError when no such item can exist (see `check_storable`; still too large
    without the raw copy).
    """
    hints = (server.get("sourceProperties") or {}).get("identificationHints") or {}
    cloud = server.get("sourceCloudProperties") or {}
    staging = server.get("stagingArea") or {}
    replication = server.get("dataReplicationInfo") or {}
    item: dict[str, Any] = {
        "sourceServerArn": server["arn"],
        "sourceServerID": server["sourceServerID"],
        "accountId": scope.account_id,
        "region": scope.region,
        "lastSyncTime": sync_time,
        "hostname": hints.get("hostname") or hints.get("fqdn"),
        "replicationState": replication.get("dataReplicationState"),
        "lifeCycleState": life_cycle_state(server),
        "stagingAccountId": staging.get("stagingAccountID"),
        "sourceAccountId": cloud.get("originAccountID"),
        "sourceRegion": cloud.get("originRegion"),
        "sourceInstanceId": hints.get("awsInstanceID"),
        "tags": tags_map(server.get("tags") or {}),
        CONTENT_DIGEST: digest,
        "drs": server,
    }
    if ec2 is not None:
        item["ec2"] = ec2
    item = {key: value for key, value in item.items() if value is not None}
    safe = dynamodb_safe(item)
    check_storable(safe)
    return _within_size(safe)


def _within_size(item: dict[str, Any]) -> dict[str, Any]:
    if _size(item) <= MAX_ITEM_BYTES:
        return item
    # The bulkiest, least-used parts of the raw record go first; contract fields stay.
    drs = dict(item["drs"])
    for bulky in ("sourceProperties", "dataReplicationInfo", "lifeCycle"):
        drs.pop(bulky, None)
        trimmed = {**item, "drs": drs, "drsTruncated": True}
        if _size(trimmed) <= MAX_ITEM_BYTES:
            return trimmed
    bare = {**{k: v for k, v in item.items() if k != "drs"}, "drsTruncated": True}
    if _size(bare) > MAX_ITEM_BYTES:
        raise UnstorableRecordError(f"record {item.get('sourceServerArn')} is too large to store")
    return bare


def _size(item: dict[str, Any]) -> int:
    return len(json.dumps(item, default=str, separators=(",", ":")).encode())
