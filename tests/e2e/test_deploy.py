"""scripts/deploy.sh against the embedded local AWS (a moto server on loopback).

One deployment of `qa` is shared by the module; the operator's checks from the Task 7.1
report run against it with the aws CLI. Tests that change the deployment (the second
deploy, --lambda-only) come last, in file order. Deploys run from a copy of the tree taken
when the module starts, so concurrent edits cannot turn "a second deploy changes nothing"
into a code change.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.session
import pytest

from scripts.local.moto_server import MotoControl, MotoFault
from scripts.package_lambda import requirements_dir
from shared.config import DRS_REGIONS_ENV, drs_regions, table_names
from tests.support.aws import table_names_for
from tests.support.cfn import load_template
from tests.support.cfn_eval import Evaluator
from tests.support.deploy import (
    aws_cli,
    client,
    copy_repo,
    deploy_env,
    moto_server_process,
    run_deploy,
)
from tests.support.handlers import load_handler

pytestmark = pytest.mark.e2e

ENV = "qa"
PROJECT = "aws-drs-orchestration"
DMH = f"{PROJECT}-data-management-handler-{ENV}"
QH = f"{PROJECT}-query-handler-{ENV}"
RULE = f"{PROJECT}-inventory-sync-{ENV}"
STACK_TEMPLATES = {
    f"{PROJECT}-{ENV}-dynamodb": "dynamodb-stack.yaml",
    f"{PROJECT}-{ENV}-lambda": "lambda-stack.yaml",
    f"{PROJECT}-{ENV}-eventbridge": "eventbridge-stack.yaml",
    f"{PROJECT}-{ENV}-monitoring": "monitoring-stack.yaml",
    f"{PROJECT}-{ENV}": "main-stack.yaml",
}
SYNC_INPUT = {"operation": "sync_source_server_inventory"}
DRS_REGIONS_SSM_PATH = "/aws/service/global-infrastructure/services/drs/regions"
# moto 5.2.1's CloudFormation has no model for these types: it logs "No Moto CloudFormation
# support for ..." and skips them, and the stack still completes. AWS creates them.
NOT_CREATED_BY_MOTO = {
    "AWS::CloudWatch::Alarm",
    "AWS::Events::EventBusPolicy",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::SNS::Subscription",
    "AWS::SQS::QueuePolicy",
}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server_process(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    requirements_dir()  # fill the real tree's build cache (downloads only the first time)
    return copy_repo(tmp_path_factory.mktemp("deployed") / "repo")


@pytest.fixture(scope="module")
def deployment(endpoint: str, repo: Path) -> subprocess.CompletedProcess[str]:
    result = run_deploy(ENV, "--endpoint-url", endpoint, root=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def code_sha256_printed(output: str, function: str) -> str:
    """The CodeSha256 deploy.sh reported for the package it built of `function`."""
    match = re.search(rf"^\s+{re.escape(function)}: .*\(CodeSha256 (\S+)\)$", output, re.M)
    assert match, f"no package line for {function} in:\n{output}"
    return match.group(1)


def stack_lines(output: str) -> list[tuple[str, str]]:
    """(stack, outcome) for every stack deploy.sh deployed in the hub region, in order."""
    return re.findall(r"^==> stack (\S+) \(cfn/\S+\)\n\s+(.+)$", output, re.M)


FORWARDING_STACK = f"{PROJECT}-{ENV}-drs-event-forwarding"
HUB_DRS_BUS_ARN = f"arn:aws:events:us-east-1:123456789012:event-bus/{PROJECT}-drs-events-{ENV}"


def forwarding_lines(output: str) -> list[tuple[str, str]]:
    """(region, outcome) for every stack forwarding the hub's own DRS events, in order."""
    pattern = rf"^==> stack {FORWARDING_STACK} in (\S+) \(cfn/target-account-role\.yaml.*\n\s+(.+)$"
    return re.findall(pattern, output, re.M)


