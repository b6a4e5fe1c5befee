"""The local runner's asynchronous deliveries: what EventBridge and Lambda's SQS poller do.

moto matches events to rules and delivers to SQS queues and (with `scripts.local.moto_events`)
to other event buses itself; it records the deliveries to Lambda functions it cannot make.
`EventDelivery` runs two background threads for a `LocalRunner`:

- **rule targets**: drains the moto server's journal (`GET /_local/event-deliveries`) and
  invokes each target function with the event (or the target's `Input`), asynchronously, with
  retries and backoff as AWS does: a delivery that fails (the function's policy refuses the
  rule) as the target's RetryPolicy says (AWS: up to 185 attempts over 24 h), a function that
  fails as its event invoke config says (Lambda: 2 retries by default); here at most
  `rule_attempts` (default 3) in all, `retry_delay` apart, doubling;
- **SQS event source mappings** (Lambda's poller): for each enabled mapping on an SQS queue
  in the runner's account and region, receives up to BatchSize messages (waiting at most
  MaximumBatchingWindowInSeconds to fill the batch), invokes the function with
  `{"Records": [...]}` in SQS's record shape, deletes the batch when the invocation succeeds,
  or, with FunctionResponseTypes ReportBatchItemFailures, all but the `batchItemFailures`;
  a failed message stays in the queue and comes back after its visibility timeout (and to a
  dead-letter queue by the queue's redrive policy, which moto applies).

Every attempt is kept as a `Delivery` (`deliveries`); `wait_for(predicate, timeout)` waits for
a condition on them. `stop()` ends both loops and every target's retries (a poll or a
retry delay that is waiting ends within a second); no delivery thread is left running.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scripts.local.runner import Invocation, LocalRunner

SQS_MAX_RECEIVE = 10  # ReceiveMessage's MaxNumberOfMessages limit
LAMBDA_ASYNC_RETRIES = 2  # Lambda's default for an asynchronous invocation that fails


@dataclass(frozen=True)
class Delivery:
    """One invocation made for an event source: a rule's target or an SQS mapping's batch."""

    kind: str  # "rule" or "sqs"
    source_arn: str  # the rule's or the queue's ARN
    function_arn: str
    event: Any
    attempt: int
    succeeded: bool
    error: str | None = None
    failed_message_ids: tuple[str, ...] = ()


class EventDelivery:
    """Background delivery for `runner` (see the module docstring). Start with `start()`
    (or `LocalRunner.start_event_delivery`), end with `stop()`."""

    def __init__(
        self,
        runner: LocalRunner,
        *,
        rule_attempts: int = 3,
        retry_delay: float = 0.2,
        poll_interval: float = 0.2,
    ) -> None:
        self.runner = runner
        self.rule_attempts = rule_attempts
        self.retry_delay = retry_delay
        self.poll_interval = poll_interval
        self.deliveries: list[Delivery] = []
        self.errors: list[str] = []  # what the threads could not do (not function errors)
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # One thread per rule-target delivery (its retries): stop() joins these too.
        self._target_threads: list[threading.Thread] = []
        self._seq = 0

    # -- lifecycle --

    def start(self) -> EventDelivery:
        if self._threads:
            return self
        self._stopping.clear()
        # Deliveries recorded before this start belong to no one: skip them.
        self._seq = self._journal_after(10**12, 0.0, latest=True)
        for name, target in (("rules", self._rule_loop), ("sqs", self._sqs_loop)):
            thread = threading.Thread(target=target, name=f"event-delivery-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """End both loops and every rule-target delivery (a retry waiting for its delay gives
        up; an invocation under way finishes first), waiting up to `timeout` for each."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)
        # The rule loop has ended: no target thread starts after this list is read.
        for thread in self._target_threads:
            thread.join(timeout)
        self._threads, self._target_threads = [], []

    def __enter__(self) -> EventDelivery:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[list[Delivery]], bool], timeout: float) -> bool:
        """Wait until `predicate(deliveries)` holds; False after `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(list(self.deliveries)), timeout)

    def _record(self, delivery: Delivery) -> None:
        with self._changed:
            self.deliveries.append(delivery)
            self._changed.notify_all()

    # -- rule targets --

    def _journal_after(self, seq: int, wait: float, latest: bool = False) -> Any:
        url = f"{self.runner.endpoint}/_local/event-deliveries?after={seq}&wait={wait:g}"
        if latest:
            url = f"{self.runner.endpoint}/_local/event-deliveries?after=0&wait=0"
        with urllib.request.urlopen(url, timeout=wait + 30) as answer:
            deliveries = json.loads(answer.read())["deliveries"]
        if latest:
            return max((d["seq"] for d in deliveries), default=0)
        return deliveries

    def _rule_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = self._journal_after(self._seq, 1.0)
            except OSError as exc:
                self.errors.append(f"event journal: {exc}")
                self._stopping.wait(self.poll_interval)
                continue
            for item in batch:
                self._seq = max(self._seq, item["seq"])
                # Each delivery on its own thread: a retrying target never delays the others.
                thread = threading.Thread(
                    target=self._deliver_to_rule_target,
                    args=(item,),
                    name=f"event-delivery-target-{item['seq']}",
                    daemon=True,
                )
                thread.start()
                self._target_threads = [t for t in self._target_threads if t.is_alive()]
                self._target_threads.append(thread)

    def _deliver_to_rule_target(self, item: Mapping[str, Any]) -> None:
        target, rule_arn = item["target"], item["ruleArn"]
        event = json.loads(target["Input"]) if "Input" in target else item["event"]
        # Two retries, as in AWS: EventBridge retries a delivery it could not make (the
        # target's RetryPolicy); a function that ran and failed is retried by Lambda's
        # asynchronous invocation (the function's event invoke config), not by EventBridge.
        retry = target.get("RetryPolicy") or {}
        delivery_attempts = int(retry.get("MaximumRetryAttempts", 185)) + 1
        function_attempts: int | None = None  # looked up at the first function error
        delay = self.retry_delay
        attempt = 0
        while True:
            attempt += 1
            error, function_failed = None, False
            try:
                self.runner.check_invoke_permission(target["Arn"], rule_arn)
                invocation = self.runner.invoke(target["Arn"], event)
                if not invocation.succeeded:
                    error = f"{invocation.error_type}: {invocation.payload}"
                    function_failed = True
            except Exception as exc:  # a refused or impossible delivery is a failed attempt
                error = f"{type(exc).__name__}: {exc}"
            self._record(
                Delivery("rule", rule_arn, target["Arn"], event, attempt, error is None, error)
            )
            if error is None:
                return
            if function_failed and function_attempts is None:
                function_attempts = self._async_retries(target["Arn"]) + 1
            limit = function_attempts if function_failed else delivery_attempts
            if attempt >= min(self.rule_attempts, limit or 1) or self._stopping.wait(delay):
                return
            delay *= 2

    def _async_retries(self, function_arn: str) -> int:
        """How often Lambda retries a failed asynchronous invocation of the function: its
        event invoke config's MaximumRetryAttempts (0-2), else LAMBDA_ASYNC_RETRIES."""
        functions = self.runner.client("lambda")
        try:
            config = functions.get_function_event_invoke_config(FunctionName=function_arn)
        except functions.exceptions.ResourceNotFoundException:
            return LAMBDA_ASYNC_RETRIES
        return int(config.get("MaximumRetryAttempts", LAMBDA_ASYNC_RETRIES))

    # -- SQS event source mappings --

    def _sqs_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                mappings = self._sqs_mappings()
                for mapping in mappings:
                    if self._stopping.is_set():
                        return
                    self._poll_mapping(mapping)
            except Exception as exc:  # noted; the poller keeps polling as Lambda's does
                self.errors.append(f"sqs poller: {type(exc).__name__}: {exc}")
            self._stopping.wait(self.poll_interval)

    def _sqs_mappings(self) -> list[dict[str, Any]]:
        functions = self.runner.client("lambda")
        mappings: list[dict[str, Any]] = []
        for page in functions.get_paginator("list_event_source_mappings").paginate():
            mappings.extend(
                m
                for m in page["EventSourceMappings"]
                if ":sqs:" in m.get("EventSourceArn", "")
                and m.get("State", "Enabled") in ("Enabled", "Creating", "Updating")
            )
        return mappings

    def _poll_mapping(self, mapping: Mapping[str, Any]) -> None:
        queue_arn = mapping["EventSourceArn"]
        _, _, _, region, account, queue_name = queue_arn.split(":", 5)
        sqs = self.runner.client("sqs", region)
        queue_url = sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)[
            "QueueUrl"
        ]
        batch_size = int(mapping.get("BatchSize", 10))
        window = float(mapping.get("MaximumBatchingWindowInSeconds", 0))
        deadline = time.monotonic() + window
        messages: list[dict[str, Any]] = []
        # By id: a message whose visibility timeout ends inside the batching window is
        # received again; the batch holds it once, with its newest receipt handle.
        batch: dict[str, dict[str, Any]] = {}
        while len(batch) < batch_size and not self._stopping.is_set():
            received = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(SQS_MAX_RECEIVE, batch_size - len(batch)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            arrived = [m for m in received if m["MessageId"] not in batch]
            batch.update((message["MessageId"], message) for message in received)
            messages = list(batch.values())
            if not arrived and (not messages or time.monotonic() >= deadline):
                break
            if not arrived:
                self._stopping.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        if not messages:
            return
        if self._stopping.is_set():
            # Stopped while filling the batch: the messages come back after their visibility
            # timeout, as when Lambda disables a mapping mid-poll.
            return
        records = [sqs_record(message, queue_arn, region) for message in messages]
        event = {"Records": records}
        error, failed = None, tuple(m["MessageId"] for m in messages)
        try:
            invocation = self.runner.invoke(mapping["FunctionArn"], event)
            error, failed = _batch_outcome(invocation, mapping, messages)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        self._record(
            Delivery(
                "sqs",
                queue_arn,
                mapping["FunctionArn"],
                event,
                1,
                not failed and error is None,
                error,
                failed,
            )
        )


def _batch_outcome(
    invocation: Invocation, mapping: Mapping[str, Any], messages: list[dict[str, Any]]
) -> tuple[str | None, tuple[str, ...]]:
    """(error, ids of the messages that failed) of one batch, as Lambda's poller judges it."""
    every_id = tuple(m["MessageId"] for m in messages)
    if not invocation.succeeded:
        return f"{invocation.error_type}: {invocation.payload}", every_id
    if "ReportBatchItemFailures" not in (mapping.get("FunctionResponseTypes") or []):
        return None, ()
    payload = invocation.payload if isinstance(invocation.payload, dict) else {}
    failures = payload.get("batchItemFailures") or []
    ids = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier not in every_id:
            # Lambda takes a response naming an unknown (or no) id as a failure of the batch.
            return f"batchItemFailures names {identifier!r}", every_id
        ids.append(identifier)
    return None, tuple(ids)


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS message as Lambda puts it in an event's `Records`."""
    attributes = message.get("MessageAttributes") or {}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType"),
            }
            for name, value in attributes.items()
        },
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
