"""Target-account operations through the handler against DynamoDB in moto."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest

from shared.exceptions import ConflictError, InvalidParameterError, NotFoundError
from tests.conftest import HUB_ACCOUNT_ID
from tests.support.handlers import load_handler
from tests.support.strict import FULLWIDTH_ZERO, look_alikes, with_digits

handler = load_handler("data-management-handler")
TARGET = "111122223333"
ROLE = f"arn:aws:iam::{TARGET}:role/drs-orchestration-cross-account"
BAD_IDS = look_alikes(TARGET)
EXTERNAL_ID = "ext-id-123-Hq7Zk2Lp9Wm4Xv8Rt5Ns-Bd3"  # an operator's own: 32 characters at least


def _token(value: Any) -> str:
    """A well-formed token (urlsafe base64 of JSON) around `value`, as a forger would make."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


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
        externalId=EXTERNAL_ID,
        accountName="Production",
        skipConnectionTest=True,
    )
    assert added["account"]["enabled"] is True
    got = invoke("get_target_account", accountId=TARGET)["account"]
    assert got["roleArn"] == ROLE
    # reads show whether an external id is set and how it ends, never the id
    assert "externalId" not in got
    assert got["externalIdSet"] is True and got["externalIdLast4"] == EXTERNAL_ID[-4:]
    assert got["accountName"] == "Production"
    assert got["createdAt"].endswith("Z")


def test_hub_account_needs_no_role(tables) -> None:
    invoke("add_target_account", accountId=HUB_ACCOUNT_ID, skipConnectionTest=True)
    assert invoke("get_target_account", accountId=HUB_ACCOUNT_ID)["account"]["enabled"] is True


REFUSED_ADDS = [
    ({"accountId": "12345"}, "12 digits"),
    ({"accountId": 111122223333, "roleArn": ROLE}, "must be string"),
    ({"accountId": TARGET}, "roleArn is required"),
    ({"accountId": TARGET, "roleArn": "arn:aws:iam::999988887777:role/x"}, "not in the target"),
    ({"accountId": TARGET, "roleArn": f"arn:aws:iam::{TARGET}:user/bob"}, "IAM role ARN"),
    ({"accountId": TARGET, "roleArn": "not-an-arn"}, "IAM role ARN"),
    ({"accountId": TARGET, "roleArn": ROLE, "externalId": "x"}, "externalId"),
    ({"accountId": TARGET, "roleArn": ROLE, "externalId": "e" * 31}, "externalId must be 32-1224"),
    ({"accountId": TARGET, "roleArn": ROLE, "externalId": "bad id!"}, "externalId"),
    ({"accountId": TARGET, "roleArn": ROLE, "externalId": "e" * 1225}, "externalId"),
    ({"accountId": TARGET, "roleArn": ROLE, "enabled": "yes"}, "must be boolean"),
    ({"accountId": TARGET, "roleArn": ROLE, "accountName": ""}, "accountName"),
    ({"accountId": TARGET, "roleArn": ROLE, "colour": "blue"}, "unknown parameter"),
    ({"roleArn": ROLE}, "missing required parameter accountId"),
    # Strict input: in full, in ASCII, booleans are booleans, null is not "absent".
    ({"accountId": TARGET + "\n", "roleArn": ROLE}, "accountId must be 12 digits"),
    *[({"accountId": bad, "roleArn": ROLE}, "accountId must be 12 digits") for bad in BAD_IDS],
    ({"accountId": None, "roleArn": ROLE}, "accountId must be string, got null"),
    ({"accountId": TARGET, "roleArn": ROLE + "\n"}, "IAM role ARN"),
    *[({"accountId": TARGET, "roleArn": bad}, "IAM role ARN") for bad in look_alikes(ROLE)],
    ({"accountId": TARGET, "roleArn": f"arn:aws:iam::{TARGET}:role/"}, "IAM role ARN"),
    ({"accountId": TARGET, "roleArn": f"arn:aws:iam::{TARGET}:role/naïve"}, "IAM role ARN"),
    ({"accountId": TARGET, "roleArn": f"{ROLE}/"}, "IAM role ARN"),
    ({"accountId": TARGET, "roleArn": f"arn:aws:iam::{TARGET}:role/{'r' * 65}"}, "IAM role ARN"),
    ({"accountId": TARGET, "roleArn": None}, "roleArn must be string, got null"),
    ({"accountId": TARGET, "roleArn": ROLE, "externalId": "ext-id\n"}, "externalId"),
    ({"accountId": TARGET, "roleArn": ROLE, "externalId": "ext-ïd"}, "externalId"),
    (
        {"accountId": TARGET, "roleArn": ROLE, "externalId": with_digits("e-1", FULLWIDTH_ZERO)},
        "ext",
    ),
    ({"accountId": TARGET, "roleArn": ROLE, "externalId": None}, "got null"),
    ({"accountId": TARGET, "roleArn": ROLE, "accountName": "  "}, "accountName"),
    ({"accountId": TARGET, "roleArn": ROLE, "accountName": "n" * 257}, "at most 256"),
    ({"accountId": TARGET, "roleArn": ROLE, "accountName": ["a"]}, "must be string"),
    ({"accountId": TARGET, "roleArn": ROLE, "enabled": None}, "must be boolean, got null"),
    ({"accountId": TARGET, "roleArn": ROLE, "enabled": 1}, "must be boolean, got number"),
    ({"accountId": TARGET, "roleArn": ROLE, "enabled": "true"}, "must be boolean, got string"),
]


