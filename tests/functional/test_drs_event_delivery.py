"""DRS events end to end on the local AWS: the simulator stalls a server in a target account,
the forwarding rule deployed from cfn/target-account-role.yaml carries the event to the hub's
bus, a hub rule puts it in an SQS queue, and the runner's SQS poller (an event source
mapping) hands the batch to a deployed function."""

from __future__ import annotations

import io
import json
import textwrap
import zipfile

import boto3
import pytest

from scripts.local import drs_events, fleet
from scripts.local.accounts import deploy_target_account_role
from scripts.local.drs_simulator import DrsSimulator
from scripts.local.runner import LocalRunner

HUB, TARGET = "123456789012", "111122223333"
HUB_BUS = "aws-drs-orchestration-drs-events-qa"
HUB_BUS_ARN = f"arn:aws:events:us-east-1:{HUB}:event-bus/{HUB_BUS}"
ECHO = """
    def lambda_handler(event, context):
        print("records", len(event["Records"]))
        return {"batchItemFailures": []}
"""
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


def _hub_with_queue_and_function() -> str:
    """The hub's bus, a rule to an SQS queue, and an echo function mapped to the queue."""
    s3, iam, functions, events, sqs = (
        boto3.client(name) for name in ("s3", "iam", "lambda", "events", "sqs")
    )
    events.create_event_bus(Name=HUB_BUS)
    queue_url = sqs.create_queue(QueueName="drs-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="drs-events-to-queue",
        EventBusName=HUB_BUS,
        EventPattern=json.dumps({"source": [drs_events.SOURCE]}),
    )
    events.put_targets(
        Rule="drs-events-to-queue", EventBusName=HUB_BUS, Targets=[{"Id": "q", "Arn": queue_arn}]
    )
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("index.py", textwrap.dedent(ECHO))
    s3.create_bucket(Bucket="events-test")
    s3.put_object(Bucket="events-test", Key="echo.zip", Body=package.getvalue())
    role = iam.create_role(RoleName="echo", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))
    function_arn = functions.create_function(
        FunctionName="echo",
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="index.lambda_handler",
        Code={"S3Bucket": "events-test", "S3Key": "echo.zip"},
        Timeout=30,
    )["FunctionArn"]
    functions.create_event_source_mapping(
        EventSourceArn=queue_arn,
        FunctionName=function_arn,
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    return queue_url


def test_a_stall_in_a_target_account_reaches_the_hub_function_through_sqs(
    moto_endpoint: str,
) -> None:
    queue_url = _hub_with_queue_and_function()
    deploy_target_account_role(
        TARGET,
        HUB,
        f"arn:aws:iam::{HUB}:role/drs-orchestration/dmh",
        "e" * 32,
        region="us-west-2",
        endpoint=moto_endpoint,
        parameters={"HubEventBusArn": HUB_BUS_ARN},
    )
    (server,) = fleet.generate_fleet(TARGET, "us-west-2", 1)
    server_id = server["sourceServerID"]

    with (
        DrsSimulator(default_account_id=TARGET, events_endpoint=moto_endpoint) as simulator,
        LocalRunner(moto_endpoint, simulator.endpoint, cloudwatch_logs=False) as runner,
    ):
        delivery = runner.start_event_delivery(poll_interval=0.05)
        simulator.add_source_servers(TARGET, "us-west-2", [server])
        simulator.set_replication_state(TARGET, "us-west-2", server_id, "STALLED")
        deliveries = runner.wait_for_deliveries(1, timeout=60)
        runner.stop_event_delivery()

    (batch,) = [d for d in deliveries if d.kind == "sqs"]
    (record,) = batch.event["Records"]
    event = json.loads(record["body"])
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":drs-events")
    assert event["source"] == "aws.drs"
    assert event["detail-type"] == drs_events.REPLICATION_STALLED_CHANGE
    assert event["detail"] == {"state": "STALLED"}
    # Forwarded as EventBridge forwards: the target account's event, unchanged.
    assert (event["account"], event["region"]) == (TARGET, "us-west-2")
    assert event["resources"] == [drs_events.source_server_arn(TARGET, "us-west-2", server_id)]
    assert batch.succeeded and delivery.errors == []
    # The successful batch was deleted from the queue.
    assert boto3.client("sqs").receive_message(QueueUrl=queue_url).get("Messages", []) == []


@pytest.mark.parametrize("region", ["us-east-1", "us-west-2"])
def test_a_stall_in_the_hub_accounts_own_region_reaches_the_hub_function(
    moto_endpoint: str, region: str
) -> None:
    # The hub's own regions forward with the target template's forwarding half alone
    # (RoleRegion none, as deploy.sh --hub-event-regions deploys it): same region or not
    _hub_with_queue_and_function()
    deploy_target_account_role(
        HUB,
        HUB,
        "",
        "",
        region=region,
        endpoint=moto_endpoint,
        stack_name="drs-event-forwarding",
        parameters={"RoleRegion": "none", "HubEventBusArn": HUB_BUS_ARN},
        expect_role=False,
    )
    (server,) = fleet.generate_fleet(HUB, region, 1)

    with (
        DrsSimulator(default_account_id=HUB, events_endpoint=moto_endpoint) as simulator,
        LocalRunner(moto_endpoint, simulator.endpoint, cloudwatch_logs=False) as runner,
    ):
        runner.start_event_delivery(poll_interval=0.05)
        simulator.add_source_servers(HUB, region, [server])
        simulator.set_replication_state(HUB, region, server["sourceServerID"], "STALLED")
        deliveries = runner.wait_for_deliveries(1, timeout=60)
        runner.stop_event_delivery()

    (batch,) = [d for d in deliveries if d.kind == "sqs"]
    (record,) = batch.event["Records"]
    event = json.loads(record["body"])
    assert (event["account"], event["region"]) == (HUB, region)
    assert event["detail-type"] == drs_events.REPLICATION_STALLED_CHANGE
    roles = {r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]}
    assert "drs-orchestration-cross-account" not in roles


def test_the_event_patch_refuses_a_moto_it_was_not_tested_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import moto

    from scripts.local import moto_events

    monkeypatch.setattr(moto, "__version__", "6.0.0")
    monkeypatch.setattr(moto_events, "_installed", False)
    assert "moto 6.0.0" in (moto_events.unsupported_moto() or "")
    with pytest.raises(RuntimeError, match=r"tested with 5\.2\.x"):
        moto_events.install()
