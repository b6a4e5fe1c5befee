"""DRS events, as EventBridge delivers them through the hub's SQS queue, -> refresh requests.

The hub bus's rule puts every DRS event forwarded from a target account (source `aws.drs`,
and DRS API calls recorded by CloudTrail) on one SQS queue; Lambda's event source mapping
hands the function batches of its messages (`{"Records": [{"messageId", "body", ...}]}`).
This module turns each record into the source server(s) it is about, runs ONE refresh for
the whole batch (so a burst becomes one DescribeSourceServers per account and region), and
answers in Lambda's partial-batch shape: `{"batchItemFailures": [{"itemIdentifier": id}]}`
names the records whose refresh failed, so SQS redelivers only those.

Which records are retried (the queue's redrive policy sends a message to the DLQ after 5
receives):
- a record whose scope's refresh failed (DRS throttled or refused, the role could not be
  assumed, the table refused a write) before all of its servers were refreshed: reported,
  retried; a later delivery reads DRS again. A record whose servers were all written (or
  found unchanged, or gone) before its scope failed is not reported.
  Lambda leaves a reported record invisible for the rest of the queue's visibility timeout
  (960 s: longer than the function may run); each is made visible again sooner, after
  RETRY_SECONDS x its receive count (30 s, 60 s, ... at most 900 s), so a throttled scope
  is read again within a minute, and a message that keeps failing reaches the DLQ in
  minutes, not hours. If that call fails, the record simply comes back later.
- a record whose servers the refresh had not finished when its deadline came (a hung DRS,
  DynamoDB or EventBridge call; see refresh.py): reported, retried. The invocation returns
  before Lambda's timeout, so SQS deletes the records that were done instead of
  redelivering the whole batch after a timeout.
- a record that can never be attributed (a body that is not JSON, not an `aws.drs` /
  drs.amazonaws.com event, a detail-type that names no source server, an account that is
  not registered, a region this function does not sync): NOT reported. It is counted
  (`counts.unattributed`, metric RefreshEventsUnattributed) and logged with its messageId,
  and deleted with the batch: retrying it five times would only move it to the DLQ and
  alarm for an event that carries nothing to do. The next full sync covers whatever it was.

A refreshed record of an API call DRS carries out over time (StartReplication,
StopReplication, DisconnectSourceServer, RetryDataReplication: ASYNC_API_CALLS) may have
read a state on its way; its event is put back on the queue once, delayed
REREAD_DELAY_SECONDS and marked, so the server is read again when the state has moved on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inventory_sync.refresh import OPERATION, ServerRef, refresh_batch
from shared.aws import ClientFactory, make_config
from shared.observability import get_logger
from shared.validation import ACCOUNT_ID, REGION, SOURCE_SERVER_ARN, SOURCE_SERVER_ID

logger = get_logger("data-management-handler")

DRS_SOURCE = "aws.drs"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
DRS_EVENT_SOURCE = "drs.amazonaws.com"
# DRS API calls that change a source server, as CloudTrail names them.
SERVER_API_CALLS = frozenset(
    {
        "DeleteSourceServer",
        "DisconnectSourceServer",
        "MarkAsArchived",
        "StartReplication",
        "StopReplication",
        "RetryDataReplication",
        "TagResource",
        "UntagResource",
    }
)
# DRS's own events whose `resources` hold a source server's ARN. (Recovery-instance and
# source-network events name other resources: unattributed here, the full sync covers them.)
SERVER_DETAIL_TYPES = frozenset(
    {
        "DRS Source Server Launch Result",
        "DRS Source Server Data Replication Stalled Change",
        # Left to the full sync: "DRS Recovery Instance Failback State Change" names a
        # recovery instance, and "DRS PIT Snapshot Taken" (every ~10 minutes per replicating
        # server) changes nothing the inventory stores. Neither is forwarded (the templates).
    }
)
# Calls whose effect DRS applies over time: the refresh on their event may read a state on
# its way (INITIATING, STOPPING), and no event follows when it gets there.
ASYNC_API_CALLS = frozenset(
    {"StartReplication", "StopReplication", "DisconnectSourceServer", "RetryDataReplication"}
)
REREAD_DELAY_SECONDS = 120  # their event comes back once, this much later (SQS DelaySeconds)
REREAD_MARK = "drsOrchestrationRereadOf"  # on the event put back: never put back again
RETRY_SECONDS = 30  # a failed record is visible again after this x its receive count
MAX_RETRY_SECONDS = 900
MAX_BODY_CHARS = 256 * 1024  # SQS's message size limit: anything longer is not ours


@dataclass(frozen=True)
class Unattributed:
    """A record that names no source server this function can refresh, and why."""

    reason: str


def is_sqs_batch(event: Any) -> bool:
    """Whether `event` is an SQS batch from Lambda's event source mapping."""
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and "operation" not in event
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
        and bool(records)
    )


