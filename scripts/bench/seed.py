"""Seed a fleet into the running fakes: tables, target accounts, EC2 instances, DRS servers, faults.

Fast by construction: moto instances are launched 100 per RunInstances call in each account
(moto's account header: they live in that account; the account's role is created first, as
the local STS assumes only roles that exist), and DRS servers are
generated inside the simulator over its control API (no 100 MB uploads).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from scripts.bench.fleets import (
    EXTERNAL_ID,
    HUB_ACCOUNT_ID,
    ROLE_NAME,
    FleetSpec,
    ScopeSpec,
    role_arn,
)
from scripts.bench.processes import REPO_ROOT
from scripts.local import fleet as fleet_generator
from scripts.local.accounts import account_client, create_cross_account_role
from scripts.local.drs_simulator import UNINITIALIZED, Fault, SimulatorControl

ENVIRONMENT = "bench"  # the tables' ${Environment}
EC2_RUN_BATCH = 100


@dataclass
class SeedReport:
    """What was seeded and how long each step took (seconds)."""

    table_env: dict[str, str] = field(default_factory=dict)  # the function's table variables
    inventory_table: str = ""
    steps: dict[str, float] = field(default_factory=dict)
    accounts_registered: int = 0
    instances: int = 0
    servers: int = 0
    faults: int = 0


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (None: remove) environment variables for the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _lambda_code_importable() -> None:
    """Put lambda/ and the data-management-handler folder on sys.path, as Lambda does.

    Each handler folder is its own sys.path root in Lambda (both hold an index.py), so they are
    not packages of this repository; the table and handler helpers import from them.
    """
    for folder in (REPO_ROOT / "lambda", REPO_ROOT / "lambda" / "data-management-handler"):
        if str(folder) not in sys.path:
            sys.path.append(str(folder))


def _timed(report: SeedReport, step: str, action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = action()
    report.steps[step] = time.perf_counter() - started
    return result


def seed(
    spec: FleetSpec,
    moto_env: Mapping[str, str | None],
    simulator: SimulatorControl,
    progress: Callable[[str], None] = print,
) -> SeedReport:
    """Build `spec` in moto (reached through `moto_env`) and in `simulator`.

    Returns the report, whose `table_env` the sync's environment needs.
    Raises whatever boto3 or the control API raise; a seeded count that differs from the spec
    raises RuntimeError (the figures would be meaningless).
    """
    _lambda_code_importable()
    from shared.config import (
        INVENTORY_TABLE_ENV,
        REGION_STATUS_TABLE_ENV,
        SYNC_LEASE_TABLE_ENV,
        TARGET_ACCOUNTS_TABLE_ENV,
    )
    from tests.support.aws import create_tables_from_template

    report = SeedReport()
    with patched_environ(moto_env):
        tables = _timed(report, "tables", lambda: create_tables_from_template(ENVIRONMENT))
        report.inventory_table = tables.inventory
        report.table_env = {
            INVENTORY_TABLE_ENV: tables.inventory,
            REGION_STATUS_TABLE_ENV: tables.region_status,
            TARGET_ACCOUNTS_TABLE_ENV: tables.target_accounts,
            SYNC_LEASE_TABLE_ENV: tables.sync_lease,
        }
        report.accounts_registered = _timed(
            report, "accounts", lambda: _register_targets(spec, tables.target_accounts)
        )
        progress(f"tables created, {report.accounts_registered} target accounts registered")
        origins = _timed(report, "instances", lambda: _launch_instances(spec))
        report.instances = sum(len(scope_origins) for scope_origins in origins.values())
        progress(f"{report.instances:,} EC2 instances launched in moto")

    report.servers = _timed(report, "servers", lambda: _generate_servers(spec, simulator, origins))
    progress(f"{report.servers:,} DRS source servers generated in the simulator")
    report.faults = _timed(report, "faults", lambda: _set_faults(spec, simulator))
    progress(f"{report.faults} UninitializedAccountException faults armed")

    seeded = sum(simulator.scope_counts().values())
    if seeded != spec.servers or report.instances != spec.ec2_instances:
        raise RuntimeError(
            f"seeded {seeded} servers / {report.instances} instances, "
            f"fleet wants {spec.servers} / {spec.ec2_instances}"
        )
    return report


def _register_targets(spec: FleetSpec, table_name: str) -> int:
    """Create each target account's role (the local STS assumes only roles that exist and
    trust the hub with the external id) and register the account through the
    data-management-handler's own operation."""
    from target_accounts import add_target_account  # lambda code: importable after the path

    session = boto3.Session()
    for account in spec.target_accounts:
        created = create_cross_account_role(
            account, HUB_ACCOUNT_ID, EXTERNAL_ID, role_name=ROLE_NAME, session=session
        )
        if created != role_arn(account):
            raise RuntimeError(f"created {created}, the fleet registers {role_arn(account)}")

    dynamodb = boto3.Session().resource("dynamodb")
    try:
        table = dynamodb.Table(table_name)
        for account in spec.target_accounts:
            add_target_account(
                {
                    "accountId": account,
                    "roleArn": role_arn(account),
                    "externalId": EXTERNAL_ID,
                    "accountName": f"bench {account}",
                    "skipConnectionTest": True,  # the bench measures the sync, not registration
                },
                table=table,
                hub_account_id=HUB_ACCOUNT_ID,
            )
    finally:
        # An idle keep-alive connection would hold moto's shutdown until it times out.
        dynamodb.meta.client.close()
    return len(spec.target_accounts)


