"""Target-account operations through the handler against DynamoDB in moto."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from shared.exceptions import ConflictError, InvalidParameterError, NotFoundError
from tests.conftest import HUB_ACCOUNT_ID
from tests.support.handlers import load_handler

handler = load_handler("data-management-handler")
TARGET = "111122223333"
ROLE = f"arn:aws:iam::{TARGET}:role/drs-orchestration-cross-account"


def invoke(operation: str, **params: Any) -> dict[str, Any]:
    return handler.handle_direct_invocation({"operation": operation, **params}, None)


def stored_items(tables) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(tables.target_accounts)
    return table.scan(ConsistentRead=True)["Items"]


def test_add_then_get_round_trip(tables) -> None:
    added = invoke(
        "add_target_account",
        accountId=TARGET,
        roleArn=ROLE,
        externalId="ext-id-123",
        accountName="Production",
    )
    assert added["account"]["enabled"] is True
    got = invoke("get_target_account", accountId=TARGET)["account"]
    assert got["roleArn"] == ROLE
    assert got["externalId"] == "ext-id-123"
    assert got["accountName"] == "Production"
    assert got["createdAt"].endswith("Z")


def test_hub_account_needs_no_role(tables) -> None:
    invoke("add_target_account", accountId=HUB_ACCOUNT_ID)
    assert invoke("get_target_account", accountId=HUB_ACCOUNT_ID)["account"]["enabled"] is True


REFUSED_ADDS = [
    ({"accountId": "12345"}, "12 digits"),
    ({"accountId": 111122223333, "roleArn": ROLE}, "must be string"),
    ({"accountId": TARGET}, "roleArn is required"),
    ({"accountId": TARGET, "roleArn": "arn:aws:iam::999988887777:role/x"}, "not in the target"),
    ({"accountId": TARGET, "roleArn": f"arn:aws:iam::{TARGET}:user/bob"}, "IAM role ARN"),
    ({"accountId": TARGET, "roleArn": "not-an-arn"}, "IAM role ARN"),
    ({"accountId": TARGET, "roleArn": ROLE, "externalId": "x"}, "externalId"),
    ({"accountId": TARGET, "roleArn": ROLE, "externalId": "bad id!"}, "externalId"),
    ({"accountId": TARGET, "roleArn": ROLE, "externalId": "e" * 1225}, "externalId"),
    ({"accountId": TARGET, "roleArn": ROLE, "enabled": "yes"}, "must be boolean"),
    ({"accountId": TARGET, "roleArn": ROLE, "accountName": ""}, "accountName"),
    ({"accountId": TARGET, "roleArn": ROLE, "colour": "blue"}, "unknown parameter"),
    ({"roleArn": ROLE}, "missing required parameter accountId"),
]


@pytest.mark.parametrize(("params", "reason"), REFUSED_ADDS)
def test_add_refuses_bad_input_and_writes_nothing(tables, params, reason) -> None:
    with pytest.raises(InvalidParameterError, match=reason):
        invoke("add_target_account", **params)
    assert stored_items(tables) == []


def test_add_refuses_an_existing_account_and_keeps_the_original(tables) -> None:
    invoke("add_target_account", accountId=TARGET, roleArn=ROLE, accountName="original")
    with pytest.raises(ConflictError, match="already registered"):
        invoke("add_target_account", accountId=TARGET, roleArn=ROLE, accountName="second")
    items = stored_items(tables)
    assert len(items) == 1
    assert items[0]["accountName"] == "original"


def test_update_changes_only_given_fields(tables) -> None:
    invoke("add_target_account", accountId=TARGET, roleArn=ROLE, accountName="before")
    updated = invoke("update_target_account", accountId=TARGET, enabled=False)["account"]
    assert updated["enabled"] is False
    assert updated["accountName"] == "before"
    assert updated["roleArn"] == ROLE


@pytest.mark.parametrize(
    ("params", "error", "reason"),
    [
        ({"accountId": TARGET, "enabled": False}, NotFoundError, "not registered"),
        ({"accountId": TARGET}, InvalidParameterError, "nothing to change"),
        (
            {"accountId": TARGET, "roleArn": "arn:aws:iam::999988887777:role/x"},
            InvalidParameterError,
            "not in the target",
        ),
    ],
)
def test_update_refusals_write_nothing(tables, params, error, reason) -> None:
    with pytest.raises(error, match=reason):
        invoke("update_target_account", **params)
    assert stored_items(tables) == []


def test_update_refusal_leaves_existing_item_unchanged(tables) -> None:
    invoke("add_target_account", accountId=TARGET, roleArn=ROLE, externalId="keep-me")
    before = stored_items(tables)
    with pytest.raises(InvalidParameterError):
        invoke("update_target_account", accountId=TARGET, externalId="!")
    assert stored_items(tables) == before


def test_delete_removes_and_refuses_missing(tables) -> None:
    invoke("add_target_account", accountId=TARGET, roleArn=ROLE)
    assert invoke("delete_target_account", accountId=TARGET) == {"deleted": TARGET}
    assert stored_items(tables) == []
    with pytest.raises(NotFoundError):
        invoke("delete_target_account", accountId=TARGET)
    with pytest.raises(NotFoundError):
        invoke("get_target_account", accountId=TARGET)


def test_list_is_paginated_with_an_opaque_token(tables) -> None:
    accounts = [f"{n:012d}" for n in range(100000000001, 100000000008)]
    for account in accounts:
        invoke(
            "add_target_account",
            accountId=account,
            roleArn=f"arn:aws:iam::{account}:role/drs-orchestration-x",
        )
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if token:
            params["nextToken"] = token
        page = invoke("list_target_accounts", **params)
        pages += 1
        assert len(page["items"]) <= 3
        seen.extend(item["accountId"] for item in page["items"])
        token = page["nextToken"]
        if not token:
            break
    assert sorted(seen) == accounts
    assert pages >= 3


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": True}, "must be integer"),
        ({"nextToken": "!!not-a-token"}, "nextToken"),
    ],
)
def test_list_refuses_bad_parameters(tables, params, reason) -> None:
    with pytest.raises(InvalidParameterError, match=reason):
        invoke("list_target_accounts", **params)
