"""The benchmark's fleets as plain data, and the fewest calls a sync of each one can make.

A fleet is a list of scopes (account, region), each either initialised with N servers (N may
be 0) or NOT_INITIALIZED. EC2-origin servers point at real moto instances in the server's own
account and region ("origin"), so enrichment reads one origin per active scope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import botocore.session

HUB_ACCOUNT_ID = "123456789012"  # moto's default account: the account the sync runs in
ROLE_NAME = "drs-orchestration-cross-account"
EXTERNAL_ID = "drs-orchestration-bench-Rk8Pz3Wn5Jq2"  # 32+ characters, as the registry requires

# What the APIs allow, and what the targets are measured against.
DRS_PAGE_SIZE = 1000  # DescribeSourceServers: the largest page DRS serves
EC2_BATCH_SIZE = 200  # instance ids per DescribeInstances call (the sync's filter batch)
DYNAMODB_BATCH_SIZE = 25  # BatchWriteItem's maximum
SMALL_REGIONS = ("eu-west-1", "us-east-1", "us-west-2")


def target_account_id(index: int) -> str:
    """The benchmark's `index`-th target account (12 digits, never the hub)."""
    return f"{200_000_000_000 + index:012d}"


def role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{ROLE_NAME}"


def all_drs_regions() -> tuple[str, ...]:
    """Every region botocore lists for drs: the org fleet's regions (named in its DRS_REGIONS;
    the sync itself has no default)."""
    return tuple(sorted(botocore.session.get_session().get_available_regions("drs")))


@dataclass(frozen=True)
class ScopeSpec:
    """One (account, region): `servers` DRS source servers, `ec2_instances` of them EC2-origin.

    `initialized` False makes the simulator answer UninitializedAccountException there.
    """

    account_id: str
    region: str
    servers: int = 0
    ec2_instances: int = 0
    initialized: bool = True

    @property
    def active(self) -> bool:
        return self.initialized and self.servers > 0


@dataclass(frozen=True)
class FleetSpec:
    """A generated organisation: the hub + target accounts, the regions synced, every scope.

    `drs_regions_env` is the DRS_REGIONS value the sync gets (as deploy.sh sets it).
    """

    name: str
    description: str
    accounts: tuple[str, ...]  # hub first
    regions: tuple[str, ...]
    scopes: tuple[ScopeSpec, ...]
    drs_regions_env: str

    @property
    def target_accounts(self) -> tuple[str, ...]:
        return tuple(a for a in self.accounts if a != HUB_ACCOUNT_ID)

    @property
    def servers(self) -> int:
        return sum(scope.servers for scope in self.scopes)

    @property
    def ec2_instances(self) -> int:
        return sum(scope.ec2_instances for scope in self.scopes)

    @property
    def active_scopes(self) -> tuple[ScopeSpec, ...]:
        return tuple(scope for scope in self.scopes if scope.active)


@dataclass(frozen=True)
class MinimumCalls:
    """The fewest calls any correct sync of a fleet can make (the targets' yardstick)."""

    describe_source_servers: int  # 1 per empty/uninitialised scope + ceil(servers/1000) per active
    assume_role: int  # one per target account (the hub uses its own credentials)
    describe_instances: int  # sum over origins of ceil(instances / 200)
    inventory_batches_per_scope: int  # sum over scopes of ceil(servers / 25): per-scope batching
    inventory_batches_packed: int  # ceil(all servers / 25): the bound if batches spanned scopes


def minimum_calls(fleet: FleetSpec) -> MinimumCalls:
    """The minimum calls for `fleet`, from its shape alone (never from a measured run)."""
    # Every scope is asked at least once; an active one needs one call per page of 1,000.
    dss = sum(
        math.ceil(scope.servers / DRS_PAGE_SIZE) if scope.active else 1 for scope in fleet.scopes
    )
    # Instances live in their server's own account and region: one origin per scope with some.
    describe_instances = sum(
        math.ceil(scope.ec2_instances / EC2_BATCH_SIZE) for scope in fleet.scopes
    )
    return MinimumCalls(
        describe_source_servers=dss,
        assume_role=len(fleet.target_accounts),
        describe_instances=describe_instances,
        inventory_batches_per_scope=sum(
            math.ceil(scope.servers / DYNAMODB_BATCH_SIZE) for scope in fleet.active_scopes
        ),
        inventory_batches_packed=math.ceil(fleet.servers / DYNAMODB_BATCH_SIZE),
    )


