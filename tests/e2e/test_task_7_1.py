"""Task 7.1 as a permanent test: the operator's script, the report's own commands, the local
runner and the ad-hoc sync script, against one deployment of `qa` to the embedded local AWS.

The module starts the local AWS (moto + the DRS simulator as processes), deploys `qa` with
scripts/deploy.sh from a copy of the tree (so concurrent edits cannot change what is deployed
mid-module), seeds the demo's organisation and registers the target accounts through the
data-management-handler. Tests that break the deployment on purpose (the wiring the Task 7.1
report found, a disabled rule, a missing permission, a tampered package, a short timeout)
restore it before they end, and come last, in file order.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import textwrap
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from scripts.demo import (
    DATA_MANAGEMENT_HANDLER,
    FLEET,
    INVENTORY_TABLE,
    PAYMENTS,
    QUERY_HANDLER,
    REGIONS,
    RETAIL,
    RULE,
    SHARED,
    THROTTLED,
    UNINITIALIZED_SCOPE,
    SeedSummary,
    register_target_accounts,
    seed_organisation,
    throttle_scope,
)
from scripts.local.runner import LocalRunner, PackageError, RuleError, policy_allows_rule
from scripts.local.stack import LocalStack
from scripts.package_lambda import requirements_dir
from tests.support.deploy import ROOT, aws_cli, copy_repo, deploy_env, run_deploy

pytestmark = pytest.mark.e2e

ENV = "qa"
REGION_STATUS_TABLE = f"aws-drs-orchestration-drs-region-status-{ENV}"
SYNC_INPUT = '{"operation": "sync_source_server_inventory"}'
STEP = re.compile(r"^  ([\u2714\u2718]) (\d)\. (.*)$", re.M)


@dataclass
class Deployment:
    stack: LocalStack
    repo: Path
    runner: LocalRunner
    seeded: SeedSummary

    def client(self, service: str) -> Any:
        return self.runner.client(service)

    def table(self, name: str) -> Any:
        resource = boto3.resource(
            "dynamodb",
            endpoint_url=self.stack.moto_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        return resource.Table(name)

    def script(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """scripts/NAME ARGS... from the deployed copy, against this local AWS."""
        endpoints = ["--endpoint-url", self.stack.moto_endpoint]
        endpoints += ["--drs-endpoint-url", self.stack.drs_endpoint]
        return subprocess.run(
            [str(self.repo / "scripts" / name), *args, *endpoints],
            cwd=self.repo,
            env=deploy_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def aws(self, *args: str) -> Any:
        return aws_cli(self.stack.moto_endpoint, *args)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    requirements_dir()  # fill the real tree's build cache (downloads only the first time)
    repo = copy_repo(tmp_path_factory.mktemp("task-7-1") / "repo")
    with LocalStack(log_dir=tmp_path_factory.mktemp("task-7-1-logs")) as stack:
        deployed = run_deploy(
            ENV,
            "--endpoint-url",
            stack.moto_endpoint,
            root=repo,
            env=deploy_env(DRS_REGIONS=",".join(REGIONS)),
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        seeded = seed_organisation(stack.moto_endpoint, stack.control)
        with LocalRunner(stack.moto_endpoint, stack.drs_endpoint) as runner:
            register_target_accounts(runner)
            throttle_scope(stack.control)
            yield Deployment(stack, repo, runner, seeded)


@pytest.fixture(scope="module")
def first_check(deployment: Deployment) -> subprocess.CompletedProcess[str]:
    """The operator's check, run once on the freshly seeded deployment."""
    return deployment.script("e2e-inventory-sync.sh", ENV)


def steps(output: str) -> dict[int, tuple[bool, str]]:
    """Step number -> (passed, text) of the script's output; each step must appear once."""
    found = STEP.findall(output)
    numbers = [int(number) for _, number, _ in found]
    assert numbers == [1, 2, 3, 4, 5, 6], output
    return {int(number): (mark == "\u2714", text) for mark, number, text in found}


def run_started_at(output: str) -> str:
    match = re.search(r"written at or after ([^,\s]+),", output)
    assert match, output
    return match.group(1)