@pytest.mark.parametrize(("params", "reason"), REFUSED_ADDS)
def test_add_refuses_bad_input_and_writes_nothing(tables, params, reason) -> None:
    with pytest.raises(InvalidParameterError, match=reason):
        invoke("add_target_account", **params)
    assert stored_items(tables) == []


@pytest.mark.parametrize(
    "role_arn",
    [
        ROLE,
        f"arn:aws:iam::{TARGET}:role/service-role/dr/drs-orchestration-x",
        f"arn:aws-us-gov:iam::{TARGET}:role/drs-orchestration+=,.@_-x",
        f"arn:aws:iam::{TARGET}:role/{'r' * 64}",
    ],
)
def test_add_accepts_every_role_arn_iam_allows(tables, role_arn: str) -> None:
    invoke(
        "add_target_account",
        accountId=TARGET,
        roleArn=role_arn,
        externalId="a" * 1224,
        skipConnectionTest=True,
    )
    assert invoke("get_target_account", accountId=TARGET)["account"]["roleArn"] == role_arn


def test_a_refused_value_is_shown_cut_short(tables) -> None:
    with pytest.raises(InvalidParameterError) as raised:
        invoke("add_target_account", accountId="9" * 100_000, roleArn=ROLE)
    assert len(str(raised.value)) < 500


def test_many_unknown_parameters_are_listed_ten_at_most(tables) -> None:
    junk = {f"field{n:03d}": n for n in range(250)}
    with pytest.raises(InvalidParameterError, match="unknown parameter") as raised:
        invoke("add_target_account", accountId=TARGET, roleArn=ROLE, **junk)
    message = str(raised.value)
    assert "'field009'" in message and "'field010'" not in message
    assert "... and 240 more" in message
    assert "accountName" in message  # still lists the valid fields
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
        ({"accountId": TARGET + "\n", "enabled": False}, InvalidParameterError, "12 digits"),
        ({"accountId": TARGET, "enabled": None}, InvalidParameterError, "got null"),
        ({"accountId": TARGET, "accountName": None}, InvalidParameterError, "got null"),
    ],
)
def test_update_refusals_write_nothing(tables, params, error, reason) -> None:
    with pytest.raises(error, match=reason):
        invoke("update_target_account", **params)
    assert stored_items(tables) == []


@pytest.mark.parametrize(
    "change",
    [
        {"externalId": "!"},
        {"externalId": "e" * 31},
        {"externalId": None},
        {"enabled": "false"},
        {"enabled": None},
        {"accountName": None},
        {"accountName": "x" * 257},
        {"roleArn": ROLE + "\n"},
        {"enabled": False, "roleArn": None},
    ],
)
def test_update_refusal_leaves_existing_item_unchanged(tables, change) -> None:
    invoke(
        "add_target_account",
        accountId=TARGET,
        roleArn=ROLE,
        externalId=EXTERNAL_ID,
        skipConnectionTest=True,
    )
    before = stored_items(tables)
    with pytest.raises(InvalidParameterError):
        invoke("update_target_account", accountId=TARGET, **change)
    assert stored_items(tables) == before


@pytest.mark.parametrize("operation", ["get_target_account", "delete_target_account"])
@pytest.mark.parametrize("account_id", [*BAD_IDS, None, 111122223333, ""])
def test_key_operations_refuse_a_malformed_account_id(tables, operation, account_id) -> None:
    invoke("add_target_account", accountId=TARGET, roleArn=ROLE)
    with pytest.raises(InvalidParameterError, match="accountId"):
        invoke(operation, accountId=account_id)
    assert len(stored_items(tables)) == 1


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
        ({"nextToken": None}, "nextToken must be string, got null"),
        ({"nextToken": ""}, "nextToken must not be empty"),
        ({"nextToken": 7}, "nextToken must be string"),
        ({"nextToken": ["a"]}, "nextToken must be string"),
        ({"nextToken": {"accountId": TARGET}}, "nextToken must be string"),
        ({"nextToken": "A" * 100_000}, "nextToken must be at most"),
        ({"nextToken": base64.urlsafe_b64encode(b"\xff\xfe garbage").decode()}, "malformed"),
        ({"nextToken": base64.urlsafe_b64encode(b"[" * 3000).decode()}, "malformed"),
        ({"nextToken": _token({"accountId": 111122223333})}, "malformed"),
        ({"nextToken": _token({"accountId": {"S": TARGET}})}, "malformed"),
        ({"nextToken": _token({"accountId": TARGET + "\n"})}, "malformed"),
        ({"nextToken": _token({"accountId": TARGET, "x": 1})}, "does not belong"),
        ({"nextToken": _token([TARGET])}, "does not belong"),
        ({"enabledOnly": None}, "enabledOnly must be boolean, got null"),
        ({"limit": None}, "limit must be integer, got null"),
    ],
)
def test_list_refuses_bad_parameters(tables, params, reason) -> None:
    with pytest.raises(InvalidParameterError, match=reason):
        invoke("list_target_accounts", **params)
