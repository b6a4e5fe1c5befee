"""Least privilege per table, bounded concurrency, logs, queues and the alarm topic.

The DynamoDB grants are cross-checked against lambda/: the boto3 methods each handler's code
names (its folder and `shared`, which is bundled into every function) are the actions its
role must hold, no more, no fewer. A new call without a grant fails here before it fails in
AWS with AccessDenied; a grant whose call went away fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from inventory_queries import reader
from inventory_sync import store
from tests.support.aws import table_names_for
from tests.support.cfn import CFN_DIR, load_template, resources_of_type
from tests.support.cfn_eval import Evaluator, ParameterError
from tests.unit.test_templates import (
    DMH_FUNCTION,
    ENV,
    LAMBDA_DIR,
    QH_FUNCTION,
    TABLE_ARN_PREFIX,
    as_list,
    lambda_stack,
    role_statements,
)

DMH_ROLE = "DataManagementHandlerRole"
QH_ROLE = "QueryHandlerRole"
HANDLER_OF_ROLE = {DMH_ROLE: "data-management-handler", QH_ROLE: "query-handler"}

# boto3 DynamoDB methods (client, resource and Table) and the IAM action each one needs.
DYNAMODB_METHOD_ACTIONS = {
    "batch_get_item": "dynamodb:BatchGetItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "batch_writer": "dynamodb:BatchWriteItem",
    "delete_item": "dynamodb:DeleteItem",
    "describe_table": "dynamodb:DescribeTable",
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "update_item": "dynamodb:UpdateItem",
}
# Calls whose actions depend on their content (each item of a transaction, each PartiQL
# statement): the scan below cannot derive them, so it refuses them until it is taught.
UNDERIVABLE_METHODS = {
    "transact_write_items",
    "transact_get_items",
    "execute_statement",
    "batch_execute_statement",
    "execute_transaction",
}

# Which table each call goes to, read from the code (the scan above proves the union):
# data-management-handler: inventory_sync/store.py (inventory, region status, the registry's
# Scan), inventory_sync/lease.py (the lease), target_accounts.py (the registry operations);
# query-handler: inventory_queries/reader.py, its only module that reads DynamoDB.
INDEX = f"/index/{store.SCOPE_INDEX}"
TABLE_GRANTS = {
    DMH_ROLE: {
        # BatchGetItem: a dry run reads back the stored items its plan names
        # PutItem: the refresh's conditional write (never over an item from a newer read)
        "inventory": {
            "dynamodb:BatchGetItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:UpdateItem",
        },
        "inventory" + INDEX: {"dynamodb:Query"},
        "region_status": {
            "dynamodb:BatchWriteItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
        },
        "target_accounts": {
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:UpdateItem",
        },
        "sync_lease": {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"},
    },
    QH_ROLE: {
        "inventory": {"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Scan"},
        "inventory" + INDEX: {"dynamodb:Query"},
        "region_status": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"},
    },
}
XRAY_ACTIONS = {"xray:PutTelemetryRecords", "xray:PutTraceSegments"}


def _dynamodb_methods_named(folders: list[Path]) -> dict[str, str]:
    """Every DynamoDB method name used as an attribute (called or passed on, as
    `self._client.scan` is) in the Python files under `folders`, each with where."""
    found: dict[str, str] = {}
    known = set(DYNAMODB_METHOD_ACTIONS) | UNDERIVABLE_METHODS
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr in known:
                    where = f"{path.relative_to(LAMBDA_DIR).as_posix()}:{node.lineno}"
                    found.setdefault(node.attr, where)
    return found


def _dynamodb_statements(role: str, **parameters: str) -> list[dict[str, Any]]:
    stack = lambda_stack(**parameters)
    statements = stack.evaluate(role_statements(stack.template, role, stack))
    return [
        statement
        for statement in statements
        if any(action.startswith("dynamodb:") for action in as_list(statement["Action"]))
    ]


def _granted_by_resource(role: str) -> dict[str, set[str]]:
    """Resource ARN -> the DynamoDB actions granted on it."""
    granted: dict[str, set[str]] = {}
    for statement in _dynamodb_statements(role):
        for resource in as_list(statement["Resource"]):
            granted.setdefault(resource, set()).update(as_list(statement["Action"]))
    return granted


def _arn(table: str) -> str:
    """The ARN of a TABLE_GRANTS key (a TableNames field, optionally with /index/NAME)."""
    field, _, index = table.partition("/")
    name = getattr(table_names_for(ENV), field)
    return TABLE_ARN_PREFIX + name + (f"/{index}" if index else "")


# ------------------------------------------------------------------------ least privilege per table
@pytest.mark.parametrize("role", [DMH_ROLE, QH_ROLE])
def test_each_role_holds_exactly_the_dynamodb_actions_its_code_calls(role: str) -> None:
    folders = [LAMBDA_DIR / HANDLER_OF_ROLE[role], LAMBDA_DIR / "shared"]
    methods = _dynamodb_methods_named(folders)
    granted = {action for actions in _granted_by_resource(role).values() for action in actions}

    assert {"get_item", "query", "scan"} <= set(methods), "the scan of lambda/ is broken"
    assert {name: methods[name] for name in UNDERIVABLE_METHODS & set(methods)} == {}
    where = {DYNAMODB_METHOD_ACTIONS[name]: place for name, place in methods.items()}
    needed = set(where)
    assert {action: where[action] for action in needed - granted} == {}, "a call without a grant"
    assert granted - needed == set(), "a grant without a call"


@pytest.mark.parametrize("role", [DMH_ROLE, QH_ROLE])
def test_each_table_gets_one_statement_with_only_the_calls_made_on_it(role: str) -> None:
    statements = _dynamodb_statements(role)
    expected = {_arn(table): actions for table, actions in TABLE_GRANTS[role].items()}

    # One statement per table (or index), no wildcard, no table shared by two statements.
    assert all(isinstance(statement["Resource"], str) for statement in statements)
    assert sorted(statement["Resource"] for statement in statements) == sorted(expected)
    assert {
        statement["Resource"]: set(as_list(statement["Action"])) for statement in statements
    } == expected
    # The union of the per-table map is what the code calls (checked against lambda/ above).
    assert set().union(*TABLE_GRANTS[role].values()) == {
        action for statement in statements for action in as_list(statement["Action"])
    }


def test_the_inventory_is_never_deleted_from_and_the_query_handler_never_reads_the_registry() -> (
    None
):
    dmh = _granted_by_resource(DMH_ROLE)
    qh = _granted_by_resource(QH_ROLE)
    names = table_names_for(ENV)

    # Soft-deletes are UpdateItems; TTL removes the items.
    assert "dynamodb:DeleteItem" not in dmh[TABLE_ARN_PREFIX + names.inventory]
    assert not any(arn.startswith(TABLE_ARN_PREFIX + names.target_accounts) for arn in qh)
    assert not any(arn.startswith(TABLE_ARN_PREFIX + names.sync_lease) for arn in qh)


def test_queries_are_granted_on_the_scope_index_the_code_names_and_nowhere_else() -> None:
    indexes = {
        index["IndexName"]
        for index in load_template("dynamodb-stack.yaml")["Resources"][
            "SourceServerInventoryTable"
        ]["Properties"]["GlobalSecondaryIndexes"]
    }

    assert store.SCOPE_INDEX == reader.SCOPE_INDEX
    assert store.SCOPE_INDEX in indexes
    for role in (DMH_ROLE, QH_ROLE):
        granted = _granted_by_resource(role)
        index_arns = {arn for arn in granted if "/index/" in arn}
        assert index_arns == {_arn("inventory" + INDEX)}
        assert granted[_arn("inventory" + INDEX)] == {"dynamodb:Query"}
    # The sync's region-status reads are Scans; only the query-handler queries that table
    # (by its own key, so on the table ARN).
    assert "dynamodb:Query" not in _granted_by_resource(DMH_ROLE)[_arn("region_status")]


# ------------------------------------------------------------------------------ bounded concurrency
def test_reserved_concurrency_defaults_bound_both_functions() -> None:
    stack = lambda_stack()

    assert stack.resource_properties(DMH_FUNCTION)["ReservedConcurrentExecutions"] == "5"
    assert stack.resource_properties(QH_FUNCTION)["ReservedConcurrentExecutions"] == "10"


@pytest.mark.parametrize(
    ("parameter", "function"),
    [
        ("DataManagementHandlerReservedConcurrency", DMH_FUNCTION),
        ("QueryHandlerReservedConcurrency", QH_FUNCTION),
    ],
)
def test_reserved_concurrency_is_a_parameter_and_zero_reserves_nothing(
    parameter: str, function: str
) -> None:
    # 0 must not reach Lambda: ReservedConcurrentExecutions 0 would throttle every call.
    assert (
        lambda_stack(**{parameter: "2"}).resource_properties(function)[
            "ReservedConcurrentExecutions"
        ]
        == "2"
    )
    assert "ReservedConcurrentExecutions" not in lambda_stack(
        **{parameter: "0"}
    ).resource_properties(function)
    spec = load_template("lambda-stack.yaml")["Parameters"][parameter]
    assert (spec["Type"], spec["MinValue"]) == ("Number", 0)


# --------------------------------------------------------------------- logs, queues, topic, tracing
@pytest.mark.parametrize(
    ("environment", "days"),
    [("prod", "365")] + [(name, "30") for name in ("staging", "uat", "qa", "test", "dev")],
)
@pytest.mark.parametrize("log_group", ["DataManagementHandlerLogGroup", "QueryHandlerLogGroup"])
def test_log_retention_defaults_to_the_environments(
    environment: str, days: str, log_group: str
) -> None:
    stack = lambda_stack(Environment=environment)

    assert stack.resource_properties(log_group)["RetentionInDays"] == days


def test_log_retention_parameter_overrides_the_environment_default() -> None:
    stack = lambda_stack(Environment="prod", LogRetentionDays="731")

    assert stack.resource_properties("DataManagementHandlerLogGroup")["RetentionInDays"] == "731"
    with pytest.raises(ParameterError):
        lambda_stack(LogRetentionDays="42")  # not a value CloudWatch Logs accepts


def test_the_retention_mapping_covers_every_environment() -> None:
    template = load_template("lambda-stack.yaml")
    environments = template["Parameters"]["Environment"]["AllowedValues"]

    assert set(template["Mappings"]["EnvironmentSettings"]) == set(environments)


@pytest.mark.parametrize("log_group", ["DataManagementHandlerLogGroup", "QueryHandlerLogGroup"])
def test_log_groups_outlive_the_stack_but_not_a_failed_first_create(log_group: str) -> None:
    resource = load_template("lambda-stack.yaml")["Resources"][log_group]

    assert resource["Type"] == "AWS::Logs::LogGroup"
    assert resource["DeletionPolicy"] == "RetainExceptOnCreate"
    assert resource["UpdateReplacePolicy"] == "Retain"


def _queues() -> list[tuple[str, str, dict[str, Any]]]:
    """(template, queue id, template) for every SQS queue of every template."""
    found = []
    for path in sorted(CFN_DIR.glob("*.yaml")):
        template = load_template(path.name)
        for queue_id in resources_of_type(template, "AWS::SQS::Queue"):
            found.append((path.name, queue_id, template))
    return found


def test_there_are_queues_to_check() -> None:
    assert {queue_id for _, queue_id, _ in _queues()} >= {
        "AsyncFailureQueue",
        "InventorySyncDeadLetterQueue",
        "DrsEventsQueue",
        "DrsEventsDeadLetterQueue",
    }


@pytest.mark.parametrize(
    ("name", "queue_id"), [(name, queue_id) for name, queue_id, _ in _queues()]
)
def test_every_queue_refuses_requests_without_tls(name: str, queue_id: str) -> None:
    template = load_template(name)
    # One QueuePolicy per queue: a second one would replace the first's statements in AWS.
    policies = [
        policy
        for policy in resources_of_type(template, "AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in policy["Properties"]["Queues"]
    ]
    (policy,) = policies
    deny = [
        statement
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
    ]

    assert deny == [
        {
            "Sid": "DenyRequestsWithoutTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:*",
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    queue = template["Resources"][queue_id]
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    # Failure records to read and drop: explicit, so no one mistakes them for kept data.
    assert (queue["DeletionPolicy"], queue["UpdateReplacePolicy"]) == ("Delete", "Delete")


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    template = load_template("monitoring-stack.yaml")
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    key = template["Resources"]["AlarmTopicKey"]["Properties"]
    statements = key["KeyPolicy"]["Statement"]
    cloudwatch_principal = {"Service": "cloudwatch.amazonaws.com"}
    cloudwatch = [s for s in statements if s["Principal"] == cloudwatch_principal]

    # Not alias/aws/sns: the AWS managed key's policy cannot let CloudWatch publish.
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": ["AlarmTopicKey", "Arn"]}
    assert key["EnableKeyRotation"] is True
    assert [(s["Effect"], sorted(s["Action"])) for s in cloudwatch] == [
        ("Allow", ["kms:Decrypt", "kms:GenerateDataKey*"])
    ]
    # Everything else is the account's own administration of the key.
    others = [s for s in statements if s not in cloudwatch]
    assert [s["Principal"] for s in others] == [
        {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    ]


@pytest.mark.parametrize(("role", "function"), [(DMH_ROLE, DMH_FUNCTION), (QH_ROLE, QH_FUNCTION)])
def test_tracing_is_off_by_default_and_grants_xray_only_when_on(role: str, function: str) -> None:
    off = lambda_stack()
    on = lambda_stack(EnableTracing="true")

    def xray_statements(stack: Evaluator) -> list[dict[str, Any]]:
        return [
            statement
            for statement in role_statements(stack.template, role, stack)
            if any(action.startswith("xray:") for action in as_list(statement["Action"]))
        ]

    assert off.resource_properties(function)["TracingConfig"] == {"Mode": "PassThrough"}
    assert xray_statements(off) == []
    assert on.resource_properties(function)["TracingConfig"] == {"Mode": "Active"}
    (statement,) = xray_statements(on)
    # X-Ray's write calls have no resource-level permissions: "*" is the only resource.
    assert (statement["Effect"], set(statement["Action"]), statement["Resource"]) == (
        "Allow",
        XRAY_ACTIONS,
        "*",
    )
    with pytest.raises(ParameterError):
        lambda_stack(EnableTracing="yes")


# --------------------------------------------------------------------------------------- conditions
def _parameters_compared_in_conditions(template: dict[str, Any]) -> set[str]:
    compared: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Fn::Equals":
                    compared.update(
                        part["Ref"] for part in value if isinstance(part, dict) and "Ref" in part
                    )
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(template.get("Conditions", {}))
    return compared & set(template["Parameters"])


@pytest.mark.parametrize("name", sorted(path.name for path in CFN_DIR.glob("*.yaml")))
def test_parameters_compared_in_conditions_have_string_defaults(name: str) -> None:
    # CloudFormation compares parameter values as strings; moto compares an unquoted Number
    # default as a number, so `!Equals [!Ref P, '0']` would be false locally and true in AWS.
    template = load_template(name)
    parameters = template["Parameters"]

    assert {
        parameter
        for parameter in _parameters_compared_in_conditions(template)
        if not isinstance(parameters[parameter].get("Default", ""), str)
    } == set()


def test_discovery_may_list_the_organizations_accounts_and_change_nothing_there() -> None:
    """discover_target_accounts calls organizations ListAccounts with the hub's role, and
    nothing else of Organizations (the code's only Organizations call, checked here too)."""
    source = (
        Path(__file__).resolve().parents[2]
        / "lambda"
        / "data-management-handler"
        / "account_discovery.py"
    ).read_text()
    assert 'get_paginator("list_accounts")' in source
    stack = lambda_stack()
    statements = stack.evaluate(role_statements(stack.template, DMH_ROLE, stack))
    organizations = [
        statement
        for statement in statements
        if any(action.startswith("organizations:") for action in as_list(statement["Action"]))
    ]
    assert [(s["Effect"], as_list(s["Action"]), s["Resource"]) for s in organizations] == [
        ("Allow", ["organizations:ListAccounts"], "*")
    ]
