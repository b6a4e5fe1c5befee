"""The DRS events the local simulator emits (scripts/local/drs_events.py) against the rule that
forwards them to the hub (`DrsEventForwardingRule` in cfn/target-account-role.yaml).

The failure feared: the simulator emits an event the rule does not forward (a detail-type or
event name spelled differently on either side), so the local hub hears nothing while the
tests of the refresh pass on hand-made events. Each event is matched twice: by a small
matcher written from EventBridge's pattern rules (what AWS does) and by moto's (what the local
EventBridge does), so a divergence between the two shows too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.events.models import EventPattern

from scripts.local import drs_events, fleet
from scripts.local.drs_simulator import DrsSimulator
from tests.support.cfn import load_template

ACCOUNT, REGION = "111122223333", "us-west-2"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SERVER_ARN = re.compile(r"^arn:aws:drs:[a-z0-9-]+:\d{12}:source-server/s-[0-9a-f]{17}$")


def forwarding_pattern() -> dict[str, Any]:
    rule = load_template("target-account-role.yaml")["Resources"]["DrsEventForwardingRule"]
    return rule["Properties"]["EventPattern"]


def delivered(entry: Mapping[str, Any], account: str = ACCOUNT, region: str = REGION) -> dict:
    """A PutEvents entry as EventBridge hands it to a rule: account and region stamped from
    the caller, `detail` parsed, `time` as ISO-8601 UTC."""
    return {
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": account,
        "time": entry["Time"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(entry["Resources"]),
        "detail": json.loads(entry["Detail"]),
    }


def aws_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge's matching for what the template uses: `$or`, nested objects, and lists of
    exact values (a list value in the event matches when any element does)."""
    for key, wanted in pattern.items():
        if key == "$or":
            if not any(aws_matches(branch, event) for branch in wanted):
                return False
            continue
        if key not in event:
            return False
        value = event[key]
        if isinstance(wanted, Mapping):
            if not isinstance(value, Mapping) or not aws_matches(wanted, value):
                return False
            continue
        assert all(isinstance(w, str | int | float | bool) for w in wanted), (
            f"the template uses a filter this matcher does not know: {wanted}"
        )
        values = value if isinstance(value, list) else [value]
        if not any(v in wanted for v in values):
            return False
    return True


def forwarded(event: Mapping[str, Any]) -> bool:
    """Whether the rule forwards `event`; fails when AWS's rules and moto's disagree."""
    pattern = forwarding_pattern()
    by_aws = aws_matches(pattern, event)
    by_moto = EventPattern(json.dumps(pattern), pattern).matches_event(dict(event))
    assert by_aws == by_moto, f"moto's matcher says {by_moto}, EventBridge's {by_aws}: {event}"
    return by_aws


class CapturingSimulator(DrsSimulator):
    """The simulator with its PutEvents kept in a list (no EventBridge, no network)."""

    def __init__(self) -> None:
        super().__init__(default_account_id=ACCOUNT)
        self.entries: list[dict[str, Any]] = []

    def _put_event(self, account_id: str, region: str, entry: dict[str, Any]) -> None:
        assert (account_id, region) == (ACCOUNT, REGION)
        self.entries.append(entry)


def everything_the_simulator_emits() -> list[dict[str, Any]]:
    """Drive every control change the simulator announces, on one server; the entries."""
    simulator = CapturingSimulator()
    (server,) = fleet.generate_fleet(ACCOUNT, REGION, 1)
    server_id = server["sourceServerID"]
    simulator.add_source_servers(ACCOUNT, REGION, [server])
    simulator.set_replication_state(ACCOUNT, REGION, server_id, "STALLED")
    simulator.set_replication_state(ACCOUNT, REGION, server_id, "CONTINUOUS")
    for state in drs_events.LAUNCH_STATES:
        simulator.launch(ACCOUNT, REGION, server_id, state)
    simulator.tag_source_server(ACCOUNT, REGION, server_id, {"team": "dr"})
    simulator.untag_source_server(ACCOUNT, REGION, server_id, ["team"])
    simulator.disconnect_source_server(ACCOUNT, REGION, server_id)
    assert simulator.delete_source_server(ACCOUNT, REGION, server_id)
    return simulator.entries


