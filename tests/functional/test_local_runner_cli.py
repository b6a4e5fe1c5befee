"""The local runner's command line speaks as the AWS CLI does: `invoke FUNCTION --payload
JSON OUTFILE` in that order, LogResult only with `--log-type Tail`, and a DISABLED rule's
refusal says how to fire it anyway."""

from __future__ import annotations

import base64
import io
import json
import textwrap
import zipfile
from pathlib import Path

import boto3
import pytest

from scripts.local import runner

FUNCTION = "runner-cli-echo"
RULE = "runner-cli-rule"
SOURCE = """
    def lambda_handler(event, context):
        print("echo handler ran")
        return {"echo": event}
"""
NOWHERE = "http://127.0.0.1:9"  # the DRS endpoint: the function never calls DRS


@pytest.fixture
def deployed(moto_endpoint: str) -> str:
    """A small function deployed as deploy.sh deploys (package in S3), and a DISABLED rule
    that targets it with the permission EventBridge needs."""
    s3, iam, functions, events = (boto3.client(name) for name in ("s3", "iam", "lambda", "events"))
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("index.py", textwrap.dedent(SOURCE))
    s3.create_bucket(Bucket="runner-cli")
    s3.put_object(Bucket="runner-cli", Key="echo.zip", Body=package.getvalue())
    role = iam.create_role(
        RoleName="runner-cli-role",
        # Lambda assumes it (the local STS checks the trust, as AWS does).
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    arn = functions.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="index.lambda_handler",
        Code={"S3Bucket": "runner-cli", "S3Key": "echo.zip"},
        Timeout=30,
    )["FunctionArn"]
    rule_arn = events.put_rule(Name=RULE, ScheduleExpression="rate(15 minutes)", State="DISABLED")[
        "RuleArn"
    ]
    events.put_targets(Rule=RULE, Targets=[{"Id": "echo", "Arn": arn, "Input": '{"from": "rule"}'}])
    functions.add_permission(
        FunctionName=FUNCTION,
        StatementId="events",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule_arn,
    )
    return moto_endpoint


def run(endpoint: str, *argv: str) -> int:
    return runner.main(["--endpoint-url", endpoint, "--drs-endpoint-url", NOWHERE, *argv])


@pytest.mark.parametrize(
    "order",
    [
        ["invoke", FUNCTION, "--payload", '{"n": 1}', "OUT"],  # aws lambda invoke's order
        ["invoke", FUNCTION, "OUT", "--payload", '{"n": 1}'],  # the runner's own
        ["invoke", "--function-name", FUNCTION, "--payload", '{"n": 1}', "OUT"],
    ],
    ids=["aws-order", "outfile-first", "function-name"],
)
def test_invoke_takes_the_aws_cli_argument_order(
    deployed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], order: list[str]
) -> None:
    outfile = tmp_path / "payload.json"
    argv = [str(outfile) if arg == "OUT" else arg for arg in order]

    assert run(deployed, *argv) == 0

    assert json.loads(outfile.read_text()) == {"echo": {"n": 1}}
    metadata = json.loads(capsys.readouterr().out)
    assert metadata == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}  # no LogResult


def test_log_result_only_with_log_type_tail(
    deployed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outfile = tmp_path / "payload.json"

    assert (
        run(deployed, "invoke", FUNCTION, "--payload", "{}", "--log-type", "Tail", str(outfile))
        == 0
    )

    metadata = json.loads(capsys.readouterr().out)
    assert "echo handler ran" in base64.b64decode(metadata["LogResult"]).decode()
    invocation = runner.Invocation(FUNCTION, "r", {}, None, "x" * 5000, 1.0)
    assert "LogResult" not in invocation.response()
    assert len(base64.b64decode(invocation.response("Tail")["LogResult"])) == 4096


def test_invoke_misuse_is_a_usage_error(deployed: str, tmp_path: Path) -> None:
    for argv in (
        ["invoke", "--payload", "{}"],  # no function
        ["invoke", FUNCTION, "--payload", "{}", "a", "b"],  # two outfiles
        ["invoke", "other", "--function-name", FUNCTION, "--payload", "{}", "out", "x"],
        ["invoke", FUNCTION, "--payload", "{}", "--log-type", "Full"],
    ):
        with pytest.raises(SystemExit) as raised:
            run(deployed, *argv)
        assert raised.value.code == 2, argv


def test_a_disabled_rule_is_refused_naming_force(
    deployed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(deployed, "fire-rule", RULE) == 1
    error = capsys.readouterr().err
    assert f"rule {RULE} is DISABLED" in error and "--force" in error

    outfile = tmp_path / "payload.json"
    assert run(deployed, "fire-rule", RULE, "--force", str(outfile)) == 0
    assert json.loads(outfile.read_text()) == {"echo": {"from": "rule"}}
    assert run(deployed, "fire-rule", "--force", RULE, str(outfile)) == 0
