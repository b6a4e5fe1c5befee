"""query-handler: the read side. Routing only; the queries live in `inventory_queries`.

Direct invocations send `{"operation": NAME, ...parameters}`; OPERATIONS is the one map
of what exists. Every operation reads DynamoDB (GetItem, BatchGetItem, Query, Scan) and
nothing else: the inventory is written by the data-management-handler's sync alone.
"""

from __future__ import annotations

from typing import Any

import inventory_queries
from shared.observability import get_logger
from shared.operations import Operation, dispatch

logger = get_logger("query-handler")

OPERATIONS: dict[str, Operation] = {
    "list_source_servers": inventory_queries.list_source_servers,
    "get_source_server": inventory_queries.get_source_server,
    "get_region_status": inventory_queries.get_region_status,
    "get_inventory_summary": inventory_queries.get_inventory_summary,
    "resolve_servers_by_tags": inventory_queries.resolve_servers_by_tags,
}


def handle_direct_invocation(event: Any, context: Any) -> dict[str, Any]:
    """Run the operation the event names and return its JSON-serialisable result.

    Raises UnknownOperationError / InvalidParameterError (typed, listing valid choices),
    NotFoundError and AmbiguousSourceServerError; the invocation then fails visibly.
    An AWS failure the operation lets through is AwsServiceError: the AWS error code in its
    message, AWS's error text (role ARNs, account ids, request ids) in the log only.
    """
    return dispatch(OPERATIONS, event, context, logger)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    if isinstance(event, dict):
        # Every log line of the invocation names its operation (searchable in CloudWatch).
        logger.append_keys(operation=event.get("operation"))
    return handle_direct_invocation(event, context)
