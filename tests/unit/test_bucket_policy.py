"""scripts/bucket_policy.py: the deployment bucket's policy names the deployer exactly and
keeps what else the bucket's policy says."""

from __future__ import annotations

import io
import json

import pytest

from scripts.bucket_policy import (
    TLS_ONLY_SID,
    WRITES_SID,
    PolicyError,
    deployer_principal_arns,
    main,
    wanted_policy,
)

BUCKET = "aws-drs-orchestration-deploy-123456789012-us-east-1"
USER = "arn:aws:iam::123456789012:user/ops/deployer"
SESSION = "arn:aws:sts::123456789012:assumed-role/DeployRole/ci-run-42"
FOREIGN = {
    "Sid": "AllowAuditRead",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
    "Action": "s3:GetObject",
    "Resource": f"arn:aws:s3:::{BUCKET}/*",
}


def statements_by_sid(policy: dict) -> dict:
    return {statement["Sid"]: statement for statement in policy["Statement"]}


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        (USER, [USER]),
        ("arn:aws:iam::123456789012:root", ["arn:aws:iam::123456789012:root"]),
        (
            SESSION,
            [
                "arn:aws:iam::123456789012:role/DeployRole",
                "arn:aws:iam::123456789012:role/*/DeployRole",
            ],
        ),
        (
            "arn:aws-us-gov:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/jane@example.com",
            [
                "arn:aws-us-gov:iam::123456789012:role/AWSReservedSSO_Admin_0a1b",
                "arn:aws-us-gov:iam::123456789012:role/*/AWSReservedSSO_Admin_0a1b",
            ],
        ),
    ],
)
def test_the_deployer_is_the_principal_arn_of_its_caller_identity(
    caller: str, expected: list[str]
) -> None:
    # aws:PrincipalArn of a role session is its role (with the role's path), not the session.
    assert deployer_principal_arns(caller) == expected


@pytest.mark.parametrize(
    "caller",
    ["", "deployer", "arn:aws:s3:::bucket", "arn:aws:sts::123456789012:assumed-role/OnlyRole"],
)
def test_an_arn_that_names_no_caller_is_refused(caller: str) -> None:
    with pytest.raises(PolicyError):
        deployer_principal_arns(caller)


def test_a_bucket_without_policy_gets_tls_only_and_writes_by_the_deployer_only() -> None:
    policy = wanted_policy(BUCKET, SESSION)

    assert policy is not None
    statements = statements_by_sid(policy)
    assert set(statements) == {TLS_ONLY_SID, WRITES_SID}
    tls = statements[TLS_ONLY_SID]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Resource"] == [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    writes = statements[WRITES_SID]
    assert (writes["Effect"], writes["Principal"]) == ("Deny", "*")
    assert writes["Action"] == ["s3:PutObject", "s3:DeleteObject*"]
    assert writes["Resource"] == f"arn:aws:s3:::{BUCKET}/*"
    assert writes["Condition"] == {
        "ArnNotLike": {"aws:PrincipalArn": deployer_principal_arns(SESSION)}
    }


def test_other_statements_are_kept_and_a_policy_in_place_is_not_rewritten() -> None:
    current = json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN]})

    first = wanted_policy(BUCKET, USER, current)
    assert first is not None
    again = wanted_policy(BUCKET, USER, json.dumps(first))

    assert first["Statement"][0] == FOREIGN
    assert set(statements_by_sid(first)) == {"AllowAuditRead", TLS_ONLY_SID, WRITES_SID}
    assert again is None


def test_another_deployer_takes_the_write_statement_over() -> None:
    by_user = wanted_policy(BUCKET, USER)

    by_role = wanted_policy(BUCKET, SESSION, json.dumps(by_user))

    assert by_role is not None and len(by_role["Statement"]) == 2
    principals = statements_by_sid(by_role)[WRITES_SID]["Condition"]["ArnNotLike"]
    assert principals["aws:PrincipalArn"] == deployer_principal_arns(SESSION)


@pytest.mark.parametrize("current", ["not json", '{"Statement": "everything"}', "[1, 2]"])
def test_a_current_policy_that_cannot_be_read_is_refused(current: str) -> None:
    with pytest.raises(PolicyError):
        wanted_policy(BUCKET, USER, current)


def test_the_command_prints_the_policy_then_nothing_once_it_is_in_place(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["--bucket", BUCKET, "--deployer-arn", USER]) == 0
    printed = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(printed))
    assert main(["--bucket", BUCKET, "--deployer-arn", USER]) == 0

    assert json.loads(printed) == wanted_policy(BUCKET, USER)
    assert capsys.readouterr().out == ""


def test_the_command_fails_with_one_line_on_a_bad_arn(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    assert main(["--bucket", BUCKET, "--deployer-arn", "nobody"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("bucket_policy: 'nobody' is not the ARN") and error.count("\n") == 1
