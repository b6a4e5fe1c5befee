"""fleet.py builds DRS SourceServer records in the API's exact shape (pure: no network)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from scripts.local import fleet
from tests.support.drs import drs_shape, member_paths, shape_violations

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "111122223333"
STAGING_ACCOUNT = "444455556666"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def mixed_fleet() -> list[dict]:
    """Every kind at once: EC2-origin (some cross-account), on-premises and extended servers."""
    return fleet.generate_fleet(
        ACCOUNT,
        REGION,
        400,
        ec2_fraction=0.6,
        origin_account_id=OTHER_ACCOUNT,
        extended_fraction=0.1,
        staging_account_ids=[STAGING_ACCOUNT],
        seed=7,
    )


def test_every_generated_server_conforms_to_the_botocore_source_server_shape(mixed_fleet):
    shape = drs_shape("SourceServer")
    # Round-trip through JSON: what the simulator puts on the wire.
    problems = [
        p for server in json.loads(json.dumps(mixed_fleet)) for p in shape_violations(server, shape)
    ]
    assert problems == []


def test_the_fleet_exercises_the_source_server_model(mixed_fleet):
    shape = drs_shape("SourceServer")
    seen = set().union(*(member_paths(server, shape) for server in mixed_fleet))
    # sourceNetworkID (source-network replication) is the one member no generated kind uses.
    assert set(shape.members) - {"sourceNetworkID"} - seen <= {"reversedDirectionSourceServerArn"}
    for path in (
        "sourceProperties.identificationHints.awsInstanceID",
        "sourceProperties.identificationHints.vmWareUuid",
        "sourceCloudProperties.originAccountID",
        "stagingArea.stagingSourceServerArn",
        "dataReplicationInfo.replicatedDisks[].backloggedStorageBytes",
        "dataReplicationInfo.dataReplicationInitiation.steps[].status",
        "dataReplicationInfo.dataReplicationError.error",
        "lifeCycle.lastLaunch.initiated.jobID",
    ):
        assert path in seen


def test_generation_is_deterministic_in_the_seed():
    first = fleet.generate_fleet(ACCOUNT, REGION, 20, seed=3)
    assert fleet.generate_fleet(ACCOUNT, REGION, 20, seed=3) == first
    assert fleet.generate_fleet(ACCOUNT, REGION, 20, seed=4) != first


def test_ids_and_arns_are_unique_and_well_formed(mixed_fleet):
    ids = [server["sourceServerID"] for server in mixed_fleet]
    assert len(set(ids)) == len(ids)
    for server in mixed_fleet:
        assert re.fullmatch(r"s-[0-9a-f]{17}", server["sourceServerID"])
        assert server["arn"] == (
            f"arn:aws:drs:{REGION}:{ACCOUNT}:source-server/{server['sourceServerID']}"
        )


def test_kinds_follow_the_fractions(mixed_fleet):
    ec2 = [s for s in mixed_fleet if "sourceCloudProperties" in s]
    on_prem = [s for s in mixed_fleet if "sourceCloudProperties" not in s]
    extended = [s for s in mixed_fleet if s["stagingArea"]["status"] == "EXTENDED"]
    assert len(ec2) == 240
    assert len(extended) == 40
    for server in ec2:
        hints = server["sourceProperties"]["identificationHints"]
        assert hints["awsInstanceID"].startswith("i-")
        assert "vmWareUuid" not in hints
        assert server["sourceCloudProperties"]["originAccountID"] == OTHER_ACCOUNT
        assert server["sourceCloudProperties"]["originRegion"] == REGION
    for server in on_prem:
        assert "awsInstanceID" not in server["sourceProperties"]["identificationHints"]
    for server in extended:
        staging = server["stagingArea"]
        assert staging["stagingAccountID"] == STAGING_ACCOUNT
        assert f":{STAGING_ACCOUNT}:source-server/s-" in staging["stagingSourceServerArn"]


def test_supplied_instance_ids_are_used_one_server_each():
    ids = ["i-0123456789abcdef0", "i-0123456789abcdef1", "i-0123456789abcdef2"]
    servers = fleet.generate_fleet(ACCOUNT, REGION, 5, ec2_instance_ids=ids)
    used = [s["sourceProperties"]["identificationHints"].get("awsInstanceID") for s in servers]
    assert used == [*ids, None, None]


def test_mapped_origins_span_accounts_and_regions():
    origins = {
        "i-00000000000000001": fleet.Ec2Origin(
            OTHER_ACCOUNT, "us-west-2", "us-west-2b", "10.1.2.3"
        ),
        "i-00000000000000002": fleet.Ec2Origin(ACCOUNT, REGION),
    }
    servers = fleet.generate_fleet(ACCOUNT, REGION, 2, ec2_instance_ids=origins)
    cloud = servers[0]["sourceCloudProperties"]
    assert cloud == {
        "originAccountID": OTHER_ACCOUNT,
        "originRegion": "us-west-2",
        "originAvailabilityZone": "us-west-2b",
    }
    assert servers[0]["sourceProperties"]["networkInterfaces"][0]["ips"] == ["10.1.2.3"]
    assert servers[0]["sourceProperties"]["identificationHints"]["hostname"] == "ip-10-1-2-3"
    assert servers[1]["sourceCloudProperties"]["originAccountID"] == ACCOUNT


def test_explicit_fraction_tops_up_supplied_ids_with_synthetic_ones():
    servers = fleet.generate_fleet(
        ACCOUNT, REGION, 10, ec2_instance_ids=["i-0123456789abcdef0"], ec2_fraction=0.5
    )
    hints = [s["sourceProperties"]["identificationHints"] for s in servers]
    assert hints[0]["awsInstanceID"] == "i-0123456789abcdef0"
    assert sum("awsInstanceID" in h for h in hints) == 5


@pytest.mark.parametrize("state", fleet.REPLICATION_STATES)
def test_each_replication_state_conforms(state):
    server = fleet.make_source_server(ACCOUNT, REGION, replication_state=state, index=1)
    assert server["dataReplicationInfo"]["dataReplicationState"] == state
    assert shape_violations(server, drs_shape("SourceServer")) == []


def test_replication_states_are_exactly_the_models_enum():
    assert set(fleet.REPLICATION_STATES) == set(drs_shape("DataReplicationState").enum)


def test_make_source_server_options():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    server = fleet.make_source_server(
        ACCOUNT,
        "eu-west-1",
        instance_id="i-0abc0abc0abc0abc0",
        hostname="db-1",
        tags={"Team": "dr"},
        replication_direction="FAILBACK",
        now=now,
    )
    assert server["tags"] == {"Team": "dr"}
    assert server["sourceProperties"]["identificationHints"]["fqdn"] == (
        "db-1.eu-west-1.compute.internal"
    )
    assert server["sourceProperties"]["lastUpdatedDateTime"] < "2026-01-02T03:04:05"
    assert server["reversedDirectionSourceServerArn"].startswith(
        f"arn:aws:drs:eu-west-1:{ACCOUNT}:source-server/s-"
    )
    assert shape_violations(server, drs_shape("SourceServer")) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"account_id": "12345"},
        {"origin_account_id": "abc"},
        {"replication_state": "SLEEPING"},
        {"replication_direction": "SIDEWAYS"},
    ],
)
def test_make_source_server_rejects_bad_input(kwargs):
    args = {"account_id": ACCOUNT, "region": REGION, **kwargs}
    with pytest.raises(ValueError):
        fleet.make_source_server(**args)


def test_generate_fleet_rejects_extended_servers_without_staging_accounts():
    with pytest.raises(ValueError, match="staging_account_ids"):
        fleet.generate_fleet(ACCOUNT, REGION, 10, extended_fraction=0.5)


def test_ec2_origins_reads_run_instances_output():
    instances = [
        {
            "InstanceId": "i-0aaaaaaaaaaaaaaaa",
            "Placement": {"AvailabilityZone": "us-east-1c"},
            "PrivateIpAddress": "10.0.0.9",
            "PrivateDnsName": "ip-10-0-0-9.ec2.internal",
            "Tags": [{"Key": "App", "Value": "crm"}],
        }
    ]
    origin = fleet.ec2_origins(instances, ACCOUNT, REGION)["i-0aaaaaaaaaaaaaaaa"]
    assert origin == fleet.Ec2Origin(
        ACCOUNT, REGION, "us-east-1c", "10.0.0.9", "ip-10-0-0-9", {"App": "crm"}
    )


def test_durations_and_timestamps_use_the_models_iso_formats():
    assert fleet._duration(0) == "PT0S"
    assert fleet._duration(3) == "PT3S"
    assert fleet._duration(86_400 * 2 + 3_600 + 5) == "P2DT1H5S"
    assert fleet._duration(86_400) == "P1D"
    assert fleet._iso(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2025-01-02T03:04:05.000000Z"


# ---- churn: one schedule interval ---------------------------------------------------------


def _scoped(servers: list[dict]) -> dict[tuple[str, str], list[dict]]:
    return {(ACCOUNT, REGION): servers}


def test_churned_servers_still_conform_to_the_source_server_shape(mixed_fleet):
    shape = drs_shape("SourceServer")
    now = fleet.DEFAULT_NOW
    servers = mixed_fleet
    for interval in range(1, 4):
        now = now.replace(minute=15 * interval)
        plan = fleet.plan_churn(_scoped(servers), interval=interval, now=now, seed=3)
        servers = plan.updated[(ACCOUNT, REGION)] + plan.added.get((ACCOUNT, REGION), [])
        problems = [
            p for server in json.loads(json.dumps(servers)) for p in shape_violations(server, shape)
        ]
        assert problems == []


def test_churn_moves_every_reporting_servers_volatile_fields_and_nothing_stable(mixed_fleet):
    now = fleet.DEFAULT_NOW.replace(minute=15)
    plan = fleet.plan_churn(
        _scoped(mixed_fleet), interval=1, now=now, state_fraction=0, replace_fraction=0
    )
    after = plan.updated[(ACCOUNT, REGION)]
    assert plan.state_changed == plan.replaced == 0 and len(after) == len(mixed_fleet)

    def stable(server: dict) -> dict:
        copy = json.loads(json.dumps(server))
        copy["lifeCycle"].pop("lastSeenByServiceDateTime", None)
        info = copy["dataReplicationInfo"]
        info.pop("lagDuration", None)
        info.pop("etaDateTime", None)
        for disk in info["replicatedDisks"]:
            for name in (
                "backloggedStorageBytes",
                "replicatedStorageBytes",
                "rescannedStorageBytes",
            ):
                disk.pop(name)
        return copy

    silent = {"DISCONNECTED", "PAUSED", "STOPPED"}
    for before, moved in zip(mixed_fleet, after, strict=True):
        assert stable(moved) == stable(before)
        state = before["dataReplicationInfo"]["dataReplicationState"]
        assert moved["dataReplicationInfo"]["dataReplicationState"] == state
        if state in silent:
            assert moved == before
            continue
        seen = moved["lifeCycle"]["lastSeenByServiceDateTime"]
        assert seen > before["lifeCycle"]["lastSeenByServiceDateTime"]
        if state == "CONTINUOUS":
            lag = moved["dataReplicationInfo"]["lagDuration"]
            assert re.fullmatch(r"PT([1-5]?[0-9]S|1M)|PT0S", lag), lag
    assert plan.volatile_moved == sum(
        s["dataReplicationInfo"]["dataReplicationState"] not in silent for s in mixed_fleet
    )


def test_churn_changes_states_and_replaces_on_premises_servers_in_place(mixed_fleet):
    now = fleet.DEFAULT_NOW.replace(minute=15)
    plan = fleet.plan_churn(
        _scoped(mixed_fleet), interval=1, now=now, state_fraction=0.05, replace_fraction=0.01
    )
    scope = (ACCOUNT, REGION)
    assert plan.state_changed == round(400 * 0.05) and plan.replaced == 4
    before = {s["sourceServerID"]: s for s in mixed_fleet}
    changed = [
        s
        for s in plan.updated[scope]
        if s["dataReplicationInfo"]["dataReplicationState"]
        != before[s["sourceServerID"]]["dataReplicationInfo"]["dataReplicationState"]
    ]
    assert len(changed) == plan.state_changed
    # Replacements keep the scope's size; the removed and the added are on-premises only.
    assert len(plan.updated[scope]) + len(plan.added[scope]) == len(mixed_fleet)
    for server_id in plan.removed[scope]:
        assert "vmWareUuid" in before[server_id]["sourceProperties"]["identificationHints"]
    added_ids = {s["sourceServerID"] for s in plan.added[scope]}
    assert len(added_ids) == 4 and not added_ids & set(before)
    # Deterministic in its arguments.
    again = fleet.plan_churn(
        _scoped(mixed_fleet), interval=1, now=now, state_fraction=0.05, replace_fraction=0.01
    )
    assert again.updated == plan.updated and again.added == plan.added