def scan_all(table: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ConsistentRead": True}
    while True:
        page = table.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# ---- usage (no AWS) -------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["e2e-inventory-sync.sh", "invoke-sync.sh"])
def test_scripts_print_usage_and_refuse_bad_arguments(script: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "scripts" / script), *args],
            env=deploy_env(credentials=False),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    help_run = run("-h")
    assert help_run.returncode == 0
    assert help_run.stdout.startswith(f"Usage: scripts/{script} ENV")

    for args, reason in [
        ((), "missing environment"),
        (("prod-eu",), "unknown environment"),
        (("qa", "--endpoint-url", "http://127.0.0.1:1"), "go together"),
        (("qa", "--region"), "--region needs a value"),
        (("qa", "--bogus"), "unknown option"),
    ]:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert reason in result.stderr
        assert result.stdout == ""


def test_invoke_sync_refuses_malformed_ids_and_regions() -> None:
    for args in (["--account-ids", "12345"], ["--regions", "us-east-1,mars"]):
        result = subprocess.run(
            [str(ROOT / "scripts" / "invoke-sync.sh"), "qa", *args],
            env=deploy_env(credentials=False),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert args[0] in result.stderr


# ---- Task 7.1 on a healthy deployment -------------------------------------------------------


def test_every_task_7_1_step_passes(first_check: subprocess.CompletedProcess[str]) -> None:
    output = first_check.stdout

    assert first_check.returncode == 0, output + first_check.stderr
    result = steps(output)
    assert all(passed for passed, _ in result.values()), output
    assert f"rule {RULE} exists, ENABLED, rate(15 minutes)" in result[1][1]
    assert (
        result[2][1]
        == f"target InventorySyncTarget -> {DATA_MANAGEMENT_HANDLER}, Input {SYNC_INPUT}"
    )
    assert f"rule/{RULE}" in result[3][1] and "events.amazonaws.com" in result[3][1]
    assert (
        f"sync_source_server_inventory is in {DATA_MANAGEMENT_HANDLER}'s operation map"
        in (result[4][1])
    )
    assert "through the local runner" in result[5][1]
    # The throttled region is a reported failure of one scope, not a failed run.
    assert "PARTIAL" in result[5][1]
    assert f"{RETAIL.account_id}/eu-west-1 THROTTLED" in result[5][1]
    assert re.search(
        r"holds 288 live items \(288 written at or after [^,\s]+, the run wrote 288 and confirmed "
        r"288\); \d+ scope\(s\) confirmed since then",
        output,
    ), result[6][1]
    assert output.rstrip().endswith("Task 7.1: PASSED (6/6)")


def test_inventory_holds_every_listable_server_with_the_fields_operators_read(
    deployment: Deployment, first_check: subprocess.CompletedProcess[str]
) -> None:
    started = run_started_at(first_check.stdout)
    control = deployment.stack.control
    expected = {
        (seed.account.account_id, seed.region, server_id)
        for seed in FLEET
        if (seed.account, seed.region) != THROTTLED
        for server_id in control.source_server_ids(seed.account.account_id, seed.region)
    }

    items = scan_all(deployment.table(INVENTORY_TABLE))

    assert len(expected) == deployment.seeded.listable_servers == 288
    assert {(i["accountId"], i["region"], i["sourceServerID"]) for i in items} == expected
    for item in items:
        assert item["lastSyncTime"] == started
        arn_suffix = f":{item['accountId']}:source-server/{item['sourceServerID']}"
        assert item["sourceServerArn"].endswith(arn_suffix)
        assert "deletedAt" not in item and "drs" in item
    # EC2 enrichment: every launched instance behind a listable scope, found in its origin
    # account (for shared-services, in payments-prod: cross-account DR).
    enriched = [i for i in items if "ec2" in i]
    listable_instances = sum(s.instances for s in FLEET if (s.account, s.region) != THROTTLED)
    assert len(enriched) == listable_instances
    cross_account = [
        i for i in enriched if i["accountId"] == SHARED.account_id and i["region"] == "us-east-1"
    ]
    assert len(cross_account) == 30
    assert {i["sourceAccountId"] for i in cross_account} == {PAYMENTS.account_id}
    assert all(i["ec2"]["instanceId"] == i["sourceInstanceId"] for i in enriched)
    gone = [i for i in items if i.get("sourceInstanceId") and "ec2" not in i]
    assert len(gone) == deployment.seeded.missing_instances
    extended = [i for i in items if i.get("stagingAccountId") == SHARED.account_id]
    assert len(extended) == deployment.seeded.extended


def test_region_status_records_every_scope_including_the_failed_ones(
    deployment: Deployment, first_check: subprocess.CompletedProcess[str]
) -> None:
    started = run_started_at(first_check.stdout)
    seeded = Counter({(s.account.account_id, s.region): s.servers for s in FLEET})

    scopes = {
        (item["accountId"], item["region"]): item
        for item in scan_all(deployment.table(REGION_STATUS_TABLE))
        if item["accountId"].isdigit()  # not the sync's lease item
    }

    assert len(scopes) == 4 * len(REGIONS)
    throttled = scopes.pop((THROTTLED[0].account_id, THROTTLED[1]))
    assert (throttled["status"], throttled["errorCode"]) == ("THROTTLED", "ThrottlingException")
    assert throttled.get("lastSuccessTime") is None
    uninitialized = scopes.pop((UNINITIALIZED_SCOPE[0].account_id, UNINITIALIZED_SCOPE[1]))
    assert uninitialized["status"] == "NOT_INITIALIZED"
    assert uninitialized["lastSuccessTime"] == started
    for scope, item in scopes.items():
        assert (item["status"], item["serverCount"]) == ("ACTIVE", seeded[scope]), scope
        assert item["lastSyncTime"] == item["lastSuccessTime"] == started


def test_the_reports_own_commands_pass_against_the_deployment(
    deployment: Deployment, first_check: subprocess.CompletedProcess[str]
) -> None:
    """Each aws CLI command of the Task 7.1 report, as written there (region and endpoint
    added), gives the answer the report wanted."""
    dmh_arn = deployment.client("lambda").get_function(FunctionName=DATA_MANAGEMENT_HANDLER)[
        "Configuration"
    ]["FunctionArn"]
    rule_arn = deployment.client("events").describe_rule(Name=RULE)["Arn"]

    rules = deployment.aws(
        "events", "list-rules", "--query",
        "Rules[?contains(Name, 'inventory')]"
        ".{Name:Name,State:State,ScheduleExpression:ScheduleExpression}",
    )  # fmt: skip
    assert rules == [{"Name": RULE, "State": "ENABLED", "ScheduleExpression": "rate(15 minutes)"}]

    (target,) = deployment.aws("events", "list-targets-by-rule", "--rule", RULE)["Targets"]
    assert (target["Id"], target["Arn"], target["Input"]) == (
        "InventorySyncTarget",
        dmh_arn,
        SYNC_INPUT,
    )

    function = deployment.aws(
        "lambda", "get-function", "--function-name", DATA_MANAGEMENT_HANDLER, "--query",
        "Configuration.{FunctionName:FunctionName,Runtime:Runtime,Handler:Handler,LastModified:LastModified}",
    )  # fmt: skip
    assert (function["FunctionName"], function["Runtime"], function["Handler"]) == (
        DATA_MANAGEMENT_HANDLER,
        "python3.12",
        "index.lambda_handler",
    )

    (statement,) = json.loads(
        deployment.aws("lambda", "get-policy", "--function-name", DATA_MANAGEMENT_HANDLER)["Policy"]
    )["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == rule_arn

    table = deployment.aws(
        "dynamodb", "describe-table", "--table-name", INVENTORY_TABLE, "--query",
        "Table.{TableName:TableName,ItemCount:ItemCount,TableStatus:TableStatus}",
    )  # fmt: skip
    assert (table["TableName"], table["TableStatus"]) == (INVENTORY_TABLE, "ACTIVE")

    sample = deployment.aws(
        "dynamodb", "scan", "--table-name", INVENTORY_TABLE, "--limit", "5", "--query",
        "Items[*].{ServerID:sourceServerID.S,Region:region.S,LastSync:lastSyncTime.S}",
    )  # fmt: skip
    assert len(sample) == 5
    assert all(row["ServerID"] and row["Region"] in REGIONS and row["LastSync"] for row in sample)

    stack_status = deployment.aws(
        "cloudformation", "describe-stacks", "--stack-name", f"aws-drs-orchestration-{ENV}",
        "--query", "Stacks[0].StackStatus",
    )  # fmt: skip
    assert stack_status in ("CREATE_COMPLETE", "UPDATE_COMPLETE")

    # "Monitor first execution": the runner writes the function's log where Lambda would.
    five_minutes_ago = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp() * 1000)
    log_group = f"/aws/lambda/{DATA_MANAGEMENT_HANDLER}"
    logs = deployment.aws(
        "logs", "filter-log-events", "--log-group-name", log_group,
        "--filter-pattern", "sync_source_server_inventory", "--start-time", str(five_minutes_ago),
    )  # fmt: skip
    assert isinstance(logs["events"], list)
    finished = deployment.aws(
        "logs", "filter-log-events", "--log-group-name", log_group,
        "--filter-pattern", "sync finished", "--start-time", str(five_minutes_ago),
    )  # fmt: skip
    assert any('"status":"PARTIAL"' in event["message"] for event in finished["events"])


# ---- the local runner -----------------------------------------------------------------------


def test_runner_answers_an_unhandled_error_as_lambda_invoke_does(deployment: Deployment) -> None:
    invocation = deployment.runner.invoke(DATA_MANAGEMENT_HANDLER, {"operation": "no_such_op"})

    response = invocation.response()
    assert (response["StatusCode"], response["FunctionError"]) == (200, "Unhandled")
    payload = response["Payload"]
    assert payload["errorType"] == "UnknownOperationError"
    assert "valid operations: add_target_account" in payload["errorMessage"]
    assert payload["requestId"] == invocation.request_id
    assert payload["stackTrace"] and all(isinstance(line, str) for line in payload["stackTrace"])
    assert "[ERROR] UnknownOperationError: unknown operation 'no_such_op'" in invocation.log
    assert (
        invocation.log.splitlines()[0]
        == f"START RequestId: {invocation.request_id} Version: $LATEST"
    )


def test_runner_gives_the_function_its_context_environment_and_log_group(
    deployment: Deployment,
) -> None:
    invocation = deployment.runner.invoke(
        DATA_MANAGEMENT_HANDLER,
        {"operation": "sync_source_server_inventory", "accountIds": [PAYMENTS.account_id],
         "regions": ["us-west-2"], "dryRun": True},
    )  # fmt: skip

    assert invocation.succeeded, invocation.payload
    assert invocation.payload["counts"]["serversSeen"] == 36
    records = [json.loads(line) for line in invocation.log.splitlines() if line.startswith("{")]
    planned = next(r for r in records if r.get("message") == "sync planned")
    dmh_arn = deployment.client("lambda").get_function(FunctionName=DATA_MANAGEMENT_HANDLER)[
        "Configuration"
    ]["FunctionArn"]
    # What Powertools read from the context object the bootstrap built.
    assert planned["function_name"] == DATA_MANAGEMENT_HANDLER
    assert planned["function_arn"] == dmh_arn
    assert planned["function_memory_size"] == "1024"
    assert planned["function_request_id"] == invocation.request_id
    report = invocation.log.splitlines()[-1]
    assert report.startswith(f"REPORT RequestId: {invocation.request_id}\tDuration: ")
    assert "\tMemory Size: 1024 MB\t" in report
    # The SDK the deployed package carries, not this machine's (the runtime's stand-in).
    task_root = deployment.runner.function(DATA_MANAGEMENT_HANDLER).task_root
    assert Path(invocation.sdk_files["botocore"]).is_relative_to(task_root)
    # The same log is in CloudWatch Logs, in the function's log group.
    logs = deployment.client("logs")
    group = f"/aws/lambda/{DATA_MANAGEMENT_HANDLER}"
    messages = [
        event["message"]
        for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]
        for event in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])[
            "events"
        ]
    ]
    assert f"END RequestId: {invocation.request_id}" in messages


