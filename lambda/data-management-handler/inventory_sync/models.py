"""Records that flow between the sync's stages."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.exceptions import ConfigurationError


class ScopeStatus(StrEnum):
    ACTIVE = "ACTIVE"  # every page listed
    NOT_INITIALIZED = "NOT_INITIALIZED"  # DRS not initialised in this account/region
    ACCESS_DENIED = "ACCESS_DENIED"  # DRS or the account's role said no
    REGION_NOT_ENABLED = "REGION_NOT_ENABLED"  # opt-in region not enabled for the account
    THROTTLED = "THROTTLED"  # still throttled after botocore's retries
    ERROR = "ERROR"  # anything else
    SKIPPED = "SKIPPED"  # not started: deadline reached


# Statuses that are a true, complete answer about the scope (not failures).
HEALTHY_STATUSES = frozenset(
    {ScopeStatus.ACTIVE, ScopeStatus.NOT_INITIALIZED, ScopeStatus.REGION_NOT_ENABLED}
)


@dataclass(frozen=True, order=True)
class Scope:
    """One (account, region) pair: the unit of listing, status and soft-deletion."""

    account_id: str
    region: str


@dataclass(frozen=True)
class ScopeListing:
    """What DescribeSourceServers said for one scope."""

    scope: Scope
    status: ScopeStatus
    servers: tuple[dict[str, Any], ...] = ()
    pages: int = 0
    error_code: str | None = None
    error_message: str | None = None

    @property
    def complete(self) -> bool:
        """True only when every page was read: the one case where absence means deletion."""
        return self.status is ScopeStatus.ACTIVE


@dataclass
class ScopeOutcome:
    """A scope after listing, enrichment, writes and sweep: what the summary and status need.

    It keeps counts, not the servers, so a finished scope's records can be freed while other
    scopes are still in flight.
    """

    listing: ScopeListing
    status: ScopeStatus
    error_code: str | None = None
    error_message: str | None = None
    servers_seen: int = 0
    servers_written: int = 0
    servers_new: int = 0
    servers_revived: int = 0
    servers_soft_deleted: int = 0
    write_failures: int = 0
    ec2_enriched: int = 0
    ec2_not_found: int = 0
    ec2_unavailable: int = 0
    describe_instances_calls: int = 0

    @property
    def scope(self) -> Scope:
        return self.listing.scope


def _int_env(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class SyncSettings:
    """Tunables, read from the environment (see README, "Configuration")."""

    max_concurrency: int = 16
    page_size: int = 1000  # DescribeSourceServers maxResults: the largest page DRS serves
    ec2_batch_size: int = 200  # instance-id filter values per DescribeInstances call
    soft_delete_ttl_days: int = 30
    deadline_reserve_seconds: int = 60  # stop starting scopes this long before the timeout
    default_lease_seconds: int = 960  # when there is no Lambda context to read the timeout from

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SyncSettings:
        env = os.environ if environ is None else environ
        return cls(
            max_concurrency=_int_env(env, "SYNC_MAX_CONCURRENCY", cls.max_concurrency, 1),
            soft_delete_ttl_days=_int_env(
                env, "SYNC_SOFT_DELETE_TTL_DAYS", cls.soft_delete_ttl_days, 1
            ),
            deadline_reserve_seconds=_int_env(
                env, "SYNC_DEADLINE_RESERVE_SECONDS", cls.deadline_reserve_seconds, 0
            ),
        )


@dataclass
class Plan:
    """What one run covers."""

    accounts: list[str]
    regions: list[str]
    narrowed: bool
    dry_run: bool
    scopes: list[Scope] = field(default_factory=list)
