"""test_target_account, and the test add/update run before they write: through the handler,
against moto's STS and EC2 and the DRS simulator, with the World's roles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from scripts.local.drs_simulator import ACCESS_DENIED, UNINITIALIZED
from shared import aws as shared_aws
from shared.exceptions import ConnectionTestFailedError, InvalidParameterError, NotFoundError
from tests.support.lambda_context import FakeLambdaContext
from tests.support.world import (
    EXTERNAL_ID,
    HUB,
    REGIONS,
    TARGET_A,
    TARGET_B,
    CallLog,
    World,
    role_arn,
)

NEW_ACCOUNT = "333333333333"
NEW_ROLE = role_arn(NEW_ACCOUNT)
GIVEN_ID = "stackset-external-id-" + "q" * 16


@pytest.fixture
def calls(world: World) -> Iterator[CallLog]:
    """The handler's clients come from the World's sessions (denied roles, call log)."""
    log = CallLog()
    previous = shared_aws.set_environment_pool(world.pool(log))
    yield log
    if previous is not None:
        shared_aws.set_environment_pool(previous)


def checks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["check"]: check for check in result["checks"]}


def registered(world: World) -> set[str]:
    table = boto3.resource("dynamodb").Table(world.tables.target_accounts)
    return {item["accountId"] for item in table.scan(ConsistentRead=True)["Items"]}


def test_a_good_account_passes_every_check(world: World, calls: CallLog) -> None:
    result = world.invoke("test_target_account", accountId=TARGET_A)

    assert result["ok"] is True, result
    assert result["accountId"] == TARGET_A and result["hubAccount"] is False
    assert result["regions"] == {region: "INITIALIZED" for region in REGIONS}
    assert {name: c["ok"] for name, c in checks(result).items()} == {
        "roleAssumable": True,
        "externalIdAccepted": True,
        "drsReadable": True,
        "ec2Readable": True,
    }
    # assumed as the sync assumes: its role, its external id, 900 s, a SourceIdentity
    (assume,) = calls.assume_roles
    assert assume["RoleArn"] == role_arn(TARGET_A) and assume["ExternalId"] == EXTERNAL_ID
    assert assume["DurationSeconds"] == 900 and assume["SourceIdentity"]
    # one minimal DRS call per region, one small EC2 call
    assert world.simulator.request_count("DescribeSourceServers", TARGET_A) == len(REGIONS)
    (instances,) = calls.describe_instances
    assert instances["MaxResults"] == 5
    assert EXTERNAL_ID not in json.dumps(result)
    assert result["externalIdLast4"] == EXTERNAL_ID[-4:]


def test_drs_access_denied_in_one_region_fails_with_what_to_allow(
    world: World, calls: CallLog
) -> None:
    world.fault(TARGET_A, "us-west-2", ACCESS_DENIED)

    result = world.invoke("test_target_account", accountId=TARGET_A)

    assert result["ok"] is False
    assert result["regions"]["us-west-2"] == "ACCESS_DENIED"
    assert result["regions"]["us-east-1"] == "INITIALIZED"
    drs = checks(result)["drsReadable"]
    assert drs["ok"] is False
    assert drs["message"] == (
        "DRS access denied in us-west-2: the role's policy must allow drs:DescribeSourceServers"
    )
    assert "simulated" not in json.dumps(result)  # AWS's own text stays in the log


def test_an_uninitialised_region_is_information_not_a_failure(world: World, calls: CallLog) -> None:
    world.fault(TARGET_A, "eu-west-1", UNINITIALIZED)

    result = world.invoke("test_target_account", accountId=TARGET_A)

    assert result["ok"] is True
    assert result["regions"]["eu-west-1"] == "NOT_INITIALIZED"
    assert "not initialised in eu-west-1" in checks(result)["drsReadable"]["message"]


def test_a_refused_assume_role_names_both_roles_and_does_not_guess_why(
    world: World, calls: CallLog
) -> None:
    world.denied_roles.add(role_arn(TARGET_A))

    result = world.invoke("test_target_account", accountId=TARGET_A)

    assert result["ok"] is False
    role = checks(result)["roleAssumable"]
    assert role["ok"] is False
    assert role_arn(TARGET_A) in role["message"]
    assert (
        "does not exist, does not trust the hub's role, or expects another external id"
        in (role["message"])
    )
    assert f"...{EXTERNAL_ID[-4:]}" in role["message"]
    assert "cfn/target-account-role.yaml" in role["message"]
    assert checks(result)["externalIdAccepted"]["ok"] is None  # AWS does not say which
    assert checks(result)["drsReadable"]["ok"] is None
    assert result["regions"] == {}
    assert world.simulator.request_count("DescribeSourceServers", TARGET_A) == 0
    assert EXTERNAL_ID not in json.dumps(result)


def test_the_refusal_names_the_hub_role_with_its_path_as_trust_policies_must(
    world: World, calls: CallLog
) -> None:
    """STS shows the hub's session without its role's path; aws:PrincipalArn has the path.
    The stack's HUB_ROLE_ARN is what the operator must put in the target's trust policy."""
    hub_role = "arn:aws:iam::123456789012:role/drs-orchestration/aws-drs-orchestration-dmh-qa"
    world.monkeypatch.setenv("HUB_ROLE_ARN", hub_role)
    world.denied_roles.add(role_arn(TARGET_A))

    result = world.invoke("test_target_account", accountId=TARGET_A)

    assert f"the hub's role {hub_role} cannot assume" in checks(result)["roleAssumable"]["message"]


def test_the_hub_is_tested_with_its_own_credentials(world: World, calls: CallLog) -> None:
    result = world.invoke("test_target_account", accountId=HUB, regions=["us-east-1"])

    assert result["ok"] is True and result["hubAccount"] is True
    assert result["regions"] == {"us-east-1": "INITIALIZED"}
    assert calls.assume_roles == []


def test_candidate_values_are_tested_before_saving(world: World, calls: CallLog) -> None:
    assert world.create_target_role(NEW_ACCOUNT, external_id=GIVEN_ID) == NEW_ROLE
    result = world.invoke(
        "test_target_account", accountId=NEW_ACCOUNT, roleArn=NEW_ROLE, externalId=GIVEN_ID
    )
    assert result["ok"] is True
    assert calls.assume_roles[0]["ExternalId"] == GIVEN_ID
    assert NEW_ACCOUNT not in registered(world)


@pytest.mark.parametrize(
    ("params", "error", "reason"),
    [
        ({"accountId": NEW_ACCOUNT}, NotFoundError, "give roleArn and externalId"),
        (
            {"accountId": TARGET_A, "regions": ["ap-south-1"]},
            InvalidParameterError,
            "valid regions",
        ),
        ({"accountId": TARGET_A, "regions": []}, InvalidParameterError, "at least one"),
        ({"accountId": TARGET_A, "externalId": "short"}, InvalidParameterError, "32-1224"),
        ({"accountId": TARGET_A, "roleArn": NEW_ROLE}, InvalidParameterError, "not in the target"),
    ],
)
def test_test_target_account_refuses_bad_input(world: World, params, error, reason) -> None:
    with pytest.raises(error, match=reason):
        world.invoke("test_target_account", **params)


def test_add_is_refused_and_writes_nothing_when_the_test_fails(
    world: World, calls: CallLog
) -> None:
    world.denied_roles.add(NEW_ROLE)

    with pytest.raises(ConnectionTestFailedError) as raised:
        world.invoke(
            "add_target_account", accountId=NEW_ACCOUNT, roleArn=NEW_ROLE, externalId=GIVEN_ID
        )

    message = str(raised.value)
    assert "nothing was written" in message and "roleAssumable" in message
    assert "skipConnectionTest" in message and GIVEN_ID not in message
    assert raised.value.result["ok"] is False
    assert NEW_ACCOUNT not in registered(world)


def test_add_runs_the_test_and_returns_it(world: World, calls: CallLog) -> None:
    assert world.create_target_role(NEW_ACCOUNT, external_id=GIVEN_ID) == NEW_ROLE
    added = world.invoke(
        "add_target_account", accountId=NEW_ACCOUNT, roleArn=NEW_ROLE, externalId=GIVEN_ID
    )
    assert added["connectionTest"]["ok"] is True
    assert "connectionTestSkipped" not in added
    assert NEW_ACCOUNT in registered(world)


def test_skip_connection_test_writes_without_it(world: World, calls: CallLog) -> None:
    world.denied_roles.add(NEW_ROLE)

    added = world.invoke(
        "add_target_account",
        accountId=NEW_ACCOUNT,
        roleArn=NEW_ROLE,
        externalId=GIVEN_ID,
        skipConnectionTest=True,
    )

    assert added["connectionTest"] is None
    assert calls.assume_roles == []
    assert NEW_ACCOUNT in registered(world)


def test_an_update_of_the_external_id_is_tested_before_it_is_written(
    world: World, calls: CallLog
) -> None:
    world.denied_roles.add(role_arn(TARGET_A))

    with pytest.raises(ConnectionTestFailedError):
        world.invoke("update_target_account", accountId=TARGET_A, externalId=GIVEN_ID)

    account = world.invoke("get_target_account", accountId=TARGET_A)["account"]
    assert account["externalIdLast4"] == EXTERNAL_ID[-4:]
    # a change that does not touch the role, the id or enabled needs no test
    world.invoke("update_target_account", accountId=TARGET_A, accountName="renamed")


def test_enabling_an_account_tests_it_first(world: World, calls: CallLog) -> None:
    world.invoke("update_target_account", accountId=TARGET_B, enabled=False)  # no test needed
    world.denied_roles.add(role_arn(TARGET_B))

    with pytest.raises(ConnectionTestFailedError):
        world.invoke("update_target_account", accountId=TARGET_B, enabled=True)
    assert world.invoke("get_target_account", accountId=TARGET_B)["account"]["enabled"] is False

    world.denied_roles.clear()
    updated = world.invoke("update_target_account", accountId=TARGET_B, enabled=True)
    assert updated["account"]["enabled"] is True and updated["connectionTest"]["ok"] is True


def test_a_failed_test_reaches_the_invoker_as_its_own_error(world: World, calls: CallLog) -> None:
    """Not an AwsServiceError: the invoker is told which check failed and why."""
    world.invoke("update_target_account", accountId=TARGET_A, enabled=False)  # not tested
    world.fault(TARGET_A, "us-east-1", ACCESS_DENIED)
    with pytest.raises(ConnectionTestFailedError, match="DRS access denied in us-east-1"):
        world.handler.lambda_handler(  # re-enabling is tested
            {"operation": "update_target_account", "accountId": TARGET_A, "enabled": True},
            FakeLambdaContext(),
        )