@pytest.fixture
def scratch_function(deployment: Deployment) -> Iterator[Callable[..., str]]:
    """Deploys throwaway functions (as deploy.sh does: package in S3) and deletes them after."""
    lambda_client, s3 = deployment.client("lambda"), deployment.client("s3")
    role = lambda_client.get_function(FunctionName=DATA_MANAGEMENT_HANDLER)["Configuration"]["Role"]
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "deploy" in b["Name"])
    created: list[str] = []

    def create(source: str, *, timeout: int = 30) -> str:
        name = f"scratch-{len(created)}-{int(time.time() * 1000)}"
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as archive:
            archive.writestr("index.py", textwrap.dedent(source))
        s3.put_object(Bucket=bucket, Key=f"scratch/{name}.zip", Body=package.getvalue())
        lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="index.lambda_handler",
            Code={"S3Bucket": bucket, "S3Key": f"scratch/{name}.zip"},
            Timeout=timeout,
            MemorySize=256,
            Environment={"Variables": {"GREETING": "hello"}},
        )
        created.append(name)
        return name

    yield create
    for name in created:
        lambda_client.delete_function(FunctionName=name)


def test_the_function_sees_its_package_the_runtimes_sdk_and_nothing_else(
    deployment: Deployment, scratch_function: Callable[..., str]
) -> None:
    name = scratch_function(
        """
        import importlib.util, os

        def lambda_handler(event, context):
            return {
                "importable": {m: importlib.util.find_spec(m) is not None
                               for m in ("boto3", "botocore", "yaml", "moto", "pytest")},
                "event": event,
                "greeting": os.environ["GREETING"],
                "region": os.environ["AWS_REGION"],
                "drs": os.environ["AWS_ENDPOINT_URL_DRS"],
                "memory": context.memory_limit_in_mb,
                "remaining": context.get_remaining_time_in_millis(),
            }
        """,
        timeout=30,
    )

    invocation = deployment.runner.invoke(name, {"ping": 1})

    assert invocation.succeeded, invocation.payload
    result = invocation.payload
    # boto3 comes with the runtime; the tooling of this machine does not.
    assert result["importable"] == {
        "boto3": True, "botocore": True, "yaml": False, "moto": False, "pytest": False,
    }  # fmt: skip
    assert result["event"] == {"ping": 1}
    assert (result["greeting"], result["region"]) == ("hello", "us-east-1")
    assert result["drs"] == deployment.stack.drs_endpoint
    assert result["memory"] == "256"  # a string, as in the Python runtime
    assert 25_000 < result["remaining"] <= 30_000


