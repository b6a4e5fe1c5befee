"""What readers are told about a failure: a short message chosen by its error code.

AWS error text can name role ARNs, other accounts' ids and request ids. It goes to the logs
(next to the failure's runId, accountId and region) and never into a field that is stored
(region status) or returned (the sync's result, query answers, error answers). Those fields
carry the error code and the message `reader_message` gives for it, so a reader can always
find the details in the logs by code, account and region.

Every code a region-status item holds is either a DRS answer to the listing (the listing is
the only DRS call a scope makes) or one of the sync's own codes below; failures elsewhere
(the inventory table, an unexpected exception) are recorded under codes of the sync's own.
So "DRS answered <code>" is the truth for any code this table does not name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import overload

ASSUME_ROLE_FAILED = "AssumeRoleFailed"
EXTERNAL_ID_MISSING = "ExternalIdMissing"
MALFORMED_RESPONSE = "MalformedResponse"
PAGINATION_LOOP = "PaginationLoop"
MASS_DELETION_HELD = "MassDeletionHeld"
DEADLINE_REACHED = "DeadlineReached"
INVENTORY_WRITE_FAILED = "InventoryWriteFailed"
INVENTORY_TABLE_FAILED = "InventoryTableFailed"
STATUS_WRITE_FAILED = "StatusWriteFailed"
UNEXPECTED_ERROR = "UnexpectedError"

_ACCESS_DENIED = "DRS access denied for the sync's role in this account and region"
_NOT_ENABLED = "the region is not enabled for this account"
_THROTTLED = "DRS throttled the listing"
_UNREACHABLE = "DRS could not be reached, or did not answer in time"

# "No DRS here" answers: true for a scope that never held servers (status NOT_INITIALIZED or
# REGION_NOT_ENABLED); the same code on an ERROR scope contradicted what the sync knew.
_NO_DRS_HERE = {
    "UninitializedAccountException": "DRS is not initialized in this account and region",
    "UnrecognizedClientException": _NOT_ENABLED,
    "InvalidClientTokenId": _NOT_ENABLED,
    "OptInRequired": _NOT_ENABLED,
}
_NO_DRS_STATUSES = frozenset({"NOT_INITIALIZED", "REGION_NOT_ENABLED"})

MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        ASSUME_ROLE_FAILED: "the hub could not assume the account's role",
        EXTERNAL_ID_MISSING: "no external id is registered for the account, and the hub never "
        "assumes a role without one: give it one (rotate_external_id) and put it in the role's "
        "trust policy",
        "AccessDeniedException": _ACCESS_DENIED,
        "AccessDenied": _ACCESS_DENIED,
        "UnauthorizedOperation": _ACCESS_DENIED,
        **_NO_DRS_HERE,
        "ThrottlingException": _THROTTLED,
        "Throttling": _THROTTLED,
        "TooManyRequestsException": _THROTTLED,
        "RequestLimitExceeded": _THROTTLED,
        # botocore's own errors when no answer came (the listing's call to DRS)
        "EndpointConnectionError": _UNREACHABLE,
        "ConnectTimeoutError": _UNREACHABLE,
        "ReadTimeoutError": _UNREACHABLE,
        "ConnectionClosedError": _UNREACHABLE,
        # the sync's own codes
        MALFORMED_RESPONSE: "DRS answered a listing page without a usable items list or "
        "nextToken; items kept as they were",
        PAGINATION_LOOP: "DRS's listing did not end (a repeated nextToken or too many pages); "
        "items kept as they were",
        MASS_DELETION_HELD: "more servers vanished than the mass-deletion guard allows: "
        "soft-deletes held until a run with confirmDeletions for this scope",
        DEADLINE_REACHED: "the run's deadline came before this scope finished; "
        "items kept as they were",
        INVENTORY_WRITE_FAILED: "some inventory items could not be written after retries",
        INVENTORY_TABLE_FAILED: "a read or write of the inventory table failed",
        STATUS_WRITE_FAILED: "the scope's region-status item could not be written",
        UNEXPECTED_ERROR: "the sync failed unexpectedly in this scope",
    }
)

# What an AWS error code looks like; anything else is not repeated to readers.
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,127}")


@overload
def reader_message(code: str, status: object = None) -> str: ...
@overload
def reader_message(code: object, status: object = None) -> str | None: ...
def reader_message(code: object, status: object = None) -> str | None:
    """The message stored and returned for a failure with error code `code`.

    `status` is the scope's status when known: a "no DRS here" code on a scope that is not
    NOT_INITIALIZED/REGION_NOT_ENABLED is a contradiction (the scope held servers) and says
    so. Returns None when there is no code (no failure). Never contains AWS error text: a
    code the table does not name gives "DRS answered <code>", and a value that does not look
    like an error code is not repeated at all.
    """
    if code is None:
        return None
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        return "DRS answered an error"
    if code in _NO_DRS_HERE and status is not None and status not in _NO_DRS_STATUSES:
        return (
            f"DRS answered {code}, which contradicts what the sync knew of this scope; "
            "items kept as they were"
        )
    return MESSAGES.get(code, f"DRS answered {code}")
