"""The data-management-handler's one operation map and its typed errors."""

from __future__ import annotations

import io
import json

import pytest

from shared.exceptions import InvalidParameterError, InvalidRequestError, UnknownOperationError
from tests.support.handlers import load_handler
from tests.support.lambda_context import FakeLambdaContext

handler = load_handler("data-management-handler")

CONTRACT_OPERATIONS = {
    "sync_source_server_inventory",
    "refresh_source_servers",
    "add_target_account",
    "get_target_account",
    "list_target_accounts",
    "update_target_account",
    "delete_target_account",
    "test_target_account",
    "rotate_external_id",
    "discover_target_accounts",
}


def test_operation_map_holds_every_contract_operation() -> None:
    assert set(handler.OPERATIONS) >= CONTRACT_OPERATIONS
    assert all(callable(op) for op in handler.OPERATIONS.values())


def test_unknown_operation_names_it_and_lists_valid_operations(tables) -> None:
    with pytest.raises(UnknownOperationError) as raised:
        handler.handle_direct_invocation({"operation": "sync_everything"}, None)
    message = str(raised.value)
    assert "'sync_everything'" in message
    for name in CONTRACT_OPERATIONS:
        assert name in message
    assert raised.value.valid_operations == sorted(handler.OPERATIONS)


@pytest.mark.parametrize("event", [None, [], "sync", {"operation": ""}, {"operation": 7}, {}])
def test_malformed_event_is_a_typed_error(event, tables) -> None:
    with pytest.raises(InvalidRequestError):
        handler.handle_direct_invocation(event, None)


def test_routes_parameters_at_top_level_through_lambda_handler(tables) -> None:
    # GIVEN a registered account  WHEN it is read through lambda_handler  THEN it comes back
    handler.lambda_handler(
        {
            "operation": "add_target_account",
            "accountId": "123456789012",
            "accountName": "hub",
            "skipConnectionTest": True,
        },
        FakeLambdaContext(),
    )
    result = handler.lambda_handler(
        {"operation": "get_target_account", "accountId": "123456789012"}, FakeLambdaContext()
    )
    assert result["account"]["accountName"] == "hub"


def test_invalid_parameter_lists_valid_fields(tables) -> None:
    with pytest.raises(InvalidParameterError) as raised:
        handler.handle_direct_invocation(
            {"operation": "sync_source_server_inventory", "dryrun": True}, None
        )
    message = str(raised.value)
    assert "dryrun" in message
    assert "dryRun" in message and "accountIds" in message and "regions" in message


def test_every_log_line_of_an_invocation_names_its_operation(world, monkeypatch) -> None:
    stream = io.StringIO()  # the JSON log lines, as CloudWatch would receive them
    monkeypatch.setattr(handler.logger.registered_handler, "stream", stream)
    result = handler.lambda_handler(
        {"operation": "sync_source_server_inventory", "dryRun": True}, FakeLambdaContext()
    )
    assert result["status"] == "SUCCEEDED"
    output = stream.getvalue().splitlines()
    logs = [json.loads(line) for line in output if line.startswith('{"level"')]
    planned = [line for line in logs if line.get("message") == "sync planned"]
    assert planned, output[:5]
    assert all(line["operation"] == "sync_source_server_inventory" for line in planned)
    assert all(line["runId"] == result["runId"] for line in planned)