def _ec2_share(servers: int, fraction: float = 0.1) -> int:
    return round(servers * fraction)


def tiny_fleet() -> FleetSpec:
    """2 accounts x 2 regions, 60 servers: the smoke test's fleet (seconds, every scope kind)."""
    target = target_account_id(1)
    scopes = (
        ScopeSpec(HUB_ACCOUNT_ID, "eu-west-1", initialized=False),
        ScopeSpec(HUB_ACCOUNT_ID, "us-east-1", 40, _ec2_share(40)),
        ScopeSpec(target, "eu-west-1"),  # initialised but empty: one call, zero servers
        ScopeSpec(target, "us-east-1", 20, _ec2_share(20)),
    )
    return FleetSpec(
        name="tiny",
        description="2 accounts x 2 regions, 60 servers (smoke test)",
        accounts=(HUB_ACCOUNT_ID, target),
        regions=("eu-west-1", "us-east-1"),
        scopes=scopes,
        drs_regions_env="eu-west-1,us-east-1",
    )


def small_fleet() -> FleetSpec:
    """3 accounts x 3 regions, 1,500 servers, ~10% EC2-origin; one scope needs two pages,
    one is NOT_INITIALIZED and one is initialised but empty."""
    a, b = target_account_id(1), target_account_id(2)
    layout = {
        (HUB_ACCOUNT_ID, "us-east-1"): 1050,  # > 1,000: two DescribeSourceServers pages
        (HUB_ACCOUNT_ID, "us-west-2"): 100,
        (HUB_ACCOUNT_ID, "eu-west-1"): 50,
        (a, "us-east-1"): 100,
        (a, "us-west-2"): 100,
        (b, "us-east-1"): 50,
        (b, "us-west-2"): 0,
        (b, "eu-west-1"): 50,
    }
    scopes = tuple(
        ScopeSpec(account, region, n, _ec2_share(n), initialized=(account, region) in layout)
        for account in (HUB_ACCOUNT_ID, a, b)
        for region in SMALL_REGIONS
        for n in [layout.get((account, region), 0)]
    )
    return FleetSpec(
        name="small",
        description="3 accounts x 3 regions, 1,500 servers, 10% EC2-origin",
        accounts=(HUB_ACCOUNT_ID, a, b),
        regions=SMALL_REGIONS,
        scopes=scopes,
        drs_regions_env=",".join(SMALL_REGIONS),
    )


def org_fleet() -> FleetSpec:
    """40 accounts x every DRS region (1,120 scopes); the hub and 9 targets hold 1,000 servers
    in each of 3 regions (30,000 servers, 10% EC2-origin); every other scope NOT_INITIALIZED."""
    accounts = (HUB_ACCOUNT_ID, *(target_account_id(i) for i in range(1, 40)))
    regions = all_drs_regions()
    active_accounts = set(accounts[:10])
    active_regions = set(SMALL_REGIONS)
    scopes = []
    for account in accounts:
        for region in regions:
            active = account in active_accounts and region in active_regions
            scopes.append(
                ScopeSpec(account, region, 1000, 100)
                if active
                else ScopeSpec(account, region, initialized=False)
            )
    return FleetSpec(
        name="org",
        description=(
            f"{len(accounts)} accounts x {len(regions)} regions = {len(scopes)} scopes; "
            "10 accounts x 3 regions active with 1,000 servers each, 10% EC2-origin"
        ),
        accounts=accounts,
        regions=regions,
        scopes=tuple(scopes),
        drs_regions_env=",".join(regions),
    )


FLEETS = {"tiny": tiny_fleet, "small": small_fleet, "org": org_fleet}
