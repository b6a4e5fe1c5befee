"""`make demo`: the inventory sync end to end on the embedded local AWS, in one command.

1. start the local AWS (moto + the DRS simulator, two processes on loopback);
2. `scripts/deploy.sh qa --endpoint-url <moto>` with DRS_REGIONS = the demo's four regions
   (HUB_EVENT_REGIONS too: the hub account's own DRS events are forwarded from each);
3. seed an organisation: a hub and three target accounts,
   four regions, a few hundred DRS source servers with matching EC2 instances in moto
   (including cross-account DR and extended servers), one throttled region and one where DRS
   was never initialised;
4. onboard the target accounts: register each (the hub generates its external id), create its
   role from cfn/target-account-role.yaml, run the connection test; show one misconfigured
   account refused at registration;
5. fire the EventBridge schedule through the local runner (which runs the deployed package);
6. show the inventory per account/region/replication state and the region status (read
   through the query-handler);
7. run the Task 7.1 checklist against the deployment.

Exit status 0 only when every stage ran and every check passed. Every process it starts is
stopped before it returns, on success, error, Ctrl-C or SIGTERM.

Usage: python -m scripts.demo [--keep-running] [--log-dir DIR] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import boto3

from scripts.local import fleet
from scripts.local.accounts import account_client, deploy_target_account_role
from scripts.local.drs_simulator import UNINITIALIZED, Fault, SimulatorControl
from scripts.local.runner import (
    Invocation,
    LocalRunner,
    RuleError,
    RunnerError,
    format_sync_result,
    format_table,
    policy_allows_rule,
    run_streaming,
)
from scripts.local.stack import LOCAL_CREDENTIALS, LocalStack, StackError

ROOT = Path(__file__).resolve().parents[1]
ENV = "qa"
PROJECT = "aws-drs-orchestration"
HUB_REGION = "us-east-1"
DATA_MANAGEMENT_HANDLER = f"{PROJECT}-data-management-handler-{ENV}"
QUERY_HANDLER = f"{PROJECT}-query-handler-{ENV}"
RULE = f"{PROJECT}-inventory-sync-{ENV}"
INVENTORY_TABLE = f"{PROJECT}-source-server-inventory-{ENV}"
# The hub's bus for DRS events forwarded from target accounts, and the change feed's bus.
DRS_EVENTS_BUS = f"{PROJECT}-drs-events-{ENV}"
INVENTORY_EVENT_BUS = f"{PROJECT}-inventory-{ENV}"
SYNC_OPERATION = "sync_source_server_inventory"
SCHEDULE = "rate(15 minutes)"
# Four regions keep the demo well under two minutes; the function syncs exactly these.
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")
# Matches the lambda stack's default TargetAccountRoleNamePattern, drs-orchestration-*.
ROLE_NAME = "drs-orchestration-cross-account"
# The misconfigured account: its role was deployed with one external id (say, an older
# StackSet's), and an operator registers it with another. Both 32+ characters.
STALE_EXTERNAL_ID = "drs-orchestration-demo-stale-7f3a-Qm4Lx9Vt"
REGISTERED_EXTERNAL_ID = "drs-orchestration-demo-new-2c8e-Rw5Ky3Hs"
CHECK, CROSS = "\u2714", "\u2718"
# Variables deploy.sh reads: the demo decides them, the caller's shell does not.
_DEPLOY_VARIABLES = (
    "PROJECT_NAME",
    "DEPLOY_BUCKET",
    "ALARM_EMAIL",
    "ENABLE_INVENTORY_SYNC",
    "TARGET_ACCOUNT_ROLE_NAME_PATTERN",
    "DRS_REGIONS",
    "TARGET_ORG_ID",
    "TARGET_ACCOUNT_IDS",
    "HUB_EVENT_REGIONS",
)


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{ROLE_NAME}"

    @property
    def label(self) -> str:
        return f"{self.account_id} {self.name}"


HUB = Account("123456789012", "dr-hub")  # moto's default account: where the functions run
PAYMENTS = Account("111122223333", "payments-prod")
RETAIL = Account("444455556666", "retail-prod")
SHARED = Account("777788889999", "shared-services")
ACCOUNTS = (HUB, PAYMENTS, RETAIL, SHARED)
TARGET_ACCOUNTS = (PAYMENTS, RETAIL, SHARED)
# Caught at registration: never registered, holds no DRS servers.
MISCONFIGURED = Account("135791357913", "sandbox-dev")


@dataclass(frozen=True)
class ScopeSeed:
    """The DRS source servers of one (account, region) and the EC2 instances behind them.

    `instances` are launched in moto in `origin` (default: the same account) and region;
    `missing` more servers name EC2 instances that no longer exist; the rest are on-premises.
    The last `extended` servers are extended source servers staged in `staging`.
    """

    account: Account
    region: str
    servers: int
    instances: int
    missing: int = 0
    origin: Account | None = None
    extended: int = 0
    staging: Account | None = None


FLEET = (
    ScopeSeed(HUB, "us-east-1", 30, 22, missing=1),
    ScopeSeed(HUB, "us-west-2", 12, 8),
    ScopeSeed(PAYMENTS, "us-east-1", 60, 48, missing=2),
    ScopeSeed(PAYMENTS, "us-west-2", 36, 28),
    ScopeSeed(PAYMENTS, "eu-west-1", 24, 16, missing=1),
    ScopeSeed(RETAIL, "us-east-1", 48, 36, extended=4, staging=SHARED),
    ScopeSeed(RETAIL, "eu-west-1", 30, 20),
    ScopeSeed(RETAIL, "ap-southeast-2", 18, 12),
    # Cross-account DR: shared-services replicates payments' EC2 instances.
    ScopeSeed(SHARED, "us-east-1", 40, 30, origin=PAYMENTS),
    ScopeSeed(SHARED, "us-west-2", 20, 14),
)
THROTTLED = (RETAIL, "eu-west-1")  # DRS keeps answering ThrottlingException
UNINITIALIZED_SCOPE = (SHARED, "ap-southeast-2")  # DRS never initialised there


class DemoError(Exception):
    """A stage of the demo failed; the message says which and why."""


# ---- output -------------------------------------------------------------------------------


class Progress:
    """Numbered stages with their duration, and indented detail lines."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.number = 0
        self.started = time.monotonic()

    @contextmanager
    def stage(self, title: str) -> Iterator[None]:
        self.number += 1
        began = time.monotonic()
        print(f"\n[{self.number}/{self.total}] {title}", flush=True)
        try:
            yield
        except BaseException:
            print(f"      failed after {time.monotonic() - began:.1f} s", flush=True)
            raise
        print(f"      done in {time.monotonic() - began:.1f} s", flush=True)

    @staticmethod
    def detail(text: str) -> None:
        for line in text.splitlines() or [""]:
            print(f"      {line}", flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


# ---- seeding ------------------------------------------------------------------------------


class Organisation:
    """The local AWS as each account's administrator sees it (moto clients per account)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._session = boto3.Session(
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=HUB_REGION,
        )

    def client(self, service: str, account: Account, region: str = HUB_REGION) -> Any:
        """A client acting in `account`: the hub's own credentials, or, for a target account,
        moto's account header (setup needs no role: it creates the role the sync assumes)."""
        if account == HUB:
            return self._session.client(  # type: ignore[call-overload]
                service, region_name=region, endpoint_url=self.endpoint
            )
        return account_client(service, account.account_id, region, self.endpoint, self._session)

    def deploy_role(
        self, account: Account, hub_role_arn: str, external_id: str, events_bus: str = ""
    ) -> str:
        """The role the sync assumes, made as a StackSet makes it: one stack of
        cfn/target-account-role.yaml per region in `account` (the role itself in HUB_REGION),
        trusting `hub_role_arn` with `external_id`; with `events_bus` (the hub's DRS events
        bus name), each region forwards its DRS events there. Returns the role's ARN."""
        parameters = {"RoleRegion": HUB_REGION}
        if events_bus:
            parameters["HubEventBusArn"] = (
                f"arn:aws:events:{HUB_REGION}:{HUB.account_id}:event-bus/{events_bus}"
            )
        arns = [
            deploy_target_account_role(
                account.account_id,
                HUB.account_id,
                hub_role_arn,
                external_id,
                region=region,
                endpoint=self.endpoint,
                session=self._session,
                parameters=parameters,
            )
            for region in (HUB_REGION, *(r for r in REGIONS if r != HUB_REGION))
        ]
        return arns[0]

    def hub_role_arn(self, function: str = DATA_MANAGEMENT_HANDLER) -> str:
        """The data-management-handler's execution role (named as the function, with a fixed
        path: what target accounts' trust policies pin with aws:PrincipalArn)."""
        iam = self.client("iam", HUB)
        return str(iam.get_role(RoleName=function)["Role"]["Arn"])


@dataclass(frozen=True)
class SeedSummary:
    servers: int
    listable_servers: int  # not behind the throttled scope
    instances: int
    extended: int
    missing_instances: int


def seed_organisation(
    endpoint: str, control: SimulatorControl, seeds: Sequence[ScopeSeed] = FLEET
) -> SeedSummary:
    """Create the EC2 instances and the DRS fleet; DRS was never initialised in one scope.

    The target accounts' roles are made when they are onboarded (`onboard_target_accounts`),
    and the throttled scope is armed after that (`throttle_scope`)."""
    organisation = Organisation(endpoint)
    servers = listable = instances = extended = missing = 0
    for index, seed in enumerate(seeds):
        origin = seed.origin or seed.account
        ec2 = organisation.client("ec2", origin, seed.region)
        launched = fleet.create_ec2_instances(
            ec2,
            seed.instances,
            tags={"Owner": origin.name, "Environment": "prod", "DrsProtected": "true"},
        )
        origins = fleet.ec2_origins(launched, origin.account_id, seed.region)
        options: dict[str, Any] = {
            "seed": index,
            "ec2Fraction": (seed.instances + seed.missing) / seed.servers,
            "ec2Origins": {
                instance_id: {
                    "accountId": where.account_id,
                    "region": where.region,
                    "availabilityZone": where.availability_zone,
                    "privateIp": where.private_ip,
                    "hostname": where.hostname,
                }
                for instance_id, where in origins.items()
            },
        }
        if seed.extended and seed.staging is not None:
            options["extendedFraction"] = seed.extended / seed.servers
            options["stagingAccountIds"] = [seed.staging.account_id]
        control.generate_fleet(seed.account.account_id, seed.region, seed.servers, **options)
        servers += seed.servers
        if (seed.account, seed.region) != THROTTLED:
            listable += seed.servers
        instances += seed.instances
        extended += seed.extended
        missing += seed.missing
    uninitialized_account, uninitialized_region = UNINITIALIZED_SCOPE
    control.set_fault(uninitialized_account.account_id, uninitialized_region, Fault(UNINITIALIZED))
    return SeedSummary(servers, listable, instances, extended, missing)


def throttle_scope(control: SimulatorControl) -> None:
    """From now on DRS keeps answering ThrottlingException in the THROTTLED scope."""
    throttled_account, throttled_region = THROTTLED
    control.set_fault(
        throttled_account.account_id,
        throttled_region,
        Fault("ThrottlingException", operation="DescribeSourceServers", retry_after_seconds=1),
    )


@dataclass(frozen=True)
class Onboarded:
    """What onboarding the target accounts did: the registry, each connection test, and the
    misconfigured account's refusal."""

    accounts: list[dict[str, Any]]
    tests: dict[str, dict[str, Any]]
    refused: str


def onboard_target_accounts(
    runner: LocalRunner,
    accounts: Sequence[Account] = TARGET_ACCOUNTS,
    function: str = DATA_MANAGEMENT_HANDLER,
    events_bus: str = DRS_EVENTS_BUS,
) -> Onboarded:
    """Onboard each account as an operator does, through the deployed data-management-handler:

    1. `add_target_account` without an external id: the hub generates one and returns it once;
    2. the account creates its role from cfn/target-account-role.yaml with that id, trusting
       the data-management-handler's role (as a StackSet instance would);
    3. `test_target_account`: the hub assumes the role and reads DRS and EC2 as the sync will.

    Then MISCONFIGURED, whose role was deployed with another external id than the one it is
    registered with, is refused at registration (the connection test runs before the write)
    and stays unregistered. Raises DemoError when an invocation fails unexpectedly.
    """
    organisation = Organisation(runner.endpoint)
    hub_role_arn = organisation.hub_role_arn(function)
    tests: dict[str, dict[str, Any]] = {}
    for account in accounts:
        request: dict[str, Any] = {
            "operation": "add_target_account",
            "accountId": account.account_id,
            "roleArn": account.role_arn,
            "accountName": account.name,
        }
        # Cross-account DR: the accounts whose EC2 this account's DRS replicates are declared
        # by the operator (the sync never trusts DRS data to choose whose EC2 it reads).
        sources = sorted(
            {
                seed.origin.account_id
                for seed in FLEET
                if seed.account == account and seed.origin and seed.origin != account
            }
        )
        if sources:
            request["ec2SourceAccountIds"] = sources
        added = _payload(runner.invoke(function, request), "add_target_account")
        organisation.deploy_role(account, hub_role_arn, added["externalId"], events_bus)
        tests[account.account_id] = _payload(
            runner.invoke(
                function,
                {"operation": "test_target_account", "accountId": account.account_id},
            ),
            "test_target_account",
        )
    refused = _refused_registration(runner, organisation, hub_role_arn, function)
    listed = _payload(
        runner.invoke(function, {"operation": "list_target_accounts"}),
        "list_target_accounts",
    )
    return Onboarded(list(listed["items"]), tests, refused)


def _refused_registration(
    runner: LocalRunner, organisation: Organisation, hub_role_arn: str, function: str
) -> str:
    """Register MISCONFIGURED with an external id its role does not expect; the error the
    operator sees. Raises DemoError if the registration is not refused."""
    organisation.deploy_role(MISCONFIGURED, hub_role_arn, STALE_EXTERNAL_ID)
    invocation = runner.invoke(
        function,
        {
            "operation": "add_target_account",
            "accountId": MISCONFIGURED.account_id,
            "roleArn": MISCONFIGURED.role_arn,
            "accountName": MISCONFIGURED.name,
            "externalId": REGISTERED_EXTERNAL_ID,
        },
    )
    if invocation.succeeded:
        raise DemoError(
            f"add_target_account accepted {MISCONFIGURED.label}, whose role expects another "
            "external id: the connection test should have refused it"
        )
    error = invocation.payload or {}
    return f"{error.get('errorType')}: {error.get('errorMessage')}"


def register_target_accounts(
    runner: LocalRunner, accounts: Sequence[Account] = TARGET_ACCOUNTS
) -> list[dict[str, Any]]:
    """Onboard `accounts` (`onboard_target_accounts`); list_target_accounts' items."""
    return onboard_target_accounts(runner, accounts).accounts


def connection_test_line(account: Mapping[str, Any], test: Mapping[str, Any]) -> str:
    """One line per account: the connection test's verdict and what it found per region."""
    mark = CHECK if test.get("ok") else CROSS
    regions = ", ".join(f"{region} {state}" for region, state in sorted(test["regions"].items()))
    failed = [c["message"] for c in test.get("checks", []) if c.get("ok") is False]
    line = f"{mark} {account['accountId']} {account.get('accountName', '')}: {regions}"
    return line + "".join(f"\n    {CROSS} {message}" for message in failed)


def _payload(invocation: Invocation, what: str) -> dict[str, Any]:
    if not invocation.succeeded:
        error = invocation.payload or {}
        raise DemoError(f"{what} failed: {error.get('errorType')}: {error.get('errorMessage')}")
    return dict(invocation.payload)


# ---- the Task 7.1 checklist ---------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    number: int
    title: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{CHECK if self.passed else CROSS} {self.number}. {self.title}: {self.detail}"


def task_7_1_checks(runner: LocalRunner, trigger: Invocation | None) -> list[Check]:
    """The six steps of the Task 7.1 report, against the deployment the runner sees.

    `trigger` is the invocation the schedule caused (step 5); step 6 looks for the items it
    wrote. Each check reads AWS the way the report's aws CLI commands do.
    """
    events = runner.client("events")
    rule = next(
        (
            rule
            for page in events.get_paginator("list_rules").paginate()
            for rule in page["Rules"]
            if rule["Name"] == RULE
        ),
        None,
    )
    targets = events.list_targets_by_rule(Rule=RULE)["Targets"] if rule else []
    target = targets[0] if len(targets) == 1 else None
    sync_result = trigger.payload if trigger is not None and trigger.succeeded else None
    return [
        _check_rule(rule),
        _check_target(runner, target, len(targets)),
        _check_permission(runner, rule),
        _check_operation(runner, target),
        _check_trigger(trigger),
        _check_inventory(runner, sync_result),
    ]


def _check_rule(rule: Mapping[str, Any] | None) -> Check:
    title = f"rule {RULE} exists, ENABLED, {SCHEDULE}"
    if rule is None:
        return Check(1, title, False, "no such rule")
    state, schedule = rule.get("State"), rule.get("ScheduleExpression")
    return Check(1, title, (state, schedule) == ("ENABLED", SCHEDULE), f"{state}, {schedule}")


def _check_target(runner: LocalRunner, target: Mapping[str, Any] | None, count: int) -> Check:
    title = "its target is the data-management-handler"
    if target is None:
        return Check(2, title, False, f"{count} targets, want exactly one")
    configuration = runner.client("lambda").get_function(FunctionName=DATA_MANAGEMENT_HANDLER)
    passed = (
        target["Id"] == "InventorySyncTarget"
        and target["Arn"] == configuration["Configuration"]["FunctionArn"]
        and _target_input(target) == {"operation": SYNC_OPERATION}
    )
    function = target["Arn"].rsplit(":", 1)[-1]
    return Check(2, title, passed, f"{target['Id']} -> {function}, Input {target.get('Input')}")


def _check_permission(runner: LocalRunner, rule: Mapping[str, Any] | None) -> Check:
    title = "the handler lets the rule invoke it"
    if rule is None:
        return Check(3, title, False, "no rule to grant")
    lambda_client = runner.client("lambda")
    try:
        policy = json.loads(
            lambda_client.get_policy(FunctionName=DATA_MANAGEMENT_HANDLER)["Policy"]
        )
    except lambda_client.exceptions.ResourceNotFoundException:
        policy = {}  # no resource policy at all: nothing may invoke it
    if policy_allows_rule(policy, rule["Arn"]):
        return Check(3, title, True, f"events.amazonaws.com from {rule['Arn']}")
    return Check(3, title, False, "no statement allows events.amazonaws.com from the rule")


def _check_operation(runner: LocalRunner, target: Mapping[str, Any] | None) -> Check:
    # The operation the rule sends must exist in the function the rule targets.
    wanted = (_target_input(target) or {}).get("operation", SYNC_OPERATION)
    title = f"operation {wanted} is in the target's operation map"
    try:
        operations = runner.deployed_operations(
            target["Arn"] if target else DATA_MANAGEMENT_HANDLER
        )
    except RunnerError as exc:
        return Check(4, title, False, str(exc))
    return Check(4, title, wanted in operations, ", ".join(operations))


def _check_trigger(trigger: Invocation | None) -> Check:
    title = "triggering the schedule succeeds"
    if trigger is None:
        return Check(5, title, False, "not triggered")
    if not trigger.succeeded:
        message = (trigger.payload or {}).get("errorMessage")
        return Check(5, title, False, f"{trigger.error_type}: {message}")
    result = trigger.payload
    return Check(
        5,
        title,
        result.get("status") in ("SUCCEEDED", "PARTIAL"),
        f"{result.get('status')} in {result.get('durationMs', 0) / 1000:.1f} s, "
        f"{len(result.get('failures', []))} failed scope(s) reported",
    )


def _check_inventory(runner: LocalRunner, sync_result: Mapping[str, Any] | None) -> Check:
    title = "the inventory table holds fresh items (sourceServerID, region, lastSyncTime)"
    if not sync_result or sync_result.get("status") not in ("SUCCEEDED", "PARTIAL"):
        return Check(6, title, False, "no sync to look for")
    started = sync_result["startedAt"]
    written = int(sync_result["counts"]["serversWritten"])
    fresh = count_fresh_items(runner.client("dynamodb"), started)
    return Check(
        6,
        title,
        fresh > 0 and fresh >= written,
        f"{fresh} items synced at {started} ({written} written by the run)",
    )


def _target_input(target: Mapping[str, Any] | None) -> Any:
    if target is None or "Input" not in target:
        return None
    try:
        return json.loads(target["Input"])
    except ValueError:
        return None


def count_fresh_items(dynamodb: Any, since: str) -> int:
    """Inventory items with sourceServerID, region and a lastSyncTime at or after `since`."""
    fresh_and_complete = (
        "lastSyncTime >= :since AND attribute_exists(sourceServerID) AND attribute_exists(#region)"
    )
    count = 0
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=INVENTORY_TABLE,
        Select="COUNT",
        FilterExpression=fresh_and_complete,
        ExpressionAttributeNames={"#region": "region"},  # REGION is a reserved word
        ExpressionAttributeValues={":since": {"S": since}},
    ):
        count += page["Count"]
    return count


