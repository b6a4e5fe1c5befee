"""The local runner's asynchronous delivery (scripts/local/event_delivery.py) keeps the
promises of EventBridge and Lambda's SQS poller that the refresh relies on.

The failures feared: a failed batch deleted (an event lost), a whole batch redelivered when
one message failed (work done twice), a failing rule target retried forever or never, a
delivery thread left running after `close()` (a test or the demo that never ends), and the
journal read twice (an event delivered twice by the runner itself). One small deployed
function fails on demand: an SQS message or an event whose body says `{"fail": "batch"}`
raises, `{"fail": "item"}` is reported in `batchItemFailures`, `{"fail": "unknown"}` adds an
id that names no message.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
import threading
import time
import zipfile
from collections import Counter
from typing import Any

import boto3
import pytest

from scripts.local import drs_events
from scripts.local.event_delivery import Delivery
from scripts.local.runner import LocalRunner

FUNCTION = """
    import json

    def lambda_handler(event, context):
        if "Records" not in event:  # an EventBridge event
            if event["detail"].get("fail"):
                raise RuntimeError("this event fails")
            return {"ok": True}
        bodies = [(r["messageId"], json.loads(r["body"])) for r in event["Records"]]
        if any(body.get("fail") == "batch" for _, body in bodies):
            raise RuntimeError("this batch fails")
        failed = [message_id for message_id, body in bodies if body.get("fail") == "item"]
        if any(body.get("fail") == "unknown" for _, body in bodies):
            failed.append("no-such-message")
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
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
VISIBILITY_SECONDS = 2


def deploy_function(name: str = "on-demand-failure") -> str:
    """The function of the module docstring; its ARN."""
    s3, iam, functions = (boto3.client(n) for n in ("s3", "iam", "lambda"))
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("index.py", textwrap.dedent(FUNCTION))
    s3.create_bucket(Bucket="delivery-test")
    s3.put_object(Bucket="delivery-test", Key=f"{name}.zip", Body=package.getvalue())
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))
    return functions.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="index.lambda_handler",
        Code={"S3Bucket": "delivery-test", "S3Key": f"{name}.zip"},
        # Lambda refuses a mapping whose queue's visibility timeout is below the function's.
        Timeout=VISIBILITY_SECONDS,
    )["FunctionArn"]


def queue_with_messages(bodies: list[dict[str, Any]], **mapping: Any) -> tuple[str, list[str]]:
    """A queue (short visibility timeout) holding `bodies`, mapped to the function with
    `mapping`'s options; (queue URL, message ids in the order of `bodies`)."""
    function_arn = deploy_function()
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(
        QueueName="deliveries", Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    ids = [
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))["MessageId"]
        for body in bodies
    ]
    boto3.client("lambda").create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=function_arn, **{"BatchSize": 10, **mapping}
    )
    return queue_url, ids


def message_ids(delivery: Delivery) -> list[str]:
    return [record["messageId"] for record in delivery.event["Records"]]


