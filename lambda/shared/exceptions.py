"""Typed errors shared by both handlers.

Every error the handlers raise on purpose derives from `OrchestrationError`, so a caller
can tell "the request was wrong" from "AWS failed" without reading message text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class OrchestrationError(Exception):
    """Base class of every deliberate error raised by the handlers."""

    error_code = "OrchestrationError"


class InvalidRequestError(OrchestrationError):
    """The event itself is malformed (not a JSON object, no operation name)."""

    error_code = "InvalidRequest"


class UnknownOperationError(OrchestrationError):
    """The event names an operation the handler does not have."""

    error_code = "UnknownOperation"

    def __init__(self, operation: object, valid: Iterable[str]) -> None:
        self.operation = operation
        self.valid_operations = sorted(valid)
        super().__init__(
            f"unknown operation {operation!r}; valid operations: {', '.join(self.valid_operations)}"
        )


class InvalidParameterError(OrchestrationError):
    """A parameter is missing, unknown, of the wrong type or out of range."""

    error_code = "InvalidParameter"


class NotFoundError(OrchestrationError):
    """The item the request names does not exist."""

    error_code = "NotFound"


class ConflictError(OrchestrationError):
    """The request conflicts with what is stored (e.g. the item already exists)."""

    error_code = "Conflict"


class ConfigurationError(OrchestrationError):
    """The function's environment is incomplete (a table name or region list is missing)."""

    error_code = "Configuration"


class AssumeRoleError(OrchestrationError):
    """A target account's role could not be assumed; its scopes must not be read at all."""

    error_code = "AssumeRoleFailed"

    def __init__(self, account_id: str, role_arn: str, aws_error_code: str, message: str) -> None:
        self.account_id = account_id
        self.role_arn = role_arn
        self.aws_error_code = aws_error_code
        super().__init__(f"cannot assume {role_arn} for account {account_id}: {message}")


class ExternalIdMissingError(AssumeRoleError):
    """A target account has no external id: the hub does not assume its role at all."""

    error_code = "ExternalIdMissing"

    def __init__(self, account_id: str, role_arn: str) -> None:
        super().__init__(
            account_id,
            role_arn,
            self.error_code,
            "no external id is registered; the hub never assumes a role without one "
            "(rotate_external_id gives the account one)",
        )


class ConnectionTestFailedError(OrchestrationError):
    """A target account's connection test failed, so the registry change that needed it was
    not written. `result` is the test's answer (see test_target_account); the message names
    every failed check and what to do about it, in the handler's own words (AWS's error text
    is in the logs only)."""

    error_code = "ConnectionTestFailed"

    def __init__(self, operation: str, result: Mapping[str, Any]) -> None:
        self.operation = operation
        self.result = dict(result)
        failed = [c for c in result.get("checks", []) if c.get("ok") is False]
        reasons = "; ".join(f"{c['check']}: {c['message']}" for c in failed) or "no check passed"
        super().__init__(
            f"{operation}: the connection test of account {result.get('accountId')} failed, "
            f"nothing was written. {reasons}. Fix the role (cfn/target-account-role.yaml) and "
            "call again, or pass skipConnectionTest: true to write without the test"
        )


class OrganizationsAccessError(OrchestrationError):
    """AWS Organizations could not be read for discovery (not in an organization, access
    denied, the organizationsRoleArn could not be assumed)."""

    error_code = "OrganizationsAccess"


class AwsServiceError(OrchestrationError):
    """An AWS call failed while an operation ran (an error the operation does not turn into
    one of its own). The message names the operation, the AWS error code and the call; AWS's
    error text, which can name role ARNs, other accounts and request ids, goes to the logs
    only (see `shared.operations.dispatch`)."""

    error_code = "AwsServiceError"

    def __init__(self, operation: str, aws_error_code: str, call: str | None = None) -> None:
        self.operation = operation
        self.aws_error_code = aws_error_code
        to_call = f" to {call}" if call else ""
        super().__init__(
            f"{operation}: AWS answered {aws_error_code}{to_call}; "
            "the function's log has the details"
        )