# ---- tables -------------------------------------------------------------------------------


def inventory_table(dynamodb: Any) -> str:
    """Live servers per account and region, one column per replication state."""
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=INVENTORY_TABLE,
        ProjectionExpression="accountId, #region, replicationState, deletedAt",
        ExpressionAttributeNames={"#region": "region"},
    ):
        for item in page["Items"]:
            if "deletedAt" in item:
                continue
            state = item.get("replicationState", {}).get("S", "UNKNOWN")
            counts[(item["accountId"]["S"], item["region"]["S"])][state] += 1
    states = [s for s in fleet.REPLICATION_STATES if any(c[s] for c in counts.values())]
    states += sorted({s for c in counts.values() for s in c} - set(states))
    names = {account.account_id: account.name for account in ACCOUNTS}
    rows: list[list[Any]] = []
    totals = Counter[str]()
    # Blank rather than 0 where a state is absent: the eye finds the few broken servers.
    for (account_id, region), by_state in sorted(counts.items()):
        rows.append(
            [
                names.get(account_id, account_id),
                region,
                sum(by_state.values()),
                *(by_state[s] or "" for s in states),
            ]
        )
        totals.update(by_state)
    rows.append(["all accounts", "", sum(totals.values()), *(totals[s] or "" for s in states)])
    return format_table(["ACCOUNT", "REGION", "SERVERS", *states], rows, indent="")


