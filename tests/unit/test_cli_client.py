"""drs-inventory's client layer against AWS's API shapes (no network): how Invoke's answers
and failures become the console's answers and exit statuses."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from scripts.cli.client import AwsClient, Target
from scripts.cli.errors import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    FunctionFailedError,
    NotDeployedError,
    UnreachableError,
)

TARGET = Target("prod", "aws-drs-orchestration", "eu-west-1", None, False, None, None)
FUNCTION = "aws-drs-orchestration-query-handler-prod"


def body(value: Any) -> StreamingBody:
    raw = json.dumps(value).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def stubbed() -> tuple[AwsClient, Stubber]:
    client = AwsClient(TARGET)
    stubber = Stubber(client._lambda())
    stubber.activate()
    return client, stubber


def test_an_answer_is_the_function_payload() -> None:
    client, stubber = stubbed()
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": body({"scopes": []})},
        {"FunctionName": FUNCTION, "Payload": b'{"operation": "get_region_status"}'},
    )

    assert client.invoke("query-handler", {"operation": "get_region_status"}) == {"scopes": []}


def test_a_function_error_carries_its_type_and_message() -> None:
    client, stubber = stubbed()
    error = {"errorType": "InvalidParameterError", "errorMessage": "region eu-nowhere-1 ..."}
    stubber.add_response(
        "invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": body(error)}
    )

    with pytest.raises(FunctionFailedError) as raised:
        client.invoke("query-handler", {"operation": "list_source_servers"})

    assert raised.value.exit_code == EXIT_FAILED
    assert raised.value.message == f"{FUNCTION}: InvalidParameterError: region eu-nowhere-1 ..."


def test_a_missing_function_is_not_deployed() -> None:
    client, stubber = stubbed()
    stubber.add_client_error("invoke", "ResourceNotFoundException", http_status_code=404)

    with pytest.raises(NotDeployedError) as raised:
        client.invoke("query-handler", {"operation": "get_region_status"})

    assert raised.value.exit_code == EXIT_UNREACHABLE
    assert f"{FUNCTION} is not deployed in region eu-west-1" in raised.value.message


def test_no_credentials_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    with pytest.raises(UnreachableError) as raised:
        AwsClient(TARGET).invoke("query-handler", {"operation": "get_region_status"})

    assert "no AWS credentials found" in raised.value.message
