"""Every registry change logs one audit line naming fields, never their values.

Through the deployed entry point (`lambda_handler`), with Powertools asked to log events
(POWERTOOLS_LOGGER_LOG_EVENT=true), so what CloudWatch would receive is checked whole: the
JSON lines on the handler's stream, and the records (caplog) with their fields.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from scripts.local.moto_server import LocalMotoServer, MotoFault
from shared.exceptions import AwsServiceError, OrchestrationError
from tests.support.handlers import load_handler
from tests.support.lambda_context import FakeLambdaContext

handler = load_handler("data-management-handler")
TARGET = "111122223333"
OTHER = "999988887777"
ROLE = f"arn:aws:iam::{TARGET}:role/drs-orchestration-cross-account"
OTHER_ROLE = f"arn:aws:iam::{TARGET}:role/drs-orchestration-replacement"
EXTERNAL_ID = "ext-Secret-7Hq9zK-b4Vn2Lx8Tq6Wm3Rp"
NEW_EXTERNAL_ID = "ext-Rotated-3Pw8xN-k5Jd9Gs2Yh7Cf4"
NAME = "Payments Production EU"
NEW_NAME = "Payments Production EU (migrated)"
VALUES = (ROLE, OTHER_ROLE, EXTERNAL_ID, NEW_EXTERNAL_ID, NAME, NEW_NAME)
ALL_FIELDS = ["accountName", "enabled", "externalId", "roleArn"]


class Logs:
    """What one test's invocations logged: the JSON lines and the log records."""

    def __init__(self, stream: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
        self.stream = stream
        self.caplog = caplog
        self.records: list[logging.LogRecord] = []

    def invoke(self, operation: str, **params: Any) -> dict[str, Any]:
        """Invoke `operation` as Lambda would; returns its result, raises its error. The
        records it logged are kept in `last` (and added to `records`)."""
        self.caplog.clear()
        try:
            return handler.lambda_handler({"operation": operation, **params}, FakeLambdaContext())
        finally:
            self.last = list(self.caplog.records)
            self.records += self.last

    def audit_lines(self) -> list[logging.LogRecord]:
        return [record for record in self.last if getattr(record, "audit", False) is True]

    def everything(self) -> str:
        """Every line on the stream and every record's attributes, as text."""
        records = [json.dumps(vars(r), default=str) + r.getMessage() for r in self.records]
        return self.stream.getvalue() + "\n".join(records)


@pytest.fixture
def logs(tables, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Logs:
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    stream = io.StringIO()  # the JSON lines, as CloudWatch would receive them
    monkeypatch.setattr(handler.logger.registered_handler, "stream", stream)
    # The functions' level. (At DEBUG botocore logs every request body, by its design.)
    caplog.set_level(logging.INFO)
    return Logs(stream, caplog)


def _add(logs: Logs) -> dict[str, Any]:
    return logs.invoke(
        "add_target_account",
        accountId=TARGET,
        roleArn=ROLE,
        externalId=EXTERNAL_ID,
        accountName=NAME,
        skipConnectionTest=True,  # no role in moto: these tests are about the registry's logs
    )


# operation, parameters, the audit line's action and changedFields
CHANGES: list[tuple[str, dict[str, Any], str, list[str]]] = [
    ("add_target_account", {"roleArn": ROLE, "externalId": EXTERNAL_ID, "accountName": NAME,
                            "skipConnectionTest": True}, "add", ALL_FIELDS),
    # given with the value it already had, externalId did not change: only accountName did
    ("update_target_account", {"accountName": NEW_NAME, "externalId": EXTERNAL_ID},
     "update", ["accountName"]),
    ("update_target_account", {"externalId": NEW_EXTERNAL_ID, "roleArn": OTHER_ROLE,
                               "skipConnectionTest": True}, "update", ["externalId", "roleArn"]),
    ("update_target_account", {"enabled": False}, "disable", ["enabled"]),
    ("update_target_account", {"enabled": True, "accountName": NAME, "skipConnectionTest": True},
     "enable", ["accountName", "enabled"]),
    ("update_target_account", {"accountName": NAME}, "update", []),
    ("delete_target_account", {}, "delete", ALL_FIELDS),
]  # fmt: skip


def test_each_registry_change_logs_one_audit_line_with_field_names_only(logs: Logs) -> None:
    for operation, params, action, fields in CHANGES:
        logs.invoke(operation, accountId=TARGET, **params)

        (line,) = logs.audit_lines()
        assert line.getMessage() == "registry change"
        assert line.levelno == logging.INFO
        assert line.operation == operation  # type: ignore[attr-defined]
        assert line.action == action  # type: ignore[attr-defined]
        assert line.accountId == TARGET  # type: ignore[attr-defined]
        assert line.changedFields == fields, (operation, params)  # type: ignore[attr-defined]

    # The JSON lines carry the same fields, and no value of any field, anywhere
    audit = [
        json.loads(text)
        for text in logs.stream.getvalue().splitlines()
        if text.startswith("{") and '"registry change"' in text
    ]
    assert len(audit) == len(CHANGES)
    assert {key for key in audit[0]} >= {
        "audit",
        "operation",
        "action",
        "accountId",
        "changedFields",
    }
    assert all(line["audit"] is True for line in audit)
    everything = logs.everything()
    assert [value for value in VALUES if value in everything] == []


def test_reads_log_no_audit_line_and_no_values(logs: Logs) -> None:
    _add(logs)
    for operation, params in [
        ("get_target_account", {"accountId": TARGET}),
        ("list_target_accounts", {}),
    ]:
        result = logs.invoke(operation, **params)
        assert result
        assert logs.audit_lines() == []
    assert [value for value in VALUES if value in logs.everything()] == []


REFUSED = [
    ("add_target_account", {"accountId": "12345", "roleArn": ROLE, "externalId": EXTERNAL_ID}),
    ("add_target_account", {"accountId": TARGET, "roleArn": ROLE.replace(TARGET, OTHER)}),
    ("add_target_account", {"accountId": TARGET, "roleArn": ROLE}),  # already registered
    ("update_target_account", {"accountId": TARGET}),  # nothing to change
    ("update_target_account", {"accountId": TARGET, "externalId": "x"}),  # too short
    ("update_target_account", {"accountId": OTHER, "accountName": NEW_NAME}),  # missing
    ("delete_target_account", {"accountId": OTHER}),  # missing
    ("delete_target_account", {"accountId": TARGET, "roleArn": ROLE}),  # unknown parameter
]  # fmt: skip


@pytest.mark.parametrize(("operation", "params"), REFUSED)
def test_a_refused_call_logs_no_audit_line(logs: Logs, operation: str, params: dict) -> None:
    _add(logs)

    with pytest.raises(OrchestrationError):
        logs.invoke(operation, **params)

    assert logs.audit_lines() == []


def test_a_change_whose_write_fails_logs_no_audit_line(
    logs: Logs, tables, moto_server: LocalMotoServer
) -> None:
    _add(logs)
    moto_server.set_fault(
        MotoFault(
            "dynamodb",
            "UpdateItem",
            table_name=tables.target_accounts,
            error_code="AccessDeniedException",
        )
    )

    with pytest.raises(AwsServiceError):
        logs.invoke(
            "update_target_account",
            accountId=TARGET,
            externalId=NEW_EXTERNAL_ID,
            skipConnectionTest=True,
        )

    assert logs.audit_lines() == []
    assert NEW_EXTERNAL_ID not in logs.everything()


def test_generated_and_rotated_ids_are_in_answers_never_in_logs(logs: Logs) -> None:
    generated = logs.invoke("add_target_account", accountId=TARGET, roleArn=ROLE)["externalId"]
    (added,) = logs.audit_lines()
    assert "externalId" in added.changedFields  # type: ignore[attr-defined]

    rotated = logs.invoke("rotate_external_id", accountId=TARGET)["externalId"]

    (line,) = logs.audit_lines()
    assert line.operation == "rotate_external_id"  # type: ignore[attr-defined]
    assert line.action == "rotate"  # type: ignore[attr-defined]
    assert line.changedFields == ["externalId"]  # type: ignore[attr-defined]
    everything = logs.everything()
    assert generated not in everything and rotated not in everything


def test_a_refused_short_id_is_not_logged(logs: Logs) -> None:
    secret = "short-but-secret-7Hq9"
    with pytest.raises(OrchestrationError):
        logs.invoke("add_target_account", accountId=TARGET, roleArn=ROLE, externalId=secret)
    assert logs.audit_lines() == []
    assert secret not in logs.everything()
