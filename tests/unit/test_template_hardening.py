"""Least privilege per table, and bounded concurrency.

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
from tests.support.cfn import load_template
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
        "inventory": {"dynamodb:BatchWriteItem", "dynamodb:Scan", "dynamodb:UpdateItem"},
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
