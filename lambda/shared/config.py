"""The function environment contract: table names and DRS regions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from shared.exceptions import ConfigurationError
from shared.validation import REGION, listed, shown

INVENTORY_TABLE_ENV = "SOURCE_SERVER_INVENTORY_TABLE"
REGION_STATUS_TABLE_ENV = "DRS_REGION_STATUS_TABLE"
TARGET_ACCOUNTS_TABLE_ENV = "TARGET_ACCOUNTS_TABLE"
DRS_REGIONS_ENV = "DRS_REGIONS"
# The sync's lease (one sync at a time) lives in a table of its own: only the sync reads it.
SYNC_LEASE_TABLE_ENV = "SYNC_LEASE_TABLE"
# The deployment's environment name (dev, qa, prod, ...): names the sync's STS sessions.
ENVIRONMENT_ENV = "DEPLOYMENT_ENVIRONMENT"
# The data-management-handler's own role ARN, path included: what target accounts' trust
# policies pin (aws:PrincipalArn). STS shows a session's role without its path, so the
# connection test's messages name the role from here.
HUB_ROLE_ARN_ENV = "HUB_ROLE_ARN"
# The change feed's event bus (${ProjectName}-inventory-${Environment}); unset: the feed is off.
INVENTORY_EVENT_BUS_ENV = "INVENTORY_EVENT_BUS"


@dataclass(frozen=True)
class TableNames:
    inventory: str
    region_status: str
    target_accounts: str
    sync_lease: str = ""  # only the sync uses it (SYNC_LEASE_TABLE)


def table_names(environ: Mapping[str, str] | None = None) -> TableNames:
    """Read the three table names from the environment.

    Raises ConfigurationError naming every variable that is missing or empty.
    """
    env = os.environ if environ is None else environ
    wanted = (INVENTORY_TABLE_ENV, REGION_STATUS_TABLE_ENV, TARGET_ACCOUNTS_TABLE_ENV)
    missing = [name for name in wanted if not env.get(name)]
    if missing:
        raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
    return TableNames(
        inventory=env[INVENTORY_TABLE_ENV],
        region_status=env[REGION_STATUS_TABLE_ENV],
        target_accounts=env[TARGET_ACCOUNTS_TABLE_ENV],
        sync_lease=env.get(SYNC_LEASE_TABLE_ENV, ""),
    )


def sync_lease_table(environ: Mapping[str, str] | None = None) -> str:
    """The sync-lease table's name. Raises ConfigurationError when SYNC_LEASE_TABLE is unset."""
    env = os.environ if environ is None else environ
    name = env.get(SYNC_LEASE_TABLE_ENV)
    if not name:
        raise ConfigurationError(f"missing environment variables: {SYNC_LEASE_TABLE_ENV}")
    return name


def drs_regions(environ: Mapping[str, str] | None = None) -> list[str]:
    """The regions to sync and serve: `DRS_REGIONS` (comma-separated), sorted, without repeats.

    There is deliberately no default (such as the SDK's region list for drs): what is synced
    is configuration, chosen at deploy time, so an SDK update can never change it.
    Raises ConfigurationError when `DRS_REGIONS` is unset, names no region, or names
    something that is not a region.
    """
    env = os.environ if environ is None else environ
    raw = env.get(DRS_REGIONS_ENV)
    regions = sorted({part.strip() for part in (raw or "").split(",") if part.strip()})
    if not regions:
        problem = "is unset" if raw is None else f"lists no region: {shown(raw)}"
        raise ConfigurationError(
            f"{DRS_REGIONS_ENV} {problem}; set it to the comma-separated regions to sync "
            "(scripts/deploy.sh sets it from the lambda stack's DrsRegions parameter)"
        )
    malformed = [region for region in regions if not REGION.matches(region)]
    if malformed:
        raise ConfigurationError(
            f"{DRS_REGIONS_ENV} names what is not a region: "
            f"{listed(shown(region) for region in malformed)} ({REGION.description})"
        )
    return regions


def hub_role_arn(environ: Mapping[str, str] | None = None) -> str | None:
    """`HUB_ROLE_ARN` when set and non-empty (the lambda stack sets it), else None."""
    env = os.environ if environ is None else environ
    return env.get(HUB_ROLE_ARN_ENV) or None


def inventory_event_bus(environ: Mapping[str, str] | None = None) -> str | None:
    """`INVENTORY_EVENT_BUS` when set and non-empty (the lambda stack sets it), else None:
    the change feed is then off (local runs and tests that do not create the bus)."""
    env = os.environ if environ is None else environ
    return env.get(INVENTORY_EVENT_BUS_ENV) or None