def region_status_table(scopes: Sequence[Mapping[str, Any]]) -> str:
    """The query-handler's get_region_status scopes as a table."""
    names = {account.account_id: account.name for account in ACCOUNTS}
    rows = [
        [
            f"{scope['accountId']} {names.get(scope['accountId'], '')}".strip(),
            scope["region"],
            scope["status"],
            int(scope.get("serverCount") or 0),
            "yes" if scope.get("fresh") else "no",
            scope.get("lastSuccessTime") or "never",
            scope.get("errorCode") or "",
        ]
        for scope in scopes
    ]
    return format_table(
        ["ACCOUNT", "REGION", "STATUS", "SERVERS", "FRESH", "LAST SUCCESS", "ERROR"],
        rows,
        indent="",
    )


# ---- stages -------------------------------------------------------------------------------


def deploy_environment() -> dict[str, str]:
    """deploy.sh's environment: this one without AWS settings, plus the local AWS's."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key not in _DEPLOY_VARIABLES
    }
    environment.update(LOCAL_CREDENTIALS)
    environment.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        DRS_REGIONS=",".join(REGIONS),
        # The hub's own servers are in every region: each forwards its DRS events to the hub.
        HUB_EVENT_REGIONS=",".join(REGIONS),
        # The hub may assume roles only in these accounts (the lambda stack's TargetAccountIds).
        TARGET_ACCOUNT_IDS=",".join(account.account_id for account in TARGET_ACCOUNTS),
    )
    return environment


def deploy(endpoint: str, on_line: Callable[[str], None]) -> None:
    """scripts/deploy.sh qa --endpoint-url ENDPOINT. Raises DemoError when it fails."""
    lines: list[str] = []

    def collect(line: str) -> None:
        lines.append(line)
        on_line(line)

    status = run_streaming(
        [str(ROOT / "scripts" / "deploy.sh"), ENV, "--endpoint-url", endpoint],
        deploy_environment(),
        cwd=ROOT,
        timeout=600,
        on_line=collect,
    )
    if status != 0:
        tail = "\n".join(lines[-15:])
        raise DemoError(f"scripts/deploy.sh {ENV} failed (exit status {status}):\n{tail}")


def sync_progress(line: str) -> None:
    """Turn the sync's structured log lines into one progress line per scope."""
    if not line.startswith("{"):
        return
    try:
        record = json.loads(line)
    except ValueError:
        return
    if record.get("message") == "scope synced":
        print(
            f"      scope {record.get('progress', ''):>5}  {record.get('accountId')}  "
            f"{record.get('region', ''):<15} {record.get('status', ''):<16} "
            f"{record.get('servers', 0):>3} servers"
            + (f"  ({record['errorCode']})" if record.get("errorCode") else ""),
            flush=True,
        )