@pytest.mark.parametrize(
    ("source", "error_type", "message"),
    [
        ("import yaml\ndef lambda_handler(e, c): pass\n", "Runtime.ImportModuleError",
         "Unable to import module 'index': No module named 'yaml'"),
        ("def handler(e, c): pass\n", "Runtime.HandlerNotFound",
         "Handler 'lambda_handler' missing on module 'index'"),
        ("from decimal import Decimal\ndef lambda_handler(e, c): return {'n': Decimal(1)}\n",
         "Runtime.MarshalError", "Unable to marshal response"),
        ("import os\ndef lambda_handler(e, c): os._exit(3)\n", "Runtime.ExitError",
         "Runtime exited with error: exit status 3"),
        ("def lambda_handler(e, c): raise KeyError('missing')\n", "KeyError", "'missing'"),
    ],
    ids=["import-error", "no-handler", "not-json", "exit", "exception"],
)  # fmt: skip
def test_runtime_failures_come_back_in_lambdas_shapes(
    deployment: Deployment,
    scratch_function: Callable[..., str],
    source: str,
    error_type: str,
    message: str,
) -> None:
    invocation = deployment.runner.invoke(scratch_function(source), {})

    assert invocation.response()["FunctionError"] == "Unhandled"
    assert invocation.payload["errorType"] == error_type
    assert message in invocation.payload["errorMessage"]