def forwarding_rule(endpoint: str, region: str) -> dict[str, Any]:
    """The forwarding stack's rule on `region`'s default bus, with its targets."""
    events = boto3.client(
        "events",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    (rule,) = [
        r for r in events.list_rules()["Rules"] if r.get("Description", "").startswith("Forwards")
    ]
    return {**rule, "Targets": events.list_targets_by_rule(Rule=rule["Name"])["Targets"]}


def snapshot(endpoint: str) -> dict[str, Any]:
    """What a deploy could change: stack status/times, function code and config, the rule."""
    cloudformation = client(endpoint, "cloudformation")
    lambda_client = client(endpoint, "lambda")
    stacks = {
        name: {key: stack.get(key) for key in ("StackStatus", "LastUpdatedTime", "Parameters")}
        for name in STACK_TEMPLATES
        for stack in cloudformation.describe_stacks(StackName=name)["Stacks"]
    }
    functions = {
        name: lambda_client.get_function_configuration(FunctionName=name) for name in (DMH, QH)
    }
    for configuration in functions.values():
        configuration.pop("ResponseMetadata")
    return {
        "stacks": stacks,
        "functions": functions,
        "targets": client(endpoint, "events").list_targets_by_rule(Rule=RULE)["Targets"],
        "policy": lambda_client.get_policy(FunctionName=DMH)["Policy"],
    }


def test_deploy_creates_every_stack_in_dependency_order(
    deployment: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    cloudformation = client(endpoint, "cloudformation")

    assert stack_lines(deployment.stdout) == [(name, "created") for name in STACK_TEMPLATES]
    assert "target and invoke permission in place" in deployment.stdout
    for name in STACK_TEMPLATES:
        (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE", name


def test_the_hub_regions_own_drs_events_are_forwarded_without_a_role(
    deployment: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    # The default: the hub region (the deploy's) forwards, from the target template's
    # forwarding half; the hub reads its own DRS without a role, so none is made
    assert forwarding_lines(deployment.stdout) == [("us-east-1", "created")]
    rule = forwarding_rule(endpoint, "us-east-1")
    (target,) = rule["Targets"]
    assert target["Arn"] == HUB_DRS_BUS_ARN and target["RoleArn"]
    assert json.loads(rule["EventPattern"])["$or"][0]["source"] == ["aws.drs"]
    roles = client(endpoint, "iam").list_roles()["Roles"]
    assert "drs-orchestration-cross-account" not in {r["RoleName"] for r in roles}


def test_the_operators_root_stack_check_passes(
    deployment: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    # Task 7.1's "verify deployment" command, verbatim but for the endpoint.
    status = aws_cli(
        endpoint,
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        f"{PROJECT}-{ENV}",
        "--query",
        "Stacks[0].StackStatus",
    )
    assert status == "CREATE_COMPLETE"
    record = client(endpoint, "ssm").get_parameter(Name=f"/deployments/{PROJECT}/{ENV}")
    deployed = json.loads(record["Parameter"]["Value"])
    code = client(endpoint, "lambda").get_function(FunctionName=DMH)["Code"]["Location"]
    assert code.endswith(deployed["dataManagementHandlerCodeKey"])


def test_schedule_targets_the_data_management_handler_with_the_sync_input(
    deployment: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    function_arn = aws_cli(endpoint, "lambda", "get-function", "--function-name", DMH)[
        "Configuration"
    ]["FunctionArn"]
    rule = aws_cli(endpoint, "events", "describe-rule", "--name", RULE)

    targets = aws_cli(endpoint, "events", "list-targets-by-rule", "--rule", RULE)["Targets"]

    assert (rule["State"], rule["ScheduleExpression"]) == ("ENABLED", "rate(15 minutes)")
    assert [(t["Id"], t["Arn"]) for t in targets] == [("InventorySyncTarget", function_arn)]
    (target,) = targets
    assert json.loads(target["Input"]) == SYNC_INPUT
    assert SYNC_INPUT["operation"] in load_handler("data-management-handler").OPERATIONS
    assert target["DeadLetterConfig"]["Arn"].endswith(f":{PROJECT}-inventory-sync-dlq-{ENV}")
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 0
    assert QH not in json.dumps(targets)


def test_only_the_rule_may_invoke_the_data_management_handler(
    deployment: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    rule_arn = aws_cli(endpoint, "events", "describe-rule", "--name", RULE)["Arn"]

    policy = aws_cli(endpoint, "lambda", "get-policy", "--function-name", DMH)

    (statement,) = json.loads(policy["Policy"])["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == rule_arn
    # Nothing grants EventBridge (or anyone) the query-handler.
    lambda_client = client(endpoint, "lambda")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_policy(FunctionName=QH)


@pytest.mark.parametrize(
    ("function", "timeout", "folder"),
    [(DMH, 900, "data-management-handler"), (QH, 30, "query-handler")],
)
def test_functions_run_the_package_deploy_built_with_the_contract_environment(
    deployment: subprocess.CompletedProcess[str],
    endpoint: str,
    function: str,
    timeout: int,
    folder: str,
) -> None:
    configuration = client(endpoint, "lambda").get_function_configuration(FunctionName=function)
    variables = configuration["Environment"]["Variables"]
    names = table_names_for(ENV)
    if folder == "query-handler":
        names = dataclasses.replace(names, sync_lease="")  # the lease is the sync's alone

    assert (configuration["Runtime"], configuration["Handler"]) == (
        "python3.12",
        "index.lambda_handler",
    )
    assert configuration["Timeout"] == timeout
    assert configuration["CodeSha256"] == code_sha256_printed(deployment.stdout, folder)
    # The deployed environment, read by the code's own reader, names the deployed tables.
    assert table_names(variables) == names
    dynamodb = client(endpoint, "dynamodb")
    for table in (names.inventory, names.region_status, names.target_accounts, names.sync_lease):
        if not table:
            continue
        assert dynamodb.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"


def test_deployment_bucket_is_versioned_encrypted_and_private(
    deployment: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    s3 = client(endpoint, "s3")
    bucket = f"{PROJECT}-deploy-123456789012-us-east-1"

    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]

    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert set(block.values()) == {True} and len(block) == 4
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(key.split("/")[1] for key in keys) == ["data-management-handler", "query-handler"]


def test_only_resource_types_moto_cannot_model_are_missing(
    deployment: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    cloudformation = client(endpoint, "cloudformation")
    missing: dict[str, str] = {}
    for stack, template_name in STACK_TEMPLATES.items():
        template = load_template(template_name)
        evaluator = Evaluator(template, **_deployed_parameters(cloudformation, stack))
        expected = {
            logical_id: resource["Type"]
            for logical_id, resource in template["Resources"].items()
            if "Condition" not in resource or evaluator.condition(resource["Condition"])
        }
        summaries = cloudformation.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        created = {s["LogicalResourceId"] for s in summaries if s["LogicalResourceId"]}
        assert created <= set(expected), stack
        missing.update({lid: kind for lid, kind in expected.items() if lid not in created})

    # If this fails because moto now creates a type, remove it from NOT_CREATED_BY_MOTO.
    assert set(missing.values()) <= NOT_CREATED_BY_MOTO, missing
    assert set(missing.values()) == NOT_CREATED_BY_MOTO - {"AWS::SNS::Subscription"}


def deployed_drs_regions(endpoint: str) -> dict[str, str]:
    """Function name -> its DRS_REGIONS, as deployed."""
    lambda_client = client(endpoint, "lambda")
    return {
        name: lambda_client.get_function_configuration(FunctionName=name)["Environment"][
            "Variables"
        ][DRS_REGIONS_ENV]
        for name in (DMH, QH)
    }


def ssm_drs_regions_of_partition(endpoint: str, partition: str) -> list[str]:
    """What AWS's public SSM parameters (here moto's copy) list for drs in `partition`."""
    ssm = client(endpoint, "ssm")
    pages = ssm.get_paginator("get_parameters_by_path").paginate(Path=DRS_REGIONS_SSM_PATH)
    regions = [parameter["Value"] for page in pages for parameter in page["Parameters"]]
    partitions = {}
    for start in range(0, len(regions), 10):
        names = [
            f"/aws/service/global-infrastructure/regions/{region}/partition"
            for region in regions[start : start + 10]
        ]
        for parameter in ssm.get_parameters(Names=names)["Parameters"]:
            partitions[parameter["Name"].split("/")[-2]] = parameter["Value"]
    return sorted(region for region in regions if partitions.get(region) == partition)


def test_drs_regions_are_where_ssm_says_drs_runs_in_the_deployments_partition(
    deployment: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    expected = ssm_drs_regions_of_partition(endpoint, "aws")

    deployed = deployed_drs_regions(endpoint)

    # moto's copy of the parameters, like AWS's, also lists GovCloud (and other) regions,
    # which credentials of the aws partition cannot reach.
    assert "us-east-1" in expected and not [r for r in expected if r.startswith("us-gov-")]
    assert deployed == {DMH: ",".join(expected), QH: ",".join(expected)}
    assert drs_regions({DRS_REGIONS_ENV: deployed[DMH]}) == expected
    assert (
        f"DrsRegions from AWS's public SSM parameters {DRS_REGIONS_SSM_PATH}: {','.join(expected)}"
    ) in deployment.stderr
    assert f"    {','.join(expected)} (where DRS runs" in deployment.stdout


def _deployed_parameters(cloudformation: Any, stack: str) -> dict[str, str]:
    (description,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {p["ParameterKey"]: p["ParameterValue"] for p in description["Parameters"]}


def test_second_deploy_changes_nothing(
    deployment: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    before = snapshot(endpoint)

    result = run_deploy(ENV, "--endpoint-url", endpoint, root=repo)

    assert result.returncode == 0, result.stdout + result.stderr
    assert stack_lines(result.stdout) == [(name, "no changes") for name in STACK_TEMPLATES]
    assert result.stdout.count("(already there, SHA-256 matches)") == 2
    assert "(kept: the stack's current value; --drs-regions changes it)" in result.stdout
    assert "DrsRegions from" not in result.stderr  # nothing discovered, nothing to announce
    assert snapshot(endpoint) == before


def test_drs_regions_option_changes_both_functions_and_a_redeploy_keeps_it(
    deployment: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    given = run_deploy(
        ENV, "--endpoint-url", endpoint, "--drs-regions", "us-west-2, us-east-1", root=repo
    )
    again = run_deploy(ENV, "--endpoint-url", endpoint, root=repo)

    assert given.returncode == 0, given.stdout + given.stderr
    assert "    us-east-1,us-west-2 (from --drs-regions)" in given.stdout
    assert again.returncode == 0, again.stdout + again.stderr
    assert "    us-east-1,us-west-2 (kept: the stack's current value" in again.stdout
    assert deployed_drs_regions(endpoint) == {DMH: "us-east-1,us-west-2", QH: "us-east-1,us-west-2"}


def test_hub_event_regions_adds_a_forwarding_stack_per_region_and_keeps_the_rest(
    deployment: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    result = run_deploy(
        ENV, "--endpoint-url", endpoint, "--hub-event-regions", "us-west-2,us-east-1", root=repo
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert forwarding_lines(result.stdout) == [
        ("us-east-1", "no changes"),
        ("us-west-2", "created"),
    ]
    (target,) = forwarding_rule(endpoint, "us-west-2")["Targets"]
    assert target["Arn"] == HUB_DRS_BUS_ARN  # cross-region: to the hub region's bus


def test_hub_event_regions_outside_the_drs_regions_are_refused_before_packaging(
    endpoint: str, repo: Path
) -> None:
    # An environment never deployed: the refusal must come before anything is created.
    result = run_deploy(
        "dev",
        "--endpoint-url",
        endpoint,
        "--drs-regions",
        "us-east-1,us-west-2",
        "--hub-event-regions",
        "us-east-1,eu-west-1,ap-south-1",
        root=repo,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    (error,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error.startswith(
        "deploy.sh: error: --hub-event-regions: ap-south-1,eu-west-1 not among the DRS regions "
        "us-east-1,us-west-2 (their events would be dropped as unattributed)"
    )
    assert "==> package" not in result.stdout
    assert "==> stack" not in result.stdout


def test_without_ssm_parameters_the_deploying_machines_botocore_lists_the_regions(
    deployment: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    # GIVEN an environment never deployed, and SSM refusing to list the public parameters
    control = MotoControl(endpoint)
    control.set_fault(MotoFault("ssm", "GetParametersByPath", error_code="AccessDeniedException"))
    # ... and S3 refusing everything, so the deploy stops before it creates anything.
    control.set_fault(MotoFault("s3", error_code="AccessDenied", status=403))
    try:
        # WHEN deploying it without --drs-regions
        result = run_deploy("dev", "--endpoint-url", endpoint, root=repo)
    finally:
        control.clear_faults()

    # THEN the regions come from the botocore the deploy runs with, and it says so
    session = botocore.session.get_session()
    expected = ",".join(sorted(session.get_available_regions("drs")))
    assert (
        f"DrsRegions from this machine's botocore {botocore.__version__} endpoint list for drs: "
        f"{expected}"
    ) in result.stderr
    assert "SSM parameters unavailable (" in result.stderr
    assert f"    {expected} (botocore {botocore.__version__}" in result.stdout
    assert result.returncode == 1 and "cannot create bucket" in result.stderr
    assert "==> stack" not in result.stdout


def test_lambda_only_after_a_code_change_updates_only_that_code(
    deployment: subprocess.CompletedProcess[str], endpoint: str, repo: Path, tmp_path: Path
) -> None:
    before = snapshot(endpoint)
    changed = copy_repo(tmp_path / "repo", source=repo)
    index = changed / "lambda" / "data-management-handler" / "index.py"
    index.write_text(index.read_text() + "\n# a code change\n")

    result = run_deploy(ENV, "--lambda-only", "--endpoint-url", endpoint, root=changed)

    assert result.returncode == 0, result.stdout + result.stderr
    after = snapshot(endpoint)
    new_sha = code_sha256_printed(result.stdout, "data-management-handler")
    dmh_before, dmh_after = before["functions"][DMH], after["functions"][DMH]
    assert dmh_before["CodeSha256"] != new_sha == dmh_after["CodeSha256"]
    assert dmh_after["LastUpdateStatus"] == "Successful"
    assert after["functions"][QH]["CodeSha256"] == before["functions"][QH]["CodeSha256"]
    # The code goes through the lambda stack and the root stack (the deployment record), with
    # their deployed templates; the other stacks are not touched.
    changed_stacks = {
        name for name in STACK_TEMPLATES if after["stacks"][name] != before["stacks"][name]
    }
    assert changed_stacks == {f"{PROJECT}-{ENV}-lambda", f"{PROJECT}-{ENV}"}
    new_key = _deployed_parameters(client(endpoint, "cloudformation"), f"{PROJECT}-{ENV}-lambda")[
        "DataManagementHandlerCodeKey"
    ]
    assert new_key.endswith(".zip") and new_key not in json.dumps(before["stacks"])
    assert after["targets"] == before["targets"]
    assert re.findall(r"^==> stack (\S+) ", result.stdout, re.M) == [
        f"{PROJECT}-{ENV}-lambda",
        f"{PROJECT}-{ENV}",
    ]


def lambda_stack_parameters(endpoint: str) -> dict[str, str]:
    return _deployed_parameters(client(endpoint, "cloudformation"), f"{PROJECT}-{ENV}-lambda")


def test_the_sync_role_is_the_one_target_accounts_are_told_to_trust(
    deployment: subprocess.CompletedProcess[str], endpoint: str
) -> None:
    cloudformation = client(endpoint, "cloudformation")
    main = Evaluator(
        load_template("main-stack.yaml"), **_deployed_parameters(cloudformation, f"{PROJECT}-{ENV}")
    )
    announced = main.evaluate(main.template["Outputs"]["DataManagementHandlerRoleArn"]["Value"])
    role = client(endpoint, "iam").get_role(RoleName=DMH)["Role"]
    function = client(endpoint, "lambda").get_function_configuration(FunctionName=DMH)

    assert role["Path"] == "/drs-orchestration/"
    assert role["Arn"] == function["Role"] == announced
    # The local deploy scopes the grant to the demo's target accounts (tests/support/deploy.py).
    assert lambda_stack_parameters(endpoint)["TargetAccountIds"] == (
        "111122223333,444455556666,777788889999"
    )
    assert "(from TARGET_ACCOUNT_IDS)" in deployment.stdout


def test_a_redeploy_without_target_options_keeps_the_scope(
    deployment: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    # (Changing the scope of this long-lived local stack is left out: moto 5.2.1's server
    # failed that parameter-only change set with "Fn::GetAtt references undefined resource
    # DataManagementHandlerLogGroup", which an in-process moto applies; the unit tests
    # evaluate both conditions.)
    env = deploy_env()
    del env["TARGET_ACCOUNT_IDS"]

    again = run_deploy(ENV, "--endpoint-url", endpoint, root=repo, env=env)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "organization: (none) (kept; --target-org-id changes it)" in again.stdout
    assert "accounts: 111122223333,444455556666,777788889999 (kept;" in again.stdout
    assert lambda_stack_parameters(endpoint)["TargetAccountIds"] == (
        "111122223333,444455556666,777788889999"
    )


def test_a_new_environment_without_target_accounts_is_refused_before_packaging(
    deployment: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    env = deploy_env()
    del env["TARGET_ACCOUNT_IDS"]

    result = run_deploy("uat", "--endpoint-url", endpoint, root=repo, env=env)

    assert result.returncode == 1
    assert "deploy.sh: error: no target accounts: pass --target-org-id" in result.stderr
    assert "==> package" not in result.stdout


def test_lambda_only_refuses_an_environment_that_was_never_deployed(
    deployment: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    result = run_deploy("dev", "--lambda-only", "--endpoint-url", endpoint, root=repo)

    assert result.returncode == 1
    assert "run a full deploy first" in result.stderr
    assert "==> package" not in result.stdout


def test_deploy_fails_when_the_schedule_cannot_invoke_the_function(
    deployment: subprocess.CompletedProcess[str], endpoint: str, repo: Path
) -> None:
    # GIVEN the permission is gone while the eventbridge stack thinks it exists (as after
    # re-creating the lambda stack)
    lambda_client = client(endpoint, "lambda")
    (statement,) = json.loads(lambda_client.get_policy(FunctionName=DMH)["Policy"])["Statement"]
    lambda_client.remove_permission(FunctionName=DMH, StatementId=statement["Sid"])

    # WHEN deploying again (every stack unchanged)
    result = run_deploy(ENV, "--endpoint-url", endpoint, root=repo)

    # THEN the deploy says so instead of reporting success
    assert result.returncode == 1
    assert f"{DMH} has no permission for rule {RULE}" in result.stderr
    assert "==> deployed" not in result.stdout
