"""How fresh a scope's inventory is: age of its last successful sync against a threshold.

The sync runs every 15 minutes; a scope is *fresh* when its latest run ended in a healthy
status (HEALTHY_STATUSES: ACTIVE, NOT_INITIALIZED, REGION_NOT_ENABLED) and its last success
is at most `freshnessSeconds` old (default two intervals, 1800 s, so one late run is
tolerated but two are not). A scope whose latest run failed (ACCESS_DENIED, THROTTLED,
ERROR, SKIPPED, a held mass deletion, ...) is never fresh, however recent its last success:
its items are what an earlier run saw, and whether they are still true is unknown.

Operators change the default threshold with the function's environment variable
INVENTORY_FRESHNESS_SECONDS; a caller can override it per request with the
`freshnessSeconds` parameter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.exceptions import ConfigurationError, InvalidParameterError
from shared.messages import reader_message

FRESHNESS_ENV = "INVENTORY_FRESHNESS_SECONDS"
SYNC_INTERVAL_SECONDS = 15 * 60  # the EventBridge rule's rate(15 minutes)
DEFAULT_FRESHNESS_SECONDS = 2 * SYNC_INTERVAL_SECONDS
MAX_FRESHNESS_SECONDS = 30 * 24 * 3600  # beyond a month "fresh" means nothing
# The scope statuses of a run that confirmed the scope's contents (the sync's models agree).
HEALTHY_STATUSES = frozenset({"ACTIVE", "NOT_INITIALIZED", "REGION_NOT_ENABLED"})

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC with milliseconds: the format the sync writes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _check_range(value: int, where: str, error: type[Exception]) -> int:
    if not 1 <= value <= MAX_FRESHNESS_SECONDS:
        raise error(f"{where} must be 1-{MAX_FRESHNESS_SECONDS} seconds, got {value}")
    return value


def freshness_seconds(requested: int | None, environ: Mapping[str, str] | None = None) -> int:
    """The threshold for one request: `requested` (the freshnessSeconds parameter) if given,
    else INVENTORY_FRESHNESS_SECONDS, else DEFAULT_FRESHNESS_SECONDS.

    Raises InvalidParameterError for an out-of-range `requested` and ConfigurationError for
    an environment value that is not an integer in range.
    """
    if requested is not None:
        return _check_range(requested, "freshnessSeconds", InvalidParameterError)
    env = os.environ if environ is None else environ
    raw = env.get(FRESHNESS_ENV, "").strip()
    if not raw:
        return DEFAULT_FRESHNESS_SECONDS
    try:
        configured = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{FRESHNESS_ENV} must be an integer, got {raw!r}") from exc
    return _check_range(configured, FRESHNESS_ENV, ConfigurationError)


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 timestamp as an aware UTC datetime; None for None or unparseable text.

    Unparseable text is treated as "unknown" (hence stale) rather than failing the query:
    a reader must still answer when one status item is damaged.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def age_seconds(timestamp: Any, now: datetime) -> int | None:
    """Whole seconds from `timestamp` to `now`; None when unknown. A timestamp slightly in
    the future (clock skew between the sync and the reader) counts as age 0."""
    moment = parse_time(timestamp)
    if moment is None:
        return None
    return max(0, int((now - moment).total_seconds()))


def is_fresh(age: int | None, threshold: int, status: object) -> bool:
    """Fresh means the latest run's `status` is healthy and a known last success is at most
    `threshold` seconds ago."""
    return status in HEALTHY_STATUSES and age is not None and age <= threshold


def scope_view(item: Mapping[str, Any], now: datetime, threshold: int) -> dict[str, Any]:
    """One region-status item as returned to callers, with `ageSeconds` (age of the data,
    i.e. since lastSuccessTime) and `fresh` (healthy latest status and age within
    `threshold`; never for a scope whose latest run failed).

    `errorMessage` is the generic message of `errorCode` (shared.messages), chosen again
    here rather than read from the item: an item written before the sync stopped storing
    AWS error text (role ARNs, other accounts' ids, request ids) must not pass it on."""
    age = age_seconds(item.get("lastSuccessTime"), now)
    return {
        "accountId": item["accountId"],
        "region": item["region"],
        "status": item.get("status"),
        "serverCount": item.get("serverCount"),
        "lastSyncTime": item.get("lastSyncTime"),
        "lastSuccessTime": item.get("lastSuccessTime"),
        "errorCode": item.get("errorCode"),
        "errorMessage": reader_message(item.get("errorCode"), item.get("status")),
        "runId": item.get("runId"),
        "ageSeconds": age,
        "fresh": is_fresh(age, threshold, item.get("status")),
    }
