"""The EventBridge events DRS publishes, as PutEvents entries (pure: no AWS calls).

DRS sends its service events to the default bus of the account and region where it runs
(source `aws.drs`, best-effort delivery; EventBridge reference "AWS Elastic Disaster Recovery
events"), and CloudTrail sends its API calls there too, with the service's source and the
detail-type "AWS API Call via CloudTrail". The DRS simulator puts these entries so that the
local EventBridge carries what AWS would; `cfn/target-account-role.yaml` forwards the same
detail-types and event names to the hub (tests check the two agree).

Detail shapes: the service events carry `state` (and `job-id` for a launch result), as the DRS
and MGN event samples show; a CloudTrail event carries the record's fields (eventSource,
eventName, awsRegion, requestParameters, ...). A service event's `resources` holds the source
server's ARN; a CloudTrail event's is empty, its server is in `requestParameters`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

SOURCE = "aws.drs"
EVENT_SOURCE = "drs.amazonaws.com"  # CloudTrail's eventSource for DRS API calls
LAUNCH_RESULT = "DRS Source Server Launch Result"
REPLICATION_STALLED_CHANGE = "DRS Source Server Data Replication Stalled Change"
# The service events the hub refreshes on (forwarded by cfn/target-account-role.yaml). DRS
# also sends these two, left to the full sync and not forwarded: a failback state change
# names a recovery instance (arn:aws:drs:...:recovery-instance/i-...), not a source server,
# and a PIT snapshot (every ~10 minutes per replicating server) changes nothing the
# inventory stores. Neither is emitted by the simulator.
FAILBACK_STATE_CHANGE = "DRS Recovery Instance Failback State Change"
PIT_SNAPSHOT_TAKEN = "DRS PIT Snapshot Taken"
SERVICE_DETAIL_TYPES = (LAUNCH_RESULT, REPLICATION_STALLED_CHANGE)
NOT_FORWARDED_DETAIL_TYPES = (FAILBACK_STATE_CHANGE, PIT_SNAPSHOT_TAKEN)
API_CALL = "AWS API Call via CloudTrail"
# The DRS API calls that change what DescribeSourceServers shows of a server they name by
# sourceServerID or resourceArn: the hub refreshes exactly those servers. CloudTrail also
# records read-only calls, but EventBridge does not deliver those. CreateExtendedSourceServer
# (it names the staging account's server) and UpdateReplicationConfiguration (not in
# DescribeSourceServers) are left to the full sync.
MUTATING_API_CALLS = (
    "DeleteSourceServer",
    "DisconnectSourceServer",
    "MarkAsArchived",
    "RetryDataReplication",
    "StartReplication",
    "StopReplication",
    "TagResource",
    "UntagResource",
)
STALLED = "STALLED"
NOT_STALLED = "NOT_STALLED"
LAUNCH_STATES = (
    "RECOVERY_LAUNCH_SUCCEEDED",
    "RECOVERY_LAUNCH_FAILED",
    "DRILL_LAUNCH_SUCCEEDED",
    "DRILL_LAUNCH_FAILED",
)


def source_server_arn(account_id: str, region: str, source_server_id: str) -> str:
    """arn:aws:drs:REGION:ACCOUNT:source-server/ID (the ARN DRS lists the server with)."""
    return f"arn:aws:drs:{region}:{account_id}:source-server/{source_server_id}"


def _entry(
    detail_type: str, detail: Mapping[str, Any], resources: list[str], when: datetime
) -> dict[str, Any]:
    # PutEvents takes no account or region: EventBridge stamps the caller's.
    return {
        "Source": SOURCE,
        "DetailType": detail_type,
        "Detail": json.dumps(detail, separators=(",", ":")),
        "Resources": resources,
        "Time": when,
    }


def stalled_change(
    account_id: str, region: str, source_server_id: str, stalled: bool, when: datetime | None = None
) -> dict[str, Any]:
    """The entry DRS puts when a server's data replication stalls (or stops being stalled)."""
    detail = {"state": STALLED if stalled else NOT_STALLED}
    arn = source_server_arn(account_id, region, source_server_id)
    return _entry(REPLICATION_STALLED_CHANGE, detail, [arn], when or datetime.now(UTC))


def launch_result(
    account_id: str,
    region: str,
    source_server_id: str,
    state: str,
    job_id: str,
    when: datetime | None = None,
) -> dict[str, Any]:
    """The entry DRS puts when a recovery or drill launch ends. Raises ValueError for a
    `state` outside LAUNCH_STATES."""
    if state not in LAUNCH_STATES:
        raise ValueError(f"launch state must be one of {', '.join(LAUNCH_STATES)}, got {state!r}")
    arn = source_server_arn(account_id, region, source_server_id)
    detail = {"state": state, "job-id": job_id}
    return _entry(LAUNCH_RESULT, detail, [arn], when or datetime.now(UTC))


def api_call(
    account_id: str,
    region: str,
    event_name: str,
    request_parameters: Mapping[str, Any],
    *,
    caller_arn: str | None = None,
    response_elements: Mapping[str, Any] | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    """The entry CloudTrail puts for a DRS management API call (a CloudTrail record as
    `detail`). Raises ValueError for a call EventBridge would not deliver (not mutating)."""
    if event_name not in MUTATING_API_CALLS:
        raise ValueError(f"{event_name} is not a mutating DRS call: EventBridge never sees it")
    moment = when or datetime.now(UTC)
    detail = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole" if caller_arn and ":assumed-role/" in caller_arn else "IAMUser",
            "accountId": account_id,
            "arn": caller_arn or f"arn:aws:iam::{account_id}:user/local",
        },
        "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": EVENT_SOURCE,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": "127.0.0.1",
        "userAgent": "drs-simulator",
        "requestParameters": dict(request_parameters),
        "responseElements": dict(response_elements) if response_elements is not None else None,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account_id,
        "eventCategory": "Management",
    }
    # CloudTrail's events name no resources: the server is in requestParameters
    # (sourceServerID, or resourceArn for TagResource/UntagResource).
    return _entry(API_CALL, detail, [], moment)
