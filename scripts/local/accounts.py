"""Clients for setting up the local AWS's accounts, without AssumeRole.

The local moto server judges AssumeRole as AWS does (`scripts.local.local_sts`): a target
account's role must exist, and trust the caller, before it can be assumed. Setup code that
creates that role therefore acts in the account directly, through moto's documented
multi-account header `x-moto-account-id` (moto reads it in `BaseResponse.get_current_account`).
These clients are for seeding the local AWS only: AWS ignores the header, and the code under
test reaches other accounts by AssumeRole, never through it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from scripts.local.local_sts import SERVICE_PRINCIPAL_HEADER

MOTO_ACCOUNT_HEADER = "x-moto-account-id"
CROSS_ACCOUNT_ROLE_NAME = "drs-orchestration-cross-account"
# What the sync calls in a target account (cfn/target-account-role.yaml grants the same).
CROSS_ACCOUNT_READS = ("drs:DescribeSourceServers", "ec2:DescribeInstances")


def _add_header(name: str, value: str) -> Any:
    def add(request: Any, **_: Any) -> None:
        request.headers[name] = value

    return add


def account_client(
    service: str,
    account_id: str,
    region: str = "us-east-1",
    endpoint: str | None = None,
    session: boto3.Session | None = None,
) -> Any:
    """A boto3 client whose requests act in `account_id` of the local moto server.

    `endpoint` defaults to the environment's (AWS_ENDPOINT_URL); `session` to a new one
    (credentials from the environment). For setup only (see the module docstring).
    """
    client = (session or boto3.Session()).client(
        service,  # type: ignore[call-overload]
        region_name=region,
        endpoint_url=endpoint,
    )
    client.meta.events.register(
        f"before-sign.{client.meta.service_model.service_id.hyphenize()}",
        _add_header(MOTO_ACCOUNT_HEADER, account_id),
    )
    return client


def act_as_service(client: Any, service_principal: str) -> Any:
    """Make `client`'s AssumeRole calls those of `service_principal` (e.g.
    "lambda.amazonaws.com") for the local moto server, which then matches the role's trust
    policy's `Service` principals; AWS ignores the header. Returns `client`."""
    client.meta.events.register(
        "before-sign.sts.AssumeRole", _add_header(SERVICE_PRINCIPAL_HEADER, service_principal)
    )
    return client


def cross_account_trust(hub_account_id: str, external_id: str | None) -> dict[str, Any]:
    """The trust policy of a target account's role: the hub account, with `external_id`
    required when given; AssumeRole and SetSourceIdentity (the sync names its sessions)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{hub_account_id}:root"},
        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def create_cross_account_role(
    account_id: str,
    hub_account_id: str,
    external_id: str | None,
    *,
    role_name: str = CROSS_ACCOUNT_ROLE_NAME,
    endpoint: str | None = None,
    session: boto3.Session | None = None,
) -> str:
    """Create the role the sync assumes in `account_id` (trust: `cross_account_trust`;
    inline policy: the sync's reads). Returns its ARN.

    Raises ClientError (EntityAlreadyExists when the role exists)."""
    iam = account_client("iam", account_id, endpoint=endpoint, session=session)
    try:
        role = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(cross_account_trust(hub_account_id, external_id)),
        )["Role"]
        reads = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": list(CROSS_ACCOUNT_READS), "Resource": "*"}
            ],
        }
        iam.put_role_policy(
            RoleName=role_name, PolicyName="drs-inventory-read", PolicyDocument=json.dumps(reads)
        )
    finally:
        iam.close()
    return str(role["Arn"])


TARGET_ROLE_TEMPLATE = Path(__file__).resolve().parents[2] / "cfn" / "target-account-role.yaml"
TARGET_ROLE_STACK = "drs-orchestration-target-account-role"


def deploy_target_account_role(
    account_id: str,
    hub_account_id: str,
    hub_principal_arn: str,
    external_id: str,
    *,
    region: str = "us-east-1",
    endpoint: str | None = None,
    session: boto3.Session | None = None,
    stack_name: str = TARGET_ROLE_STACK,
    parameters: dict[str, str] | None = None,
    expect_role: bool = True,
) -> str:
    """Create the role the sync assumes in `account_id` the way a StackSet instance does: a
    CloudFormation stack of cfn/target-account-role.yaml, in that account, with the hub's
    account, the data-management-handler's role ARN and the account's external id as
    parameters (`parameters` adds others). Returns the role's ARN ("" with `expect_role`
    False: a stack instance that creates no role, such as RoleRegion none).

    Raises RuntimeError when the stack does not reach CREATE_COMPLETE (its reason included)."""
    cloudformation = account_client("cloudformation", account_id, region, endpoint, session)
    parameters = {
        "HubAccountId": hub_account_id,
        "HubPrincipalArn": hub_principal_arn,
        "ExternalId": external_id,
        **(parameters or {}),  # e.g. HubEventBusArn (forwarding DRS events to the hub)
    }
    try:
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=TARGET_ROLE_TEMPLATE.read_text(),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    finally:
        cloudformation.close()
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(
            f"stack {stack_name} in account {account_id}: {stack['StackStatus']} "
            f"({stack.get('StackStatusReason', 'no reason given')})"
        )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if not expect_role:
        return ""
    if "RoleArn" in outputs:
        return outputs["RoleArn"]
    # moto may leave outputs empty: the role is then read from IAM, where the stack made it.
    iam = account_client("iam", account_id, region, endpoint, session)
    try:
        # The template's RoleName default (the parameter is not given here).
        return str(iam.get_role(RoleName=CROSS_ACCOUNT_ROLE_NAME)["Role"]["Arn"])
    finally:
        iam.close()