def test_the_runner_kills_the_function_at_its_timeout(
    deployment: Deployment, scratch_function: Callable[..., str]
) -> None:
    name = scratch_function(
        """
        import os, time

        def lambda_handler(event, context):
            print("pid", os.getpid(), flush=True)
            time.sleep(60)
        """,
        timeout=2,
    )

    began = time.monotonic()
    invocation = deployment.runner.invoke(name, {})
    elapsed = time.monotonic() - began

    assert invocation.function_error == "Unhandled"
    assert invocation.payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in invocation.payload["errorMessage"]
    assert 2.0 <= invocation.duration_ms / 1000 < 3.0
    assert elapsed < 10
    assert invocation.log.splitlines()[-1].endswith("\tStatus: timeout")
    pid = int(re.search(r"^pid (\d+)$", invocation.log, re.M).group(1))  # type: ignore[union-attr]
    assert not Path(f"/proc/{pid}").exists()


def test_invoke_sync_dry_run_prints_a_summary_and_writes_nothing(deployment: Deployment) -> None:
    table = deployment.table(INVENTORY_TABLE)
    before = {i["sourceServerArn"]: i["lastSyncTime"] for i in scan_all(table)}

    result = deployment.script(
        "invoke-sync.sh", ENV, "--dry-run", "--account-ids", PAYMENTS.account_id,
        "--regions", "us-east-1",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.match(
        r"sync_source_server_inventory: SUCCEEDED \(dry run: nothing written\)", lines[0]
    )
    assert "scopes   1 = 1 accounts x 1 regions (ACTIVE 1)" in result.stdout
    # (unchanged since the first check: a real run would not rewrite them either)
    assert "servers  seen 60, written 0, unchanged 60, new 0" in result.stdout
    assert '"dryRun": true' in result.stderr  # the event it sent
    assert {i["sourceServerArn"]: i["lastSyncTime"] for i in scan_all(table)} == before


def test_invoke_sync_prints_failed_scopes_and_exits_3_when_partial(deployment: Deployment) -> None:
    result = deployment.script(
        "invoke-sync.sh", ENV, "--account-ids", f"{RETAIL.account_id},{PAYMENTS.account_id}",
        "--regions", "eu-west-1",
    )  # fmt: skip

    assert result.returncode == 3, result.stdout + result.stderr
    assert "sync_source_server_inventory: PARTIAL" in result.stdout
    assert "failed scopes (1):" in result.stdout
    assert re.search(
        rf"^\s+{RETAIL.account_id}\s+eu-west-1\s+THROTTLED\s+ThrottlingException\s+"
        r"DRS throttled the listing$",
        result.stdout,
        re.M,
    )


def test_invoke_sync_shows_the_functions_refusal_of_bad_parameters(deployment: Deployment) -> None:
    result = deployment.script("invoke-sync.sh", ENV, "--account-ids", "999999999999", "--json")

    assert result.returncode == 1, result.stdout + result.stderr
    payload = json.loads(result.stdout)
    assert payload["errorType"] == "InvalidParameterError"
    assert "valid accountIds" in payload["errorMessage"]


# ---- broken on purpose (each restores the deployment) ---------------------------------------


def test_the_runner_refuses_a_package_that_is_not_what_was_deployed(
    deployment: Deployment,
) -> None:
    deployment.stack.control.clear_faults()  # from here on, syncs need no throttling retries
    location = deployment.client("lambda").get_function(FunctionName=DATA_MANAGEMENT_HANDLER)[
        "Code"
    ]["Location"]
    key = location.split(".amazonaws.com/", 1)[1]
    s3 = deployment.client("s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "deploy" in b["Name"])
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=original + b"tampered")
    try:
        with (
            LocalRunner(deployment.stack.moto_endpoint, deployment.stack.drs_endpoint) as fresh,
            pytest.raises(PackageError, match="does not match the deployed CodeSha256"),
        ):
            fresh.function(DATA_MANAGEMENT_HANDLER)
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)
    with LocalRunner(deployment.stack.moto_endpoint, deployment.stack.drs_endpoint) as fresh:
        assert "sync_source_server_inventory" in fresh.deployed_operations(DATA_MANAGEMENT_HANDLER)


