"""A small multi-account DRS world for functional tests: moto + the DRS simulator + tables.

Hub 123456789012 (moto's default account) and two target accounts reached by AssumeRole of
their role `drs-orchestration-cross-account`, which the World creates in each target account
(trusting the hub account with EXTERNAL_ID, as the local STS checks). Everything goes through
real boto3 clients; nothing is mocked.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from inventory_sync import sync_source_server_inventory
from inventory_sync.models import Scope, SyncSettings
from inventory_sync.records import content_digest
from scripts.local import fleet
from scripts.local.accounts import account_client, create_cross_account_role
from scripts.local.drs_simulator import DrsSimulator, Fault
from shared.aws import ClientFactory, ClientPool, make_config, new_session
from shared.config import TableNames
from tests.support.handlers import load_handler

HUB = "123456789012"
TARGET_A = "111111111111"
TARGET_B = "222222222222"
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
EXTERNAL_ID = "drs-orchestration-test-7Kq2Vx9Lm4Np8Rt3"


def role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/drs-orchestration-cross-account"


@dataclass
class CallLog:
    """AWS calls the sync made, seen from botocore's event system (not the sync's own counters)."""

    calls: Counter[str] = field(default_factory=Counter)
    describe_instances: list[dict[str, Any]] = field(default_factory=list)
    assume_roles: list[dict[str, Any]] = field(default_factory=list)

    def record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = model.name
        self.calls[name] += 1
        if name == "DescribeInstances":
            self.describe_instances.append(params)
        elif name == "AssumeRole":
            self.assume_roles.append(params)


@dataclass
class World:
    simulator: DrsSimulator
    tables: TableNames
    monkeypatch: pytest.MonkeyPatch
    denied_roles: set[str] = field(default_factory=set)
    page_size: int = 25

    @property
    def handler(self) -> Any:
        return load_handler("data-management-handler")

    def invoke(self, operation: str, context: Any = None, **params: Any) -> dict[str, Any]:
        return self.handler.handle_direct_invocation({"operation": operation, **params}, context)

    def create_target_roles(self) -> None:
        """The role the sync assumes in TARGET_A and TARGET_B (trust: the hub, EXTERNAL_ID)."""
        for account in (TARGET_A, TARGET_B):
            self.create_target_role(account)

    def create_target_role(self, account_id: str, external_id: str | None = EXTERNAL_ID) -> str:
        """Create `role_arn(account_id)` in that account, trusting the hub account with
        `external_id` (None: no external id required); returns its ARN."""
        return create_cross_account_role(account_id, HUB, external_id)

    def register_targets(self) -> None:
        for account in (TARGET_A, TARGET_B):
            self.invoke(
                "add_target_account",
                accountId=account,
                roleArn=role_arn(account),
                externalId=EXTERNAL_ID,
                accountName=f"target {account}",
                skipConnectionTest=True,  # setup: the simulator counts only what tests do
            )

    def session(self, log: CallLog | None = None, credentials: Any = None) -> boto3.Session:
        """A boto3 Session for the sync (an assumed account's when `credentials` is given):
        AssumeRole of a denied role answers AccessDenied; `log` records every call."""
        session = new_session(credentials)
        session.events.register("before-call.sts.AssumeRole", self._deny_assume_role)
        if log is not None:
            session.events.register("provide-client-params", _params_recorder(log))
        return session

    def pool(self, log: CallLog | None = None) -> ClientPool:
        """A ClientPool (as a fresh Lambda environment has) whose sessions are `session(log)`."""
        return ClientPool(lambda credentials=None: self.session(log, credentials))

    def _deny_assume_role(self, params: dict[str, Any], **_: Any) -> Any:
        role = (params.get("body") or {}).get("RoleArn")  # the serialised query request
        if role not in self.denied_roles:
            return None  # let moto's STS answer
        # A one-off error shape, as STS sends it; botocore raises it as a ClientError.
        response = AWSResponse("https://sts.amazonaws.com", 403, {}, None)
        return response, {
            "Error": {
                "Code": "AccessDenied",
                "Message": (
                    f"User is not authorized to perform: sts:AssumeRole on resource: {role}"
                ),
            },
            "ResponseMetadata": {"HTTPStatusCode": 403},
        }

    def sync(
        self,
        log: CallLog | None = None,
        context: Any = None,
        settings: SyncSettings | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        factory = ClientFactory(self.pool(log), config=make_config(max_pool_connections=8))
        return sync_source_server_inventory(
            params,
            context,
            factory=factory,
            settings=settings
            or SyncSettings(
                max_concurrency=4, page_size=self.page_size, deadline_reserve_seconds=0
            ),
        )

    # --- AWS as a target account sees it -------------------------------------------------------
    def client(self, service: str, account_id: str, region: str = "us-east-1") -> Any:
        """A setup client acting in `account_id` (moto's account header, not AssumeRole)."""
        if account_id == HUB:
            return boto3.client(service, region_name=region)
        return account_client(service, account_id, region)

    def launch_instances(self, account_id: str, region: str, count: int) -> dict[str, Any]:
        ec2 = self.client("ec2", account_id, region)
        instances = fleet.create_ec2_instances(ec2, count, tags={"Owner": f"team-{account_id}"})
        return fleet.ec2_origins(instances, account_id, region)

    def add_servers(self, account_id: str, region: str, count: int, **kwargs: Any) -> list[dict]:
        start = len(self.simulator.source_server_ids(account_id, region))
        servers = fleet.generate_fleet(
            account_id,
            region,
            count,
            start_index=start,
            seed=zlib.crc32(f"{account_id}:{region}".encode()) % 1000,
            **kwargs,
        )
        self.simulator.add_source_servers(account_id, region, servers)
        return servers

    def fault(self, account_id: str | None, region: str | None, code: str, **kwargs: Any) -> None:
        self.simulator.set_fault(account_id, region, Fault(code, **kwargs))

    # --- the tables ----------------------------------------------------------------------------
    def raw_items(self, table: str) -> list[dict[str, Any]]:
        client = boto3.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            items.extend(page["Items"])
        return sorted(items, key=lambda item: repr(sorted(item.items())))

    def inventory(self) -> dict[str, dict[str, Any]]:
        table = boto3.resource("dynamodb").Table(self.tables.inventory)
        items: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"ConsistentRead": True}
        while True:
            page = table.scan(**kwargs)
            items.update({item["sourceServerArn"]: item for item in page["Items"]})
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def scope_items(self, account_id: str, region: str) -> dict[str, dict[str, Any]]:
        return {
            arn: item
            for arn, item in self.inventory().items()
            if item["accountId"] == account_id and item["region"] == region
        }

    def unconfirmed(
        self,
        summary: dict[str, Any],
        account_id: str,
        region: str,
        *,
        status_recorded: bool = True,
    ) -> list[str]:
        """The ARNs of a scope's live items that the run `summary` did NOT confirm.

        Confirmed means: written by that run (lastSyncTime = its start), or left as they were
        because unchanged, which must be true: the item's contentDigest is the digest of what
        DRS lists now, and the scope's status says that run succeeded there (unless the run
        reported that it could not record the scope's status: `status_recorded=False`)."""
        started = summary["startedAt"]
        epoch = datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
        scope = Scope(account_id, region)
        row = self.region_status().get((account_id, region), {})
        scope_confirmed = row.get("lastSuccessTime") == started or not status_recorded
        records = {r["arn"]: r for r in self.simulator.source_servers(account_id, region)}
        missing: list[str] = []
        for arn, item in self.scope_items(account_id, region).items():
            if "deletedAt" in item or item["lastSyncTime"] == started:
                continue
            record = records.get(arn)
            digest = content_digest(record, scope, item.get("ec2"), epoch) if record else None
            if not (scope_confirmed and digest == item.get("contentDigest")):
                missing.append(arn)
        return missing

    def lease(self, name: str = "inventory-sync") -> dict[str, Any] | None:
        """The lease item `name` (the sync's, or "inventory-sync-dry-run"), if it exists."""
        response = boto3.client("dynamodb").get_item(
            TableName=self.tables.sync_lease, Key={"leaseId": {"S": name}}, ConsistentRead=True
        )
        return response.get("Item")

    def put_lease(self, run_id: str, expires: Any, name: str = "inventory-sync") -> None:
        """Write a lease item as another run (or a hand edit) would; `expires` as given."""
        item: dict[str, Any] = {"leaseId": {"S": name}, "runId": {"S": run_id}}
        if expires is not None:
            item["leaseExpiresAt"] = expires
        boto3.client("dynamodb").put_item(TableName=self.tables.sync_lease, Item=item)

    def region_status(self) -> dict[tuple[str, str], dict[str, Any]]:
        table = boto3.resource("dynamodb").Table(self.tables.region_status)
        items = table.scan(ConsistentRead=True)["Items"]
        return {(i["accountId"], i["region"]): i for i in items}


def _params_recorder(log: CallLog) -> Any:
    def record(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        log.record(model, params)

    return record


@pytest.fixture
def world(
    tables: TableNames,
    drs_simulator: DrsSimulator,
    monkeypatch: pytest.MonkeyPatch,
    no_retry_backoff: None,
) -> World:
    monkeypatch.setenv("DRS_REGIONS", ",".join(REGIONS))
    created = World(drs_simulator, tables, monkeypatch)
    created.create_target_roles()
    created.register_targets()
    return created