EMITTED = everything_the_simulator_emits()


def test_the_simulator_emits_each_kind_of_change_it_models() -> None:
    def kind(entry: dict[str, Any]) -> tuple[str, str]:
        detail = json.loads(entry["Detail"])
        return entry["DetailType"], detail.get("eventName") or detail["state"]

    kinds = {kind(e) for e in EMITTED}
    assert kinds == {
        (drs_events.REPLICATION_STALLED_CHANGE, "STALLED"),
        (drs_events.REPLICATION_STALLED_CHANGE, "NOT_STALLED"),
        *((drs_events.LAUNCH_RESULT, state) for state in drs_events.LAUNCH_STATES),
        (drs_events.API_CALL, "TagResource"),
        (drs_events.API_CALL, "UntagResource"),
        (drs_events.API_CALL, "DisconnectSourceServer"),
        (drs_events.API_CALL, "DeleteSourceServer"),
    }


@pytest.mark.parametrize("entry", EMITTED, ids=lambda e: f"{e['DetailType']}:{e['Detail'][:40]}")
def test_every_event_the_simulator_emits_is_forwarded_to_the_hub(entry: dict[str, Any]) -> None:
    assert forwarded(delivered(entry))


@pytest.mark.parametrize("event_name", drs_events.MUTATING_API_CALLS)
def test_every_mutating_call_drs_events_can_build_is_forwarded(event_name: str) -> None:
    entry = drs_events.api_call(ACCOUNT, REGION, event_name, {"sourceServerID": "s-1"})
    assert forwarded(delivered(entry))


@pytest.mark.parametrize("detail_type", drs_events.SERVICE_DETAIL_TYPES)
def test_every_service_detail_type_is_forwarded(detail_type: str) -> None:
    entry = drs_events.stalled_change(ACCOUNT, REGION, "s-1", stalled=True)
    assert forwarded(delivered({**entry, "DetailType": detail_type}))


@pytest.mark.parametrize("detail_type", drs_events.NOT_FORWARDED_DETAIL_TYPES)
def test_events_that_name_no_source_server_or_change_nothing_stay_in_the_account(
    detail_type: str,
) -> None:
    # A failback state change names a recovery instance; a PIT snapshot changes nothing the
    # hub stores: forwarding either would cost an event, a message and a DescribeSourceServers.
    entry = drs_events.stalled_change(ACCOUNT, REGION, "s-1", stalled=True)
    assert not forwarded(delivered({**entry, "DetailType": detail_type}))


def test_the_template_and_the_module_name_the_same_events() -> None:
    """Both sides of the contract spelled once each; they must list the same names."""
    service, api = forwarding_pattern()["$or"]
    assert set(service["detail-type"]) == set(drs_events.SERVICE_DETAIL_TYPES)
    assert set(api["detail"]["eventName"]) == set(drs_events.MUTATING_API_CALLS)
    assert api["detail"]["eventSource"] == [drs_events.EVENT_SOURCE]


def _stalled_event() -> dict[str, Any]:
    return delivered(drs_events.stalled_change(ACCOUNT, REGION, "s-1", stalled=True))


def _read_call_event() -> dict[str, Any]:
    # CloudTrail records reads too; drs_events refuses to build one, so edit a built event.
    event = delivered(drs_events.api_call(ACCOUNT, REGION, "StartReplication", {}))
    event["detail"] = {**event["detail"], "eventName": "DescribeSourceServers", "readOnly": True}
    return event


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({**_stalled_event(), "source": "aws.mgn"}, id="another source"),
        pytest.param(
            {**_stalled_event(), "detail-type": "DRS Source Server Something Else"},
            id="another DRS detail-type",
        ),
        pytest.param(_read_call_event(), id="a DescribeSourceServers read"),
        pytest.param(
            {
                **_read_call_event(),
                "detail": {
                    **_read_call_event()["detail"],
                    "eventSource": "ec2.amazonaws.com",
                    "eventName": "StartReplication",
                },
            },
            id="a call to another service",
        ),
        pytest.param(
            {**_read_call_event(), "source": "aws.ec2"}, id="CloudTrail from another source"
        ),
    ],
)
def test_the_rule_does_not_forward_what_the_refresh_does_not_need(event: dict) -> None:
    assert not forwarded(event)