def test_the_original_task_7_1_wiring_fails_steps_2_4_5_and_6(deployment: Deployment) -> None:
    """The report's finding, rebuilt: the schedule targets the query-handler (with its own
    invoke permission, as the old template had). The script must say exactly what is wrong."""
    events, lambda_client = deployment.client("events"), deployment.client("lambda")
    deployment.stack.control.clear_faults()
    original = events.list_targets_by_rule(Rule=RULE)["Targets"]
    rule_arn = events.describe_rule(Name=RULE)["Arn"]
    qh_arn = lambda_client.get_function(FunctionName=QUERY_HANDLER)["Configuration"]["FunctionArn"]
    events.put_targets(
        Rule=RULE, Targets=[{"Id": "InventorySyncTarget", "Arn": qh_arn, "Input": SYNC_INPUT}]
    )
    lambda_client.add_permission(
        FunctionName=QUERY_HANDLER,
        StatementId="task-7-1-wiring",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule_arn,
    )
    try:
        result = deployment.script("e2e-inventory-sync.sh", ENV)
    finally:
        lambda_client.remove_permission(FunctionName=QUERY_HANDLER, StatementId="task-7-1-wiring")
        events.put_targets(Rule=RULE, Targets=original)
    assert events.list_targets_by_rule(Rule=RULE)["Targets"] == original

    assert result.returncode == 1, result.stdout + result.stderr
    found = steps(result.stdout)
    assert [number for number, (passed, _) in found.items() if passed] == [1, 3]
    assert f"{QUERY_HANDLER} is not the data-management-handler" in found[2][1]
    assert f"sync_source_server_inventory is not in {QUERY_HANDLER}'s operation map" in found[4][1]
    assert "UnknownOperationError: unknown operation 'sync_source_server_inventory'" in found[5][1]
    assert "no sync ran" in found[6][1]
    assert result.stdout.rstrip().endswith("Task 7.1: FAILED (2/6 passed)")


