"""How `drs-inventory accounts` shows the connection test and a discovery, and what `add` and
`update` send (no AWS)."""

from __future__ import annotations

import io
import re

import pytest
from click.testing import CliRunner
from rich.console import Console as RichConsole

from scripts.cli import context
from scripts.cli.account_commands import connection_test_view, discovery_rows
from scripts.cli.main import cli

PLAN = {
    "applied": True,
    "plan": {
        "toRegister": [
            {
                "accountId": "111122223333",
                "accountName": "payments",
                "roleArn": "arn:aws:iam::111122223333:role/drs-orchestration-cross-account",
            },
            {
                "accountId": "444455556666",
                "accountName": "retail",
                "roleArn": "arn:aws:iam::444455556666:role/drs-orchestration-cross-account",
            },
        ],
        "toDisable": [{"accountId": "777788889999", "state": "SUSPENDED"}],
        "alreadyRegistered": [{"accountId": "135791357913", "enabled": True, "state": "ACTIVE"}],
        "notInOrganization": [],
        "skipped": [{"accountId": "123456789012", "reason": "the hub account"}],
    },
    "results": [
        {"accountId": "111122223333", "action": "register", "ok": True},
        {
            "accountId": "444455556666",
            "action": "register",
            "ok": False,
            "error": {"code": "ConnectionTestFailed", "message": "..."},
        },
        {"accountId": "777788889999", "action": "disable", "ok": True},
    ],
}


def shown(renderable: object) -> str:
    out = io.StringIO()
    RichConsole(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_a_discovery_lists_every_account_with_its_action_and_outcome() -> None:
    headers, rows = discovery_rows(PLAN)

    assert headers == ["action", "accountId", "name", "state", "roleArn", "result"]
    by_account = {row[1]: row for row in rows}
    assert by_account["111122223333"][0] == "register" and by_account["111122223333"][5] == "ok"
    assert by_account["444455556666"][5] == "FAILED ConnectionTestFailed"
    assert by_account["777788889999"][:4] == ["disable", "777788889999", "", "SUSPENDED"]
    assert by_account["135791357913"][0] == "none (registered)"
    assert by_account["123456789012"][3] == "the hub account"
    assert len(rows) == 5


def test_a_dry_discovery_has_no_outcomes() -> None:
    _, rows = discovery_rows({"applied": False, "plan": PLAN["plan"]})

    assert {row[5] for row in rows} == {""}


def test_the_connection_test_shows_each_check_and_region() -> None:
    answer = {
        "accountId": "111122223333",
        "ok": False,
        "checks": [
            {"check": "roleAssumable", "ok": True, "message": "assumed"},
            {"check": "externalIdAccepted", "ok": True, "message": "accepted"},
            {
                "check": "drsReadable",
                "ok": False,
                "message": "DRS access denied in us-west-2: the role's policy must allow it",
            },
            {"check": "ec2Readable", "ok": None, "message": "not run"},
        ],
        "regions": {"us-east-1": "INITIALIZED", "us-west-2": "ACCESS_DENIED"},
    }

    text = shown(connection_test_view(answer))

    assert "connection test of 111122223333: FAILED" in text
    assert re.search(r"^drsReadable +FAILED +DRS access denied in us-west-2", text, re.M)
    assert re.search(r"^ec2Readable +- +not run", text, re.M)
    assert re.search(r"^us-west-2 +ACCESS_DENIED", text, re.M)


class RecordingClient:
    """A FunctionClient that answers every invocation with `answer` and keeps the payloads."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.payloads: list[dict[str, object]] = []

    def invoke(
        self, handler: str, payload: dict[str, object], *, log_sink: object = None
    ) -> object:
        self.payloads.append(dict(payload))
        return self.answer

    def close(self) -> None:
        pass


def sent(monkeypatch: pytest.MonkeyPatch, *args: str) -> list[dict[str, object]]:
    """The payloads `drs-inventory --output json ARGS` sends (to a recording client)."""
    client = RecordingClient({"account": {"accountId": "111122223333"}})
    monkeypatch.setattr(context, "connect", lambda target: client)
    result = CliRunner().invoke(
        cli, ["--endpoint-url", "https://lambda.example.invalid", "--output", "json", *args]
    )
    assert result.exit_code == 0, result.output
    return client.payloads


@pytest.mark.parametrize(
    ("command", "operation", "flag", "enabled"),
    [
        ("add", "add_target_account", "--disabled", False),
        ("update", "update_target_account", "--disable", False),
        ("update", "update_target_account", "--enable", True),
    ],
)
def test_add_and_update_send_every_registry_field_given(
    monkeypatch: pytest.MonkeyPatch, command: str, operation: str, flag: str, enabled: bool
) -> None:
    payloads = sent(
        monkeypatch,
        "accounts", command, "111122223333",
        "--role-arn", "arn:aws:iam::111122223333:role/drs-orchestration-x",
        "--external-id", "ext-1234", "--name", "payments",
        "--ec2-source-account-id", "444455556666", "--ec2-source-account-id", "777788889999",
        "--skip-connection-test", flag,
    )  # fmt: skip

    assert payloads == [
        {
            "operation": operation,
            "accountId": "111122223333",
            "roleArn": "arn:aws:iam::111122223333:role/drs-orchestration-x",
            "externalId": "ext-1234",
            "accountName": "payments",
            "enabled": enabled,
            "ec2SourceAccountIds": ["444455556666", "777788889999"],
            "skipConnectionTest": True,
        }
    ]


@pytest.mark.parametrize(
    ("command", "operation"),
    [("add", "add_target_account"), ("update", "update_target_account")],
)
def test_add_and_update_leave_out_the_fields_not_given(
    monkeypatch: pytest.MonkeyPatch, command: str, operation: str
) -> None:
    payloads = sent(monkeypatch, "accounts", command, "111122223333")

    assert payloads == [{"operation": operation, "accountId": "111122223333"}]
