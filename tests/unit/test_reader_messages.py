"""Readers get codes and generic messages; AWS error text stays in the logs (pure)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from inventory_queries.freshness import scope_view
from inventory_sync import listing
from inventory_sync.models import Scope, ScopeOutcome, ScopeStatus
from inventory_sync.report import _failure
from inventory_sync.status import status_item
from shared.messages import MESSAGES, reader_message

SCOPE = Scope("111122223333", "eu-west-1")
# What AWS puts in an error message: another account's role ARN, its id, a request id.
AWS_TEXT = (
    "User: arn:aws:sts::444455556666:assumed-role/OtherTeam/session is not authorized to "
    "perform: drs:DescribeSourceServers (Request ID: 0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9)"
)
LEAKS = ("444455556666", "arn:aws:sts", "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("AccessDeniedException",
         "DRS access denied for the sync's role in this account and region"),
        ("AssumeRoleFailed", "the hub could not assume the account's role"),
        ("ThrottlingException", "DRS throttled the listing"),
        ("UninitializedAccountException", "DRS is not initialized in this account and region"),
        ("UnrecognizedClientException", "the region is not enabled for this account"),
        ("StatusWriteFailed", "the scope's region-status item could not be written"),
        ("InternalServerException", "DRS answered InternalServerException"),
        ("SomethingNew", "DRS answered SomethingNew"),
    ],
)  # fmt: skip
def test_each_code_has_its_message(code: str, message: str) -> None:
    assert reader_message(code) == message


def test_the_sync_codes_and_every_code_the_listing_classifies_are_in_the_table() -> None:
    ours = {
        "MalformedResponse",
        "PaginationLoop",
        "MassDeletionHeld",
        "DeadlineReached",
        "InventoryWriteFailed",
        "InventoryTableFailed",
        "StatusWriteFailed",
        "UnexpectedError",
        "AssumeRoleFailed",
    }
    assert ours | set(listing._STATUS_BY_CODE) <= set(MESSAGES)


def test_no_message_names_an_account_an_arn_or_a_request() -> None:
    for message in MESSAGES.values():
        assert not re.search(r"\d{12}|arn:|request id", message, re.IGNORECASE), message


@pytest.mark.parametrize("status", ["ERROR", ScopeStatus.ERROR])
def test_a_no_drs_code_on_a_failed_scope_reads_as_a_contradiction(status: object) -> None:
    message = reader_message("UninitializedAccountException", status)
    assert message is not None and "contradicts" in message and "items kept" in message
    assert (
        reader_message("UninitializedAccountException", "NOT_INITIALIZED")
        == MESSAGES["UninitializedAccountException"]
    )


@pytest.mark.parametrize("value", [AWS_TEXT, "not a code", 17, "A" * 200, ""])
def test_what_is_not_an_error_code_is_not_repeated(value: object) -> None:
    assert reader_message(value) == "DRS answered an error"


def test_no_code_no_message() -> None:
    assert reader_message(None) is None
    assert reader_message(None, "ACTIVE") is None


def _denied() -> ScopeOutcome:
    outcome = ScopeOutcome(SCOPE, ScopeStatus.ACCESS_DENIED)
    outcome.fail(
        ScopeStatus.ACCESS_DENIED,
        "AccessDeniedException",
        reader_message("AccessDeniedException"),
        AWS_TEXT,
    )
    return outcome


def test_a_status_item_holds_the_code_and_its_generic_message_only() -> None:
    item = status_item(_denied(), {}, "run-1", "2026-11-26T12:00:00.000Z")
    assert item["errorCode"] == "AccessDeniedException"
    assert item["errorMessage"] == MESSAGES["AccessDeniedException"]
    assert not any(leak in repr(item) for leak in LEAKS)


def test_a_status_item_never_stores_a_message_given_to_the_outcome() -> None:
    # GIVEN an outcome whose message (wrongly) holds AWS text
    outcome = ScopeOutcome(SCOPE, ScopeStatus.ERROR)
    outcome.fail(ScopeStatus.ERROR, "InternalServerException", AWS_TEXT)
    # THEN the stored message is chosen by the code alone
    item = status_item(outcome, {}, "run-1", "2026-11-26T12:00:00.000Z")
    assert item["errorMessage"] == "DRS answered InternalServerException"


def test_the_result_keeps_the_sync_s_own_words_and_never_the_detail() -> None:
    held = ScopeOutcome(SCOPE, ScopeStatus.ACTIVE)
    held.fail(ScopeStatus.ERROR, "MassDeletionHeld", "12 of 20 live servers are no longer listed")
    ours = _failure(held, set())
    assert ours is not None and ours["message"] == "12 of 20 live servers are no longer listed"
    failure = _failure(_denied(), set())
    assert failure is not None
    assert failure["errorCode"] == "AccessDeniedException"
    assert failure["message"] == MESSAGES["AccessDeniedException"]
    assert not any(leak in repr(failure) for leak in LEAKS)


def test_a_reader_never_gets_text_an_older_sync_stored() -> None:
    # GIVEN a status item written before the sync stopped storing AWS text
    item = {
        "accountId": "111122223333",
        "region": "eu-west-1",
        "status": "ACCESS_DENIED",
        "errorCode": "AccessDeniedException",
        "errorMessage": AWS_TEXT,
    }
    view = scope_view(item, datetime.now(UTC), 60)
    assert view["errorCode"] == "AccessDeniedException"
    assert view["errorMessage"] == MESSAGES["AccessDeniedException"]
    assert not any(leak in repr(view) for leak in LEAKS)