def run_demo(progress: Progress, stack: LocalStack, *, verbose: bool) -> list[Check]:
    """Stages 2-7 against a started stack; returns the checklist."""
    moto, drs = stack.moto_endpoint, stack.drs_endpoint

    with progress.stage(f"Deploy {ENV}: scripts/deploy.sh {ENV} --endpoint-url {moto}"):
        progress.detail(f"DRS_REGIONS={','.join(REGIONS)}")

        def deploy_line(line: str) -> None:
            if verbose or line.startswith("==>"):
                progress.detail(line)

        deploy(moto, deploy_line)

    with progress.stage("Seed the organisation: accounts, EC2 instances, DRS servers"):
        seeded = seed_organisation(moto, stack.control)
        progress.detail(
            f"{len(ACCOUNTS)} accounts x {len(REGIONS)} regions: {seeded.servers} source "
            f"servers ({seeded.extended} extended), {seeded.instances} EC2 instances, "
            f"{seeded.missing_instances} servers whose instance is gone"
        )
        progress.detail(
            f"cross-account DR: {SHARED.label} replicates {PAYMENTS.name}'s instances; "
            f"DRS never initialised in {UNINITIALIZED_SCOPE[0].label} {UNINITIALIZED_SCOPE[1]}"
        )
        hidden = seeded.servers - seeded.listable_servers
        progress.detail(
            f"the sync can list {seeded.listable_servers} of the {seeded.servers}: the "
            f"{hidden} in {THROTTLED[0].label} {THROTTLED[1]} are behind DRS's throttling "
            "(that scope fails THROTTLED and keeps what it had: nothing yet)"
        )

    log_sink = (lambda line: print(f"      | {line}", flush=True)) if verbose else None
    with LocalRunner(moto, drs, log_sink=log_sink) as runner:
        with progress.stage(
            "Onboard the target accounts: register (the hub generates each external id), "
            "role from cfn/target-account-role.yaml, connection test"
        ):
            onboarded = onboard_target_accounts(runner)
            rows = [
                [
                    a["accountId"],
                    a.get("accountName", ""),
                    a.get("roleArn", ""),
                    f"...{a['externalIdLast4']}" if a.get("externalIdLast4") else "-",
                    a["enabled"],
                ]
                for a in onboarded.accounts
            ]
            progress.detail(
                format_table(["ACCOUNT", "NAME", "ROLE", "EXTERNAL ID", "ENABLED"], rows, "")
            )
            progress.detail("connection tests (test_target_account):")
            for account in onboarded.accounts:
                test = onboarded.tests.get(account["accountId"])
                if test is not None:
                    progress.detail(connection_test_line(account, test))
            progress.detail(
                f"{CROSS} {MISCONFIGURED.label}: registered with an external id its role does "
                f"not expect; refused, nothing written:\n    {onboarded.refused}"
            )
            throttle_scope(stack.control)
            progress.detail(
                f"from now on DRS throttles {THROTTLED[0].label} {THROTTLED[1]} (a fault the "
                "demo injects)"
            )

        with progress.stage(f"Fire the schedule {RULE} (the local runner plays EventBridge)"):
            trigger: Invocation | None = None
            progress.detail(
                "EventBridge delivers the rule's Input to its target; each scope as it ends:"
            )
            try:
                (delivery,) = runner.fire_rule(RULE, log_sink=log_sink or sync_progress)
            except (RuleError, ValueError) as exc:
                progress.detail(f"{CROSS} {exc}")
            else:
                progress.detail(
                    f"delivered to {delivery.target_id} -> {delivery.target_arn}\n"
                    f"Input {json.dumps(delivery.event)}"
                )
                trigger = delivery.invocation
                if trigger.succeeded:
                    progress.detail(format_sync_result(trigger.payload))
                    progress.detail(explain_seen(trigger.payload, seeded))
                else:
                    progress.detail(f"{CROSS} function error: {json.dumps(trigger.payload)}")

        with progress.stage("The inventory, and each scope's status (through the query-handler)"):
            dynamodb = runner.client("dynamodb")
            progress.detail("servers by account, region and replication state:")
            progress.detail(inventory_table(dynamodb))
            status = _payload(
                runner.invoke(QUERY_HANDLER, {"operation": "get_region_status"}),
                "get_region_status",
            )
            progress.detail("")
            progress.detail(
                "region status (fresh = latest run healthy and last success within "
                f"{status['freshnessSeconds']} s):"
            )
            progress.detail(region_status_table(status["scopes"]))
            progress.detail("")
            report = write_report(moto, drs)
            progress.detail(
                f"the estate at a glance (open in a browser): {report}\n"
                f"  (`drs-inventory --local report --html FILE` writes it again)"
            )

        with progress.stage("DRS events: a replication stall reaches the inventory within seconds"):
            feed_queue = subscribe_to_change_feed(runner)
            runner.start_event_delivery()
            # A target account's event (cross-account), then the hub's own in another region
            # (forwarded by the stack deploy.sh --hub-event-regions made there)
            for account, region in ((PAYMENTS, HUB_REGION), (HUB, "us-west-2")):
                lines = event_driven_refresh(runner, stack.control, feed_queue, account, region)
                for line in lines:
                    progress.detail(line)

        with progress.stage("Task 7.1 checklist: schedule -> data-management-handler -> DynamoDB"):
            checks = task_7_1_checks(runner, trigger)
            for check in checks:
                progress.detail(check.line())
    return checks


