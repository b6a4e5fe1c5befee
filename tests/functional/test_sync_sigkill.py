"""A sync SIGKILLed mid-way never makes the next scheduled run SKIPPED, and loses nothing.

Everything runs as separate processes, as in the local stack: moto, the DRS simulator, and
each sync invocation (`tests.support.sync_process`, the data-management-handler's
`handle_direct_invocation` with a Lambda-like context). The second sync is given a short
Lambda timeout, so its lease expires soon after its deadline (deadline + reserve), as a
Lambda killed at its timeout would leave it; the test waits for that expiry, not 15 minutes.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from inventory_sync.models import Scope
from inventory_sync.records import content_digest
from scripts.bench.processes import REPO_ROOT, ChildProcess, clean_env, drs_simulator, moto_server
from scripts.local import fleet as fleet_generator
from scripts.local.accounts import create_cross_account_role
from scripts.local.drs_simulator import SimulatorControl
from shared.config import (
    INVENTORY_TABLE_ENV,
    REGION_STATUS_TABLE_ENV,
    SYNC_LEASE_TABLE_ENV,
    TARGET_ACCOUNTS_TABLE_ENV,
    TableNames,
)
from tests.support.aws import create_tables_from_template
from tests.support.handlers import load_handler
from tests.support.sync_process import RESULT_PREFIX
from tests.support.world import EXTERNAL_ID, HUB, TARGET_A, TARGET_B, role_arn

REGIONS = ("us-east-1", "us-west-2")
SCOPES = [(a, r) for a in (HUB, TARGET_A, TARGET_B) for r in REGIONS]
KILLED_RUN_TIMEOUT_MS = 15_000
RESERVE_SECONDS = 2
DRS_LATENCY_MS = 700  # per DRS call (under the ~1 s read timeout of a 15 s run)

pytestmark = pytest.mark.timeout(120)


@dataclass
class Fakes:
    moto_url: str
    drs_url: str
    simulator: SimulatorControl
    tables: TableNames
    log_dir: Path

    def sync_env(self) -> dict[str, str]:
        """The function's environment, pointed at the fakes (scopes one at a time)."""
        lambda_dir = REPO_ROOT / "lambda"
        return clean_env(
            {
                "PYTHONPATH": os.pathsep.join(
                    [str(lambda_dir), str(lambda_dir / "data-management-handler"), str(REPO_ROOT)]
                ),
                "AWS_ENDPOINT_URL": self.moto_url,
                "AWS_ENDPOINT_URL_DRS": self.drs_url,
                "DRS_REGIONS": ",".join(REGIONS),
                "SYNC_MAX_CONCURRENCY": "1",
                "SYNC_DEADLINE_RESERVE_SECONDS": str(RESERVE_SECONDS),
                INVENTORY_TABLE_ENV: self.tables.inventory,
                REGION_STATUS_TABLE_ENV: self.tables.region_status,
                TARGET_ACCOUNTS_TABLE_ENV: self.tables.target_accounts,
                SYNC_LEASE_TABLE_ENV: self.tables.sync_lease,
            }
        )

    def start_sync(self, name: str, timeout_ms: int) -> ChildProcess:
        return ChildProcess(
            "tests.support.sync_process",
            [str(timeout_ms)],
            env=self.sync_env(),
            log_path=self.log_dir / f"{name}.log",
            stop_grace_seconds=2.0,
        ).start()

    def run_sync(self, name: str, timeout_ms: int = 60_000) -> dict[str, Any]:
        process = self.start_sync(name, timeout_ms)
        try:
            return dict(json.loads(process.read_line(60, prefix=RESULT_PREFIX)))
        finally:
            process.stop()

    # --- reading the tables (this process talks to the same moto) -----------------------------
    def lease(self) -> dict[str, Any] | None:
        response = boto3.client("dynamodb").get_item(
            TableName=self.tables.sync_lease,
            Key={"leaseId": {"S": "inventory-sync"}},
            ConsistentRead=True,
        )
        return response.get("Item")

    def region_status(self) -> dict[tuple[str, str], dict[str, Any]]:
        table = boto3.resource("dynamodb").Table(self.tables.region_status)
        return {(i["accountId"], i["region"]): i for i in table.scan(ConsistentRead=True)["Items"]}

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


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fakes]:
    """moto and the DRS simulator as processes on loopback, stopped by pid when the test ends;
    tables from the template and the two target accounts registered."""
    env = clean_env()
    with (
        moto_server(tmp_path, env, {}) as (_, moto_url),
        drs_simulator(tmp_path, env, moto_url) as (_, drs_url),
    ):
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
        tables = create_tables_from_template("sigkill")
        monkeypatch.setenv(INVENTORY_TABLE_ENV, tables.inventory)
        monkeypatch.setenv(REGION_STATUS_TABLE_ENV, tables.region_status)
        monkeypatch.setenv(TARGET_ACCOUNTS_TABLE_ENV, tables.target_accounts)
        monkeypatch.setenv(SYNC_LEASE_TABLE_ENV, tables.sync_lease)
        handler = load_handler("data-management-handler")
        for account in (TARGET_A, TARGET_B):
            create_cross_account_role(account, HUB, EXTERNAL_ID)
            handler.handle_direct_invocation(
                {
                    "operation": "add_target_account",
                    "accountId": account,
                    "roleArn": role_arn(account),
                    "externalId": EXTERNAL_ID,
                    "skipConnectionTest": True,
                },
                None,
            )
        simulator = SimulatorControl(drs_url)
        simulator.wait_until_healthy()
        yield Fakes(moto_url, drs_url, simulator, tables, tmp_path)


