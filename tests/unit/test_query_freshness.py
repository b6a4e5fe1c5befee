"""Freshness of a scope's data: threshold configuration, ages, the scope view (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inventory_queries.freshness import (
    DEFAULT_FRESHNESS_SECONDS,
    FRESHNESS_ENV,
    age_seconds,
    freshness_seconds,
    is_fresh,
    iso,
    parse_time,
    scope_view,
)
from shared.exceptions import ConfigurationError, InvalidParameterError

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def test_the_default_is_two_sync_intervals() -> None:
    assert DEFAULT_FRESHNESS_SECONDS == 1800
    assert freshness_seconds(None, {}) == 1800
    assert freshness_seconds(None, {FRESHNESS_ENV: " "}) == 1800


def test_the_environment_sets_it_and_a_parameter_overrides_it() -> None:
    assert freshness_seconds(None, {FRESHNESS_ENV: "3600"}) == 3600
    assert freshness_seconds(60, {FRESHNESS_ENV: "3600"}) == 60


@pytest.mark.parametrize("raw", ["soon", "0", "-5", "1.5", str(31 * 24 * 3600)])
def test_a_bad_environment_value_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=FRESHNESS_ENV):
        freshness_seconds(None, {FRESHNESS_ENV: raw})


@pytest.mark.parametrize("requested", [0, -1, 31 * 24 * 3600])
def test_a_bad_parameter_is_an_invalid_parameter(requested: int) -> None:
    with pytest.raises(InvalidParameterError, match="freshnessSeconds"):
        freshness_seconds(requested, {})


def test_the_sync_timestamp_format_parses_and_prints_back() -> None:
    text = "2026-11-26T11:45:00.123Z"
    moment = parse_time(text)
    assert moment == datetime(2026, 11, 26, 11, 45, 0, 123000, tzinfo=UTC)
    assert iso(moment) == text
    assert parse_time("2026-11-26T11:45:00") == datetime(2026, 11, 26, 11, 45, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, "", "yesterday", 17, "2026-13-01T00:00:00Z"])
def test_unknown_times_have_no_age(value: object) -> None:
    assert parse_time(value) is None
    assert age_seconds(value, NOW) is None
    assert not is_fresh(age_seconds(value, NOW), 1800, "ACTIVE")


def test_age_and_freshness_at_the_threshold() -> None:
    at_threshold = iso(NOW - timedelta(seconds=1800))
    just_over = iso(NOW - timedelta(seconds=1801))
    assert age_seconds(at_threshold, NOW) == 1800 and is_fresh(1800, 1800, "ACTIVE")
    assert age_seconds(just_over, NOW) == 1801 and not is_fresh(1801, 1800, "ACTIVE")


def test_a_timestamp_from_a_clock_ahead_of_ours_counts_as_age_zero() -> None:
    assert age_seconds(iso(NOW + timedelta(seconds=5)), NOW) == 0


def test_scope_view_reports_age_and_freshness() -> None:
    item = {
        "accountId": "123456789012",
        "region": "us-east-1",
        "status": "THROTTLED",
        "serverCount": 7,
        "lastSyncTime": iso(NOW),
        "lastSuccessTime": iso(NOW - timedelta(hours=1)),
        "errorCode": "ThrottlingException",
        "errorMessage": "Rate exceeded",
        "runId": "r1",
    }
    view = scope_view(item, NOW, 1800)
    assert view["ageSeconds"] == 3600 and view["fresh"] is False
    assert view["status"] == "THROTTLED" and view["serverCount"] == 7
    # the code's generic message, not the text stored with it
    assert view["errorCode"] == "ThrottlingException"
    assert view["errorMessage"] == "DRS throttled the listing"
    # Within the threshold, but the latest run failed: data of unknown truth, not fresh.
    assert scope_view(item, NOW, 7200)["fresh"] is False
    assert scope_view({**item, "status": "ACTIVE"}, NOW, 7200)["fresh"] is True
    never = scope_view({"accountId": "123456789012", "region": "us-east-1"}, NOW, 1800)
    assert never["ageSeconds"] is None and never["fresh"] is False and never["status"] is None


@pytest.mark.parametrize("status", ["ACTIVE", "NOT_INITIALIZED", "REGION_NOT_ENABLED"])
def test_a_healthy_latest_run_within_the_threshold_is_fresh(status: str) -> None:
    assert is_fresh(60, 1800, status)
    assert not is_fresh(1801, 1800, status)


@pytest.mark.parametrize(
    "status", ["ACCESS_DENIED", "THROTTLED", "ERROR", "SKIPPED", None, "", "active", 1]
)
def test_a_failed_or_unknown_latest_run_is_never_fresh(status: object) -> None:
    # GIVEN a success one minute ago  WHEN the latest run failed  THEN the data is not fresh
    item = {
        "accountId": "123456789012",
        "region": "us-east-1",
        "status": status,
        "lastSuccessTime": iso(NOW - timedelta(minutes=1)),
        "errorCode": "MassDeletionHeld",
    }
    view = scope_view(item, NOW, 1800)
    assert view["ageSeconds"] == 60
    assert view["fresh"] is False
    assert not is_fresh(60, 1800, status)