def explain_seen(result: Mapping[str, Any], seeded: SeedSummary) -> str:
    """Why the run saw fewer servers than were seeded: the throttled scope's are not listed."""
    seen = int(result.get("counts", {}).get("serversSeen", 0))
    hidden = seeded.servers - seeded.listable_servers
    mark = CHECK if seen == seeded.listable_servers else CROSS
    return (
        f"{mark} seen {seen} = {seeded.servers} seeded - {hidden} in the throttled scope "
        f"{THROTTLED[0].label} {THROTTLED[1]} (the run is PARTIAL for it; the next run that "
        "DRS does not throttle lists them)"
    )


STALLED = "STALLED"
EVENT_WAIT_SECONDS = 60.0
FEED_QUEUE = "demo-change-feed"


def subscribe_to_change_feed(runner: LocalRunner) -> str:
    """What a downstream consumer does: a rule on the change feed's bus delivering its events
    to an SQS queue. Returns the queue's URL."""
    sqs = runner.client("sqs")
    events = runner.client("events")
    queue_url = str(sqs.create_queue(QueueName=FEED_QUEUE)["QueueUrl"])
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name=FEED_QUEUE,
        EventBusName=INVENTORY_EVENT_BUS,
        EventPattern=json.dumps({"source": ["drs-orchestration.inventory"]}),
    )
    events.put_targets(
        Rule=FEED_QUEUE, EventBusName=INVENTORY_EVENT_BUS, Targets=[{"Id": "q", "Arn": queue_arn}]
    )
    return queue_url


