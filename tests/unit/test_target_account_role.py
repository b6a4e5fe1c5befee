"""The target-account role (cfn/target-account-role.yaml) and the hub's grant to assume it.

The role trusts exactly the hub's data-management-handler role (by aws:PrincipalArn) with the
account's external id, and may do exactly what the sync calls in a target account (read from
lambda/). The hub's role has the fixed name and path the target template is given, and may
assume roles only in the accounts or organization the deploy names.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest

from tests.support.cfn import CFN_DIR, load_template
from tests.support.cfn_eval import PSEUDO_PARAMETERS, Evaluator, ParameterError
from tests.unit.test_templates import ENV, LAMBDA_DIR, LAMBDA_PARAMS, as_list, role_statements

TARGET = "target-account-role.yaml"
HUB_ACCOUNT = "123456789012"  # cfn_eval's AWS::AccountId: where the hub stacks evaluate
TARGET_ACCOUNTS = "111122223333,444455556666,777788889999"
EXTERNAL_ID = "e" * 32
DMH_ROLE = "DataManagementHandlerRole"
SYNC_DIR = LAMBDA_DIR / "data-management-handler" / "inventory_sync"
# The services the sync reaches through a target account's role (ClientFactory.client with an
# account), each with the IAM prefix of its actions.
TARGET_SERVICES = {"drs": "drs", "ec2": "ec2"}


def hub_role_arn(environment: str = ENV) -> str:
    """The data-management-handler role's ARN as the main stack outputs it."""
    main = Evaluator(load_template("main-stack.yaml"), **main_params(environment))
    return main.evaluate(main.template["Outputs"]["DataManagementHandlerRoleArn"]["Value"])


def main_params(environment: str) -> dict[str, str]:
    keys = ("DataManagementHandlerCodeKey", "QueryHandlerCodeKey")
    versions = ("DataManagementHandlerCodeVersion", "QueryHandlerCodeVersion")
    return {"Environment": environment, **{name: LAMBDA_PARAMS[name] for name in keys + versions}}


def target_stack(**overrides: str) -> Evaluator:
    params = {
        "HubAccountId": HUB_ACCOUNT,
        "HubPrincipalArn": hub_role_arn(),
        "ExternalId": EXTERNAL_ID,
        **overrides,
    }
    return Evaluator(load_template(TARGET), **params)


def lambda_stack(**overrides: str) -> Evaluator:
    return Evaluator(load_template("lambda-stack.yaml"), **{**LAMBDA_PARAMS, **overrides})


def assume_statement(stack: Evaluator) -> dict[str, Any]:
    statements = stack.evaluate(role_statements(stack.template, DMH_ROLE, stack))
    (statement,) = [s for s in statements if "sts:AssumeRole" in as_list(s["Action"])]
    return statement


def _iam_role_arn(role: dict[str, Any]) -> str:
    """arn:aws:iam::ACCOUNT:role{Path}{RoleName} of an evaluated AWS::IAM::Role."""
    return f"arn:aws:iam::{HUB_ACCOUNT}:role{role.get('Path', '/')}{role['RoleName']}"


# ---------------------------------------------------------------------------------- the trust
def test_the_role_trusts_only_the_hub_sync_role_with_the_external_id() -> None:
    role = target_stack().resource_properties("CrossAccountRole")
    statements = role["AssumeRolePolicyDocument"]["Statement"]
    hub_root = {"AWS": f"arn:aws:iam::{HUB_ACCOUNT}:root"}
    pinned_principal = {"ArnEquals": {"aws:PrincipalArn": hub_role_arn()}}

    assert all(s["Effect"] == "Allow" and s["Principal"] == hub_root for s in statements)
    assert {s["Action"]: s["Condition"] for s in statements} == {
        "sts:AssumeRole": {
            **pinned_principal,
            "StringEquals": {"sts:ExternalId": EXTERNAL_ID},
        },
        # sts:ExternalId is not in SetSourceIdentity's request context (see the template).
        "sts:SetSourceIdentity": pinned_principal,
    }
    assert not any("NotPrincipal" in s or "NotAction" in s for s in statements)


def test_the_trust_names_the_role_the_hub_stack_creates() -> None:
    hub_role = lambda_stack().resource_properties(DMH_ROLE)
    trusted = target_stack().resource_properties("CrossAccountRole")["AssumeRolePolicyDocument"]

    assert hub_role["RoleName"] == f"aws-drs-orchestration-data-management-handler-{ENV}"
    assert hub_role["Path"] == "/drs-orchestration/"
    assert _iam_role_arn(hub_role) == hub_role_arn()
    for statement in trusted["Statement"]:
        assert statement["Condition"]["ArnEquals"]["aws:PrincipalArn"] == _iam_role_arn(hub_role)