def _launch_instances(spec: FleetSpec) -> dict[ScopeSpec, dict[str, Any]]:
    """Launch each scope's instances in its own account and region; Ec2Origins by scope."""
    session = boto3.Session()
    origins: dict[ScopeSpec, dict[str, Any]] = {}
    for scope in spec.scopes:
        if not scope.ec2_instances:
            continue
        account = scope.account_id
        # A target account's instances are launched in that account (moto's account header),
        # as the sync's cross-account reads expect.
        ec2 = (
            session.client("ec2", region_name=scope.region)
            if account == HUB_ACCOUNT_ID
            else account_client("ec2", account, scope.region, session=session)
        )
        try:
            instances = fleet_generator.create_ec2_instances(
                ec2,
                scope.ec2_instances,
                tags={"Owner": f"team-{account}"},
                batch_size=EC2_RUN_BATCH,
            )
        finally:
            ec2.close()
        origins[scope] = fleet_generator.ec2_origins(instances, account, scope.region)
    return origins


def _generate_servers(
    spec: FleetSpec, simulator: SimulatorControl, origins: Mapping[ScopeSpec, Mapping[str, Any]]
) -> int:
    """Generate each initialised scope's servers in the simulator; EC2-origin ones first."""
    generated = 0
    for scope in spec.scopes:
        if not scope.servers:
            continue
        ec2_origins = {
            instance_id: {
                "accountId": origin.account_id,
                "region": origin.region,
                "availabilityZone": origin.availability_zone,
                "privateIp": origin.private_ip,
                "hostname": origin.hostname,
            }
            for instance_id, origin in origins.get(scope, {}).items()
        }
        generated += simulator.generate_fleet(
            scope.account_id,
            scope.region,
            scope.servers,
            # Stable per scope, so a fleet is the same on every machine and every run.
            seed=zlib.crc32(f"{scope.account_id}:{scope.region}".encode()) % 10_000,
            ec2Origins=ec2_origins,
        )
    return generated


def _set_faults(spec: FleetSpec, simulator: SimulatorControl) -> int:
    """Make every uninitialised scope answer UninitializedAccountException.

    The simulator applies the most specific armed fault and has no "no fault" override, so an
    account-wide fault is used only for accounts with no initialised scope; accounts with some
    get one fault per uninitialised scope.
    """
    uninitialized = Fault(UNINITIALIZED)
    faults = 0
    for account in spec.accounts:
        scopes = [scope for scope in spec.scopes if scope.account_id == account]
        if not any(scope.initialized for scope in scopes):
            simulator.set_fault(account, None, uninitialized)
            faults += 1
            continue
        for scope in scopes:
            if not scope.initialized:
                simulator.set_fault(account, scope.region, uninitialized)
                faults += 1
    return faults


def inventory_item_count(table: str) -> int:
    """Items in the inventory table, as DescribeTable reports them (moto: exact and cheap)."""
    client = boto3.client("dynamodb")
    try:
        return int(client.describe_table(TableName=table)["Table"]["ItemCount"])
    finally:
        client.close()


def count_live_inventory(table: str) -> tuple[int, int]:
    """(items, live items without deletedAt) in the inventory table, every page scanned.

    Projects two attributes and counts here: moto's Select=COUNT scan sizes every full item
    and is ~7x slower. Uses the current environment's endpoint and credentials.
    """
    client = boto3.client("dynamodb")
    request: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "sourceServerArn, deletedAt",
    }
    total = live = 0
    try:
        while True:
            page = client.scan(**request)
            total += len(page["Items"])
            live += sum("deletedAt" not in item for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return total, live
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    finally:
        client.close()
