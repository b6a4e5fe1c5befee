"""data-management-handler: the write side. Routing only; logic lives in the modules it maps to.

Direct invocations and the EventBridge schedule both send
`{"operation": NAME, ...parameters}`; OPERATIONS is the one map of what exists. DRS events
arrive as SQS batches (`{"Records": [...]}`, the hub's event queue): drs_events turns them
into one `refresh_source_servers` run and answers with Lambda's partial-batch failures.
"""

from __future__ import annotations

from typing import Any

import account_discovery
import drs_events
import target_accounts
from inventory_sync import sync_source_server_inventory
from inventory_sync.refresh import refresh_source_servers
from shared.observability import get_logger
from shared.operations import Operation, dispatch

logger = get_logger("data-management-handler")

OPERATIONS: dict[str, Operation] = {
    "sync_source_server_inventory": sync_source_server_inventory,
    "refresh_source_servers": refresh_source_servers,
    "add_target_account": target_accounts.add_target_account,
    "get_target_account": target_accounts.get_target_account,
    "list_target_accounts": target_accounts.list_target_accounts,
    "update_target_account": target_accounts.update_target_account,
    "delete_target_account": target_accounts.delete_target_account,
    "test_target_account": target_accounts.test_target_account,
    "rotate_external_id": target_accounts.rotate_external_id,
    "discover_target_accounts": account_discovery.discover_target_accounts,
}


def handle_direct_invocation(event: Any, context: Any) -> dict[str, Any]:
    """Run the operation the event names and return its JSON-serialisable result.

    Raises UnknownOperationError / InvalidParameterError (typed, listing valid choices);
    the invocation then fails visibly instead of returning a 200 that hides it.
    An AWS failure the operation lets through is AwsServiceError: the AWS error code in its
    message, AWS's error text (role ARNs, account ids, request ids) in the log only.
    """
    # Every log line of the invocation names its operation (searchable in CloudWatch); the
    # key goes when the operation ends, so the next invocation in this environment (or a
    # refresh after a sync) never logs it.
    logger.append_keys(operation=event.get("operation") if isinstance(event, dict) else None)
    try:
        return dispatch(OPERATIONS, event, context, logger)
    finally:
        logger.remove_keys(["operation"])


# Never the event in the logs, whatever POWERTOOLS_LOGGER_LOG_EVENT says: a registry event
# carries an externalId (a shared secret) and roleArn/accountName values.
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    if drs_events.is_sqs_batch(event):
        # DRS events from the hub's queue: one refresh for the batch, partial-batch failures.
        return drs_events.handle_sqs_batch(event, context)
    return handle_direct_invocation(event, context)