def messages_left(queue_url: str) -> int:
    """Visible and in-flight messages (moto counts both exactly)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)[
        "Attributes"
    ]
    return sum(int(attributes[name]) for name in names)


def delivery_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("event-delivery")]


@pytest.fixture
def runner(moto_endpoint: str) -> Any:
    with LocalRunner(moto_endpoint, "http://127.0.0.1:9", cloudwatch_logs=False) as local:
        yield local
    assert delivery_threads() == []


def test_a_failed_batch_stays_in_the_queue_and_comes_back_after_the_visibility_timeout(
    runner: LocalRunner,
) -> None:
    queue_url, ids = queue_with_messages([{"fail": "batch"}, {"n": 2}])
    delivery = runner.start_event_delivery(poll_interval=0.05)

    # Each message goes out twice: the batch fails, nothing is deleted.
    def seen_twice(ds: list[Delivery]) -> bool:
        counts = Counter(i for d in ds for i in message_ids(d))
        return all(counts[i] >= 2 for i in ids)

    assert delivery.wait_for(seen_twice, timeout=30), delivery.deliveries
    runner.stop_event_delivery()

    first, second = delivery.deliveries[:2]
    assert not first.succeeded and "this batch fails" in (first.error or "")
    assert set(first.failed_message_ids) == set(ids)
    # Redelivered, not re-sent: the same messages, received again after the timeout.
    counts = [int(r["attributes"]["ApproximateReceiveCount"]) for r in second.event["Records"]]
    assert counts and all(c >= 2 for c in counts)
    assert messages_left(queue_url) == 2


def test_batch_item_failures_redeliver_only_the_named_message(runner: LocalRunner) -> None:
    queue_url, (good, bad, also_good) = queue_with_messages(
        [{"n": 1}, {"fail": "item"}, {"n": 3}],
        FunctionResponseTypes=["ReportBatchItemFailures"],
        MaximumBatchingWindowInSeconds=1,
    )
    delivery = runner.start_event_delivery(poll_interval=0.05)

    assert delivery.wait_for(lambda ds: len(ds) >= 3, timeout=30), delivery.deliveries
    runner.stop_event_delivery()

    first, *later = delivery.deliveries
    assert set(message_ids(first)) == {good, bad, also_good}
    assert first.failed_message_ids == (bad,) and not first.succeeded
    assert first.error is None  # the function succeeded; one item failed
    assert all(message_ids(d) == [bad] for d in later)
    assert messages_left(queue_url) == 1


def test_a_response_naming_an_unknown_message_fails_the_whole_batch(
    runner: LocalRunner,
) -> None:
    """Lambda takes a batchItemFailures it cannot match as a failure of every message."""
    queue_url, ids = queue_with_messages(
        [{"fail": "unknown"}, {"n": 2}],
        FunctionResponseTypes=["ReportBatchItemFailures"],
        MaximumBatchingWindowInSeconds=1,
    )
    delivery = runner.start_event_delivery(poll_interval=0.05)
    assert delivery.wait_for(lambda ds: len(ds) >= 1, timeout=30)
    runner.stop_event_delivery()
    first = delivery.deliveries[0]
    assert set(message_ids(first)) == set(ids) == set(first.failed_message_ids)
    assert "no-such-message" in (first.error or "")
    assert messages_left(queue_url) == 2


def _rule_to_function(function_arn: str, *, permitted: bool = True, **target: Any) -> str:
    """A rule on the default bus sending `test.delivery` events to the function (allowed by
    its resource policy when `permitted`); the rule's ARN."""
    events, functions = boto3.client("events"), boto3.client("lambda")
    rule_arn = events.put_rule(
        Name="to-function", EventPattern=json.dumps({"source": ["test.delivery"]})
    )["RuleArn"]
    if permitted:
        functions.add_permission(
            FunctionName=function_arn,
            StatementId="events",
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=rule_arn,
        )
    events.put_targets(Rule="to-function", Targets=[{"Id": "f", "Arn": function_arn, **target}])
    return rule_arn


def _put(detail: dict[str, Any]) -> None:
    answer = boto3.client("events").put_events(
        Entries=[{"Source": "test.delivery", "DetailType": "t", "Detail": json.dumps(detail)}]
    )
    assert answer["FailedEntryCount"] == 0


def test_a_failing_rule_target_is_retried_then_given_up(runner: LocalRunner) -> None:
    rule_arn = _rule_to_function(deploy_function())
    delivery = runner.start_event_delivery(rule_attempts=3, retry_delay=0.05)

    _put({"fail": True})

    assert delivery.wait_for(lambda ds: len(ds) >= 3, timeout=30), delivery.deliveries
    time.sleep(1.0)  # a fourth attempt would have come by now (0.05 + 0.1 + 0.2 s apart)
    runner.stop_event_delivery()
    assert [d.attempt for d in delivery.deliveries] == [1, 2, 3]
    assert not any(d.succeeded for d in delivery.deliveries)
    assert all(d.kind == "rule" and d.source_arn == rule_arn for d in delivery.deliveries)
    assert "this event fails" in (delivery.deliveries[-1].error or "")


def test_a_function_error_is_retried_as_its_event_invoke_config_says(
    runner: LocalRunner,
) -> None:
    """The data-management-handler's EventInvokeConfig (cfn/lambda-stack.yaml) retries nothing:
    EventBridge's RetryPolicy covers only delivery; a function that ran and failed is Lambda's
    asynchronous invocation to retry."""
    function_arn = deploy_function()
    boto3.client("lambda").put_function_event_invoke_config(
        FunctionName=function_arn, MaximumRetryAttempts=0
    )
    _rule_to_function(function_arn, RetryPolicy={"MaximumRetryAttempts": 4})
    delivery = runner.start_event_delivery(rule_attempts=5, retry_delay=0.05)

    _put({"fail": True})

    assert delivery.wait_for(lambda ds: len(ds) >= 1, timeout=30)
    time.sleep(1.0)  # a second attempt would have come by now
    runner.stop_event_delivery()
    assert [d.attempt for d in delivery.deliveries] == [1]


def test_the_target_retry_policy_does_not_bound_the_function_s_own_retries(
    runner: LocalRunner,
) -> None:
    # No event invoke config: Lambda retries a failed asynchronous invocation twice.
    _rule_to_function(deploy_function(), RetryPolicy={"MaximumRetryAttempts": 0})
    delivery = runner.start_event_delivery(rule_attempts=5, retry_delay=0.05)

    _put({"fail": True})

    assert delivery.wait_for(lambda ds: len(ds) >= 3, timeout=30)
    time.sleep(1.0)
    runner.stop_event_delivery()
    assert [d.attempt for d in delivery.deliveries] == [1, 2, 3]


