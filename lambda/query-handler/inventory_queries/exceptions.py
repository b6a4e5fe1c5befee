"""Typed errors of the inventory queries.

The generic ones (InvalidParameterError, NotFoundError, ConfigurationError) come from
`shared.exceptions`; this module adds what only a reader of the inventory can run into.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.exceptions import InvalidParameterError, OrchestrationError


class AmbiguousSourceServerError(InvalidParameterError):
    """A sourceServerID lookup matched more than one inventory item.

    It is a kind of InvalidParameterError (the request must be narrowed with accountId
    and/or region, or use sourceServerArn), with its own code so a caller can tell it apart.
    `matches` lists every candidate as {sourceServerArn, accountId, region, deletedAt?}.
    """

    error_code = "AmbiguousSourceServer"

    def __init__(self, source_server_id: str, matches: Sequence[Mapping[str, Any]]) -> None:
        self.source_server_id = source_server_id
        self.matches = [dict(match) for match in matches]
        listed = "; ".join(
            f"{m['sourceServerArn']} (account {m['accountId']}, region {m['region']}"
            + (f", soft-deleted {m['deletedAt']})" if m.get("deletedAt") else ")")
            for m in self.matches
        )
        super().__init__(
            f"get_source_server: sourceServerID {source_server_id} matches "
            f"{len(self.matches)} servers: {listed}; pass accountId and region, "
            "or sourceServerArn, to choose one"
        )


class InventoryReadIncompleteError(OrchestrationError):
    """DynamoDB kept leaving inventory keys unprocessed (BatchGetItem under throttling).

    The call fails rather than answer without items that exist; the caller may retry it.
    """

    error_code = "InventoryReadIncomplete"
