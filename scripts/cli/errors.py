"""The console's errors, each with the exit status it ends the command with.

Exit statuses (documented in `drs-inventory --help` and the README):
0 done; 1 the operation failed (the function refused or failed, a sync FAILED, a confirmation
declined); 2 usage error; 3 the deployment cannot be reached (not deployed in that
environment/region, endpoint unreachable, no credentials); 4 the sync ran but is incomplete
(PARTIAL: some scopes failed or are held; SKIPPED: another sync holds the lease).
"""

from __future__ import annotations

from typing import Any

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INCOMPLETE = 4


class ConsoleError(click.ClickException):
    """Base class: a message for stderr and an exit status."""

    default_exit_code = EXIT_FAILED

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        # click declares exit_code on the class; each error carries its own
        setattr(self, "exit_code", self.default_exit_code if exit_code is None else exit_code)  # noqa: B010


class FunctionFailedError(ConsoleError):
    """The function ran and raised (InvalidParameterError, UnknownOperationError, ...)."""

    def __init__(self, function: str, payload: Any) -> None:
        error = payload if isinstance(payload, dict) else {"errorMessage": str(payload)}
        self.error_type = str(error.get("errorType") or "Error")
        self.error_message = str(error.get("errorMessage") or "")
        super().__init__(f"{function}: {self.error_type}: {self.error_message}")


class NotDeployedError(ConsoleError):
    """The function does not exist where we looked (wrong --env, --region or project)."""

    default_exit_code = EXIT_UNREACHABLE


class UnreachableError(ConsoleError):
    """The endpoint does not answer, or no credentials could be found."""

    default_exit_code = EXIT_UNREACHABLE