def test_a_read_call_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="DescribeSourceServers"):
        drs_events.api_call(ACCOUNT, REGION, "DescribeSourceServers", {})


@pytest.mark.parametrize("entry", EMITTED, ids=lambda e: e["DetailType"])
def test_every_emitted_event_has_the_envelope_eventbridge_delivers(entry: dict) -> None:
    assert isinstance(entry["Time"], datetime) and entry["Time"].utcoffset() is not None
    event = delivered(entry)
    assert event["source"] == "aws.drs"
    assert (event["account"], event["region"]) == (ACCOUNT, REGION)
    assert ISO_Z.match(event["time"])
    assert isinstance(event["detail"], dict)
    assert set(entry) == {"Source", "DetailType", "Detail", "Resources", "Time"}


SERVICE_EVENTS = [e for e in EMITTED if e["DetailType"] in drs_events.SERVICE_DETAIL_TYPES]
API_EVENTS = [e for e in EMITTED if e["DetailType"] == drs_events.API_CALL]


@pytest.mark.parametrize("entry", SERVICE_EVENTS, ids=lambda e: e["DetailType"])
def test_a_service_event_names_the_source_server_in_resources(entry: dict) -> None:
    (arn,) = entry["Resources"]
    assert SERVER_ARN.match(arn)
    assert arn.startswith(f"arn:aws:drs:{REGION}:{ACCOUNT}:source-server/")
    detail = json.loads(entry["Detail"])
    if entry["DetailType"] == drs_events.LAUNCH_RESULT:
        assert detail["state"] in drs_events.LAUNCH_STATES
        assert re.match(r"^drsjob-[0-9a-z]{17}$", detail["job-id"])
    else:
        assert detail == {"state": detail["state"]}
        assert detail["state"] in (drs_events.STALLED, drs_events.NOT_STALLED)


@pytest.mark.parametrize("entry", API_EVENTS, ids=lambda e: json.loads(e["Detail"])["eventName"])
def test_a_cloudtrail_event_names_the_server_in_its_request_parameters(entry: dict) -> None:
    detail = json.loads(entry["Detail"])
    assert entry["Resources"] == []
    assert detail["eventSource"] == drs_events.EVENT_SOURCE == "drs.amazonaws.com"
    assert detail["awsRegion"] == REGION and detail["recipientAccountId"] == ACCOUNT
    assert ISO_Z.match(detail["eventTime"])
    assert detail["readOnly"] is False and detail["eventType"] == "AwsApiCall"
    parameters = detail["requestParameters"]
    if detail["eventName"] in ("TagResource", "UntagResource"):
        assert SERVER_ARN.match(parameters["resourceArn"])
        assert "sourceServerID" not in parameters
    else:
        assert re.match(r"^s-[0-9a-f]{17}$", parameters["sourceServerID"])


def test_the_event_time_and_the_cloudtrail_time_are_the_same_moment() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    entry = drs_events.api_call(
        ACCOUNT, REGION, "StopReplication", {"sourceServerID": "s-1"}, when=when
    )
    assert delivered(entry)["time"] == json.loads(entry["Detail"])["eventTime"]
    assert delivered(entry)["time"] == "2026-01-02T03:04:05Z"


def test_leaving_a_state_other_than_stalled_emits_nothing() -> None:
    simulator = CapturingSimulator()
    (server,) = fleet.generate_fleet(ACCOUNT, REGION, 1)
    simulator.add_source_servers(ACCOUNT, REGION, [server])
    simulator.set_replication_state(ACCOUNT, REGION, server["sourceServerID"], "PAUSED")
    simulator.set_replication_state(ACCOUNT, REGION, server["sourceServerID"], "CONTINUOUS")
    assert simulator.entries == []