def servers_of_event(event: Any) -> list[ServerRef] | Unattributed:
    """The source servers one EventBridge event (already parsed from JSON) is about.

    A DRS service event names them in `resources` (source-server ARNs); a CloudTrail API
    call in `detail.requestParameters` (`sourceServerID`, or `resourceArn` for tag calls).
    A server's ARN must name the event's own account and region (an event of one account
    never makes the hub read another's). Returns Unattributed (with the reason) otherwise.
    """
    if not isinstance(event, dict):
        return Unattributed("event is not a JSON object")
    if not ACCOUNT_ID.matches(event.get("account")) or not REGION.matches(event.get("region")):
        return Unattributed("event has no valid account and region")
    account, region = str(event["account"]), str(event["region"])
    when = event.get("time") if isinstance(event.get("time"), str) else None
    event_id = str(event.get("id") or "")[:128]
    raw_detail = event.get("detail")
    detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
    detail_type = event.get("detail-type")
    ids: list[str] = []
    # CloudTrail-delivered calls carry source aws.drs too: their detail-type tells them apart.
    if detail_type == CLOUDTRAIL_DETAIL_TYPE and detail.get("eventSource") == DRS_EVENT_SOURCE:
        name = detail.get("eventName")
        if name not in SERVER_API_CALLS:
            return Unattributed(f"API call {str(name)[:80]!r} changes no source server")
        request = detail.get("requestParameters")
        request = request if isinstance(request, dict) else {}
        server_id = request.get("sourceServerID")
        if SOURCE_SERVER_ID.matches(server_id):
            ids.append(str(server_id))
        else:
            found = _id_in_scope(request.get("resourceArn"), account, region)
            if found is not None:
                ids.append(found)
    elif event.get("source") == DRS_SOURCE:
        if detail_type not in SERVER_DETAIL_TYPES:
            return Unattributed(f"detail-type {str(detail_type)[:80]!r} names no source server")
        resources = event.get("resources")
        for arn in resources if isinstance(resources, list) else []:
            server_id = _id_in_scope(arn, account, region)
            if server_id is not None:
                ids.append(server_id)
    else:
        return Unattributed("not a DRS event")
    if not ids:
        return Unattributed("event names no source server of its own account and region")
    return [ServerRef(account, region, sid, when, event_id) for sid in dict.fromkeys(ids)]


def _id_in_scope(arn: Any, account: str, region: str) -> str | None:
    match = SOURCE_SERVER_ARN.regex.fullmatch(arn) if SOURCE_SERVER_ARN.matches(arn) else None
    if match is None or (match["account"], match["region"]) != (account, region):
        return None
    return match["id"]


def servers_of_record(record: Any) -> list[ServerRef] | Unattributed:
    """The source servers one SQS record's body (an EventBridge event as JSON) is about."""
    body = record.get("body") if isinstance(record, dict) else None
    if not isinstance(body, str) or len(body) > MAX_BODY_CHARS:
        return Unattributed("record has no body")
    try:
        event = json.loads(body)
    except ValueError:
        return Unattributed("body is not JSON")
    return servers_of_event(event)


def handle_sqs_batch(
    event: dict[str, Any], context: Any = None, **refresh_options: Any
) -> dict[str, Any]:
    """Refresh the servers a batch of SQS records names; answer Lambda's partial-batch shape.

    Returns `{"batchItemFailures": [...], "refresh": <the refresh's result>}` (Lambda reads
    only batchItemFailures). `refresh_options` go to `refresh_batch` (tests inject clients).
    Never raises for one bad record; an error outside the refresh (its configuration) goes up
    and the whole batch is retried.
    """
    # Every line of the batch's work names its operation; removed when it ends, so a later
    # invocation in the same environment (a sync) never logs it.
    logger.append_keys(operation=OPERATION)
    try:
        return _handle_records(event["Records"], context, refresh_options)
    finally:
        logger.remove_keys(["operation"])


