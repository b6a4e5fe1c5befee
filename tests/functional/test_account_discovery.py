"""discover_target_accounts against moto's Organizations: a plan by default, registrations on
request, through the registry's own operations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from scripts.local.moto_server import LocalMotoServer, MotoFault
from shared import aws as shared_aws
from shared.exceptions import InvalidParameterError, OrganizationsAccessError
from tests.support.world import HUB, TARGET_A, TARGET_B, CallLog, World

ROLE_NAME = "drs-orchestration-cross-account"
SHARED_ID = "stackset-parameter-external-id-" + "k" * 8


@pytest.fixture
def calls(world: World) -> Iterator[CallLog]:
    """The handler's clients come from the World's sessions (denied roles, call log)."""
    log = CallLog()
    previous = shared_aws.set_environment_pool(world.pool(log))
    yield log
    if previous is not None:
        shared_aws.set_environment_pool(previous)


@pytest.fixture
def org(world: World) -> dict[str, str]:
    """An organization managed by the hub: two active members and one closed (SUSPENDED).
    Returns {name: accountId}."""
    client = boto3.client("organizations", region_name="us-east-1")
    client.create_organization(FeatureSet="ALL")
    accounts = {}
    for name in ("payments", "analytics", "retired"):
        status = client.create_account(Email=f"{name}@example.com", AccountName=name)
        accounts[name] = status["CreateAccountStatus"]["AccountId"]
    client.close_account(AccountId=accounts["retired"])
    return accounts


def registry(world: World) -> dict[str, dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(world.tables.target_accounts)
    return {item["accountId"]: item for item in table.scan(ConsistentRead=True)["Items"]}


def ids(entries: list[dict[str, Any]]) -> set[str]:
    return {entry["accountId"] for entry in entries}


def test_a_dry_run_plans_and_writes_nothing(world: World, org: dict[str, str]) -> None:
    before = registry(world)

    answer = world.invoke("discover_target_accounts")

    assert answer["applied"] is False and "results" not in answer
    plan = answer["plan"]
    assert ids(plan["toRegister"]) == {org["payments"], org["analytics"]}
    payments = next(e for e in plan["toRegister"] if e["accountId"] == org["payments"])
    assert payments == {
        "accountId": org["payments"],
        "accountName": "payments",
        "roleArn": f"arn:aws:iam::{org['payments']}:role/{ROLE_NAME}",
    }
    assert {"accountId": HUB, "reason": "the hub account (synced without a role)"} in plan[
        "skipped"
    ]
    assert {"accountId": org["retired"], "reason": "state SUSPENDED"} in plan["skipped"]
    # registered accounts the organization does not list are reported, not disabled
    assert ids(plan["notInOrganization"]) == {TARGET_A, TARGET_B}
    assert plan["toDisable"] == [] and plan["alreadyRegistered"] == []
    assert registry(world) == before


def test_apply_registers_reports_and_is_idempotent(world: World, org: dict[str, str]) -> None:
    answer = world.invoke("discover_target_accounts", apply=True, skipConnectionTest=True)

    assert answer["applied"] is True
    assert sorted(answer["results"], key=lambda r: r["accountId"]) == sorted(
        [
            {"accountId": org[n], "action": "register", "ok": True}
            for n in ("payments", "analytics")
        ],
        key=lambda r: r["accountId"],
    )
    # one generated id for the apply, returned once
    external_id = answer["externalId"]
    assert answer["externalIdGenerated"] is True and len(external_id) >= 32
    stored = registry(world)
    for name in ("payments", "analytics"):
        item = stored[org[name]]
        assert item["externalId"] == external_id and item["enabled"] is True
        assert item["roleArn"].endswith(f":role/{ROLE_NAME}")
    assert org["retired"] not in stored and HUB not in stored

    again = world.invoke("discover_target_accounts", apply=True, skipConnectionTest=True)

    assert again["plan"]["toRegister"] == [] and again["results"] == []
    assert "externalId" not in again
    assert ids(again["plan"]["alreadyRegistered"]) == {org["payments"], org["analytics"]}
    assert registry(world) == stored


def test_a_given_id_is_used_for_every_account_and_tests_run(
    world: World, org: dict[str, str], calls: CallLog
) -> None:
    answer = world.invoke(
        "discover_target_accounts", apply=True, externalId=SHARED_ID, roleName=ROLE_NAME
    )

    tested = {call["RoleArn"].split(":")[4] for call in calls.assume_roles}
    assert tested == {org["payments"], org["analytics"]}
    assert all(call["ExternalId"] == SHARED_ID for call in calls.assume_roles)
    for result in answer["results"]:
        if result["ok"]:
            assert result["connectionTest"]["ok"] is True
            assert registry(world)[result["accountId"]]["externalId"] == SHARED_ID
    assert SHARED_ID not in json.dumps(answer["plan"])


def test_one_failing_account_never_stops_the_others(
    world: World, org: dict[str, str], calls: CallLog
) -> None:
    # GIVEN no discovered role can be assumed (AssumeRole answers AccessDenied)
    for name in ("payments", "analytics"):
        world.denied_roles.add(f"arn:aws:iam::{org[name]}:role/{ROLE_NAME}")

    answer = world.invoke("discover_target_accounts", apply=True, externalId=SHARED_ID)

    # THEN each registration is refused with its own report, and nothing is written
    assert len(answer["results"]) == 2
    for result in answer["results"]:
        assert result["ok"] is False and result["action"] == "register"
        assert result["error"]["code"] == "ConnectionTestFailed"
        assert "roleAssumable" in result["error"]["message"]
        assert result["connectionTest"]["ok"] is False
    assert "externalId" not in answer
    assert set(registry(world)) == {TARGET_A, TARGET_B}


def test_closing_registered_accounts_are_disabled(world: World, org: dict[str, str]) -> None:
    # GIVEN the retired account was registered (and enabled) before it was closed
    world.invoke(
        "add_target_account",
        accountId=org["retired"],
        roleArn=f"arn:aws:iam::{org['retired']}:role/{ROLE_NAME}",
    )

    dry = world.invoke("discover_target_accounts")
    assert dry["plan"]["toDisable"] == [{"accountId": org["retired"], "state": "SUSPENDED"}]

    applied = world.invoke("discover_target_accounts", apply=True, skipConnectionTest=True)

    assert {"accountId": org["retired"], "action": "disable", "ok": True} in applied["results"]
    assert registry(world)[org["retired"]]["enabled"] is False
    again = world.invoke("discover_target_accounts")["plan"]
    assert again["toDisable"] == []
    assert {"accountId": org["retired"], "enabled": False, "state": "SUSPENDED"} in again[
        "alreadyRegistered"
    ]


def test_a_hub_outside_any_organization_is_told_what_to_do(
    world: World, moto_server: LocalMotoServer
) -> None:
    # moto lists no accounts where AWS answers this error: the error as AWS sends it
    moto_server.set_fault(
        MotoFault("organizations", "ListAccounts", error_code="AWSOrganizationsNotInUseException")
    )
    with pytest.raises(OrganizationsAccessError) as raised:
        world.invoke("discover_target_accounts")
    message = str(raised.value)
    assert "AWSOrganizationsNotInUseException" in message
    assert "management account" in message and "organizationsRoleArn" in message


def test_access_denied_names_management_or_delegated_admin(
    world: World, org: dict[str, str], moto_server: LocalMotoServer
) -> None:
    moto_server.set_fault(
        MotoFault("organizations", "ListAccounts", error_code="AccessDeniedException")
    )
    with pytest.raises(OrganizationsAccessError) as raised:
        world.invoke("discover_target_accounts")
    message = str(raised.value)
    assert "delegated administrator" in message and "organizationsRoleArn" in message
    assert registry(world).keys() == {TARGET_A, TARGET_B}


def test_an_organizations_role_is_assumed_when_given(
    world: World, org: dict[str, str], calls: CallLog
) -> None:
    reader = f"arn:aws:iam::{HUB}:role/drs-orchestration-org-reader"
    boto3.client("iam").create_role(
        RoleName="drs-orchestration-org-reader",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{HUB}:root"},
                        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                    }
                ],
            }
        ),
    )

    answer = world.invoke("discover_target_accounts", organizationsRoleArn=reader)

    assert ids(answer["plan"]["toRegister"]) == {org["payments"], org["analytics"]}
    assert [call["RoleArn"] for call in calls.assume_roles] == [reader]

    world.denied_roles.add(reader)
    with pytest.raises(OrganizationsAccessError, match="cannot assume organizationsRoleArn"):
        world.invoke("discover_target_accounts", organizationsRoleArn=reader)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"roleName": "admin"}, "drs-orchestration-"),
        ({"roleName": "drs-orchestration-x\n"}, "drs-orchestration-"),
        ({"apply": "true"}, "must be boolean"),
        ({"externalId": "too-short"}, "32-1224"),
        ({"organizationsRoleArn": "arn:aws:iam::1:role/x"}, "IAM role ARN"),
        ({"dryRun": True}, "unknown parameter"),
    ],
)
def test_discovery_refuses_bad_input(world: World, params, reason) -> None:
    with pytest.raises(InvalidParameterError, match=reason):
        world.invoke("discover_target_accounts", **params)
