"""cfn/target-account-role.yaml deployed by CloudFormation in a target account (the local moto).

moto acts in another account for a request carrying `x-moto-account-id`; the stack is created
there as a StackSet instance would create it, and IAM then shows the role it made.
"""

from __future__ import annotations

import ast
import json
import urllib.parse
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.cfn import CFN_DIR

TARGET_ACCOUNT = "111122223333"
HUB_ACCOUNT = "123456789012"
HUB_ROLE_ARN = (
    f"arn:aws:iam::{HUB_ACCOUNT}:role/drs-orchestration/"
    "aws-drs-orchestration-data-management-handler-qa"
)
EXTERNAL_ID = "0123456789abcdef0123456789abcdef-demo"
TEMPLATE = (CFN_DIR / "target-account-role.yaml").read_text()


def client_in(account: str, service: str, region: str = "us-east-1") -> Any:
    """A boto3 client whose every request moto serves as `account`."""
    client = boto3.client(service, region_name=region)

    def act_as_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account

    client.meta.events.register("before-sign", act_as_account)
    return client


def deploy(region: str = "us-east-1", **parameters: str) -> dict[str, Any]:
    """Create the stack in the target account; its description once CREATE_COMPLETE."""
    cloudformation = client_in(TARGET_ACCOUNT, "cloudformation", region)
    values = {
        "HubAccountId": HUB_ACCOUNT,
        "HubPrincipalArn": HUB_ROLE_ARN,
        "ExternalId": EXTERNAL_ID,
        **parameters,
    }
    cloudformation.create_stack(
        StackName="drs-orchestration-target",
        TemplateBody=TEMPLATE,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    (stack,) = cloudformation.describe_stacks(StackName="drs-orchestration-target")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return stack


def policy_document(document: Any) -> Any:
    """A policy document as data: IAM returns URL-encoded JSON (boto3 decodes some, not all);
    moto keeps an inline policy CloudFormation created as the repr of its dict."""
    if not isinstance(document, str):
        return document
    text = urllib.parse.unquote(document)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return ast.literal_eval(text)


@pytest.mark.usefixtures("moto_endpoint")
def test_the_stack_creates_the_role_in_the_target_account_with_the_trust_and_reads() -> None:
    stack = deploy()
    iam = client_in(TARGET_ACCOUNT, "iam")

    role = iam.get_role(RoleName="drs-orchestration-cross-account")["Role"]
    trust = policy_document(role["AssumeRolePolicyDocument"])
    hub_root = {"AWS": f"arn:aws:iam::{HUB_ACCOUNT}:root"}
    pinned = {"ArnEquals": {"aws:PrincipalArn": HUB_ROLE_ARN}}
    assert role["Arn"] == f"arn:aws:iam::{TARGET_ACCOUNT}:role/drs-orchestration-cross-account"
    assert role["MaxSessionDuration"] == 3600
    assert [(s["Principal"], s["Action"], s["Condition"]) for s in trust["Statement"]] == [
        (hub_root, "sts:AssumeRole", {**pinned, "StringEquals": {"sts:ExternalId": EXTERNAL_ID}}),
        (hub_root, "sts:SetSourceIdentity", pinned),
    ]
    (name,) = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    document = policy_document(
        iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"]
    )
    (statement,) = document["Statement"]
    assert sorted(statement["Action"]) == ["drs:DescribeSourceServers", "ec2:DescribeInstances"]
    assert statement["Resource"] == "*"
    assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []
    # The output operators register in the hub as the account's roleArn. (NoEcho of the
    # external id is CloudFormation's to honour; moto shows it, tests/unit checks the flag.)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if outputs:  # moto reports outputs of stacks created directly
        assert outputs == {"RoleArn": role["Arn"]}
    # Nothing was created in the hub account.
    hub_iam = client_in(HUB_ACCOUNT, "iam")
    assert "drs-orchestration-cross-account" not in {
        r["RoleName"] for r in hub_iam.list_roles()["Roles"]
    }


@pytest.mark.usefixtures("moto_endpoint")
def test_an_instance_outside_role_region_creates_no_role() -> None:
    stack = deploy(region="eu-west-1", RoleRegion="us-east-1")
    iam = client_in(TARGET_ACCOUNT, "iam")

    assert "Outputs" not in stack or stack["Outputs"] == []
    assert "drs-orchestration-cross-account" not in {
        r["RoleName"] for r in iam.list_roles()["Roles"]
    }


@pytest.mark.usefixtures("moto_endpoint")
def test_a_custom_name_and_path_make_the_role_arn() -> None:
    deploy(RoleName="drs-orchestration-inventory", RolePath="/ops/")
    iam = client_in(TARGET_ACCOUNT, "iam")

    role = iam.get_role(RoleName="drs-orchestration-inventory")["Role"]
    assert role["Arn"] == f"arn:aws:iam::{TARGET_ACCOUNT}:role/ops/drs-orchestration-inventory"


def _as_the_hub_role() -> Any:
    """An STS client with the data-management-handler's role's session (HUB_ROLE_ARN: fixed
    name and path), as the sync runs."""
    name = HUB_ROLE_ARN.rsplit("/", 1)[1]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{HUB_ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = boto3.client("iam").create_role(
        RoleName=name, Path="/drs-orchestration/", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]
    assert role["Arn"] == HUB_ROLE_ARN
    credentials = boto3.client("sts").assume_role(RoleArn=HUB_ROLE_ARN, RoleSessionName="dmh")[
        "Credentials"
    ]
    return boto3.client(
        "sts",
        region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


TARGET_ROLE_ARN = f"arn:aws:iam::{TARGET_ACCOUNT}:role/drs-orchestration-cross-account"


@pytest.mark.usefixtures("moto_endpoint")
def test_the_hub_assumes_the_role_the_way_the_sync_does() -> None:
    deploy()
    sts = _as_the_hub_role()

    assumed = sts.assume_role(
        RoleArn=TARGET_ROLE_ARN,
        RoleSessionName="sync",
        ExternalId=EXTERNAL_ID,
        SourceIdentity="drs-inventory-sync-qa",
    )

    assert assumed["AssumedRoleUser"]["Arn"].startswith(
        f"arn:aws:sts::{TARGET_ACCOUNT}:assumed-role/drs-orchestration-cross-account/"
    )


@pytest.mark.usefixtures("moto_endpoint")
def test_the_role_refuses_another_external_id_and_any_other_hub_principal() -> None:
    """The local STS judges the template's trust as AWS does: the pinned principal
    (aws:PrincipalArn) AND the external id, both."""
    deploy()
    hub_role = _as_the_hub_role()
    another_principal = boto3.client("sts", region_name="us-east-1")  # a hub user, not the role

    for sts, external_id in (
        (hub_role, EXTERNAL_ID[:-4] + "zzzz"),
        (another_principal, EXTERNAL_ID),
    ):
        with pytest.raises(ClientError) as refused:
            sts.assume_role(RoleArn=TARGET_ROLE_ARN, RoleSessionName="sync", ExternalId=external_id)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
