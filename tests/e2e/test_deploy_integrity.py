"""scripts/deploy.sh keeps what runs equal to what was built, and deletes nothing by accident.

Against the embedded local AWS, in file order on one moto server: an existing deployment
bucket without any hardening, `dev` deployed to it, the dev package overwritten under its
key, `qa` deployed (the reproduction of issue 12: qa used to run the overwritten zip), code
changed outside CloudFormation, `--lambda-only`, and `prod`.

moto 5.2.1 has no UpdateTerminationProtection, so the deploys run from a copy of the tree
whose aws CLI answers that one call itself and records it; every other call reaches moto.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.bucket_policy import TLS_ONLY_SID, WRITES_SID
from scripts.package_lambda import requirements_dir
from tests.support.aws import table_names_for
from tests.support.deploy import ROOT, aws_cli, client, copy_repo, moto_server_process, run_deploy

pytestmark = pytest.mark.e2e

PROJECT = "aws-drs-orchestration"
BUCKET = f"{PROJECT}-deploy-123456789012-us-east-1"
DEPLOYER = "arn:aws:sts::123456789012:user/moto"  # moto's caller identity
FUNCTIONS = ("data-management-handler", "query-handler")
CODE_PARAMETERS = {
    "data-management-handler": ("DataManagementHandlerCodeKey", "DataManagementHandlerCodeVersion"),
    "query-handler": ("QueryHandlerCodeKey", "QueryHandlerCodeVersion"),
}
# An operator's own statement in the bucket's policy, which deploy.sh must keep.
OPERATOR_STATEMENT = {
    "Sid": "OperatorKeepsTheBucket",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:DeleteBucket",
    "Resource": f"arn:aws:s3:::{BUCKET}",
}
STACK_SUFFIXES = ("-dynamodb", "-lambda", "-eventbridge", "-monitoring", "")

# Stands in for the venv's aws CLI: answers UpdateTerminationProtection (which moto lacks) the
# way CloudFormation does and records the call; passes everything else to the real CLI.
AWS_SHIM = """#!/usr/bin/env bash
for arg in "$@"; do
  if [ "$arg" = "update-termination-protection" ]; then
    printf '%s\\n' "$*" >>{log}
    echo '{{"StackId": "recorded-by-the-test"}}'
    exit 0
  fi
done
exec {aws} "$@"
"""


def function_name(fn: str, env: str) -> str:
    return f"{PROJECT}-{fn}-{env}"


def printed_code_sha256(output: str, fn: str) -> str:
    """The CodeSha256 deploy.sh printed for the package it built of `fn`."""
    match = re.search(rf"^\s+{re.escape(fn)}: .*\(CodeSha256 (\S+)\)$", output, re.M)
    assert match, f"no package line for {fn} in:\n{output}"
    return match.group(1)


def stack_parameters(endpoint: str, stack: str) -> dict[str, str]:
    (description,) = client(endpoint, "cloudformation").describe_stacks(StackName=stack)["Stacks"]
    return {p["ParameterKey"]: p["ParameterValue"] for p in description["Parameters"]}


def code_sha256(endpoint: str, function: str) -> str:
    configuration = client(endpoint, "lambda").get_function_configuration(FunctionName=function)
    return str(configuration["CodeSha256"])


def a_zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", text)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server_process(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tree whose .venv runs the real python, and the aws CLI through AWS_SHIM."""
    requirements_dir()  # fill the real tree's build cache (downloads only the first time)
    copy = copy_repo(tmp_path_factory.mktemp("deployed") / "repo")
    (copy / ".venv").unlink()
    bin_dir = copy / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    real_bin = ROOT / ".venv" / "bin"
    python = bin_dir / "python"
    python.write_text(f'#!/usr/bin/env bash\nexec {shlex.quote(str(real_bin / "python"))} "$@"\n')
    aws = bin_dir / "aws"
    log = shlex.quote(str(copy / "termination-protection.log"))
    aws.write_text(AWS_SHIM.format(log=log, aws=shlex.quote(str(real_bin / "aws"))))
    for script in (python, aws):
        script.chmod(0o755)
    return copy


def protection_calls(repo: Path) -> list[str]:
    log = repo / "termination-protection.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(scope="module")
def unhardened_bucket(endpoint: str) -> str:
    """The deployment bucket as an older deploy.sh or an operator left it: none of the
    hardening, and a policy statement of the operator's own."""
    s3 = client(endpoint, "s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_policy(
        Bucket=BUCKET,
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [OPERATOR_STATEMENT]}),
    )
    return BUCKET


