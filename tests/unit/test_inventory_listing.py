"""Scope statuses come from error codes, never from message text."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from inventory_sync.listing import list_scope, status_for_error_code
from inventory_sync.models import Scope, ScopeListing, ScopeStatus
from shared.exceptions import AssumeRoleError

SCOPE = Scope("111122223333", "eu-west-1")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("UninitializedAccountException", ScopeStatus.NOT_INITIALIZED),
        ("AccessDeniedException", ScopeStatus.ACCESS_DENIED),
        ("UnrecognizedClientException", ScopeStatus.REGION_NOT_ENABLED),
        ("ThrottlingException", ScopeStatus.THROTTLED),
        ("InternalServerException", ScopeStatus.ERROR),
        ("SomethingNew", ScopeStatus.ERROR),
    ],
)
def test_status_by_code(code, status) -> None:
    assert status_for_error_code(code) is status


class _FailingDrs:
    """A DRS client stand-in that raises one error: the only behaviour these tests need."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def describe_source_servers(self, **_: object) -> dict:
        raise self.error


def _client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeSourceServers")


def _list(client_for) -> tuple[ScopeListing, int]:
    calls: list[int] = []
    listing = list_scope(SCOPE, client_for, 1000, on_call=lambda: calls.append(1))
    return listing, len(calls)


def test_message_text_does_not_decide_status() -> None:
    error = _client_error("InternalServerException", "Account not initialized; access denied")
    listing, calls = _list(lambda scope: _FailingDrs(error))
    assert listing.status is ScopeStatus.ERROR
    assert listing.error_code == "InternalServerException"
    assert listing.error_message == "DRS answered InternalServerException"
    assert listing.error_detail == "Account not initialized; access denied"
    assert not listing.complete
    assert calls == 1  # the one failed call


def test_connection_failure_is_an_error_scope() -> None:
    error = EndpointConnectionError(endpoint_url="https://drs.eu-west-1.amazonaws.com")
    listing, _ = _list(lambda scope: _FailingDrs(error))
    assert listing.status is ScopeStatus.ERROR
    assert listing.error_code == "EndpointConnectionError"


def test_assume_role_failure_marks_the_scope_and_reads_nothing() -> None:
    def no_client(scope: Scope):
        raise AssumeRoleError(
            scope.account_id,
            "arn:aws:iam::111122223333:role/r",
            "AccessDenied",
            "not authorized to perform sts:AssumeRole",
        )

    listing, calls = _list(no_client)
    assert listing.status is ScopeStatus.ACCESS_DENIED
    assert listing.error_code == "AssumeRoleFailed"
    # readers get the code's generic message; the AWS text (with the role ARN) is the
    # listing's detail, which only the logs get
    assert listing.error_message == "the hub could not assume the account's role"
    assert "sts:AssumeRole" in (listing.error_detail or "")
    assert "arn:aws:iam::111122223333:role/r" in (listing.error_detail or "")
    assert calls == 0 and listing.servers == ()