@pytest.mark.parametrize("environment", ["dev", "prod", "staging"])
def test_the_main_stack_output_follows_the_environment(environment: str) -> None:
    hub_role = lambda_stack(Environment=environment).resource_properties(DMH_ROLE)

    assert hub_role_arn(environment) == _iam_role_arn(hub_role)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:role/*",
        "arn:aws:iam::123456789012:role/drs-orchestration/*",
        "arn:aws:iam::123456789012:role/drs-?",
        "arn:aws:iam::123456789012:user/someone",
        "arn:aws:iam::123456789012:root",
        "arn:aws:iam::12345678901:role/x",
        "*",
    ],
)
def test_hub_principal_must_be_one_role_without_wildcards(arn: str) -> None:
    # ArnEquals honours * and ? like ArnLike: a wildcard would trust a family of principals.
    with pytest.raises(ParameterError):
        target_stack(HubPrincipalArn=arn)


def test_external_id_is_secret_and_at_least_as_long_as_the_hub_generates() -> None:
    spec = load_template(TARGET)["Parameters"]["ExternalId"]

    assert spec["NoEcho"] is True
    # 32 or more characters; empty (the default) only for a stack that creates no role
    assert spec["AllowedPattern"] == r"^([\w+=,.@:/-]{32,1224})?$"
    target_stack(ExternalId="e" * 32)
    for short_or_bad in ("e" * 31, "e" * 31 + " ", "e" * 1225):
        with pytest.raises(ParameterError):
            target_stack(ExternalId=short_or_bad)
    for role_region in ("", "us-east-1", "eu-west-1"):
        with pytest.raises(ParameterError, match="ExternalId is required"):
            target_stack(ExternalId="", RoleRegion=role_region)
        with pytest.raises(ParameterError, match="HubPrincipalArn is required"):
            target_stack(HubPrincipalArn="", RoleRegion=role_region)


HUB_BUS_ARN = (
    f"arn:aws:events:us-east-1:{HUB_ACCOUNT}:event-bus/aws-drs-orchestration-drs-events-qa"
)


def test_role_region_none_forwards_events_without_a_role_id_or_principal() -> None:
    # The hub account's own regions: the hub reads its own DRS without a role, so the stack
    # only forwards (deploy.sh --hub-event-regions)
    forwarding_only = target_stack(
        RoleRegion="none", ExternalId="", HubPrincipalArn="", HubEventBusArn=HUB_BUS_ARN
    )
    assert not forwarding_only.condition("CreateRole")
    assert forwarding_only.condition("ForwardDrsEvents")
    rule = forwarding_only.resource_properties("DrsEventForwardingRule")
    assert rule["Targets"][0]["Arn"] == HUB_BUS_ARN
    # ... and a stack that would create nothing at all is refused
    with pytest.raises(ParameterError, match="HubEventBusArn is required"):
        target_stack(RoleRegion="none", ExternalId="", HubPrincipalArn="")


@pytest.mark.parametrize("role_region", ["", "none", "us-east-1", "eu-west-1"])
def test_the_forwarding_target_is_the_hub_bus_through_a_role_that_may_only_put_there(
    role_region: str,
) -> None:
    # EventBridge requires a RoleArn on a target that is an event bus in another account or
    # region (moto and the local AWS deliver without one: this test is the check).
    identity = {} if role_region != "none" else {"ExternalId": "", "HubPrincipalArn": ""}
    stack = target_stack(RoleRegion=role_region, HubEventBusArn=HUB_BUS_ARN, **identity)
    assert stack.template["Resources"]["DrsEventForwardingRole"]["Condition"] == "ForwardDrsEvents"
    (target,) = stack.resource_properties("DrsEventForwardingRule")["Targets"]
    assert target["Arn"] == HUB_BUS_ARN
    assert target["RoleArn"] == {"Fn::GetAtt": ["DrsEventForwardingRole", "Arn"]}

    role = stack.resource_properties("DrsEventForwardingRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    this_account = PSEUDO_PARAMETERS["AWS::AccountId"]  # the stack's own account
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": this_account}}
    assert "ManagedPolicyArns" not in role
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    assert [(s["Effect"], as_list(s["Action"]), as_list(s["Resource"])) for s in statements] == [
        ("Allow", ["events:PutEvents"], [HUB_BUS_ARN])
    ]
    assert all("NotAction" not in s and "NotResource" not in s for s in statements)


def test_without_a_hub_bus_nothing_is_forwarded() -> None:
    stack = target_stack()
    assert not stack.condition("ForwardDrsEvents")
    for logical_id in ("DrsEventForwardingRule", "DrsEventForwardingRole"):
        assert stack.template["Resources"][logical_id]["Condition"] == "ForwardDrsEvents"


@pytest.mark.parametrize("value", ["", "12345678901", "1234567890123", "o-abcdefghij"])
def test_hub_account_is_twelve_digits(value: str) -> None:
    with pytest.raises(ParameterError):
        target_stack(HubAccountId=value)


# ----------------------------------------------------------------------------- the permissions
def _target_account_calls() -> set[str]:
    """IAM actions of the AWS calls the sync makes through a target account's clients: every
    `client.<operation>(` in inventory_sync on a drs or ec2 client, as DRS/EC2 action names."""
    factory_calls: set[str] = set()
    operations: set[str] = set()
    for path in sorted(SYNC_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            first = node.args[0] if node.args else None
            if node.func.attr == "client" and isinstance(first, ast.Constant):
                factory_calls.add(str(first.value))
            if node.func.attr.startswith("describe_") and path.name in {
                "listing.py",
                "enrichment.py",
            }:
                operations.add(node.func.attr)
    # Every service the sync builds clients for: the target-account ones and the hub's own.
    assert factory_calls - set(TARGET_SERVICES) <= {"dynamodb", "events"}, factory_calls
    assert set(TARGET_SERVICES) <= factory_calls
    service_of = {"describe_source_servers": "drs", "describe_instances": "ec2"}
    assert operations == set(service_of), "the sync calls something new in target accounts"
    return {
        f"{TARGET_SERVICES[service_of[op]]}:{''.join(p.title() for p in op.split('_'))}"
        for op in operations
    }


def test_the_role_may_do_exactly_what_the_sync_calls_in_a_target_account() -> None:
    role = target_stack().resource_properties("CrossAccountRole")
    (policy,) = role["Policies"]
    statements = policy["PolicyDocument"]["Statement"]

    assert _target_account_calls() == {"drs:DescribeSourceServers", "ec2:DescribeInstances"}
    assert [(s["Effect"], set(as_list(s["Action"])), s["Resource"]) for s in statements] == [
        # Neither action supports resource-level permissions.
        ("Allow", _target_account_calls(), "*")
    ]
    assert "ManagedPolicyArns" not in role and "PermissionsBoundary" not in role
    assert role["MaxSessionDuration"] == 3600


def test_the_hub_grants_the_same_reads_it_asks_the_target_role_for() -> None:
    statements = lambda_stack().evaluate(role_statements(lambda_stack().template, DMH_ROLE))
    hub_reads = {
        action
        for s in statements
        for action in as_list(s["Action"])
        if action.split(":")[0] in TARGET_SERVICES.values()
    }

    assert hub_reads == _target_account_calls()


# ---------------------------------------------------------------------------------- the name
def _iam_arn_pattern_matches(pattern: str, text: str) -> bool:
    """IAM's ARN matching: * any run of characters, ? one character, the rest literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text) is not None


def test_the_default_role_is_one_the_hub_may_assume() -> None:
    hub_default = load_template("lambda-stack.yaml")["Parameters"]["TargetAccountRoleNamePattern"]
    role = target_stack().resource_properties("CrossAccountRole")
    resource = assume_statement(lambda_stack())["Resource"]
    role_arn = f"arn:aws:iam::111122223333:role{role['Path']}{role['RoleName']}"

    assert role["RoleName"] == "drs-orchestration-cross-account"
    assert _iam_arn_pattern_matches(hub_default["Default"], role["RoleName"])
    assert _iam_arn_pattern_matches(resource, role_arn)


@pytest.mark.parametrize("name", ["drs-orchestration-a", "drs-orchestration-" + "x" * 46])
def test_every_role_name_the_template_takes_matches_the_hub_default(name: str) -> None:
    hub_default = load_template("lambda-stack.yaml")["Parameters"]["TargetAccountRoleNamePattern"]

    assert target_stack(RoleName=name).resource_properties("CrossAccountRole")["RoleName"] == name
    assert _iam_arn_pattern_matches(hub_default["Default"], name)
    assert len(name) <= 64


@pytest.mark.parametrize(
    "name",
    ["admin", "drs-orchestration-", "Drs-orchestration-x", "drs-orchestration-" + "x" * 47,
     "x-drs-orchestration-y", "drs-orchestration-a/b", "drs-orchestration-*"],
)  # fmt: skip
def test_role_names_outside_the_hub_pattern_are_refused(name: str) -> None:
    with pytest.raises(ParameterError):
        target_stack(RoleName=name)


# -------------------------------------------------------------------------- one role a account
def test_the_role_is_created_by_every_instance_or_only_in_role_region() -> None:
    template = load_template(TARGET)
    role = template["Resources"]["CrossAccountRole"]

    assert role["Condition"] == "CreateRole"
    assert template["Outputs"]["RoleArn"]["Condition"] == "CreateRole"
    assert target_stack().condition("CreateRole")  # empty: this instance creates it
    assert target_stack(RoleRegion="us-east-1").condition("CreateRole")  # cfn_eval's region
    assert not target_stack(RoleRegion="eu-west-1").condition("CreateRole")
    # An instance without the role still has a resource: CloudFormation refuses none at all.
    unconditional = [r for r in template["Resources"].values() if "Condition" not in r]
    assert [r["Type"] for r in unconditional] == ["AWS::CloudFormation::WaitConditionHandle"]
    with pytest.raises(ParameterError):
        target_stack(RoleRegion="all")


def test_nothing_in_the_template_is_account_specific() -> None:
    text = (CFN_DIR / TARGET).read_text()

    assert re.findall(r"\d{12}", text) == []
    assert set(load_template(TARGET)["Parameters"]) == {
        "HubAccountId",
        "HubPrincipalArn",
        "ExternalId",
        "RoleName",
        "RolePath",
        "RoleRegion",
        "HubEventBusArn",
    }


# -------------------------------------------------------------------------- the hub's grant
def test_assume_role_is_conditioned_on_the_target_accounts_when_given() -> None:
    statement = assume_statement(lambda_stack(TargetAccountIds=TARGET_ACCOUNTS))

    assert set(statement["Action"]) == {"sts:AssumeRole", "sts:SetSourceIdentity"}
    assert statement["Resource"] == "arn:aws:iam::*:role/drs-orchestration-*"
    assert statement["Condition"] == {
        "StringEquals": {"aws:ResourceAccount": TARGET_ACCOUNTS.split(",")}
    }


def test_assume_role_is_conditioned_on_the_organization_when_given() -> None:
    stack = lambda_stack(TargetAccountIds="", TargetOrganizationId="o-abcd123456")

    assert assume_statement(stack)["Condition"] == {
        "StringEquals": {"aws:ResourceOrgID": "o-abcd123456"}
    }


def test_with_both_an_account_must_be_listed_and_in_the_organization() -> None:
    stack = lambda_stack(TargetAccountIds="111122223333", TargetOrganizationId="o-abcd123456")

    assert assume_statement(stack)["Condition"] == {
        "StringEquals": {
            "aws:ResourceOrgID": "o-abcd123456",
            "aws:ResourceAccount": ["111122223333"],
        }
    }


def test_a_hub_without_target_accounts_or_organization_is_refused() -> None:
    with pytest.raises(ParameterError, match="TargetOrganizationId or TargetAccountIds"):
        lambda_stack(TargetAccountIds="", TargetOrganizationId="")


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("TargetOrganizationId", "o-short"),
        ("TargetOrganizationId", "O-ABCD123456"),
        ("TargetOrganizationId", "r-abcd123456"),
        ("TargetAccountIds", "111122223333, 444455556666"),
        ("TargetAccountIds", "111122223333,"),
        ("TargetAccountIds", "11112222333"),
        ("TargetAccountIds", "*"),
        ("TargetAccountIds", "11112222333\u0661"),
    ],
)
def test_target_scope_values_are_checked(parameter: str, value: str) -> None:
    with pytest.raises(ParameterError):
        lambda_stack(**{parameter: value})


@pytest.mark.parametrize("pattern", ["*", "*-x", "?", "?rs-orchestration-*", "/*", "/x", ""])
def test_role_name_pattern_refuses_a_leading_wildcard(pattern: str) -> None:
    with pytest.raises(ParameterError):
        lambda_stack(TargetAccountRoleNamePattern=pattern)


@pytest.mark.parametrize("pattern", ["drs-orchestration-*", "ops/drs-sync-*", "drs-?-sync"])
def test_role_name_pattern_takes_a_literal_prefix(pattern: str) -> None:
    resource = assume_statement(lambda_stack(TargetAccountRoleNamePattern=pattern))["Resource"]

    assert resource == f"arn:aws:iam::*:role/{pattern}"


def test_the_longest_names_fit_the_64_characters_of_functions_and_roles() -> None:
    pattern = load_template("lambda-stack.yaml")["Parameters"]["ProjectName"]["AllowedPattern"]
    longest = "p" * 32
    role = lambda_stack(ProjectName=longest, Environment="staging").resource_properties(DMH_ROLE)

    assert re.fullmatch(pattern, longest) and not re.fullmatch(pattern, longest + "p")
    assert len(role["RoleName"]) == 64