@pytest.fixture(scope="module")
def dev(endpoint: str, repo: Path, unhardened_bucket: str) -> subprocess.CompletedProcess[str]:
    result = run_deploy("dev", "--endpoint-url", endpoint, "--drs-regions", "us-east-1", root=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_deploy_hardens_an_existing_unhardened_bucket(
    dev: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    s3 = client(endpoint, "s3")

    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    policy = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])

    assert "    exists\n" in dev.stdout and "    policy updated: TLS only" in dev.stdout
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    statements = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert statements[OPERATOR_STATEMENT["Sid"]] == OPERATOR_STATEMENT
    tls = statements[TLS_ONLY_SID]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(tls["Resource"]) == [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
    writes = statements[WRITES_SID]
    assert (writes["Effect"], writes["Principal"]) == ("Deny", "*")
    assert writes["Action"] == ["s3:PutObject", "s3:DeleteObject*"]
    assert writes["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": [DEPLOYER]}}


def test_every_table_refuses_to_be_deleted(
    dev: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    dynamodb = client(endpoint, "dynamodb")
    names = table_names_for("dev")
    tables = (names.inventory, names.region_status, names.target_accounts, names.sync_lease)

    for table in tables:
        assert dynamodb.describe_table(TableName=table)["Table"]["DeletionProtectionEnabled"]
        with pytest.raises(dynamodb.exceptions.ClientError, match="DeletionProtectionEnabled"):
            dynamodb.delete_table(TableName=table)


def test_the_stacks_pin_the_object_versions_the_deploy_checked(
    dev: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    s3 = client(endpoint, "s3")
    parameters = stack_parameters(endpoint, f"{PROJECT}-dev-lambda")
    record = client(endpoint, "ssm").get_parameter(Name=f"/deployments/{PROJECT}/dev")
    deployed = json.loads(record["Parameter"]["Value"])

    for fn in FUNCTIONS:
        key_parameter, version_parameter = CODE_PARAMETERS[fn]
        head = s3.head_object(Bucket=BUCKET, Key=parameters[key_parameter], ChecksumMode="ENABLED")
        expected = printed_code_sha256(dev.stdout, fn)
        assert head["ChecksumSHA256"] == expected  # uploaded with its SHA-256
        assert parameters[version_parameter] == head["VersionId"]
        assert code_sha256(endpoint, function_name(fn, "dev")) == expected
        camel = "dataManagementHandler" if fn == "data-management-handler" else "queryHandler"
        assert deployed[f"{camel}CodeKey"] == parameters[key_parameter]
        assert deployed[f"{camel}CodeVersion"] == head["VersionId"]
    assert "==> verify: the functions run the packages built here (CodeSha256)" in dev.stdout


def test_a_package_overwritten_under_its_key_is_uploaded_again_and_qa_runs_the_build(
    dev: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    # GIVEN both dev packages overwritten under their keys: one with a SHA-256 checksum of the
    # new bytes, one without any (as a plain `aws s3 cp` would)
    s3 = client(endpoint, "s3")
    dev_parameters = stack_parameters(endpoint, f"{PROJECT}-dev-lambda")
    dmh_key = dev_parameters["DataManagementHandlerCodeKey"]
    qh_key = dev_parameters["QueryHandlerCodeKey"]
    tampered = a_zip("def lambda_handler(event, context):\n    return 'tampered'\n")
    s3.put_object(Bucket=BUCKET, Key=dmh_key, Body=tampered, ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=BUCKET, Key=qh_key, Body=tampered)
    tampered_versions = {
        key: s3.head_object(Bucket=BUCKET, Key=key)["VersionId"] for key in (dmh_key, qh_key)
    }

    # WHEN qa is deployed from the same sources
    result = run_deploy("qa", "--endpoint-url", endpoint, "--drs-regions", "us-east-1", root=repo)

    # THEN the packages were uploaded again, and qa runs exactly what was built
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"s3://{BUCKET}/{dmh_key} does not hold the built package (SHA-256 " in result.stderr
    assert f"s3://{BUCKET}/{qh_key} has no SHA-256 checksum to check" in result.stderr
    assert result.stdout.count("(uploaded)") == 2
    qa_parameters = stack_parameters(endpoint, f"{PROJECT}-qa-lambda")
    for fn in FUNCTIONS:
        key_parameter, version_parameter = CODE_PARAMETERS[fn]
        key = qa_parameters[key_parameter]
        expected = printed_code_sha256(result.stdout, fn)
        assert key == dev_parameters[key_parameter]  # same sources, same key
        assert code_sha256(endpoint, function_name(fn, "qa")) == expected
        # The version qa pins is the new upload, holding the build's bytes.
        assert qa_parameters[version_parameter] not in tampered_versions.values()
        body = s3.get_object(Bucket=BUCKET, Key=key, VersionId=qa_parameters[version_parameter])
        digest = hashlib.sha256(body["Body"].read()).digest()
        assert digest.hex() in key and expected == printed_code_sha256(dev.stdout, fn)


def test_code_changed_outside_cloudformation_fails_the_deploy_naming_the_function(
    dev: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    # GIVEN qa's query-handler changed by hand (every stack still names the built package)
    name = function_name("query-handler", "qa")
    lambda_client = client(endpoint, "lambda")
    expected = code_sha256(endpoint, name)
    found = lambda_client.update_function_code(
        FunctionName=name, ZipFile=a_zip("def lambda_handler(event, context):\n    pass\n")
    )["CodeSha256"]

    # WHEN qa is deployed again (nothing changed in the tree)
    result = run_deploy("qa", "--endpoint-url", endpoint, root=repo)

    # THEN the deploy fails, naming the function, what it expected and what it found
    assert result.returncode == 1
    assert (
        f"deploy.sh: error: {name} runs code with CodeSha256 {found}, expected {expected}"
    ) in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "deploy.sh: error: 1 function(s) do not run the package built here (see above)"
    )
    assert "==> deployed" not in result.stdout
    # ... and the command it prints puts the stack's package back.
    restore = re.search(
        r"To restore the code its stack names: aws (lambda .*)$", result.stderr, re.M
    )
    assert restore, result.stderr
    aws_cli(endpoint, *shlex.split(restore.group(1)))
    assert code_sha256(endpoint, name) == expected


def test_lambda_only_updates_the_stacks_so_they_name_the_code_that_runs(
    dev: subprocess.CompletedProcess[str], endpoint: str, repo: Path, tmp_path: Path
) -> None:
    # GIVEN a code change in the data-management-handler
    cloudformation = client(endpoint, "cloudformation")
    untouched = [f"{PROJECT}-qa{suffix}" for suffix in ("-dynamodb", "-eventbridge", "-monitoring")]
    before = {
        stack: cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        for stack in (*untouched, f"{PROJECT}-qa-lambda")
    }
    template_before = cloudformation.get_template(StackName=f"{PROJECT}-qa-lambda")["TemplateBody"]
    changed = copy_repo(tmp_path / "repo", source=repo)
    index = changed / "lambda" / "data-management-handler" / "index.py"
    index.write_text(index.read_text() + "\n# a code change\n")

    # WHEN only the code is deployed
    result = run_deploy("qa", "--lambda-only", "--endpoint-url", endpoint, root=changed)

    # THEN the lambda stack names the new key and version, the functions run the builds, the
    # deployment record follows, and nothing else changed
    assert result.returncode == 0, result.stdout + result.stderr
    parameters = stack_parameters(endpoint, f"{PROJECT}-qa-lambda")
    new_key = parameters["DataManagementHandlerCodeKey"]
    head = client(endpoint, "s3").head_object(Bucket=BUCKET, Key=new_key)
    old_parameters = {
        p["ParameterKey"]: p["ParameterValue"] for p in before[f"{PROJECT}-qa-lambda"]["Parameters"]
    }
    assert new_key != old_parameters["DataManagementHandlerCodeKey"]
    assert parameters["DataManagementHandlerCodeVersion"] == head["VersionId"]
    code_parameters = {name for pair in CODE_PARAMETERS.values() for name in pair}
    assert {k: v for k, v in parameters.items() if k not in code_parameters} == {
        k: v for k, v in old_parameters.items() if k not in code_parameters
    }
    template_after = cloudformation.get_template(StackName=f"{PROJECT}-qa-lambda")["TemplateBody"]
    assert template_after == template_before
    for fn in FUNCTIONS:
        assert code_sha256(endpoint, function_name(fn, "qa")) == printed_code_sha256(
            result.stdout, fn
        )
    record = client(endpoint, "ssm").get_parameter(Name=f"/deployments/{PROJECT}/qa")
    deployed = json.loads(record["Parameter"]["Value"])
    assert deployed["dataManagementHandlerCodeKey"] == new_key
    assert deployed["dataManagementHandlerCodeVersion"] == head["VersionId"]
    assert stack_parameters(endpoint, f"{PROJECT}-qa")["DataManagementHandlerCodeKey"] == new_key
    for stack in untouched:
        after = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        assert after.get("LastUpdatedTime") == before[stack].get("LastUpdatedTime"), stack
    assert "==> stack aws-drs-orchestration-qa-lambda (parameters only" in result.stdout


def test_prod_stacks_get_termination_protection_and_no_other_environment_does(
    dev: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    assert protection_calls(repo) == []  # dev and qa, deployed above

    result = run_deploy("prod", "--endpoint-url", endpoint, "--drs-regions", "us-east-1", root=repo)

    assert result.returncode == 0, result.stdout + result.stderr
    # Every stack of the environment, the hub region's DRS event forwarding among them
    suffixes = (*STACK_SUFFIXES[:3], "-drs-event-forwarding", *STACK_SUFFIXES[3:])
    stacks = [f"{PROJECT}-prod{suffix}" for suffix in suffixes]
    assert protection_calls(repo) == [
        f"--region us-east-1 cloudformation update-termination-protection --stack-name {stack} "
        "--enable-termination-protection"
        for stack in stacks
    ]
    assert result.stdout.count("    termination protection enabled\n") == len(stacks)