def test_a_disabled_rule_fails_step_1_until_the_reports_enable_rule(deployment: Deployment) -> None:
    deployment.stack.control.clear_faults()
    deployment.aws("events", "disable-rule", "--name", RULE)  # the report's "immediate action"
    try:
        with pytest.raises(RuleError, match="DISABLED: EventBridge would not fire it"):
            deployment.runner.fire_rule(RULE)
        disabled = deployment.script("e2e-inventory-sync.sh", ENV)
    finally:
        deployment.aws("events", "enable-rule", "--name", RULE)  # and its re-enable step

    assert disabled.returncode == 1, disabled.stdout + disabled.stderr
    found = steps(disabled.stdout)
    assert found[1] == (
        False,
        f"rule {RULE} is DISABLED, rate(15 minutes) (want ENABLED, rate(15 minutes))",
    )
    # The other steps still run: the wiring and the sync itself are fine.
    assert all(passed for number, (passed, _) in found.items() if number > 1), disabled.stdout
    assert "SUCCEEDED" in found[5][1]
    # A second run over an estate the first one stored: the servers it found unchanged are
    # confirmed, not rewritten (only the scope that was throttled before is written now).
    wrote, confirmed = map(
        int, re.findall(r"the run wrote (\d+) and confirmed (\d+)", found[6][1])[0]
    )
    assert confirmed >= 288 and wrote == confirmed - 288, found[6][1]

    (rule,) = deployment.aws(
        "events", "list-rules", "--query", "Rules[?contains(Name, 'inventory')].State"
    )
    assert rule == "ENABLED"


def test_a_missing_invoke_permission_fails_step_3_and_the_schedules_delivery(
    deployment: Deployment,
) -> None:
    lambda_client = deployment.client("lambda")
    rule_arn = deployment.client("events").describe_rule(Name=RULE)["Arn"]
    (statement,) = json.loads(
        lambda_client.get_policy(FunctionName=DATA_MANAGEMENT_HANDLER)["Policy"]
    )["Statement"]
    lambda_client.remove_permission(
        FunctionName=DATA_MANAGEMENT_HANDLER, StatementId=statement["Sid"]
    )
    try:
        with pytest.raises(RuleError, match="EventBridge cannot invoke it"):
            deployment.runner.fire_rule(RULE)
        result = deployment.script("e2e-inventory-sync.sh", ENV)
    finally:
        lambda_client.add_permission(
            FunctionName=DATA_MANAGEMENT_HANDLER,
            StatementId=statement["Sid"],
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=rule_arn,
        )
    policy = json.loads(lambda_client.get_policy(FunctionName=DATA_MANAGEMENT_HANDLER)["Policy"])
    assert policy_allows_rule(policy, rule_arn)

    assert result.returncode == 1, result.stdout + result.stderr
    found = steps(result.stdout)
    assert [number for number, (passed, _) in found.items() if passed] == [1, 2, 4]
    assert "has no resource policy" in found[3][1]
    assert "EventBridge cannot invoke it" in found[5][1]