def event_driven_refresh(
    runner: LocalRunner,
    control: SimulatorControl,
    queue_url: str,
    account: Account = PAYMENTS,
    region: str = HUB_REGION,
) -> list[str]:
    """Stall one CONTINUOUS server of `account` in `region` through the DRS simulator, which
    puts DRS's own event on that account's bus in that region; the forwarding rule (from the
    target-account template) carries it to the hub's bus, whose rule queues it; the runner's
    SQS poller (started by the caller) invokes the data-management-handler
    (refresh_source_servers), as Lambda's event source mapping does. Returns the lines to
    show: how long the inventory took to say STALLED, and the change feed's event (read from
    `queue_url`, the change feed's subscriber). Raises DemoError when either does not come
    within EVENT_WAIT_SECONDS."""
    dynamodb = runner.client("dynamodb")
    items = dynamodb.scan(TableName=INVENTORY_TABLE)["Items"]
    server = next(
        item
        for item in sorted(items, key=lambda i: i["sourceServerArn"]["S"])
        if item["accountId"]["S"] == account.account_id
        and item["region"]["S"] == region
        and item.get("replicationState", {}).get("S") == "CONTINUOUS"
    )
    arn = server["sourceServerArn"]["S"]
    server_id = server["sourceServerID"]["S"]
    started = time.monotonic()
    control.set_replication_state(account.account_id, region, server_id, STALLED)
    lines = [f"DRS: {account.label} {region} {server_id} -> {STALLED} (DRS's event put)"]
    while True:
        item = dynamodb.get_item(
            TableName=INVENTORY_TABLE, Key={"sourceServerArn": {"S": arn}}, ConsistentRead=True
        ).get("Item", {})
        if item.get("replicationState", {}).get("S") == STALLED:
            break
        if time.monotonic() - started > EVENT_WAIT_SECONDS:
            raise DemoError(f"{arn} not {STALLED} in the inventory after {EVENT_WAIT_SECONDS} s")
        time.sleep(0.2)
    lines.append(
        f"{CHECK} the inventory says {STALLED} after {time.monotonic() - started:.1f} s "
        "(forwarding rule -> hub bus -> queue -> refresh_source_servers), no full sync run"
    )
    sqs = runner.client("sqs")
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            event = json.loads(message["Body"])
            detail = event.get("detail", {})
            if detail.get("sourceServerArn") == arn:
                lines.append(
                    f"{CHECK} change feed ({INVENTORY_EVENT_BUS}): {event['detail-type']}, "
                    f"changedFields {detail.get('changedFields')}, eventId {detail.get('eventId')}"
                )
                return lines
        if time.monotonic() - started > EVENT_WAIT_SECONDS:
            raise DemoError(f"no change-feed event for {arn} after {EVENT_WAIT_SECONDS} s")


