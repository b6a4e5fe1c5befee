"""The local STS refuses what AWS refuses: real boto3 clients against the local moto server."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from scripts.local.accounts import (
    account_client,
    act_as_service,
    create_cross_account_role,
    cross_account_trust,
)
from scripts.local.moto_server import MotoFault
from tests.support.world import EXTERNAL_ID, HUB, REGIONS, TARGET_A, TARGET_B, World, role_arn

TARGET = "111122223333"
NO_RETRIES = Config(retries={"total_max_attempts": 1})
HUB_CALLER = f"arn:aws:iam::{HUB}:user/moto"  # the tests' `testing` key in moto's default account


def _sts(credentials: dict[str, Any] | None = None) -> Any:
    if credentials is None:
        return boto3.client("sts", config=NO_RETRIES)
    return boto3.client(
        "sts",
        config=NO_RETRIES,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def _refusal(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return {
        "code": raised.value.response["Error"]["Code"],
        "message": raised.value.response["Error"]["Message"],
        "status": raised.value.response["ResponseMetadata"]["HTTPStatusCode"],
    }


def _denied(caller: str, role: str) -> dict[str, Any]:
    message = f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role}"
    return {"code": "AccessDenied", "message": message, "status": 403}


def _create_role(account: str, name: str, trust: dict[str, Any], path: str = "/") -> str:
    iam = account_client("iam", account)
    return str(
        iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
    )


def test_a_role_that_does_not_exist_cannot_be_assumed(moto_endpoint: str) -> None:
    role = role_arn(TARGET)

    refusal = _refusal(_sts().assume_role, RoleArn=role, RoleSessionName="sync", ExternalId="x1")

    assert refusal == _denied(HUB_CALLER, role)


def test_a_wrong_or_missing_external_id_is_refused_with_the_same_message(
    moto_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    role = create_cross_account_role(TARGET, HUB, EXTERNAL_ID)

    with caplog.at_level(logging.INFO, logger="scripts.local.moto_server.sts"):
        wrong = _refusal(
            _sts().assume_role, RoleArn=role, RoleSessionName="sync", ExternalId="not-the-one"
        )
        missing = _refusal(_sts().assume_role, RoleArn=role, RoleSessionName="sync")

    assert wrong == missing == _denied(HUB_CALLER, role)
    # The real reason is for people debugging a local run: in the server's log only.
    assert "sts:ExternalId" in caplog.text and "'not-the-one'" in caplog.text


def test_the_right_external_id_gives_a_session_in_the_target_account(moto_endpoint: str) -> None:
    role = create_cross_account_role(TARGET, HUB, EXTERNAL_ID)

    credentials = _sts().assume_role(
        RoleArn=role,
        RoleSessionName="sync",
        ExternalId=EXTERNAL_ID,
        SourceIdentity="drs-inventory-sync",
    )["Credentials"]

    identity = _sts(credentials).get_caller_identity()
    assert identity["Account"] == TARGET
    assert identity["Arn"] == f"arn:aws:sts::{TARGET}:assumed-role/{role.split('/')[-1]}/sync"


def test_a_principal_the_trust_policy_does_not_name_is_refused(moto_endpoint: str) -> None:
    other_hub = "999988887777"
    role = create_cross_account_role(TARGET, other_hub, EXTERNAL_ID)

    refusal = _refusal(
        _sts().assume_role, RoleArn=role, RoleSessionName="sync", ExternalId=EXTERNAL_ID
    )

    assert refusal == _denied(HUB_CALLER, role)


def test_source_identity_needs_set_source_identity_in_the_trust(moto_endpoint: str) -> None:
    trust = cross_account_trust(HUB, EXTERNAL_ID)
    trust["Statement"][0]["Action"] = "sts:AssumeRole"
    role = _create_role(TARGET, "assume-only", trust)

    refusal = _refusal(
        _sts().assume_role,
        RoleArn=role,
        RoleSessionName="sync",
        ExternalId=EXTERNAL_ID,
        SourceIdentity="drs-inventory-sync",
    )

    assert refusal["code"] == "AccessDenied"
    assert _sts().assume_role(RoleArn=role, RoleSessionName="sync", ExternalId=EXTERNAL_ID)


def test_a_role_principal_is_the_callers_role_with_its_path_not_its_session(
    moto_endpoint: str,
) -> None:
    # GIVEN a hub role under a path, and a target role trusting exactly that role
    handler_role = _create_role(
        HUB,
        "data-management-handler",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": HUB}, "Action": "sts:*"}],
        },
        path="/service-role/drs/",
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": handler_role},
                "Action": "sts:AssumeRole",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": handler_role}},
            }
        ],
    }
    target_role = _create_role(TARGET, "reader", trust)
    session = _sts().assume_role(RoleArn=handler_role, RoleSessionName="handler")["Credentials"]

    # WHEN the handler's session and the hub's plain user assume the target role
    assumed = _sts(session).assume_role(RoleArn=target_role, RoleSessionName="sync")
    refusal = _refusal(_sts().assume_role, RoleArn=target_role, RoleSessionName="sync")

    # THEN only the trusted role's session may; AWS names a session caller by its session ARN
    assert assumed["AssumedRoleUser"]["Arn"].startswith(f"arn:aws:sts::{TARGET}:")
    assert refusal == _denied(HUB_CALLER, target_role)
    other_session = _sts().assume_role(
        RoleArn=_create_role(HUB, "other", _hub_trust()),
        RoleSessionName="other",
    )["Credentials"]
    assert _refusal(
        _sts(other_session).assume_role, RoleArn=target_role, RoleSessionName="sync"
    ) == _denied(f"arn:aws:sts::{HUB}:assumed-role/other/other", target_role)


def _hub_trust() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": HUB}, "Action": "sts:AssumeRole"}],
    }


def test_a_lambda_execution_role_is_assumed_by_the_lambda_service_only(moto_endpoint: str) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = _create_role(HUB, "function-role", trust)

    as_lambda = act_as_service(_sts(), "lambda.amazonaws.com")
    as_events = act_as_service(_sts(), "events.amazonaws.com")

    assert as_lambda.assume_role(RoleArn=role, RoleSessionName="function")["Credentials"]
    assert _refusal(as_events.assume_role, RoleArn=role, RoleSessionName="function") == _denied(
        "events.amazonaws.com", role
    )
    assert _refusal(_sts().assume_role, RoleArn=role, RoleSessionName="function") == _denied(
        HUB_CALLER, role
    )


def test_an_armed_fault_still_answers_before_the_trust_policy_is_read(
    moto_endpoint: str, moto_server: Any
) -> None:
    role = create_cross_account_role(TARGET, HUB, EXTERNAL_ID)
    moto_server.set_fault(MotoFault("sts", "AssumeRole", error_code="Throttling", count=1))

    refusal = _refusal(
        _sts().assume_role, RoleArn=role, RoleSessionName="sync", ExternalId=EXTERNAL_ID
    )

    assert refusal["code"] == "Throttling"
    assert _sts().assume_role(RoleArn=role, RoleSessionName="sync", ExternalId=EXTERNAL_ID)


def test_setup_clients_act_in_their_account_without_a_role(moto_endpoint: str) -> None:
    ec2 = account_client("ec2", TARGET, "eu-west-1")

    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]

    assert vpc["OwnerId"] == TARGET
    hub_vpcs = boto3.client("ec2", region_name="eu-west-1").describe_vpcs()["Vpcs"]
    assert vpc["VpcId"] not in {v["VpcId"] for v in hub_vpcs}


# ---- through the sync -------------------------------------------------------------------------


def test_a_target_whose_role_wants_another_external_id_fails_its_scopes(world: World) -> None:
    # GIVEN TARGET_B's role requires another external id than the one registered
    world.client("iam", TARGET_B).update_assume_role_policy(
        RoleName=role_arn(TARGET_B).rsplit("/", 1)[-1],
        PolicyDocument=json.dumps(cross_account_trust(HUB, "drs-orchestration-other")),
    )
    for account in (TARGET_A, TARGET_B):
        world.add_servers(account, "us-east-1", 3, ec2_fraction=0.0)

    # WHEN the sync runs
    summary = world.sync()

    # THEN TARGET_B's scopes are failures (never SUCCEEDED with 0 servers); TARGET_A is synced
    assert summary["status"] == "PARTIAL"
    failures = {(f["accountId"], f["region"]): f for f in summary["failures"]}
    assert set(failures) == {(TARGET_B, region) for region in REGIONS}
    for failure in failures.values():
        assert failure["status"] == "ACCESS_DENIED"
        assert failure["errorCode"] == "AssumeRoleFailed"
    status = world.region_status()
    for region in REGIONS:
        assert status[(TARGET_B, region)]["status"] == "ACCESS_DENIED"
        assert status[(TARGET_A, region)]["status"] == "ACTIVE"
    assert len(world.scope_items(TARGET_A, "us-east-1")) == 3
    assert world.scope_items(TARGET_B, "us-east-1") == {}
    # The refused account was never read, neither with its own nor with the hub's credentials.
    assert world.simulator.request_count("DescribeSourceServers", TARGET_B, "us-east-1") == 0


def test_moto_state_it_cannot_read_refuses_with_a_clear_message(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a moto whose STS backend lost the lookup the layer relies on (a moto upgrade)
    from moto.sts.models import STSBackend

    role = create_cross_account_role(TARGET, HUB, EXTERNAL_ID)
    monkeypatch.delattr(STSBackend, "get_assumed_role_from_access_key")

    # WHEN an AssumeRole that the trust policy allows arrives, THEN it is refused (fail closed)
    refusal = _refusal(
        _sts().assume_role, RoleArn=role, RoleSessionName="sync", ExternalId=EXTERNAL_ID
    )

    assert refusal["code"] == "AccessDenied"
    assert "cannot judge AssumeRole with moto 5." in refusal["message"]
