"""External ids belong to the hub: generated, shown once, masked on every read, rotated, and
never skipped when the hub assumes a role (the sync included)."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest

from shared.exceptions import InvalidParameterError, NotFoundError
from tests.conftest import HUB_ACCOUNT_ID
from tests.support.handlers import load_handler
from tests.support.world import HUB, REGIONS, TARGET_A, TARGET_B, CallLog, World

handler = load_handler("data-management-handler")
TARGET = "111122223333"
ROLE = f"arn:aws:iam::{TARGET}:role/drs-orchestration-cross-account"
STS_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]+", re.ASCII)


def invoke(operation: str, **params: Any) -> dict[str, Any]:
    return handler.handle_direct_invocation({"operation": operation, **params}, None)


def stored(tables, account_id: str) -> dict[str, Any]:
    table = boto3.resource("dynamodb").Table(tables.target_accounts)
    return table.get_item(Key={"accountId": account_id}, ConsistentRead=True)["Item"]


def test_add_generates_a_long_sts_safe_id_and_returns_it_once(tables) -> None:
    added = invoke("add_target_account", accountId=TARGET, roleArn=ROLE)

    external_id = added["externalId"]
    assert added["externalIdGenerated"] is True
    assert len(external_id) >= 32 and STS_EXTERNAL_ID.fullmatch(external_id)
    assert stored(tables, TARGET)["externalId"] == external_id
    # the add's own account view is masked like every read
    assert "externalId" not in added["account"]
    assert added["account"]["externalIdSet"] is True
    assert added["account"]["externalIdLast4"] == external_id[-4:]
    # no role can trust an id that did not exist: the test is skipped, and the answer says so
    assert added["connectionTest"] is None
    assert "test_target_account" in added["connectionTestSkipped"]


def test_generated_ids_are_unique(tables) -> None:
    accounts = [f"{n:012d}" for n in range(100000000001, 100000000021)]
    ids = {
        invoke(
            "add_target_account",
            accountId=account,
            roleArn=f"arn:aws:iam::{account}:role/drs-orchestration-x",
        )["externalId"]
        for account in accounts
    }
    assert len(ids) == len(accounts)


def test_the_hub_gets_no_generated_id(tables) -> None:
    added = invoke("add_target_account", accountId=HUB_ACCOUNT_ID, skipConnectionTest=True)
    assert "externalId" not in added and added["externalIdGenerated"] is False
    assert added["account"]["externalIdSet"] is False
    assert added["account"]["externalIdLast4"] is None


def test_reads_and_updates_never_return_the_id(tables) -> None:
    external_id = invoke("add_target_account", accountId=TARGET, roleArn=ROLE)["externalId"]
    answers = [
        invoke("get_target_account", accountId=TARGET),
        invoke("list_target_accounts"),
        invoke("update_target_account", accountId=TARGET, accountName="renamed"),
        invoke("update_target_account", accountId=TARGET, enabled=False),
    ]
    for answer in answers:
        text = json.dumps(answer)
        assert external_id not in text and '"externalId"' not in text
    (listed,) = answers[1]["items"]
    assert listed["externalIdSet"] is True and listed["externalIdLast4"] == external_id[-4:]


def test_an_explicit_id_change_is_stored_and_answered_masked(tables) -> None:
    invoke("add_target_account", accountId=TARGET, roleArn=ROLE)
    new_id = "stackset-shared-id-" + "Z" * 20
    answer = invoke(
        "update_target_account", accountId=TARGET, externalId=new_id, skipConnectionTest=True
    )
    assert new_id not in json.dumps(answer)
    assert answer["account"]["externalIdLast4"] == "ZZZZ"
    assert stored(tables, TARGET)["externalId"] == new_id


def test_a_short_given_id_is_refused_without_repeating_it(tables) -> None:
    short = "my-secret-but-short"
    with pytest.raises(InvalidParameterError, match="32-1224 characters") as raised:
        invoke("add_target_account", accountId=TARGET, roleArn=ROLE, externalId=short)
    assert short not in str(raised.value)


def test_rotate_replaces_the_id_and_returns_the_new_one_once(tables) -> None:
    first = invoke("add_target_account", accountId=TARGET, roleArn=ROLE)["externalId"]

    rotated = invoke("rotate_external_id", accountId=TARGET)

    new_id = rotated["externalId"]
    assert new_id != first and len(new_id) >= 32 and STS_EXTERNAL_ID.fullmatch(new_id)
    assert stored(tables, TARGET)["externalId"] == new_id
    assert rotated["account"]["externalIdLast4"] == new_id[-4:]
    assert "externalId" not in rotated["account"]
    assert new_id not in json.dumps(invoke("get_target_account", accountId=TARGET))


def test_rotate_refuses_a_missing_account_and_the_hub(tables) -> None:
    with pytest.raises(NotFoundError, match="not registered"):
        invoke("rotate_external_id", accountId=TARGET)
    invoke("add_target_account", accountId=HUB_ACCOUNT_ID, skipConnectionTest=True)
    with pytest.raises(InvalidParameterError, match="hub account"):
        invoke("rotate_external_id", accountId=HUB_ACCOUNT_ID)
    with pytest.raises(InvalidParameterError, match="unknown parameter"):
        invoke("rotate_external_id", accountId=TARGET, externalId="x" * 40)


def test_the_sync_never_assumes_a_role_without_an_external_id(world: World) -> None:
    # GIVEN TARGET_B's item lost its external id (an item from before ids were required)
    boto3.resource("dynamodb").Table(world.tables.target_accounts).update_item(
        Key={"accountId": TARGET_B}, UpdateExpression="REMOVE externalId"
    )
    for account in (HUB, TARGET_A, TARGET_B):
        world.add_servers(account, "us-east-1", 2, ec2_fraction=0.0)
    log = CallLog()

    summary = world.sync(log)

    # THEN its scopes are failures with ExternalIdMissing; no AssumeRole went out for it
    assert summary["status"] == "PARTIAL"
    failed = {(f["accountId"], f["region"]): f for f in summary["failures"]}
    assert set(failed) == {(TARGET_B, region) for region in REGIONS}
    assert {f["errorCode"] for f in failed.values()} == {"ExternalIdMissing"}
    assert all("rotate_external_id" in f["message"] for f in failed.values())
    assert [call["RoleArn"].split(":")[4] for call in log.assume_roles] == [TARGET_A]
    assert all(call.get("ExternalId") for call in log.assume_roles)
    statuses = world.region_status()
    assert statuses[(TARGET_B, "us-east-1")]["errorCode"] == "ExternalIdMissing"
    assert statuses[(TARGET_A, "us-east-1")]["status"] == "ACTIVE"