REPORT_FILE = ROOT / "build" / "demo-report.html"
LAG_THRESHOLD_SECONDS = 3600.0


def write_report(moto: str, drs: str, path: Path = REPORT_FILE) -> Path:
    """`drs-inventory report --html`: the page, read through the deployed query-handler.
    Returns its path."""
    from scripts.cli.client import Target
    from scripts.cli.context import Console
    from scripts.cli.output import Output
    from scripts.cli.report_commands import gather_report

    console = Console(Target(ENV, PROJECT, HUB_REGION, None, True, moto, drs), Output())
    try:
        page, _, _ = gather_report(console, lag_threshold_seconds=LAG_THRESHOLD_SECONDS)
    finally:
        console.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo",
        description="Deploy to the embedded local AWS, fire the scheduled sync, show the result.",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="keep the local AWS up afterwards (until Ctrl-C) to try the commands it prints",
    )
    parser.add_argument("--log-dir", type=Path, help="keep the servers' logs in this folder")
    parser.add_argument(
        "--verbose", action="store_true", help="print deploy.sh's and the functions' full output"
    )
    args = parser.parse_args(argv)
    # A terminal that cannot show the check marks gets '?' rather than a crash.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    # SIGTERM (a CI runner, `kill`) cleans up like Ctrl-C; the caller's handler comes back after.
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _run(args: argparse.Namespace) -> int:
    progress = Progress(total=8)
    print("make demo: the DRS inventory sync, end to end, on the embedded local AWS")
    stack = LocalStack(log_dir=args.log_dir)
    try:
        with progress.stage("Start the local AWS: moto + the DRS simulator on 127.0.0.1"):
            stack.start()
            progress.detail(
                f"moto          {stack.moto_endpoint}  (pid {stack.pids['moto']})\n"
                f"DRS simulator {stack.drs_endpoint}  (pid {stack.pids['drs-simulator']})"
            )
        checks = run_demo(progress, stack, verbose=args.verbose)
        passed = all(check.passed for check in checks)
        print(
            f"\nTask 7.1: {'PASSED' if passed else 'FAILED'} "
            f"({sum(c.passed for c in checks)}/{len(checks)} checks) "
            f"in {progress.elapsed():.0f} s",
            flush=True,
        )
        if args.keep_running:
            _keep_running(stack)
        return 0 if passed else 1
    except (DemoError, StackError) as exc:
        print(f"\ndemo: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted", file=sys.stderr)
        return 130
    finally:
        pids = ", ".join(f"{name} pid {pid}" for name, pid in stack.pids.items())
        stack.stop()
        if pids:
            print(f"stopped the local AWS ({pids})", flush=True)


def _keep_running(stack: LocalStack) -> None:
    moto, drs = stack.moto_endpoint, stack.drs_endpoint
    print(
        "\nThe local AWS keeps running; in another shell try:\n"
        f"  export {' '.join(f'{k}={v}' for k, v in LOCAL_CREDENTIALS.items())}\n"
        f"  scripts/e2e-inventory-sync.sh {ENV} --endpoint-url {moto} --drs-endpoint-url {drs}\n"
        f"  scripts/invoke-sync.sh {ENV} --dry-run --regions us-east-1 "
        f"--endpoint-url {moto} --drs-endpoint-url {drs}\n"
        f"  .venv/bin/aws --endpoint-url {moto} events list-targets-by-rule --rule {RULE}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        while True:
            stack.check_running()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return


if __name__ == "__main__":
    sys.exit(main())
