"""AWS error text reaches the logs and nothing else.

DRS and STS error messages can name role ARNs, other accounts' ids and request ids. Region
status items, the sync's result, the query-handler's answers and the handlers' error answers
carry the error code and a generic message (shared.messages); the full text is in one log
line per failed scope (or per failed operation). Faults go in on the wire: the DRS
simulator's with a custom message, STS's through the world's denied roles, DynamoDB's through
the local moto server.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import pytest

from scripts.local.moto_server import LocalMotoServer, MotoFault
from shared.exceptions import AwsServiceError
from shared.messages import MESSAGES
from tests.support.handlers import load_handler
from tests.support.world import HUB, TARGET_A, TARGET_B, World, role_arn

query_handler = load_handler("query-handler")

OTHER_ACCOUNT = "444455556666"
REQUEST_ID = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
DRS_DENIAL = (
    f"User: arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/OtherTeam/session is not authorized to "
    f"perform: drs:DescribeSourceServers (Request ID: {REQUEST_ID})"
)
DENIED_SCOPE = (TARGET_A, "us-west-2")
THROTTLED_SCOPE = (HUB, "eu-west-1")


def _text(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _scope_lines(caplog: pytest.LogCaptureFixture) -> dict[tuple[str, str], list[Any]]:
    lines: dict[tuple[str, str], list[Any]] = {}
    for record in caplog.records:
        if record.getMessage() == "scope synced":
            lines.setdefault((record.accountId, record.region), []).append(record)  # type: ignore[attr-defined]
    return lines


def test_aws_error_text_reaches_the_logs_only(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN DRS denies one scope with a message naming another account's role and a request
    # id, throttles another (same kind of text), and STS refuses TARGET_B's role
    for scope in (DENIED_SCOPE, THROTTLED_SCOPE, (HUB, "us-east-1")):
        world.add_servers(*scope, 2, ec2_fraction=0.0)
    world.fault(*DENIED_SCOPE, "AccessDeniedException", message=DRS_DENIAL)
    world.fault(*THROTTLED_SCOPE, "ThrottlingException", message=f"Rate exceeded ({REQUEST_ID})")
    world.denied_roles.add(role_arn(TARGET_B))
    leaks = (OTHER_ACCOUNT, REQUEST_ID, role_arn(TARGET_B), "not authorized")

    # WHEN the sync runs and the query-handler is asked about it
    with caplog.at_level(logging.INFO):
        summary = world.sync()
    statuses = world.region_status()  # keyed by (accountId, region)
    answers = [
        query_handler.handle_direct_invocation({"operation": name}, None)
        for name in ("get_region_status", "get_inventory_summary")
    ]

    # THEN the result, the status items and the answers hold codes and generic messages
    assert summary["status"] == "PARTIAL"
    for stored_or_returned in (summary, list(statuses.values()), *answers):
        text = _text(stored_or_returned)
        assert not [leak for leak in leaks if leak in text]
    failures = {(f["accountId"], f["region"]): f for f in summary["failures"]}
    expected = {
        DENIED_SCOPE: "AccessDeniedException",
        THROTTLED_SCOPE: "ThrottlingException",
        **{(TARGET_B, region): "AssumeRoleFailed" for region in ("us-east-1", "us-west-2")},
    }
    for scope, code in expected.items():
        assert failures[scope]["errorCode"] == code
        assert failures[scope]["message"] == MESSAGES[code]
        assert statuses[scope]["errorCode"] == code
        assert statuses[scope]["errorMessage"] == MESSAGES[code]
    viewed = {(s["accountId"], s["region"]): s for s in answers[0]["scopes"]}
    assert viewed[DENIED_SCOPE]["errorMessage"] == MESSAGES["AccessDeniedException"]

    # ... and each failed scope has one warning with the run, the scope, the code and the text
    lines = _scope_lines(caplog)
    for scope in failures:
        (line,) = lines[scope]
        assert line.levelno == logging.WARNING
        assert line.runId == summary["runId"]
        assert line.errorCode == failures[scope]["errorCode"]
    assert DRS_DENIAL in lines[DENIED_SCOPE][0].error
    assert REQUEST_ID in lines[THROTTLED_SCOPE][0].error
    for region in ("us-east-1", "us-west-2", "eu-west-1"):
        assert role_arn(TARGET_B) in lines[(TARGET_B, region)][0].error
    assert lines[(HUB, "us-east-1")][0].levelno == logging.INFO  # a healthy scope: no warning


def test_a_status_item_an_older_sync_wrote_is_answered_without_its_text(world: World) -> None:
    # GIVEN a region-status item that still holds AWS text (written before this change)
    table = boto3.resource("dynamodb").Table(world.tables.region_status)
    table.put_item(
        Item={
            "accountId": TARGET_A,
            "region": "us-east-1",
            "status": "ACCESS_DENIED",
            "errorCode": "AccessDeniedException",
            "errorMessage": DRS_DENIAL,
            "runId": "older-run",
        }
    )

    # WHEN readers ask
    answers = [
        query_handler.handle_direct_invocation({"operation": name, "accountId": TARGET_A}, None)
        for name in ("get_region_status", "get_inventory_summary")
    ]

    # THEN they get the code and its generic message, never the stored text
    (scope,) = answers[0]["scopes"]
    assert (scope["errorCode"], scope["errorMessage"]) == (
        "AccessDeniedException",
        MESSAGES["AccessDeniedException"],
    )
    for answer in answers:
        assert OTHER_ACCOUNT not in _text(answer) and REQUEST_ID not in _text(answer)


@pytest.mark.parametrize(
    ("handler", "event", "call", "table"),
    [
        ("query-handler", {"operation": "get_region_status"}, "Scan", "region_status"),
        (
            "data-management-handler",
            {"operation": "get_target_account", "accountId": TARGET_A},
            "GetItem",
            "target_accounts",
        ),
    ],
)
def test_an_aws_failure_of_an_operation_answers_its_code_and_logs_its_text(
    world: World,
    moto_server: LocalMotoServer,
    caplog: pytest.LogCaptureFixture,
    handler: str,
    event: dict[str, Any],
    call: str,
    table: str,
) -> None:
    # GIVEN DynamoDB refuses the operation's read with text naming another account
    moto_server.set_fault(
        MotoFault(
            "dynamodb",
            call,
            table_name=getattr(world.tables, table),
            error_code="AccessDeniedException",
            message=DRS_DENIAL,
        )
    )

    # WHEN the handler runs the operation
    with caplog.at_level(logging.INFO), pytest.raises(AwsServiceError) as raised:
        load_handler(handler).handle_direct_invocation(event, None)

    # THEN the error answer names the operation, the code and the call, not AWS's text
    message = str(raised.value)
    assert event["operation"] in message and "AccessDeniedException" in message and call in message
    assert OTHER_ACCOUNT not in message and REQUEST_ID not in message
    assert raised.value.aws_error_code == "AccessDeniedException"
    # ... and the log has one warning with the text
    (line,) = [r for r in caplog.records if r.getMessage() == "operation failed: AWS error"]
    assert line.levelno == logging.WARNING
    assert (line.operation, line.errorCode, line.call) == (
        event["operation"],
        "AccessDeniedException",
        call,
    )  # type: ignore[attr-defined]
    assert line.error == DRS_DENIAL  # type: ignore[attr-defined]
