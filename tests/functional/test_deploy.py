"""scripts/deploy.sh without AWS: usage, refusals, and --validate-only.

Refusals must be one line on stderr with a non-zero exit, before anything is packaged or
deployed. Broken inputs are made in a copy of the tree, never in the real one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.deploy import ROOT, copy_repo, deploy_env, run_deploy

# Nothing listens here: an accidental AWS call fails instead of reaching anything.
DEAD_ENDPOINT = "http://127.0.0.1:9"


def test_help_prints_usage_with_every_flag() -> None:
    result = run_deploy("-h")

    assert result.returncode == 0
    assert result.stdout.startswith("Usage: scripts/deploy.sh ENV")
    flags = ("--validate-only", "--lambda-only", "--region", "--profile", "--endpoint-url")
    for flag in (*flags, "--drs-regions", "--hub-event-regions"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((), "missing environment"),
        (("production",), "unknown environment 'production'"),
        (("qa", "dev"), "one environment only"),
        (("qa", "--force"), "unknown option: --force"),
        (("qa", "--region"), "--region needs a value"),
        (("qa", "--profile", "--lambda-only"), "--profile needs a value"),
        (("qa", "--validate-only", "--lambda-only"), "exclude each other"),
        (("qa", "--drs-regions"), "--drs-regions needs a value"),
        (("qa", "--drs-regions", "us-east-1,all"), "--drs-regions: 'all' is not a region name"),
        (("qa", "--drs-regions", "US-EAST-1"), "'US-EAST-1' is not a region name"),
        (("qa", "--drs-regions", ",,"), "--drs-regions: no region in ',,'"),
        (("qa", "--lambda-only", "--drs-regions", "us-east-1"), "deploy without --lambda-only"),
        (("qa", "--target-org-id"), "--target-org-id needs a value"),
        (("qa", "--target-account-ids"), "--target-account-ids needs a value"),
        (("qa", "--target-org-id", "o-short"), "'o-short' is not an organization id"),
        (("qa", "--target-org-id", "*"), "--target-org-id: '*' is not an organization id"),
        (
            ("qa", "--target-account-ids", "111122223333,4444"),
            "--target-account-ids: '4444' is not an account id (12 digits)",
        ),
        (("qa", "--target-account-ids", ",,"), "--target-account-ids: no account id in ',,'"),
        (("qa", "--hub-event-regions"), "--hub-event-regions needs a value"),
        (
            ("qa", "--hub-event-regions", "us-east-1,everywhere"),
            "--hub-event-regions: 'everywhere' is not a region name",
        ),
        (
            ("qa", "--lambda-only", "--hub-event-regions", "eu-west-1"),
            "--hub-event-regions deploys stacks: deploy without --lambda-only",
        ),
        (
            ("qa", "--lambda-only", "--target-account-ids", "111122223333"),
            "--target-account-ids changes the lambda stack: deploy without --lambda-only",
        ),
        (
            ("qa", "--lambda-only", "--target-org-id", "o-abcd123456"),
            "--target-org-id changes the lambda stack: deploy without --lambda-only",
        ),
    ],
)
def test_bad_arguments_are_refused_with_one_line(args: tuple[str, ...], reason: str) -> None:
    result = run_deploy(*args)

    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert reason in result.stderr


def test_help_documents_the_target_account_scope() -> None:
    result = run_deploy("-h")

    for text in ("--target-org-id ID", "--target-account-ids LIST", "TARGET_ORG_ID",
                 "TARGET_ACCOUNT_IDS"):  # fmt: skip
        assert text in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("TARGET_ACCOUNT_IDS", "111122223333;444455556666", "is not an account id"),
        ("TARGET_ORG_ID", "o-ABCD123456", "is not an organization id"),
    ],
)
def test_bad_target_scope_variables_are_refused_before_aws(
    variable: str, value: str, reason: str
) -> None:
    env = deploy_env(**{variable: value})
    result = run_deploy("qa", "--endpoint-url", DEAD_ENDPOINT, env=env)

    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert f"deploy.sh: {variable}: " in result.stderr and reason in result.stderr


@pytest.mark.parametrize("name", ["a" * 33, "aws-drs-orchestration-for-the-team"])
def test_project_names_too_long_for_function_and_role_names_are_refused(name: str) -> None:
    # PROJECT-data-management-handler-staging must fit in the 64 characters of both.
    result = run_deploy("qa", env=deploy_env(PROJECT_NAME=name))

    assert result.returncode == 2
    assert f"PROJECT_NAME '{name}'" in result.stderr
    assert run_deploy("qa", "-h", env=deploy_env(PROJECT_NAME="a" * 32)).returncode == 0


def test_bad_project_name_is_refused() -> None:
    result = run_deploy("qa", env=deploy_env(PROJECT_NAME="Bad_Name"))

    assert result.returncode == 2
    assert "PROJECT_NAME 'Bad_Name'" in result.stderr


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "no region in ''"), ("us-east-1;eu-west-1", "'us-east-1;eu-west-1' is not a region")],
)
def test_bad_drs_regions_variable_is_refused_before_aws(value: str, reason: str) -> None:
    # Set, even empty, it is an explicit choice: never silently replaced by a discovered list.
    result = run_deploy("qa", "--endpoint-url", DEAD_ENDPOINT, env=deploy_env(DRS_REGIONS=value))

    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert f"deploy.sh: DRS_REGIONS: {reason}" in result.stderr


def test_missing_credentials_are_refused_with_one_line() -> None:
    env = deploy_env(credentials=False)
    # An endpoint that accepts connections and never answers: reachable (so deploy.sh gets
    # to the credentials), and no request could be served by it.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        silent = f"http://127.0.0.1:{listener.getsockname()[1]}"

        result = run_deploy("qa", "--endpoint-url", silent, env=env)

    assert result.returncode == 1
    assert result.stderr.startswith("deploy.sh: error: no usable AWS credentials")
    assert len(result.stderr.splitlines()) == 1
    assert "==> package" not in result.stdout


def test_an_unreachable_endpoint_is_refused_as_such_with_one_line() -> None:
    result = run_deploy("qa", "--endpoint-url", DEAD_ENDPOINT, env=deploy_env())

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"deploy.sh: error: cannot reach the endpoint {DEAD_ENDPOINT} (Connection refused)"
    )
    assert "==> package" not in result.stdout


def test_missing_aws_cli_is_refused(tmp_path: Path) -> None:
    # A tree without the venv, and a PATH with python but no aws CLI.
    (tmp_path / "scripts").mkdir()
    script = shutil.copy2(ROOT / "scripts" / "deploy.sh", tmp_path / "scripts" / "deploy.sh")
    shutil.copytree(ROOT / "scripts" / "lib", tmp_path / "scripts" / "lib")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in (("python3", sys.executable), ("dirname", shutil.which("dirname"))):
        assert target
        os.symlink(target, bin_dir / name)
    bash = shutil.which("bash")
    assert bash

    result = subprocess.run(
        [bash, str(script), "qa", "--region", "us-east-1"],
        env=deploy_env(PATH=str(bin_dir)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "deploy.sh: error: aws CLI not found (run: make venv, or install the AWS CLI)"
    )


def test_validate_only_passes_on_the_repository_without_touching_aws() -> None:
    env = deploy_env(credentials=False, AWS_ENDPOINT_URL=DEAD_ENDPOINT)

    result = run_deploy("qa", "--validate-only", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    stages = [line for line in result.stdout.splitlines() if line.startswith("==> ")]
    assert stages == [
        "==> validate: cfn-lint cfn/*.yaml",
        "==> validate: compile lambda/",
        "==> validate: unit tests",
        "==> validate: OK",
    ]


def test_validate_only_fails_on_a_broken_template(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    template = repo / "cfn" / "eventbridge-stack.yaml"
    template.write_text(template.read_text().replace("ScheduleExpression:", "ScheduleExpresion:"))

    result = run_deploy("qa", "--validate-only", root=repo, env=deploy_env(credentials=False))

    assert result.returncode == 1
    assert "eventbridge-stack.yaml" in result.stdout + result.stderr
    assert result.stderr.strip().endswith("cfn-lint rejected the templates (see above)")
    assert "==> validate: unit tests" not in result.stdout


def test_validate_only_fails_on_code_that_does_not_compile(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    broken = repo / "lambda" / "shared" / "config.py"
    broken.write_text(broken.read_text() + "\ndef broken(:\n")

    result = run_deploy("qa", "--validate-only", root=repo, env=deploy_env(credentials=False))

    assert result.returncode == 1
    assert "lambda/shared/config.py" in result.stderr
    assert result.stderr.strip().endswith("Lambda code does not compile (see above)")