def _wait_for(what: str, condition: Any, timeout: float, poll: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_a_killed_run_never_makes_the_next_scheduled_run_skipped(fakes: Fakes) -> None:
    # GIVEN a fleet over 3 accounts x 2 regions (one scope empty), synced once
    fleet: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for index, scope in enumerate(SCOPES):
        count = 0 if index == len(SCOPES) - 1 else 3 + index % 3
        fleet[scope] = fleet_generator.generate_fleet(*scope, count, seed=index, ec2_fraction=0.0)
        if count:
            fakes.simulator.add_source_servers(*scope, fleet[scope])
    first = fakes.run_sync("run1")
    assert first["status"] == "SUCCEEDED", first["failures"]
    assert fakes.lease() is None

    # ... one server of every non-empty scope removed in DRS, and DRS made slow
    removed: dict[tuple[str, str], str] = {}
    for scope, servers in fleet.items():
        if servers:
            assert fakes.simulator.remove_source_server(*scope, servers[0]["sourceServerID"])
            removed[scope] = servers[0]["arn"]
    fakes.simulator.set_latency(DRS_LATENCY_MS)

    # WHEN the second run takes the lease, finishes a scope or two, and is SIGKILLed
    second = fakes.start_sync("run2-killed", KILLED_RUN_TIMEOUT_MS)
    try:
        lease = _wait_for("run 2 to take the lease", fakes.lease, timeout=30)
        second_run_id = lease["runId"]["S"]
        second_run_time = lease["acquiredAt"]["S"]
        lease_expires = int(lease["leaseExpiresAt"]["N"])

        def finished_by_run_2() -> set[tuple[str, str]]:
            rows = fakes.region_status()
            return {scope for scope, row in rows.items() if row["runId"] == second_run_id}

        finished = _wait_for("run 2 to record a scope", finished_by_run_2, timeout=30, poll=0.05)
        os.kill(second.pid, signal.SIGKILL)
        assert second.wait(timeout=10) == -signal.SIGKILL
    finally:
        second.stop()

    # THEN the killed run kept what it finished: status rows of run 2, items soft-deleted there
    finished = finished_by_run_2()
    assert 1 <= len(finished) < len(SCOPES), "run 2 was not killed mid-way"
    status_after_kill = fakes.region_status()
    inventory_after_kill = fakes.inventory()
    for scope in finished:
        assert status_after_kill[scope]["status"] == "ACTIVE", status_after_kill[scope]
        assert status_after_kill[scope]["lastSuccessTime"] == second_run_time
        if scope in removed:
            assert inventory_after_kill[removed[scope]]["deletedAt"] == second_run_time
    # ... it left its lease behind (a run started now is SKIPPED: the lease is real) ...
    assert fakes.lease() is not None
    fakes.simulator.clear_latency()
    too_soon = fakes.run_sync("run-too-soon")
    if int(time.time()) <= lease_expires:
        assert too_soon["status"] == "SKIPPED", too_soon
        assert second_run_id in too_soon["skippedBecause"]
    # ... and that lease ends with run 2's Lambda time, never later
    second_started = datetime.fromisoformat(second_run_time).timestamp()
    assert lease_expires <= second_started + KILLED_RUN_TIMEOUT_MS / 1000

    # WHEN the next scheduled run starts after the killed run's Lambda time is over
    _wait_for("the killed run's lease to expire", lambda: int(time.time()) > lease_expires, 30)
    third = fakes.run_sync("run3")

    # THEN it is not SKIPPED: it runs, succeeds, and restores the exact expected state
    assert third["status"] == "SUCCEEDED", third
    assert third["counts"]["scopes"] == len(SCOPES)
    assert fakes.lease() is None
    status = fakes.region_status()
    assert set(status) == set(SCOPES)
    for scope, row in status.items():
        assert row["runId"] == third["runId"], scope
        assert row["status"] == "ACTIVE", scope
        assert row["lastSuccessTime"] == third["startedAt"], scope
        assert row["serverCount"] == len(fleet[scope]) - (1 if scope in removed else 0), scope
    inventory = fakes.inventory()
    assert set(inventory) == {server["arn"] for servers in fleet.values() for server in servers}
    third_epoch = datetime.fromisoformat(third["startedAt"].replace("Z", "+00:00")).timestamp()
    removed_arns = set(removed.values())
    for scope, servers in fleet.items():
        for server in servers:
            item = inventory[server["arn"]]
            assert (item["accountId"], item["region"]) == scope
            if server["arn"] in removed_arns:
                # soft-deleted exactly once: by run 2 if it got that far in the scope (always
                # in the scopes it recorded), else by run 3; run 3 never stamps it again
                before = inventory_after_kill[server["arn"]]
                if "deletedAt" in before:
                    assert before["deletedAt"] == second_run_time, scope
                    assert item["deletedAt"] == before["deletedAt"], scope
                    assert item["expiresAt"] == before["expiresAt"], scope
                else:
                    assert scope not in finished
                    assert item["deletedAt"] == third["startedAt"], scope
                    assert "expiresAt" in item
                assert item["lastSyncTime"] != third["startedAt"]
            else:
                assert "deletedAt" not in item and "expiresAt" not in item, scope
                # written by run 3, or left as it was because it still says what DRS lists
                digest = content_digest(server, Scope(*scope), None, third_epoch)
                assert (
                    item["lastSyncTime"] == third["startedAt"] or item["contentDigest"] == digest
                ), scope
    assert third["counts"]["serversSoftDeleted"] == sum(
        1 for arn in removed_arns if "deletedAt" not in inventory_after_kill[arn]
    )
