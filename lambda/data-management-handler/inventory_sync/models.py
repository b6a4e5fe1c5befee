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
    SKIPPED = "SKIPPED"  # not finished: the run's deadline came first


# Statuses that are a true, complete answer about the scope (not failures).
HEALTHY_STATUSES = frozenset(
    {ScopeStatus.ACTIVE, ScopeStatus.NOT_INITIALIZED, ScopeStatus.REGION_NOT_ENABLED}
)
# "There is no DRS here" answers: true only for a scope that never held servers.
NO_DRS_STATUSES = frozenset({ScopeStatus.NOT_INITIALIZED, ScopeStatus.REGION_NOT_ENABLED})


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
    servers: tuple[Any, ...] = ()  # as DRS returned them: not yet checked record by record
    pages: int = 0
    error_code: str | None = None
    error_message: str | None = None  # ours or generic (shared.messages): never AWS text
    error_detail: str | None = None  # the AWS error text: for the logs only

    @property
    def complete(self) -> bool:
        """True only when every page was read: the one case where absence means deletion."""
        return self.status is ScopeStatus.ACTIVE


@dataclass
class ScopeOutcome:
    """A scope after listing, enrichment, writes and sweep: what the summary and status need.

    It keeps counts, not the servers, so a finished scope's records can be freed while other
    scopes are still in flight. It is filled in as the scope's pipeline goes, so a scope that
    fails half-way still reports what it did write.
    """

    scope: Scope
    status: ScopeStatus
    error_code: str | None = None
    # For the run's result: a message of the sync's own or the generic one for the code,
    # never AWS text. The AWS text, if any, is `error_detail`, which only the logs get.
    error_message: str | None = None
    error_detail: str | None = None
    pages: int = 0
    servers_seen: int = 0
    servers_written: int = 0
    servers_unchanged: int = 0  # listed, stored content the same: not rewritten
    servers_kept_newer: int = 0  # listed, but a newer read (a refresh) wrote it since
    servers_new: int = 0
    servers_revived: int = 0
    servers_soft_deleted: int = 0
    servers_held: int = 0  # soft-deletes held by the mass-deletion guard
    records_rejected: int = 0
    records_duplicate: int = 0
    write_failures: int = 0
    ec2_enriched: int = 0
    ec2_not_found: int = 0
    ec2_unavailable: int = 0
    ec2_origin_refused: int = 0  # origin in another account than the listing one: not read
    describe_calls: int = 0
    describe_instances_calls: int = 0
    # The listing was complete and every write landed: the scope's data is confirmed now.
    confirmed: bool = False
    # Dry runs: what a real run would do, bounded per scope (see SyncSettings.plan_limit).
    plan: dict[str, Any] | None = None
    # Real runs with the change feed on: the changes of the writes that landed (Change), for
    # the worker to publish once the outcome is recorded, then cleared.
    changes: list[Any] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """A true, complete answer: ACTIVE with no error, or a "no DRS here" that stood
        (its AWS error code is kept for the status row; a contradiction is ERROR instead)."""
        if self.status in NO_DRS_STATUSES:
            return True
        return self.status is ScopeStatus.ACTIVE and self.error_code is None

    def fail(self, status: ScopeStatus, code: str, message: str, detail: str | None = None) -> None:
        """Mark the scope failed: `message` is what readers may see (no AWS text), `detail`
        what only the logs get."""
        self.status = status
        self.error_code = code
        self.error_message = message
        self.error_detail = detail
        self.confirmed = False


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


def _bool_env(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in {"true", "on", "1", "yes"}:
        return True
    if raw in {"false", "off", "0", "no"}:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class SyncSettings:
    """Tunables, read from the environment (see README, "Configuration")."""

    max_concurrency: int = 16
    page_size: int = 1000  # DescribeSourceServers maxResults: the largest page DRS serves
    # A scope holds at most a few thousand servers (DRS quotas); a listing longer than this
    # many pages is a paging loop, not an estate.
    max_pages: int = 100
    ec2_batch_size: int = 200  # instance-id filter values per DescribeInstances call
    soft_delete_ttl_days: int = 30
    # Time kept after the run's own deadline to record unfinished scopes and release the lease.
    deadline_reserve_seconds: int = 30
    # The schedule's interval: a run (and its lease) ends before the next scheduled one starts.
    schedule_interval_seconds: int = 900
    # Mass-deletion guard: hold a scope's soft-deletes when they exceed both bounds.
    delete_guard_percent: int = 50
    delete_guard_min: int = 10
    # Dry runs list at most this many servers per scope and change kind (with a count of the rest).
    plan_limit: int = 50
    # Volatile figures (lag, backlog and replicated bytes, last-seen time) change on every
    # poll; an item whose stable content did not change is rewritten only to refresh them,
    # at most this often, spread over the interval's runs (0: never just for that).
    volatile_refresh_seconds: int = 21_600
    # AssumeRole with a SourceIdentity: the target role's trust policy must then allow
    # sts:SetSourceIdentity (cfn/target-account-role.yaml does); off for older roles.
    set_source_identity: bool = True

    @property
    def max_run_seconds(self) -> int:
        """How long a run may work: it ends (lease included) before the next schedule fires."""
        return max(1, self.schedule_interval_seconds - 2 * self.deadline_reserve_seconds)

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
            schedule_interval_seconds=_int_env(
                env, "SYNC_SCHEDULE_INTERVAL_SECONDS", cls.schedule_interval_seconds, 60
            ),
            delete_guard_percent=_int_env(
                env, "SYNC_DELETE_GUARD_PERCENT", cls.delete_guard_percent, 0
            ),
            delete_guard_min=_int_env(env, "SYNC_DELETE_GUARD_MIN", cls.delete_guard_min, 0),
            volatile_refresh_seconds=_int_env(
                env, "SYNC_VOLATILE_REFRESH_SECONDS", cls.volatile_refresh_seconds, 0
            ),
            set_source_identity=_bool_env(env, "SYNC_SET_SOURCE_IDENTITY", True),
        )


@dataclass
class Plan:
    """What one run covers."""

    accounts: list[str]
    regions: list[str]
    narrowed: bool
    dry_run: bool
    registered: frozenset[str] = frozenset()  # hub + every registered account, enabled or not
    # Per listing account: the accounts whose EC2 its servers may be looked up in (itself, and
    # what an operator declared as ec2SourceAccountIds; never the hub for another account).
    ec2_sources: dict[str, frozenset[str]] = field(default_factory=dict)
    confirm_deletions: frozenset[Scope] = frozenset()
    scopes: list[Scope] = field(default_factory=list)
