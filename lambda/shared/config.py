"""The function environment contract: table names and DRS regions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import boto3

from shared.exceptions import ConfigurationError

INVENTORY_TABLE_ENV = "SOURCE_SERVER_INVENTORY_TABLE"
REGION_STATUS_TABLE_ENV = "DRS_REGION_STATUS_TABLE"
TARGET_ACCOUNTS_TABLE_ENV = "TARGET_ACCOUNTS_TABLE"
DRS_REGIONS_ENV = "DRS_REGIONS"
# The sync's lease (one sync at a time) lives in a table of its own: only the sync reads it.
SYNC_LEASE_TABLE_ENV = "SYNC_LEASE_TABLE"


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
    """The regions to sync: `DRS_REGIONS` (comma-separated) or every region botocore lists for drs.

    Raises ConfigurationError when `DRS_REGIONS` is set but names no region.
    """
    env = os.environ if environ is None else environ
    raw = env.get(DRS_REGIONS_ENV)
    if raw is None or not raw.strip():
        return sorted(boto3.Session().get_available_regions("drs"))
    regions = sorted({part.strip() for part in raw.split(",") if part.strip()})
    if not regions:
        raise ConfigurationError(f"{DRS_REGIONS_ENV} is set but lists no region: {raw!r}")
    return regions
