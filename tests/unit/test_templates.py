"""The CloudFormation templates, read as data and cross-checked against the code.

The schedule must reach the function that has the operation (the failure this project
was built to rule out), the functions' environment must be what the code reads, the
query-handler must only read, and every table key the code uses must exist.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from inventory_queries.reader import SCOPE_INDEX
from inventory_sync.models import Scope, SyncSettings
from inventory_sync.records import inventory_item
from scripts.local import fleet
from shared.config import (
    HUB_ROLE_ARN_ENV,
    INVENTORY_EVENT_BUS_ENV,
    INVENTORY_TABLE_ENV,
    REGION_STATUS_TABLE_ENV,
    TARGET_ACCOUNTS_TABLE_ENV,
    drs_regions,
    hub_role_arn,
    inventory_event_bus,
    table_names,
)
from shared.observability import METRICS_NAMESPACE
from tests.support.aws import table_names_for
from tests.support.cfn import CFN_DIR, load_template, resources_of_type
from tests.support.cfn_eval import Evaluator, ParameterError
from tests.support.handlers import load_handler

LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda"
TEMPLATES = sorted(path.name for path in CFN_DIR.glob("*.yaml"))
# Deployed in target accounts (StackSets), not as part of a hub environment.
TARGET_ACCOUNT_TEMPLATE = "target-account-role.yaml"
HUB_TEMPLATES = [name for name in TEMPLATES if name != TARGET_ACCOUNT_TEMPLATE]
ENV = "qa"
PROJECT = "aws-drs-orchestration"

DMH_FUNCTION = "DataManagementHandlerFunction"
QH_FUNCTION = "QueryHandlerFunction"
LAMBDA_PARAMS = {
    "Environment": ENV,
    "DeploymentBucket": "deploy-bucket",
    "DataManagementHandlerCodeKey": "lambda/data-management-handler/0.zip",
    "QueryHandlerCodeKey": "lambda/query-handler/0.zip",
    "DataManagementHandlerCodeVersion": "dmh-version-1",
    "QueryHandlerCodeVersion": "qh-version-1",
    "DrsRegions": "us-east-1,eu-west-1",
    "TargetAccountIds": "111122223333,444455556666",
}
SYNC_INPUT = {"operation": "sync_source_server_inventory"}
# Read by Powertools itself, not by our code.
POWERTOOLS_RUNTIME_VARIABLES = {"POWERTOOLS_LOG_LEVEL"}
DYNAMODB_READ_ACTIONS = {
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
}
TABLE_ARN_PREFIX = "arn:aws:dynamodb:us-east-1:123456789012:table/"
WRITE_ACTION = re.compile(r"(Put|Update|Delete|BatchWrite|Create|Write|Send|Tag|Untag|\*)", re.I)


def lambda_stack(**overrides: str) -> Evaluator:
    return Evaluator(load_template("lambda-stack.yaml"), **{**LAMBDA_PARAMS, **overrides})


def eventbridge_stack(**overrides: str) -> Evaluator:
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{PROJECT}-data-management-handler-{ENV}"
    params = {"Environment": ENV, "DataManagementHandlerFunctionArn": arn, **overrides}
    return Evaluator(load_template("eventbridge-stack.yaml"), **params)


def monitoring_stack() -> Evaluator:
    return Evaluator(load_template("monitoring-stack.yaml"), Environment=ENV)


def schedule_rule() -> dict[str, Any]:
    return load_template("eventbridge-stack.yaml")["Resources"]["InventorySyncScheduleRule"]


def schedule_target() -> dict[str, Any]:
    (target,) = schedule_rule()["Properties"]["Targets"]
    return target


def role_statements(
    template: dict[str, Any], role: str, stack: Evaluator | None = None
) -> list[dict[str, Any]]:
    """Every policy statement that applies to `role`: inline, AWS::IAM::Policy, managed.

    Conditions (`Fn::If` in inline policies, a policy resource's Condition) are resolved with
    `stack`'s parameters, by default the lambda stack's with LAMBDA_PARAMS.
    """
    stack = stack or Evaluator(template, **LAMBDA_PARAMS)
    resource = template["Resources"][role]
    assert "ManagedPolicyArns" not in resource["Properties"], f"{role}: use inline policies"
    policies = stack.evaluate(resource["Properties"].get("Policies", []))
    documents = [policy["PolicyDocument"] for policy in policies]
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in resources_of_type(template, policy_type).values():
            if "Condition" in policy and not stack.condition(policy["Condition"]):
                continue
            if {"Ref": role} in policy["Properties"].get("Roles", []):
                documents.append(policy["Properties"]["PolicyDocument"])
    return [statement for document in documents for statement in document["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------------------- everywhere
def test_the_target_account_template_is_the_only_one_outside_the_hub() -> None:
    assert set(TEMPLATES) - set(HUB_TEMPLATES) == {TARGET_ACCOUNT_TEMPLATE}
    assert len(HUB_TEMPLATES) == 5


@pytest.mark.parametrize("name", HUB_TEMPLATES)
def test_every_template_takes_project_and_environment_like_the_dynamodb_stack(name: str) -> None:
    reference = load_template("dynamodb-stack.yaml")["Parameters"]
    parameters = load_template(name)["Parameters"]

    assert parameters["ProjectName"] == reference["ProjectName"]
    assert parameters["Environment"] == reference["Environment"]
    assert parameters["ProjectName"]["Default"] == PROJECT
    assert parameters["Environment"]["AllowedValues"] == [
        "dev",
        "test",
        "qa",
        "uat",
        "staging",
        "prod",
    ]


# ------------------------------------------------------------------------------- eventbridge
def test_schedule_input_operation_is_in_the_data_management_handler_operation_map() -> None:
    operation = json.loads(schedule_target()["Input"])["operation"]

    assert json.loads(schedule_target()["Input"]) == SYNC_INPUT
    assert operation in load_handler("data-management-handler").OPERATIONS
    assert operation not in load_handler("query-handler").OPERATIONS


def test_schedule_target_and_permission_reference_the_data_management_handler_arn() -> None:
    template = load_template("eventbridge-stack.yaml")
    permission = template["Resources"]["InventorySyncSchedulePermission"]
    target = schedule_target()

    assert target["Id"] == "InventorySyncTarget"
    assert target["Arn"] == {"Ref": "DataManagementHandlerFunctionArn"}
    assert permission["Type"] == "AWS::Lambda::Permission"
    assert permission["Properties"] == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Ref": "DataManagementHandlerFunctionArn"},
        "Principal": "events.amazonaws.com",
        "SourceArn": {"Fn::GetAtt": ["InventorySyncScheduleRule", "Arn"]},
    }
    # Lambda targets are authorised by the function's resource policy, not a role.
    assert "RoleArn" not in target


def test_no_query_handler_anywhere_in_the_eventbridge_stack() -> None:
    template = load_template("eventbridge-stack.yaml")

    assert "query" not in json.dumps(template).lower()
    assert set(template["Parameters"]) == {
        "ProjectName",
        "Environment",
        "DataManagementHandlerFunctionArn",
        "EnableInventorySync",
        # who may forward DRS events to the hub's bus (the lambda stack's values)
        "TargetOrganizationId",
        "TargetAccountIds",
    }
    assert list(resources_of_type(template, "AWS::Lambda::Permission")) == [
        "InventorySyncSchedulePermission"
    ]


def test_schedule_is_the_contract_rule_enabled_every_15_minutes() -> None:
    properties = eventbridge_stack().resource_properties("InventorySyncScheduleRule")

    assert properties["Name"] == f"{PROJECT}-inventory-sync-{ENV}"
    assert properties["ScheduleExpression"] == "rate(15 minutes)"
    assert properties["State"] == "ENABLED"


def test_enable_inventory_sync_switch_disables_the_rule_but_keeps_it() -> None:
    disabled = eventbridge_stack(EnableInventorySync="false")

    assert disabled.resource_properties("InventorySyncScheduleRule")["State"] == "DISABLED"
    assert "Condition" not in schedule_rule()
    with pytest.raises(ParameterError):
        eventbridge_stack(EnableInventorySync="no")


def test_undeliverable_schedule_events_retry_then_go_to_a_queue_eventbridge_may_write() -> None:
    template = load_template("eventbridge-stack.yaml")
    target = schedule_target()
    queue_id, attribute = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"]
    (policy,) = [
        policy
        for policy in resources_of_type(template, "AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in policy["Properties"]["Queues"]
    ]
    (statement,) = [
        statement
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]

    assert 0 <= target["RetryPolicy"]["MaximumRetryAttempts"] <= 185
    # An event older than one interval would overlap the next scheduled run.
    assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 900
    assert (template["Resources"][queue_id]["Type"], attribute) == ("AWS::SQS::Queue", "Arn")
    assert policy["Properties"]["Queues"] == [{"Ref": queue_id}]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["InventorySyncScheduleRule", "Arn"]}}
    }


@pytest.mark.parametrize(
    ("arn", "accepted"),
    [
        (
            f"arn:aws:lambda:us-east-1:123456789012:function:{PROJECT}-data-management-handler-qa",
            True,
        ),
        ("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f-prod", True),
        (f"{PROJECT}-data-management-handler-qa", False),
        ("arn:aws:lambda:us-east-1:123456789012:function:f:alias", False),
    ],
)
def test_function_arn_parameter_accepts_only_function_arns(arn: str, accepted: bool) -> None:
    if accepted:
        eventbridge_stack(DataManagementHandlerFunctionArn=arn)
    else:
        with pytest.raises(ParameterError):
            eventbridge_stack(DataManagementHandlerFunctionArn=arn)


# ------------------------------------------------------------------------------- functions
@pytest.mark.parametrize(
    ("logical_id", "name", "version"),
    [
        (DMH_FUNCTION, "data-management-handler", "dmh-version-1"),
        (QH_FUNCTION, "query-handler", "qh-version-1"),
    ],
)
def test_functions_follow_the_naming_and_runtime_contract(
    logical_id: str, name: str, version: str
) -> None:
    properties = lambda_stack().resource_properties(logical_id)

    assert properties["FunctionName"] == f"{PROJECT}-{name}-{ENV}"
    assert properties["Runtime"] == "python3.12"
    assert properties["Handler"] == "index.lambda_handler"
    assert properties["Architectures"] == ["x86_64"]  # what scripts/package_lambda.py builds for
    assert properties["Code"] == {
        "S3Bucket": "deploy-bucket",
        "S3Key": f"lambda/{name}/0.zip",
        "S3ObjectVersion": version,
    }


@pytest.mark.parametrize("template_name", ["lambda-stack.yaml", "main-stack.yaml"])
@pytest.mark.parametrize("function", ["DataManagementHandler", "QueryHandler"])
def test_code_key_and_object_version_are_required_parameters(
    template_name: str, function: str
) -> None:
    # A key names whatever was last written under it; the version pins the bytes deploy.sh
    # checked. Without a default, a deploy that does not name the version fails.
    parameters = load_template(template_name)["Parameters"]

    for suffix in ("CodeKey", "CodeVersion"):
        parameter = parameters[f"{function}{suffix}"]
        assert parameter["Type"] == "String" and parameter["MinLength"] == 1
        assert "Default" not in parameter


def test_the_deployment_record_names_each_package_by_key_and_version() -> None:
    parameters = {
        "Environment": ENV,
        "DataManagementHandlerCodeKey": "lambda/data-management-handler/0.zip",
        "DataManagementHandlerCodeVersion": "dmh-version-1",
        "QueryHandlerCodeKey": "lambda/query-handler/0.zip",
        "QueryHandlerCodeVersion": "qh-version-1",
    }
    main = Evaluator(load_template("main-stack.yaml"), **parameters)

    record = json.loads(main.resource_properties("DeploymentRecord")["Value"])

    assert record["dataManagementHandlerCodeKey"] == "lambda/data-management-handler/0.zip"
    assert record["dataManagementHandlerCodeVersion"] == "dmh-version-1"
    assert record["queryHandlerCodeKey"] == "lambda/query-handler/0.zip"
    assert record["queryHandlerCodeVersion"] == "qh-version-1"


def test_every_table_is_protected_from_deletion() -> None:
    # DeletionPolicy Retain keeps a table when its stack goes; deletion protection also stops
    # a delete-table, a console delete or a replacement. moto applies it as well (e2e).
    tables = resources_of_type(load_template("dynamodb-stack.yaml"), "AWS::DynamoDB::Table")

    assert set(tables) == {
        "SourceServerInventoryTable",
        "DrsRegionStatusTable",
        "TargetAccountsTable",
        "SyncLeaseTable",
    }
    for logical_id, table in tables.items():
        assert table["Properties"].get("DeletionProtectionEnabled") is True, logical_id


def test_data_management_handler_has_the_time_the_sync_needs() -> None:
    properties = lambda_stack().resource_properties(DMH_FUNCTION)
    settings = SyncSettings.from_env(properties["Environment"]["Variables"])

    assert properties["Timeout"] == 900
    assert properties["MemorySize"] == "1024"
    # The sync reserves time before the deadline; there must be time left to do work.
    assert settings.deadline_reserve_seconds < properties["Timeout"] / 2


@pytest.mark.parametrize("logical_id", [DMH_FUNCTION, QH_FUNCTION])
def test_function_environment_names_the_dynamodb_stack_tables(logical_id: str) -> None:
    environment = lambda_stack().resource_properties(logical_id)["Environment"]["Variables"]
    expected = table_names_for(ENV)
    if logical_id == QH_FUNCTION:
        expected = dataclasses.replace(expected, sync_lease="")  # the lease is the sync's alone

    assert table_names(environment) == expected


@pytest.mark.parametrize("logical_id", [DMH_FUNCTION, QH_FUNCTION])
def test_drs_regions_parameter_feeds_both_functions(logical_id: str) -> None:
    template = load_template("lambda-stack.yaml")
    raw = template["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
    given = lambda_stack(DrsRegions="us-west-2,ap-southeast-2").resource_properties(logical_id)

    assert raw["DRS_REGIONS"] == {"Ref": "DrsRegions"}  # the parameter itself, unconditionally
    assert drs_regions(given["Environment"]["Variables"]) == ["ap-southeast-2", "us-west-2"]


def test_drs_regions_has_no_default_anywhere() -> None:
    # What is synced is chosen at deploy time, never by the SDK the function runs with.
    templates = {name: load_template(name) for name in TEMPLATES}
    parameter = templates["lambda-stack.yaml"]["Parameters"]["DrsRegions"]
    without = {name: value for name, value in LAMBDA_PARAMS.items() if name != "DrsRegions"}

    assert "Default" not in parameter
    with pytest.raises(ParameterError, match="DrsRegions has no default"):
        Evaluator(load_template("lambda-stack.yaml"), **without)
    # No "empty means all" branch: no condition looks at the parameter.
    assert "DrsRegions" not in json.dumps(templates["lambda-stack.yaml"].get("Conditions", {}))
    # No other stack passes a value of its own.
    assert [name for name, t in templates.items() if "DrsRegions" in t["Parameters"]] == [
        "lambda-stack.yaml"
    ]
    sdk_region_lists = {"get_available_regions", "get_available_partitions", "partition_for"}
    assert _attribute_names_in_lambda_code() & sdk_region_lists == set()


@pytest.mark.parametrize(
    "value",
    ["", "us-east-1, eu-west-1", "us-east-1,", ",us-east-1", "us-east-1,,eu-west-1", "US-EAST-1",
     "us-east-1\n", "all", "us-east-\u0661"],
)  # fmt: skip
def test_drs_regions_parameter_takes_only_a_list_of_regions(value: str) -> None:
    with pytest.raises(ParameterError):
        lambda_stack(DrsRegions=value)


@pytest.mark.parametrize("value", ["us-east-1", "us-gov-west-1,il-central-1,ap-southeast-3"])
def test_every_list_the_parameter_takes_the_function_takes(value: str) -> None:
    environment = lambda_stack(DrsRegions=value).resource_properties(DMH_FUNCTION)

    assert drs_regions(environment["Environment"]["Variables"]) == sorted(value.split(","))


def _attribute_names_in_lambda_code() -> set[str]:
    return {
        node.attr
        for path in LAMBDA_DIR.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute)
    }


def _string_constants_in_lambda_code() -> set[str]:
    constants: set[str] = set()
    for path in LAMBDA_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                constants.add(node.value)
    return constants


@pytest.mark.parametrize("logical_id", [DMH_FUNCTION, QH_FUNCTION])
def test_every_environment_variable_set_is_read_by_the_code(logical_id: str) -> None:
    environment = lambda_stack().resource_properties(logical_id)
    variables = set(environment["Environment"]["Variables"])
    read_by_code = _string_constants_in_lambda_code() | POWERTOOLS_RUNTIME_VARIABLES

    assert variables - read_by_code == set()
    assert {INVENTORY_TABLE_ENV, REGION_STATUS_TABLE_ENV, TARGET_ACCOUNTS_TABLE_ENV} <= variables


def test_sync_tunables_reach_the_data_management_handler() -> None:
    stack = lambda_stack(SyncMaxConcurrency="8", SoftDeleteTtlDays="7")
    environment = stack.resource_properties(DMH_FUNCTION)["Environment"]["Variables"]

    settings = SyncSettings.from_env(environment)

    assert (settings.max_concurrency, settings.soft_delete_ttl_days) == (8, 7)
    assert (
        SyncSettings.from_env(
            lambda_stack().resource_properties(DMH_FUNCTION)["Environment"]["Variables"]
        )
        == SyncSettings()
    )


@pytest.mark.parametrize(
    ("function", "log_group", "role"),
    [
        (DMH_FUNCTION, "DataManagementHandlerLogGroup", "DataManagementHandlerRole"),
        (QH_FUNCTION, "QueryHandlerLogGroup", "QueryHandlerRole"),
    ],
)
def test_each_function_logs_to_its_own_log_group_with_retention(
    function: str, log_group: str, role: str
) -> None:
    template = load_template("lambda-stack.yaml")
    stack = lambda_stack()
    name = stack.resource_properties(function)["FunctionName"]
    logs_statements = [
        statement
        for statement in role_statements(template, role)
        if any(action.startswith("logs:") for action in as_list(statement["Action"]))
    ]

    assert stack.resource_properties(log_group) == {
        "LogGroupName": f"/aws/lambda/{name}",
        "RetentionInDays": "30",
    }
    assert template["Resources"][function]["DependsOn"] == log_group
    assert stack.resource_properties(function)["Role"] == {"Fn::GetAtt": [role, "Arn"]}
    assert [statement["Resource"] for statement in logs_statements] == [
        {"Fn::GetAtt": [log_group, "Arn"]}
    ]


def test_async_invocations_of_the_data_management_handler_are_not_retried() -> None:
    template = load_template("lambda-stack.yaml")
    (config,) = resources_of_type(template, "AWS::Lambda::EventInvokeConfig").values()
    destination = config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    queue_id = destination["Fn::GetAtt"][0]
    send_statements = [
        statement
        for statement in role_statements(template, "DataManagementHandlerRole")
        if statement["Action"] == "sqs:SendMessage"
    ]

    assert config["Properties"]["FunctionName"] == {"Ref": DMH_FUNCTION}
    assert config["Properties"]["Qualifier"] == "$LATEST"
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    assert template["Resources"][queue_id]["Type"] == "AWS::SQS::Queue"
    assert [statement["Resource"] for statement in send_statements] == [destination]


# ------------------------------------------------------------------------------- roles
def test_query_handler_role_only_reads() -> None:
    template = load_template("lambda-stack.yaml")
    statements = role_statements(template, "QueryHandlerRole")
    actions = {action for statement in statements for action in as_list(statement["Action"])}
    data_actions = {action for action in actions if not action.startswith("logs:")}

    assert all(statement["Effect"] == "Allow" for statement in statements)
    assert data_actions <= DYNAMODB_READ_ACTIONS
    assert [action for action in data_actions if WRITE_ACTION.search(action)] == []
    assert actions - data_actions == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_data_management_handler_role_has_exactly_what_the_sync_and_registry_use() -> None:
    stack = lambda_stack(TargetAccountRoleNamePattern="drs-orchestration-*")
    statements = stack.evaluate(role_statements(stack.template, "DataManagementHandlerRole"))
    by_action: dict[str, list[Any]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            by_action.setdefault(action, []).extend(as_list(statement["Resource"]))

    assert set(by_action) == {
        "drs:DescribeSourceServers",
        "ec2:DescribeInstances",
        "organizations:ListAccounts",
        "sts:AssumeRole",
        "sts:SetSourceIdentity",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:SendMessage",
        "events:PutEvents",
        # the DRS events queue's event source mapping (refresh_source_servers), and the
        # function's own calls on it: a failed record's visibility, a second read's message
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    }
    events_queue = "arn:aws:sqs:us-east-1:123456789012:aws-drs-orchestration-drs-events-qa"
    for action in (
        "ChangeMessageVisibility",
        "DeleteMessage",
        "GetQueueAttributes",
        "GetQueueUrl",
        "ReceiveMessage",
    ):
        assert by_action[f"sqs:{action}"] == [events_queue]
    # SendMessage: the async-failure destination and the events queue, nothing else
    assert len(by_action["sqs:SendMessage"]) == 2 and events_queue in by_action["sqs:SendMessage"]
    wildcard_resources = {action for action, resources in by_action.items() if "*" in resources}
    assert wildcard_resources == {
        "drs:DescribeSourceServers",
        "ec2:DescribeInstances",
        "organizations:ListAccounts",
    }
    assert by_action["sts:AssumeRole"] == ["arn:aws:iam::*:role/drs-orchestration-*"]
    assert by_action["sts:SetSourceIdentity"] == by_action["sts:AssumeRole"]
    assert by_action["events:PutEvents"] == [
        f"arn:aws:events:us-east-1:123456789012:event-bus/aws-drs-orchestration-inventory-{ENV}"
    ]


@pytest.mark.parametrize("role", ["DataManagementHandlerRole", "QueryHandlerRole"])
def test_roles_reach_only_the_dynamodb_stack_tables(role: str) -> None:
    stack = lambda_stack()
    statements = stack.evaluate(role_statements(stack.template, role))
    resources = {
        resource
        for statement in statements
        if any(action.startswith("dynamodb:") for action in as_list(statement["Action"]))
        for resource in as_list(statement["Resource"])
    }
    names = table_names_for(ENV)
    # Both read the inventory (by key, and by the scope index only) and the region status.
    tables = {names.inventory, f"{names.inventory}/index/{SCOPE_INDEX}", names.region_status}
    if role == "DataManagementHandlerRole":
        # Only the data-management-handler has the registry and the lease.
        tables |= {names.target_accounts, names.sync_lease}

    assert resources == {TABLE_ARN_PREFIX + table for table in tables}


def test_assume_role_pattern_rejects_values_that_widen_the_grant_beyond_roles() -> None:
    with pytest.raises(ParameterError):
        lambda_stack(TargetAccountRoleNamePattern="x:user/*")
    assert lambda_stack(TargetAccountRoleNamePattern="ops/drs-sync-*")


# ------------------------------------------------------------------------------- table keys
def _module_constants(tree: ast.Module) -> dict[str, ast.expr]:
    constants: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                constants[target.id] = node.value
    return constants


def _literal_keys(node: ast.expr, constants: dict[str, ast.expr]) -> frozenset[str] | None:
    if isinstance(node, ast.Name) and node.id in constants:
        node = constants[node.id]
    if isinstance(node, ast.Dict) and all(
        isinstance(key, ast.Constant) and isinstance(key.value, str) for key in node.keys
    ):
        return frozenset(key.value for key in node.keys)  # type: ignore[union-attr]
    return None


def _literal_string(node: ast.expr, constants: dict[str, ast.expr]) -> str | None:
    if isinstance(node, ast.Name) and node.id in constants:
        node = constants[node.id]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


@cache
def _table_usage_in_code() -> tuple[list[tuple[str, frozenset[str]]], list[tuple[str, str]]]:
    """(where, key attribute names) of every literal `Key=`, and (where, name) of `IndexName=`."""
    keys: list[tuple[str, frozenset[str]]] = []
    indexes: list[tuple[str, str]] = []
    for path in sorted(LAMBDA_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        constants = _module_constants(tree)
        pairs: list[tuple[str, ast.expr, int]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                pairs += [(kw.arg, kw.value, node.lineno) for kw in node.keywords if kw.arg]
            elif isinstance(node, ast.Dict):
                pairs += [
                    (key.value, value, node.lineno)
                    for key, value in zip(node.keys, node.values, strict=True)
                    if isinstance(key, ast.Constant) and isinstance(key.value, str)
                ]
            elif isinstance(node, ast.Assign):  # request["IndexName"] = SCOPE_INDEX
                pairs += [
                    (target.slice.value, node.value, node.lineno)
                    for target in node.targets
                    if isinstance(target, ast.Subscript)
                    and isinstance(target.slice, ast.Constant)
                    and isinstance(target.slice.value, str)
                ]
        where = path.relative_to(LAMBDA_DIR).as_posix()
        for name, value, line in pairs:
            if name == "Key" and (key_names := _literal_keys(value, constants)) is not None:
                keys.append((f"{where}:{line}", key_names))
            if name == "IndexName" and (index := _literal_string(value, constants)) is not None:
                indexes.append((f"{where}:{line}", index))
    return keys, indexes


def _template_tables() -> dict[str, dict[str, Any]]:
    return resources_of_type(load_template("dynamodb-stack.yaml"), "AWS::DynamoDB::Table")


def test_every_table_key_used_in_code_is_a_table_key_in_the_template() -> None:
    table_keys = {
        frozenset(key["AttributeName"] for key in table["Properties"]["KeySchema"])
        for table in _template_tables().values()
    }
    used, _ = _table_usage_in_code()

    assert used, "found no Key= in lambda/: the scan is broken"
    assert [(where, sorted(keys)) for where, keys in used if keys not in table_keys] == []
    # Every table of the template is addressed by key somewhere.
    assert table_keys == {keys for _, keys in used}


def test_every_index_used_in_code_exists_with_the_scope_key() -> None:
    (inventory,) = [
        table
        for table in _template_tables().values()
        if table["Properties"]["KeySchema"][0]["AttributeName"] == "sourceServerArn"
    ]
    indexes = {
        index["IndexName"]: [(key["AttributeName"], key["KeyType"]) for key in index["KeySchema"]]
        for index in inventory["Properties"]["GlobalSecondaryIndexes"]
    }
    _, used = _table_usage_in_code()

    assert used, "found no IndexName= in lambda/: the scan is broken"
    assert [(where, name) for where, name in used if name not in indexes] == []
    assert indexes[SCOPE_INDEX] == [("accountId", "HASH"), ("region", "RANGE")]


# Inventory item attributes (DESIGN.md "Inventory item"), plus what the sync adds: the
# `drsTruncated` flag of a trimmed record and `contentDigest` (the digest of an item's stable
# content, read back from the scope index to tell whether a server changed).
INVENTORY_ITEM_ATTRIBUTES = {
    "sourceServerArn",
    "sourceServerID",
    "accountId",
    "region",
    "lastSyncTime",
    "hostname",
    "replicationState",
    "lifeCycleState",
    "stagingAccountId",
    "sourceAccountId",
    "sourceRegion",
    "sourceInstanceId",
    "tags",
    "ec2",
    "drs",
    "drsTruncated",
    "contentDigest",
    "deletedAt",
    "expiresAt",
}
QUERY_HANDLER_DIR = LAMBDA_DIR / "query-handler"
# Query-handler modules whose `item` is a region-status item, never an inventory item.
REGION_STATUS_MODULES = {"freshness.py"}


def _scope_index() -> tuple[set[str], dict[str, Any]]:
    """(attributes every item of the scope index holds, its Projection)."""
    inventory = _template_tables()["SourceServerInventoryTable"]["Properties"]
    (index,) = [
        index for index in inventory["GlobalSecondaryIndexes"] if index["IndexName"] == SCOPE_INDEX
    ]
    keys = {key["AttributeName"] for key in inventory["KeySchema"] + index["KeySchema"]}
    return keys, index["Projection"]


def _attributes_read_by_the_query_handler() -> dict[str, str]:
    """Top-level item attributes the query-handler's code names, each with where: the first
    part of every `expressions.path(...)` (every key condition, filter and projection goes
    through one), the strings of module-level `*_PROJECTION` constants, and literal keys read
    from a variable named `item` (`item["x"]`, `item.get("x")`)."""
    found: dict[str, str] = {}
    for path in sorted(QUERY_HANDLER_DIR.rglob("*.py")):
        if path.name in REGION_STATUS_MODULES:
            continue
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(LAMBDA_DIR).as_posix()
        for node in ast.walk(tree):
            names: list[ast.expr] = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                receiver = node.func.value
                if node.func.attr == "path" and node.args:
                    names = node.args[:1]
                elif node.func.attr == "get" and isinstance(receiver, ast.Name) and node.args:
                    names = node.args[:1] if receiver.id == "item" else []
            elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
                names = [node.slice] if node.value.id == "item" else []
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple | ast.List):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if any(target.endswith("_PROJECTION") for target in targets):
                    names = list(node.value.elts)
            for name in names:
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    found.setdefault(name.value, f"{where}:{node.lineno}")  # type: ignore[attr-defined]
    return found


def test_scope_index_projects_every_item_attribute_but_the_raw_drs_record() -> None:
    keys, projection = _scope_index()
    projected = set(projection["NonKeyAttributes"])

    # INCLUDE: an item write costs the index its projected attributes, not the ~2 KB record.
    assert projection["ProjectionType"] == "INCLUDE"
    assert "drs" not in projected
    assert "contentDigest" in projected  # the sync reads it back from the index
    assert projected == INVENTORY_ITEM_ATTRIBUTES - keys - {"drs"}
    # ... and what the sync's own transform writes (the contract list may lag behind it).
    record = fleet.make_source_server("111122223333", "us-east-1", instance_id="i-0abc")
    written = inventory_item(record, Scope("111122223333", "us-east-1"), "T", {"vpcId": "v"})
    assert set(written) - keys - {"drs"} <= projected


def test_every_attribute_the_query_handler_reads_through_the_scope_index_is_projected() -> None:
    # A filter on an attribute the index does not hold would pass or fail every item
    # silently (attribute_not_exists(deletedAt) would list deleted servers as live).
    keys, projection = _scope_index()
    available = keys | set(projection["NonKeyAttributes"])
    read = _attributes_read_by_the_query_handler()

    assert {"deletedAt", "replicationState", "tags", "ec2", "hostname", "sourceServerID"} <= set(
        read
    ), "the scan of lambda/query-handler found too little: it is broken"
    assert {name: where for name, where in read.items() if name not in available} == {}


def test_inventory_ttl_attribute_is_the_one_the_sync_writes() -> None:
    inventory = _template_tables()["SourceServerInventoryTable"]["Properties"]

    assert inventory["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert "expiresAt" in _string_constants_in_lambda_code() | {
        part for text in _string_constants_in_lambda_code() for part in re.findall(r"\w+", text)
    }


# ------------------------------------------------------------------------------- monitoring
def _alarm(logical_id: str) -> dict[str, Any]:
    return monitoring_stack().resource_properties(logical_id)


def test_stale_and_failed_scope_alarms_watch_the_metrics_the_sync_emits() -> None:
    environment = lambda_stack().resource_properties(DMH_FUNCTION)["Environment"]["Variables"]
    emitted_dimensions = [
        {"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]},
        {"Name": "environment", "Value": environment["DEPLOYMENT_ENVIRONMENT"]},
    ]
    stale = _alarm("InventoryStaleAlarm")
    failed = _alarm("SyncScopesFailedAlarm")

    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
    for alarm in (stale, failed):
        assert alarm["Namespace"] == METRICS_NAMESPACE
        assert alarm["Dimensions"] == emitted_dimensions
        assert alarm["MetricName"] in _string_constants_in_lambda_code()
    # SUCCEEDED or PARTIAL: a run that recorded its scopes (SyncSucceeded is SUCCEEDED only).
    assert (stale["MetricName"], stale["Statistic"]) == ("SyncSucceededOrPartial", "Sum")
    # Two schedule intervals without a successful run, and no data at all, both alarm.
    assert (stale["Period"], stale["EvaluationPeriods"]) == (900, 2)
    assert (stale["ComparisonOperator"], stale["Threshold"]) == ("LessThanThreshold", 1)
    assert stale["TreatMissingData"] == "breaching"
    assert failed["MetricName"] == "ScopesFailed"
    assert failed["TreatMissingData"] == "notBreaching"
    feed = _alarm("ChangeFeedFailuresAlarm")
    assert feed["Namespace"] == METRICS_NAMESPACE and feed["Dimensions"] == emitted_dimensions
    assert feed["MetricName"] == "ChangeFeedFailures"
    assert feed["MetricName"] in _string_constants_in_lambda_code()


def test_alarms_watch_the_resources_the_other_stacks_create() -> None:
    functions = lambda_stack()
    queue_names = {
        functions.resource_properties("AsyncFailureQueue")["QueueName"],
        eventbridge_stack().resource_properties("InventorySyncDeadLetterQueue")["QueueName"],
        eventbridge_stack().resource_properties("DrsEventsDeadLetterQueue")["QueueName"],
        eventbridge_stack().resource_properties("DrsEventsQueue")["QueueName"],
    }
    errors = _alarm("DataManagementHandlerErrorsAlarm")
    watched_queues = {
        _alarm(alarm)["Dimensions"][0]["Value"]
        for alarm in (
            "InventorySyncDeadLetterAlarm",
            "AsyncFailureQueueAlarm",
            "DrsEventsDeadLetterAlarm",
            "DrsEventsQueueAgeAlarm",
        )
    }

    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [
        {
            "Name": "FunctionName",
            "Value": functions.resource_properties(DMH_FUNCTION)["FunctionName"],
        }
    ]
    assert watched_queues == queue_names


def test_drs_events_left_unconsumed_alarm_before_they_expire() -> None:
    # A stopped event source mapping never moves a message to the DLQ: the messages expire.
    # The alarm watches their age: above what retries alone reach (so it means "not
    # consumed", the DLQ alarm covers "failing"), and long before the retention drops them.
    queue = eventbridge_stack().resource_properties("DrsEventsQueue")
    age = _alarm("DrsEventsQueueAgeAlarm")
    assert (age["Namespace"], age["MetricName"], age["Statistic"]) == (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        "Maximum",
    )
    assert age["Dimensions"] == [{"Name": "QueueName", "Value": queue["QueueName"]}]
    assert age["ComparisonOperator"] == "GreaterThanThreshold"
    assert age["TreatMissingData"] == "notBreaching"  # an idle queue reports nothing
    assert (age["Period"], age["EvaluationPeriods"]) == (300, 3)
    retried_for = queue["VisibilityTimeout"] * queue["RedrivePolicy"]["maxReceiveCount"]
    detected_after = age["Threshold"] + age["Period"] * age["EvaluationPeriods"]
    assert retried_for < age["Threshold"]
    assert detected_after <= queue["MessageRetentionPeriod"] / 4
    assert age["OKActions"] == [{"Ref": "AlarmTopic"}]


def test_every_alarm_notifies_the_topic_and_email_is_optional() -> None:
    template = load_template("monitoring-stack.yaml")
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    (subscription,) = resources_of_type(template, "AWS::SNS::Subscription").values()

    assert len(alarms) >= 5
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert not monitoring_stack().condition("HasAlarmEmail")


def test_every_sync_alarm_watches_a_metric_the_code_emits_with_its_dimensions() -> None:
    environment = lambda_stack().resource_properties(DMH_FUNCTION)["Environment"]["Variables"]
    emitted_dimensions = [
        {"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]},
        {"Name": "environment", "Value": environment["DEPLOYMENT_ENVIRONMENT"]},
    ]
    alarm_ids = [
        logical_id
        for logical_id, resource in load_template("monitoring-stack.yaml")["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        and resource["Properties"]["Namespace"] == METRICS_NAMESPACE
    ]
    alarms = {logical_id: _alarm(logical_id) for logical_id in alarm_ids}
    emitted = _string_constants_in_lambda_code()

    assert {"SyncSkippedAlarm", "SyncFailedAlarm", "MassDeletionHeldAlarm"} <= set(alarms)
    off_contract = [
        logical_id
        for logical_id, alarm in alarms.items()
        if alarm["MetricName"] not in emitted or alarm["Dimensions"] != emitted_dimensions
    ]
    assert off_contract == []
    # Skipped runs alarm only when they repeat: three schedule intervals in a row.
    skipped = alarms["SyncSkippedAlarm"]
    assert (skipped["Period"], skipped["EvaluationPeriods"], skipped["DatapointsToAlarm"]) == (
        900,
        3,
        3,
    )


def test_the_data_management_handler_knows_its_own_role_arn_with_its_path() -> None:
    """The connection test names the hub's role as target trust policies must pin it
    (aws:PrincipalArn includes the path, which STS's session ARN leaves out)."""
    stack = lambda_stack()
    variables = stack.resource_properties(DMH_FUNCTION)["Environment"]["Variables"]
    role = stack.template["Resources"]["DataManagementHandlerRole"]["Properties"]
    assert variables[HUB_ROLE_ARN_ENV] == {"Fn::GetAtt": ["DataManagementHandlerRole", "Arn"]}
    assert role["Path"] == "/drs-orchestration/"
    assert hub_role_arn({HUB_ROLE_ARN_ENV: "arn:aws:iam::123456789012:role/p/r"}) == (
        "arn:aws:iam::123456789012:role/p/r"
    )
    assert hub_role_arn({}) is None and hub_role_arn({HUB_ROLE_ARN_ENV: ""}) is None


def test_the_change_feed_env_var_names_the_bus_the_eventbridge_stack_creates() -> None:
    """INVENTORY_EVENT_BUS, the PutEvents grant and the bus are one name: the lambda stack
    (deployed first) cannot reference the bus, so both sides spell it out."""
    variables = lambda_stack().resource_properties(DMH_FUNCTION)["Environment"]["Variables"]
    bus = eventbridge_stack().resource_properties("InventoryEventBus")

    assert variables[INVENTORY_EVENT_BUS_ENV] == bus["Name"] == f"{PROJECT}-inventory-{ENV}"
    assert inventory_event_bus({INVENTORY_EVENT_BUS_ENV: bus["Name"]}) == bus["Name"]
    assert (
        inventory_event_bus({}) is None
        and inventory_event_bus({INVENTORY_EVENT_BUS_ENV: ""}) is None
    )