def test_the_target_retry_policy_bounds_the_retries_of_a_delivery_that_failed(
    runner: LocalRunner,
) -> None:
    # The function's policy does not let the rule invoke it: EventBridge cannot deliver.
    _rule_to_function(deploy_function(), permitted=False, RetryPolicy={"MaximumRetryAttempts": 1})
    delivery = runner.start_event_delivery(rule_attempts=5, retry_delay=0.05)

    _put({"n": 1})

    assert delivery.wait_for(lambda ds: len(ds) >= 2, timeout=30)
    time.sleep(1.0)
    runner.stop_event_delivery()
    assert [d.attempt for d in delivery.deliveries] == [1, 2]
    assert all("resource policy" in (d.error or "") for d in delivery.deliveries)


def test_each_event_is_delivered_once_and_a_restart_does_not_replay_the_journal(
    runner: LocalRunner,
) -> None:
    _rule_to_function(deploy_function())
    delivery = runner.start_event_delivery(retry_delay=0.05)
    for n in range(5):
        _put({"n": n})
    assert delivery.wait_for(lambda ds: len(ds) >= 5, timeout=60), delivery.deliveries
    time.sleep(1.5)  # more than one long poll of the journal: a re-read would show by now
    runner.stop_event_delivery()
    numbers = Counter(d.event["detail"]["n"] for d in delivery.deliveries)
    assert numbers == Counter(range(5)) and all(d.succeeded for d in delivery.deliveries)

    # A new delivery starts after what the journal holds: the five are not delivered again.
    again = runner.start_event_delivery(retry_delay=0.05)
    _put({"n": 5})
    assert again.wait_for(lambda ds: len(ds) >= 1, timeout=30)
    time.sleep(1.5)
    runner.stop_event_delivery()
    assert [d.event["detail"]["n"] for d in again.deliveries] == [5]


def test_close_stops_every_delivery_thread_while_polls_and_retries_wait(
    moto_endpoint: str,
) -> None:
    # The SQS poller waits in a 20 s batching window (one message of ten), the rule loop in
    # its long poll of the journal, and a failed rule target in a long retry delay.
    queue_with_messages([{"n": 1}], MaximumBatchingWindowInSeconds=20)
    function = boto3.client("lambda").get_function(FunctionName="on-demand-failure")
    _rule_to_function(function["Configuration"]["FunctionArn"])
    runner = LocalRunner(moto_endpoint, "http://127.0.0.1:9", cloudwatch_logs=False)
    delivery = runner.start_event_delivery(retry_delay=30.0, poll_interval=0.05)
    _put({"fail": True})
    assert delivery.wait_for(lambda ds: len(ds) >= 1, timeout=30)  # now in its retry delay
    time.sleep(0.5)
    assert "event-delivery-sqs" in delivery_threads()

    began = time.monotonic()
    runner.close()

    assert delivery_threads() == []
    assert time.monotonic() - began < 5.0
    # The message read in the window was not handed to the function after close().
    assert [d.kind for d in delivery.deliveries] == ["rule"]


def test_a_message_received_again_inside_the_batching_window_is_in_the_batch_once(
    runner: LocalRunner,
) -> None:
    # The window outlasts the visibility timeout: the poller receives the message twice.
    queue_url, (only,) = queue_with_messages(
        [{"n": 1}], MaximumBatchingWindowInSeconds=VISIBILITY_SECONDS + 1
    )
    delivery = runner.start_event_delivery(poll_interval=0.05)
    assert delivery.wait_for(lambda ds: len(ds) >= 1, timeout=30)
    runner.stop_event_delivery()
    (batch,) = delivery.deliveries
    assert message_ids(batch) == [only] and batch.succeeded
    assert messages_left(queue_url) == 0  # deleted with the receipt handle that is current


ENVELOPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources"}


def test_queue_and_function_targets_get_the_event_as_eventbridge_sends_it(
    runner: LocalRunner,
) -> None:
    """The envelope EventBridge sends (no moto-only fields), `time` in ISO-8601 UTC, for a
    DRS event put as the simulator puts it."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue_url = sqs.create_queue(QueueName="envelope")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule_arn = _rule_to_function(deploy_function())
    events.put_targets(Rule="to-function", Targets=[{"Id": "q", "Arn": queue_arn}])
    delivery = runner.start_event_delivery(retry_delay=0.05)
    entry = drs_events.stalled_change("123456789012", "us-east-1", "s-1", stalled=True)

    assert (
        events.put_events(Entries=[{**entry, "Source": "test.delivery"}])["FailedEntryCount"] == 0
    )

    assert delivery.wait_for(lambda ds: len(ds) >= 1, timeout=30)
    runner.stop_event_delivery()
    (message,) = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    for event in (json.loads(message["Body"]), delivery.deliveries[0].event):
        assert set(event) == ENVELOPE | {"detail"}, event
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", event["time"])
        assert event["detail"] == {"state": "STALLED"}
        assert event["resources"] == entry["Resources"]
    assert delivery.deliveries[0].source_arn == rule_arn