def _handle_records(
    records: list[Any], context: Any, refresh_options: dict[str, Any]
) -> dict[str, Any]:
    by_message: dict[str, list[ServerRef]] = {}
    unattributed = 0
    for index, record in enumerate(records):
        message_id = str(record.get("messageId") or f"#{index}")
        found = servers_of_record(record)
        if isinstance(found, Unattributed):
            unattributed += 1
            logger.warning(
                "DRS event ignored", extra={"messageId": message_id, "reason": found.reason}
            )
            continue
        by_message.setdefault(message_id, []).extend(found)
    refs = [ref for refs in by_message.values() for ref in refs]
    outcome = refresh_batch(refs, context, unattributed=unattributed, **refresh_options)
    # A message is delivered again when one of its servers was not refreshed (its scope
    # failed, or the deadline came first); one whose servers were all refreshed is not.
    failed = sorted(
        message_id
        for message_id, message_refs in by_message.items()
        if not all(outcome.refreshed(ref) for ref in message_refs)
    )
    _retry_soon(
        [r for r in records if isinstance(r, dict) and r.get("messageId") in failed],
        refresh_options,
    )
    _read_again_later(
        [r for r in records if isinstance(r, dict) and r.get("messageId") not in failed],
        refresh_options,
    )
    return {
        "batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed],
        "refresh": outcome.result,
    }


def _read_again_later(records: list[dict[str, Any]], refresh_options: dict[str, Any]) -> None:
    """For each refreshed record of an API call whose effect DRS applies over time
    (ASYNC_API_CALLS), put its event back on the queue once, delayed REREAD_DELAY_SECONDS
    and marked (REREAD_MARK), so the server is read again after the state has moved on."""
    later = [(r, e) for r in records if (e := _async_call_event(r)) is not None]
    if not later:
        return
    factory = refresh_options.get("factory") or ClientFactory(config=make_config())
    for record, event in later:
        try:
            sqs, url = _queue(record, factory)
            sqs.send_message(
                QueueUrl=url,
                MessageBody=json.dumps({**event, REREAD_MARK: record.get("messageId") or "?"}),
                DelaySeconds=REREAD_DELAY_SECONDS,
            )
        except (ClientError, BotoCoreError, KeyError, ValueError) as exc:
            logger.warning(
                "second read not scheduled",
                extra={"messageId": record.get("messageId"), "error": str(exc)},
            )


def _async_call_event(record: dict[str, Any]) -> dict[str, Any] | None:
    """The record's event when it is a first delivery of an ASYNC_API_CALLS call."""
    try:
        event = json.loads(record.get("body") or "")
    except (TypeError, ValueError):
        return None
    if not isinstance(event, dict) or event.get(REREAD_MARK):
        return None
    detail = event.get("detail")
    if event.get("detail-type") != CLOUDTRAIL_DETAIL_TYPE or not isinstance(detail, dict):
        return None
    return event if detail.get("eventName") in ASYNC_API_CALLS else None


def _retry_soon(records: list[dict[str, Any]], refresh_options: dict[str, Any]) -> None:
    """Make each failed record visible again after RETRY_SECONDS x its receive count."""
    if not records:
        return
    factory = refresh_options.get("factory") or ClientFactory(config=make_config())
    for record in records:
        try:
            sqs, url = _queue(record, factory)
            received = int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
            sqs.change_message_visibility(
                QueueUrl=url,
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=min(MAX_RETRY_SECONDS, RETRY_SECONDS * max(1, received)),
            )
        except (ClientError, BotoCoreError, KeyError, ValueError) as exc:
            logger.warning(
                "failed record left to its visibility timeout",
                extra={"messageId": record.get("messageId"), "error": str(exc)},
            )


def _queue(record: dict[str, Any], factory: ClientFactory) -> tuple[Any, str]:
    """An SQS client and the URL of the queue the record came from (its eventSourceARN)."""
    parts = str(record["eventSourceARN"]).split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not a queue ARN: {record['eventSourceARN']!r}")
    region, account, name = parts[3], parts[4], parts[5]
    sqs = factory.client("sqs", region)
    url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return sqs, str(url)
