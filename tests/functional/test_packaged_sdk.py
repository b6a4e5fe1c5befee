"""Production runs the SDK the tests ran: the built packages carry boto3/botocore at the
versions requirements.txt pins, and the local runner runs the package's own copy.

The packages are built the way deploy.sh builds them (requirements installed for python3.12
manylinux2014_x86_64; pip downloads them the first time only, then the build cache serves).
"""

from __future__ import annotations

import ast
import email.parser
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from scripts.local.runner import LocalRunner
from scripts.package_lambda import (
    Package,
    build_package,
    canonical_name,
    pinned_requirements,
    requirements_dir,
)
from shared.config import TableNames

FUNCTIONS = ("data-management-handler", "query-handler")
SDK = ("boto3", "botocore")
# The execution role's trust, as cfn/lambda-stack.yaml writes it: the runner assumes the role
# as Lambda does, and the local STS refuses a role that does not trust Lambda.
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Package]:
    """Both functions' packages, built with the real requirements."""
    deps = requirements_dir()
    output = tmp_path_factory.mktemp("packages")
    return {function: build_package(function, output, deps) for function in FUNCTIONS}


def distributions_in(archive: zipfile.ZipFile) -> dict[str, str]:
    """Canonical name -> Version of every `*.dist-info/METADATA` at the zip's root."""
    found: dict[str, str] = {}
    for name in archive.namelist():
        folder, _, file = name.partition("/")
        if folder.endswith(".dist-info") and file == "METADATA":
            metadata = email.parser.Parser().parsestr(archive.read(name).decode())
            found[canonical_name(metadata["Name"])] = metadata["Version"]
    return found


def module_version(archive: zipfile.ZipFile, init: str) -> str:
    """The `__version__ = "..."` assigned in `init` (read, not imported)."""
    for node in ast.parse(archive.read(init)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{init} assigns no __version__")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_package_carries_the_sdk_requirements_txt_pins(
    packages: dict[str, Package], function: str
) -> None:
    pins = pinned_requirements()

    with zipfile.ZipFile(packages[function].path) as archive:
        distributions = distributions_in(archive)
        for module in SDK:
            assert distributions[module] == pins[module], f"{module} metadata in {function}"
            version = module_version(archive, f"{module}/__init__.py")
            assert version == pins[module], f"{module}.__version__ in {function}"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_distribution_in_a_package_is_pinned(
    packages: dict[str, Package], function: str
) -> None:
    # A dependency pip chose by itself would make the package depend on the day it was built.
    with zipfile.ZipFile(packages[function].path) as archive:
        assert distributions_in(archive) == pinned_requirements()


@pytest.fixture
def deployed_function(
    packages: dict[str, Package], tables: TableNames, moto_endpoint: str
) -> Iterator[tuple[LocalRunner, str]]:
    """The data-management-handler package deployed to moto as deploy.sh deploys it (package in
    a deployment bucket), with a runner for it."""
    name = "aws-drs-orchestration-data-management-handler-test"
    s3, iam, lambda_client = (boto3.client(service) for service in ("s3", "iam", "lambda"))
    s3.create_bucket(Bucket="packaged-sdk-deploy")
    package = packages["data-management-handler"]
    s3.put_object(Bucket="packaged-sdk-deploy", Key="dmh.zip", Body=package.path.read_bytes())
    role = iam.create_role(
        RoleName="packaged-sdk-role",
        AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST),
    )["Role"]["Arn"]
    lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="index.lambda_handler",
        Code={"S3Bucket": "packaged-sdk-deploy", "S3Key": "dmh.zip"},
        Timeout=30,
        Environment={
            "Variables": {
                "SOURCE_SERVER_INVENTORY_TABLE": tables.inventory,
                "DRS_REGION_STATUS_TABLE": tables.region_status,
                "TARGET_ACCOUNTS_TABLE": tables.target_accounts,
                "SYNC_LEASE_TABLE": tables.sync_lease,
                "DRS_REGIONS": "us-east-1",
            }
        },
    )
    # Nothing here calls DRS: an address where nothing listens.
    with LocalRunner(moto_endpoint, "http://127.0.0.1:9") as runner:
        yield runner, name


def test_the_local_runner_runs_the_packages_own_sdk(
    deployed_function: tuple[LocalRunner, str],
) -> None:
    runner, name = deployed_function

    invocation = runner.invoke(name, {"operation": "list_target_accounts"})

    assert invocation.succeeded, invocation.payload
    assert invocation.payload["items"] == []
    task_root = runner.function(name).task_root
    for module in SDK:
        # Inside the unzipped package, not this interpreter's site-packages: as in Lambda,
        # the package comes before the runtime's SDK on sys.path.
        assert Path(invocation.sdk_files[module]).is_relative_to(task_root), module
