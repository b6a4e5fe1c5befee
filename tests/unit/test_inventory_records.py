"""Pure transforms of the sync: DRS record (+ EC2) -> inventory item."""

from __future__ import annotations

import json
from decimal import Decimal

from boto3.dynamodb.types import TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from inventory_sync.models import Scope
from inventory_sync.records import (
    MAX_ITEM_BYTES,
    NEVER_LAUNCHED,
    dynamodb_safe,
    ec2_origin,
    ec2_summary,
    inventory_item,
    tags_map,
)
from inventory_sync.store import from_attribute_map, to_attribute_map, to_attribute_value

SCOPE = Scope("111122223333", "us-east-1")
SYNC_TIME = "2026-11-26T08:00:00.000Z"


def drs_record(**overrides):
    record = {
        "sourceServerID": "s-1234567890abcdef0",
        "arn": "arn:aws:drs:us-east-1:111122223333:source-server/s-1234567890abcdef0",
        "tags": {"Application": "billing", "Tier": "db"},
        "lastLaunchResult": "NOT_STARTED",
        "dataReplicationInfo": {"dataReplicationState": "CONTINUOUS", "lagDuration": "PT1S"},
        "lifeCycle": {"addedToServiceDateTime": "2026-01-01T00:00:00Z"},
        "sourceProperties": {
            "identificationHints": {"hostname": "db01", "awsInstanceID": "i-0abc"},
            "ramBytes": 17179869184,
            "cpus": [{"cores": 4, "modelName": "x"}],
        },
        "sourceCloudProperties": {"originAccountID": "444455556666", "originRegion": "eu-west-1"},
        "stagingArea": {"status": "NOT_EXTENDED"},
    }
    record.update(overrides)
    return record


def test_item_carries_the_contract_attributes() -> None:
    ec2 = {"instanceId": "i-0abc", "instanceState": "running"}
    item = inventory_item(drs_record(), SCOPE, SYNC_TIME, ec2)
    assert item["sourceServerArn"].endswith("s-1234567890abcdef0")
    assert item["sourceServerID"] == "s-1234567890abcdef0"
    assert (item["accountId"], item["region"]) == ("111122223333", "us-east-1")
    assert item["lastSyncTime"] == SYNC_TIME
    assert item["hostname"] == "db01"
    assert item["replicationState"] == "CONTINUOUS"
    assert item["lifeCycleState"] == NEVER_LAUNCHED
    assert item["sourceAccountId"] == "444455556666"
    assert item["sourceRegion"] == "eu-west-1"
    assert item["sourceInstanceId"] == "i-0abc"
    assert item["tags"] == {"Application": "billing", "Tier": "db"}
    assert item["ec2"] == ec2
    assert item["drs"]["sourceProperties"]["ramBytes"] == 17179869184
    assert "deletedAt" not in item and "expiresAt" not in item


def test_on_premises_server_has_no_ec2_fields() -> None:
    record = drs_record(
        sourceCloudProperties=None,
        sourceProperties={"identificationHints": {"fqdn": "db01.corp", "vmWareUuid": "4212"}},
    )
    del record["sourceCloudProperties"]
    item = inventory_item(record, SCOPE, SYNC_TIME, None)
    assert ec2_origin(record) is None
    assert item["hostname"] == "db01.corp"
    for absent in ("ec2", "sourceAccountId", "sourceRegion", "sourceInstanceId"):
        assert absent not in item


def test_life_cycle_state_is_the_last_launch_status() -> None:
    record = drs_record(lifeCycle={"lastLaunch": {"status": "LAUNCHED"}})
    assert inventory_item(record, SCOPE, SYNC_TIME, None)["lifeCycleState"] == "LAUNCHED"


def test_ec2_origin_and_summary() -> None:
    assert ec2_origin(drs_record()) == ("444455556666", "eu-west-1", "i-0abc")
    instance = {
        "InstanceId": "i-0abc",
        "State": {"Name": "running"},
        "VpcId": "vpc-1",
        "SubnetId": "subnet-1",
        "PrivateIpAddress": "10.0.0.5",
        "SecurityGroups": [{"GroupId": "sg-1", "GroupName": "a"}, {"GroupId": "sg-2"}],
        "IamInstanceProfile": {"Arn": "arn:aws:iam::444455556666:instance-profile/p"},
        "Tags": [{"Key": "Name", "Value": "db01"}],
    }
    assert ec2_summary(instance) == {
        "instanceId": "i-0abc",
        "instanceState": "running",
        "vpcId": "vpc-1",
        "subnetId": "subnet-1",
        "privateIp": "10.0.0.5",
        "securityGroupIds": ["sg-1", "sg-2"],
        "instanceProfileArn": "arn:aws:iam::444455556666:instance-profile/p",
        "tags": {"Name": "db01"},
    }


def test_tags_map_accepts_both_shapes() -> None:
    assert tags_map({"a": "1"}) == {"a": "1"}
    assert tags_map([{"Key": "a", "Value": "1"}, {"Key": "b"}]) == {"a": "1", "b": ""}
    assert tags_map(None) == {}


def test_oversized_record_is_trimmed_not_rejected() -> None:
    disks = [{"deviceName": f"/dev/sd{i}", "bytes": 10**12, "pad": "x" * 1000} for i in range(500)]
    record = drs_record(
        sourceProperties={"identificationHints": {"hostname": "big"}, "disks": disks}
    )
    item = inventory_item(record, SCOPE, SYNC_TIME, None)
    assert len(json.dumps(item, default=str)) <= MAX_ITEM_BYTES
    assert item["drsTruncated"] is True
    assert item["hostname"] == "big"
    assert "sourceProperties" not in item["drs"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**62), 2**62)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False, width=32),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_dynamodb_safe_values_always_serialise(value) -> None:
    safe = dynamodb_safe(value)
    TypeSerializer().serialize(safe)  # raises on float or unsupported types


@given(
    tags=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=5),
    extra=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3),
)
def test_item_round_trips_through_dynamodb_types(tags, extra) -> None:
    record = drs_record(tags=tags, **{"agentVersion": "1.0"})
    record["sourceProperties"] = {
        **record["sourceProperties"],
        **{"x" + k: v for k, v in extra.items()},
    }
    item = inventory_item(record, SCOPE, SYNC_TIME, None)
    back = from_attribute_map(to_attribute_map(item))
    assert back == item
    assert back["tags"] == tags
    assert all(not isinstance(v, float) for v in _leaves(back))


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def test_floats_become_decimals() -> None:
    assert dynamodb_safe({"a": [1.5]}) == {"a": [Decimal("1.5")]}


@given(json_values)
def test_fast_attribute_values_match_boto3s_type_serializer(value) -> None:
    safe = dynamodb_safe(value)
    assert to_attribute_value(safe) == TypeSerializer().serialize(safe)
