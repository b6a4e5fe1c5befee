"""Realistic, deterministic DRS source-server fleets for the simulator, tests and benchmarks.

Every record is a `SourceServer` exactly as DRS's DescribeSourceServers returns it (only fields
that exist in botocore's `drs` model; timestamps and durations as the ISO-8601 strings the model
declares). Three kinds are produced:

- EC2-origin: `identificationHints.awsInstanceID` + `sourceCloudProperties` naming the origin
  account/region/AZ; the origin account may differ from the DRS account (cross-account DR).
- on-premises: `identificationHints.vmWareUuid`, no `sourceCloudProperties`.
- extended: `stagingArea.status == "EXTENDED"` with the staging account's source-server ARN.

Records depend only on their arguments (seed, account, region, index, ...), never on the clock
or on process-wide randomness, so a fleet can be rebuilt anywhere for comparison.

moto assigns EC2 instance ids itself, so fleets that must match real (moto) instances are built
in two steps: `create_ec2_instances` first, then `generate_fleet(ec2_instance_ids=...)`.

Churn (`move_volatile`, `change_replication_state`, `plan_churn`) models one schedule interval
of a live estate: agents report in, lag and backlog move a little on every replicating
server, a few servers change replication state, and a few are decommissioned and replaced.
The results stay in the model's shape, like every generated record.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# A fixed "now" keeps generated records reproducible; pass `now=` for wall-clock realism.
DEFAULT_NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)

# moto ships this AMI in every region (moto.ec2.utils.EXAMPLE_AMI_ID); real accounts need their own.
MOTO_EXAMPLE_AMI_ID = "ami-12c6146b"

# DataReplicationState values from the model, weighted like a healthy organisation: mostly
# CONTINUOUS, with a tail of syncing, lagging and broken replication.
REPLICATION_STATE_WEIGHTS: dict[str, float] = {
    "CONTINUOUS": 0.82,
    "INITIAL_SYNC": 0.05,
    "INITIATING": 0.02,
    "BACKLOG": 0.03,
    "RESCAN": 0.01,
    "CREATING_SNAPSHOT": 0.01,
    "STALLED": 0.03,
    "DISCONNECTED": 0.02,
    "PAUSED": 0.005,
    "STOPPED": 0.005,
}
REPLICATION_STATES = tuple(REPLICATION_STATE_WEIGHTS)

_LAUNCH_RESULT_WEIGHTS = {"NOT_STARTED": 0.75, "SUCCEEDED": 0.2, "FAILED": 0.04, "PENDING": 0.01}

_INITIATION_STEPS = (
    "WAIT",
    "CREATE_SECURITY_GROUP",
    "LAUNCH_REPLICATION_SERVER",
    "BOOT_REPLICATION_SERVER",
    "AUTHENTICATE_WITH_SERVICE",
    "DOWNLOAD_REPLICATION_SOFTWARE",
    "CREATE_STAGING_DISKS",
    "ATTACH_STAGING_DISKS",
    "PAIR_REPLICATION_SERVER_WITH_AGENT",
    "CONNECT_AGENT_TO_REPLICATION_SERVER",
    "START_DATA_TRANSFER",
)

# (os.fullString, is_windows, cpu model)
_OPERATING_SYSTEMS = (
    ("Amazon Linux 2 (Karoo) 5.10.205-195.807.amzn2.x86_64", False, "Intel(R) Xeon(R) Platinum"),
    ("Amazon Linux 2023 6.1.66-91.160.amzn2023.x86_64", False, "Intel(R) Xeon(R) Platinum"),
    ("Red Hat Enterprise Linux 8.8 (Ootpa) 4.18.0-477.el8.x86_64", False, "AMD EPYC 7R13"),
    ("Ubuntu 22.04.3 LTS 6.2.0-1017-aws", False, "Intel(R) Xeon(R) CPU E5-2686 v4"),
    ("Microsoft Windows Server 2019 Datacenter 10.0.17763", True, "Intel(R) Xeon(R) Platinum"),
    ("Microsoft Windows Server 2022 Datacenter 10.0.20348", True, "AMD EPYC 7R13"),
)
# (recommendedInstanceType, cores, ram GiB)
_SIZES = (
    ("t3.medium", 2, 4),
    ("m5.large", 2, 8),
    ("m5.xlarge", 4, 16),
    ("r5.xlarge", 4, 32),
    ("c5.2xlarge", 8, 16),
    ("m5.4xlarge", 16, 64),
)
_APPLICATIONS = ("billing", "crm", "erp", "payments", "inventory", "reporting", "auth", "search")
_ROLES = ("web", "app", "db", "cache", "batch", "api")
_ENVIRONMENTS = ("prod", "prod", "prod", "staging", "dev")
_GIB = 1024**3


@dataclass(frozen=True)
class Ec2Origin:
    """Where an EC2 instance lives, so a source server can point at it.

    `availability_zone`, `private_ip` and `hostname` default to values derived from the server's
    seed; `tags` are EC2 tags (not used for the DRS record's own tags).
    """

    account_id: str
    region: str
    availability_zone: str | None = None
    private_ip: str | None = None
    hostname: str | None = None
    tags: Mapping[str, str] | None = None


def make_source_server(
    account_id: str,
    region: str,
    *,
    index: int = 0,
    seed: int = 0,
    instance_id: str | None = None,
    origin_account_id: str | None = None,
    origin_region: str | None = None,
    origin_availability_zone: str | None = None,
    private_ip: str | None = None,
    hostname: str | None = None,
    tags: Mapping[str, str] | None = None,
    replication_state: str | None = None,
    staging_account_id: str | None = None,
    replication_direction: str = "FAILOVER",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build one DRS `SourceServer` record, deterministic in all of its arguments.

    Args:
        account_id, region: the DRS account and region that list the server (ARN, staging AZ).
        index, seed: pick the pseudo-random details (id, hostname, disks, states, times).
        instance_id: makes the server EC2-origin (`awsInstanceID` + `sourceCloudProperties`);
            without it the server is on-premises (VMware UUID, no `sourceCloudProperties`).
        origin_account_id, origin_region, origin_availability_zone: the EC2 instance's location
            (default: the DRS account/region; a different account is cross-account DR).
        private_ip, hostname: the machine's primary IP and short hostname (default: derived).
        tags: the DRS resource tags (default: Name/Environment/Application/CostCenter).
        replication_state: a `DataReplicationState` (default: drawn from a realistic mix).
        staging_account_id: makes the server an extended source server of that staging account.
        replication_direction: "FAILOVER" or "FAILBACK" (FAILBACK adds the reversed ARN).
        now: the service's "now" (default `DEFAULT_NOW`, to stay reproducible).

    Returns:
        A JSON-ready dict in DescribeSourceServers' item shape.

    Raises:
        ValueError: an account id is not 12 digits, or a state/direction is not in the model.
    """
    for name, value in (
        ("account_id", account_id),
        ("origin_account_id", origin_account_id),
        ("staging_account_id", staging_account_id),
    ):
        if value is not None and not (len(value) == 12 and value.isdigit()):
            raise ValueError(f"{name} must be 12 digits, got {value!r}")
    if replication_state is not None and replication_state not in REPLICATION_STATE_WEIGHTS:
        raise ValueError(
            f"replication_state {replication_state!r} is not one of {list(REPLICATION_STATES)}"
        )
    if replication_direction not in ("FAILOVER", "FAILBACK"):
        raise ValueError(
            f"replication_direction must be FAILOVER or FAILBACK, got {replication_direction!r}"
        )

    # random.Random seeds a str through SHA-512: stable across processes (unlike hash()).
    rng = random.Random(f"drs-fleet:{seed}:{account_id}:{region}:{index}")
    now = now or DEFAULT_NOW
    partition = _partition(region)
    server_id = "s-" + _hex(rng, 17)
    arn = f"arn:{partition}:drs:{region}:{account_id}:source-server/{server_id}"

    os_name, is_windows, cpu_model = rng.choice(_OPERATING_SYSTEMS)
    instance_type, cores, ram_gib = rng.choice(_SIZES)
    application = rng.choice(_APPLICATIONS)
    environment = rng.choice(_ENVIRONMENTS)
    role = rng.choice(_ROLES)
    ec2_origin = instance_id is not None
    origin_region = origin_region or region
    ip = private_ip or _private_ip(rng, ec2_origin)
    if hostname is None:
        hostname = (
            "ip-" + ip.replace(".", "-") if ec2_origin else f"{application}-{role}-{index:05d}"
        )
    domain = _ec2_domain(origin_region) if ec2_origin else "corp.example.com"
    state = replication_state or _weighted(rng, REPLICATION_STATE_WEIGHTS)

    added = now - timedelta(days=rng.randint(7, 700), seconds=rng.randint(0, 86_399))
    disks = _disks(rng, is_windows)
    hints: dict[str, Any] = {"hostname": hostname, "fqdn": f"{hostname}.{domain}"}
    if ec2_origin:
        hints["awsInstanceID"] = instance_id
    else:
        hints["vmWareUuid"] = _uuid(rng)

    record: dict[str, Any] = {
        "sourceServerID": server_id,
        "arn": arn,
        "tags": dict(tags)
        if tags is not None
        else {
            "Name": hostname,
            "Environment": environment,
            "Application": application,
            "CostCenter": f"cc-{rng.randint(1000, 9999)}",
        },
        "lastLaunchResult": "NOT_STARTED",
        "dataReplicationInfo": _replication_info(rng, state, region, disks, now),
        "lifeCycle": _life_cycle(rng, state, added, now),
        "sourceProperties": {
            "lastUpdatedDateTime": _iso(now - timedelta(minutes=rng.randint(1, 600))),
            "recommendedInstanceType": instance_type,
            "identificationHints": hints,
            "networkInterfaces": [
                {"macAddress": _mac(rng), "ips": [ip], "isPrimary": True},
            ],
            "disks": [{"deviceName": name, "bytes": size} for name, size in disks],
            "cpus": [{"cores": cores, "modelName": cpu_model}],
            "ramBytes": ram_gib * _GIB,
            "os": {"fullString": os_name},
            "supportsNitroInstances": True,
        },
        "stagingArea": {"status": "NOT_EXTENDED"},
        "replicationDirection": replication_direction,
        "agentVersion": f"4.{rng.randint(5, 9)}.{rng.randint(0, 40)}",
    }
    _add_last_launch(rng, record, now)
    if ec2_origin:
        zone = origin_availability_zone or f"{origin_region}{rng.choice('abc')}"
        record["sourceCloudProperties"] = {
            "originAccountID": origin_account_id or account_id,
            "originRegion": origin_region,
            "originAvailabilityZone": zone,
        }
    if staging_account_id is not None:
        staging_id = "s-" + _hex(rng, 17)
        record["stagingArea"] = {
            "status": "EXTENDED",
            "stagingAccountID": staging_account_id,
            "stagingSourceServerArn": (
                f"arn:{partition}:drs:{region}:{staging_account_id}:source-server/{staging_id}"
            ),
            "errorMessage": "",
        }
    if replication_direction == "FAILBACK":
        reversed_id = "s-" + _hex(rng, 17)
        record["reversedDirectionSourceServerArn"] = (
            f"arn:{partition}:drs:{region}:{account_id}:source-server/{reversed_id}"
        )
    return record


def generate_fleet(
    account_id: str,
    region: str,
    count: int,
    *,
    ec2_instance_ids: Sequence[str] | Mapping[str, Ec2Origin] | None = None,
    ec2_fraction: float | None = None,
    origin_account_id: str | None = None,
    origin_region: str | None = None,
    extended_fraction: float = 0.0,
    staging_account_ids: Sequence[str] = (),
    seed: int = 0,
    start_index: int = 0,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Build `count` source servers for one (account, region), deterministic in the arguments.

    Which servers are EC2-origin:
        - `ec2_fraction` given: `round(count * ec2_fraction)` servers. They take the supplied
          `ec2_instance_ids` first, then synthetic ids that exist in no EC2 (enrichment misses).
        - `ec2_fraction` None: one server per supplied instance id (at most `count`), or 70%
          synthetic EC2-origin servers when no ids are supplied.
    `ec2_instance_ids` is a list of ids (the instances live in `origin_account_id`/`origin_region`,
    default the DRS account/region) or a mapping id -> `Ec2Origin` for fleets that span accounts.
    The last `round(count * extended_fraction)` servers are extended, staged in
    `staging_account_ids` round-robin. `start_index` lets several calls extend one fleet.

    Returns:
        The records, in index order, with unique `sourceServerID`s.

    Raises:
        ValueError: negative count, fractions outside [0, 1], or extended servers requested
            without staging accounts (plus anything `make_source_server` raises).
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    for name, fraction in (
        ("ec2_fraction", ec2_fraction),
        ("extended_fraction", extended_fraction),
    ):
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {fraction}")
    n_extended = round(count * extended_fraction)
    if n_extended and not staging_account_ids:
        raise ValueError("extended_fraction > 0 needs staging_account_ids")

    if isinstance(ec2_instance_ids, Mapping):
        origins = dict(ec2_instance_ids)
    else:
        default_origin = Ec2Origin(origin_account_id or account_id, origin_region or region)
        origins = {instance_id: default_origin for instance_id in ec2_instance_ids or ()}
    supplied = list(origins.items())
    if ec2_fraction is not None:
        n_ec2 = round(count * ec2_fraction)
    else:
        n_ec2 = min(len(supplied), count) if ec2_instance_ids is not None else round(count * 0.7)

    synthetic_origin = Ec2Origin(origin_account_id or account_id, origin_region or region)
    rng = random.Random(f"drs-fleet-ids:{seed}:{account_id}:{region}:{start_index}")
    servers: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    for offset in range(count):
        index = start_index + offset
        kwargs: dict[str, Any] = {"index": index, "seed": seed, "now": now}
        if offset < n_ec2:
            if offset < len(supplied):
                instance_id, origin = supplied[offset]
            else:
                instance_id, origin = "i-" + _hex(rng, 17), synthetic_origin
            kwargs.update(
                instance_id=instance_id,
                origin_account_id=origin.account_id,
                origin_region=origin.region,
                origin_availability_zone=origin.availability_zone,
                private_ip=origin.private_ip,
                hostname=origin.hostname,
            )
        if offset >= count - n_extended:
            kwargs["staging_account_id"] = staging_account_ids[offset % len(staging_account_ids)]
        server = make_source_server(account_id, region, **kwargs)
        # 68 random bits make a clash astronomically unlikely; a duplicate would silently
        # overwrite a server in the simulator, so refuse it rather than trust the odds.
        if server["sourceServerID"] in seen_ids:
            raise ValueError(f"duplicate sourceServerID {server['sourceServerID']}; change seed")
        seen_ids.add(server["sourceServerID"])
        servers.append(server)
    return servers


def create_ec2_instances(
    ec2_client: Any,
    count: int,
    *,
    tags: Mapping[str, str] | None = None,
    image_id: str = MOTO_EXAMPLE_AMI_ID,
    instance_type: str = "t3.medium",
    subnet_id: str | None = None,
    batch_size: int = 100,
) -> list[dict[str, Any]]:
    """Launch `count` EC2 instances (moto or real) in batches; return RunInstances' instance dicts.

    One RunInstances call per `batch_size` instances (MinCount == MaxCount) instead of one per
    instance: moto charges per request and per instance. `tags` go on every instance.

    Raises:
        ValueError: count < 0 or batch_size < 1.
        botocore.exceptions.ClientError: as RunInstances raises it.
    """
    if count < 0 or batch_size < 1:
        raise ValueError(f"need count >= 0 and batch_size >= 1, got {count}, {batch_size}")
    instances: list[dict[str, Any]] = []
    remaining = count
    while remaining > 0:
        batch = min(batch_size, remaining)
        kwargs: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": instance_type,
            "MinCount": batch,
            "MaxCount": batch,
        }
        if subnet_id:
            kwargs["SubnetId"] = subnet_id
        if tags:
            tag_list = [{"Key": key, "Value": value} for key, value in tags.items()]
            kwargs["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tag_list}]
        instances.extend(ec2_client.run_instances(**kwargs)["Instances"])
        remaining -= batch
    return instances


def ec2_origins(
    instances: Sequence[Mapping[str, Any]], account_id: str, region: str
) -> dict[str, Ec2Origin]:
    """Map RunInstances/DescribeInstances instance dicts to `Ec2Origin`s for `generate_fleet`.

    The servers then carry each instance's AZ, private IP and hostname, as DRS would report.
    """
    origins: dict[str, Ec2Origin] = {}
    for instance in instances:
        dns_name = instance.get("PrivateDnsName") or ""
        origins[instance["InstanceId"]] = Ec2Origin(
            account_id=account_id,
            region=region,
            availability_zone=(instance.get("Placement") or {}).get("AvailabilityZone") or None,
            private_ip=instance.get("PrivateIpAddress") or None,
            hostname=dns_name.split(".", 1)[0] or None,
            tags={tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])},
        )
    return origins


# ---- churn: one schedule interval of a live estate -------------------------------------------

# States whose agent reports in (lastSeenByServiceDateTime moves) and whose lag and backlog move.
_AGENT_SILENT_STATES = frozenset({"DISCONNECTED", "PAUSED", "STOPPED"})
_LAGGING_STATES = frozenset({"BACKLOG", "STALLED"})
_SYNCING_STATES = frozenset({"INITIATING", "INITIAL_SYNC", "RESCAN"})
# Where a changed server goes: a healthy one runs into trouble, a troubled one recovers.
_TROUBLE_STATES = ("BACKLOG", "BACKLOG", "RESCAN", "STALLED", "CREATING_SNAPSHOT")
_MIB = 1024**2


def move_volatile(record: Mapping[str, Any], rng: random.Random, now: datetime) -> dict[str, Any]:
    """A copy of `record` with the fields that move on every report of a replicating agent:
    lifeCycle.lastSeenByServiceDateTime, dataReplicationInfo.lagDuration and etaDateTime,
    and each replicated disk's backlogged/replicated/rescanned bytes. A CONTINUOUS server's
    lag stays within a minute (mostly a few seconds); its replication state never changes here.
    """
    moved = copy.deepcopy(dict(record))
    info = moved.get("dataReplicationInfo") or {}
    state = info.get("dataReplicationState")
    if state in _AGENT_SILENT_STATES:
        return moved
    life_cycle = moved.setdefault("lifeCycle", {})
    life_cycle["lastSeenByServiceDateTime"] = _iso(now - timedelta(seconds=rng.randint(5, 600)))
    if state in ("CONTINUOUS", "CREATING_SNAPSHOT"):
        info["lagDuration"] = _duration(
            rng.randint(0, 4) if rng.random() < 0.9 else rng.randint(5, 60)
        )
    elif state in _LAGGING_STATES:
        info["lagDuration"] = _duration(rng.randint(600, 3 * 86_400))
    if "etaDateTime" in info:
        info["etaDateTime"] = _iso(now + timedelta(minutes=rng.randint(5, 2_000)))
    for disk in info.get("replicatedDisks") or ():
        total = int(disk.get("totalStorageBytes", 0))
        if state == "INITIAL_SYNC" and total:
            grown = int(disk.get("replicatedStorageBytes", 0)) + int(
                total * rng.uniform(0.01, 0.05)
            )
            disk["replicatedStorageBytes"] = min(grown, total - 1)
        if state == "RESCAN" and total:
            grown = int(disk.get("rescannedStorageBytes", 0)) + int(total * rng.uniform(0.01, 0.05))
            disk["rescannedStorageBytes"] = min(grown, total - 1)
        if state == "BACKLOG":
            disk["backloggedStorageBytes"] = rng.randint(1, 40) * _MIB
        elif state in ("CONTINUOUS", "CREATING_SNAPSHOT"):
            disk["backloggedStorageBytes"] = rng.randint(0, 8) * _MIB if rng.random() < 0.3 else 0
    return moved


def change_replication_state(
    record: Mapping[str, Any], rng: random.Random, now: datetime
) -> dict[str, Any]:
    """A copy of `record` in another replication state, its replication info rebuilt to
    match (lag, ETA, disks, error) in the same staging AZ: a CONTINUOUS server runs into
    trouble (backlog, rescan, stall, snapshot), any other one recovers to CONTINUOUS."""
    changed = copy.deepcopy(dict(record))
    info = changed.get("dataReplicationInfo") or {}
    state = info.get("dataReplicationState")
    target = rng.choice(_TROUBLE_STATES) if state == "CONTINUOUS" else "CONTINUOUS"
    region = str(changed["arn"]).split(":")[3]
    disks = [
        (disk["deviceName"], int(disk["bytes"]))
        for disk in (changed.get("sourceProperties") or {}).get("disks") or ()
    ]
    rebuilt = _replication_info(rng, target, region, disks, now)
    if "stagingAvailabilityZone" in info:
        rebuilt["stagingAvailabilityZone"] = info["stagingAvailabilityZone"]
    changed["dataReplicationInfo"] = rebuilt
    life_cycle = changed.setdefault("lifeCycle", {})
    life_cycle["lastSeenByServiceDateTime"] = _iso(now - timedelta(seconds=rng.randint(5, 600)))
    return changed


@dataclass
class ChurnPlan:
    """What one interval changes in a fleet, by (account, region): new records to store
    (same ids), ids to remove, and new records to add (replacements)."""

    updated: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    removed: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    added: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    volatile_moved: int = 0
    state_changed: int = 0

    @property
    def replaced(self) -> int:
        return sum(len(ids) for ids in self.removed.values())


def plan_churn(
    fleets: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]],
    *,
    interval: int,
    now: datetime,
    state_fraction: float = 0.02,
    replace_fraction: float = 0.001,
    seed: int = 0,
) -> ChurnPlan:
    """One interval of churn over every (account, region)'s servers, deterministic in the
    arguments: every server's volatile fields move (`move_volatile`), round(state_fraction x
    servers) change replication state, round(replace_fraction x servers) on-premises servers
    are replaced by new on-premises ones in the same scope (so no scope grows or shrinks and
    EC2-origin servers keep their instances).

    Raises ValueError for fractions outside [0, 1].
    """
    for name, fraction in (
        ("state_fraction", state_fraction),
        ("replace_fraction", replace_fraction),
    ):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {fraction}")
    rng = random.Random(f"drs-churn:{seed}:{interval}")
    scopes = sorted(fleets)
    everyone = [(scope, index) for scope in scopes for index in range(len(fleets[scope]))]
    on_premises = [
        (scope, index)
        for scope, index in everyone
        if "awsInstanceID" not in _hints(fleets[scope][index])
    ]
    replace_count = min(len(on_premises), round(len(everyone) * replace_fraction))
    replaced = set(rng.sample(on_premises, replace_count))
    remaining = [pair for pair in everyone if pair not in replaced]
    state_count = min(len(remaining), round(len(everyone) * state_fraction))
    to_change = set(rng.sample(remaining, state_count))

    plan = ChurnPlan()
    for scope in scopes:
        account_id, region = scope
        updated: list[dict[str, Any]] = []
        for index, record in enumerate(fleets[scope]):
            if (scope, index) in replaced:
                plan.removed.setdefault(scope, []).append(record["sourceServerID"])
                continue
            moved = move_volatile(record, rng, now)
            plan.volatile_moved += moved != record
            if (scope, index) in to_change:
                moved = change_replication_state(moved, rng, now)
                plan.state_changed += 1
            updated.append(moved)
        plan.updated[scope] = updated
        for position in range(len(plan.removed.get(scope, ()))):
            # An index no generated server uses: replacements never collide with the fleet.
            plan.added.setdefault(scope, []).append(
                make_source_server(
                    account_id,
                    region,
                    index=1_000_000 + interval * 10_000 + position,
                    seed=seed,
                    now=now,
                )
            )
    return plan


def _hints(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return (record.get("sourceProperties") or {}).get("identificationHints") or {}


# ---- building blocks -------------------------------------------------------------------------


def _replication_info(
    rng: random.Random,
    state: str,
    region: str,
    disks: list[tuple[str, int]],
    now: datetime,
) -> dict[str, Any]:
    syncing = state in ("INITIATING", "INITIAL_SYNC", "RESCAN")
    replicated_disks = []
    for name, size in disks:
        replicated = size
        if state == "INITIATING":
            replicated = 0
        elif state == "INITIAL_SYNC":
            replicated = int(size * rng.uniform(0.05, 0.95))
        replicated_disks.append(
            {
                "deviceName": name,
                "totalStorageBytes": size,
                "replicatedStorageBytes": replicated,
                "rescannedStorageBytes": int(size * rng.uniform(0.1, 0.9))
                if state == "RESCAN"
                else 0,
                "backloggedStorageBytes": rng.randint(1, 40) * 1024**2 if state == "BACKLOG" else 0,
                "volumeStatus": "REGULAR",
            }
        )
    info: dict[str, Any] = {
        "dataReplicationState": state,
        "replicatedDisks": replicated_disks,
        "stagingAvailabilityZone": f"{region}{rng.choice('abc')}",
    }
    if state in ("CONTINUOUS", "CREATING_SNAPSHOT"):
        info["lagDuration"] = _duration(rng.randint(0, 4))
    elif state in ("BACKLOG", "STALLED", "DISCONNECTED"):
        info["lagDuration"] = _duration(rng.randint(600, 3 * 86_400))
    if syncing or state == "BACKLOG":
        info["etaDateTime"] = _iso(now + timedelta(minutes=rng.randint(5, 2_000)))
    if state in ("INITIATING", "INITIAL_SYNC"):
        # INITIATING stops part-way through the steps; INITIAL_SYNC is transferring data.
        done = rng.randint(1, len(_INITIATION_STEPS) - 2) if state == "INITIATING" else 10
        steps = [
            {
                "name": name,
                "status": "SUCCEEDED"
                if i < done
                else "IN_PROGRESS"
                if i == done
                else "NOT_STARTED",
            }
            for i, name in enumerate(_INITIATION_STEPS)
        ]
        info["dataReplicationInitiation"] = {
            "startDateTime": _iso(now - timedelta(hours=rng.randint(1, 30))),
            "steps": steps,
        }
    if state in ("STALLED", "DISCONNECTED"):
        error = (
            "AGENT_NOT_SEEN"
            if state == "DISCONNECTED"
            else rng.choice(("UNSTABLE_NETWORK", "NOT_CONVERGING", "SNAPSHOTS_FAILURE"))
        )
        info["dataReplicationError"] = {"error": error, "rawError": f"{error.lower()} (simulated)"}
    return info


def _life_cycle(rng: random.Random, state: str, added: datetime, now: datetime) -> dict[str, Any]:
    life_cycle: dict[str, Any] = {"addedToServiceDateTime": _iso(added)}
    if state != "INITIATING":
        first_byte = added + timedelta(minutes=rng.randint(2, 90))
        life_cycle["firstByteDateTime"] = _iso(first_byte)
        life_cycle["elapsedReplicationDuration"] = _duration(
            int((now - first_byte).total_seconds())
        )
    # A disconnected agent has not been seen for a while; everyone else reported recently.
    last_seen = (
        now - timedelta(hours=rng.randint(2, 200))
        if state == "DISCONNECTED"
        else now - timedelta(seconds=rng.randint(5, 600))
    )
    life_cycle["lastSeenByServiceDateTime"] = _iso(last_seen)
    return life_cycle


def _add_last_launch(rng: random.Random, record: dict[str, Any], now: datetime) -> None:
    result = _weighted(rng, _LAUNCH_RESULT_WEIGHTS)
    record["lastLaunchResult"] = result
    if result == "NOT_STARTED":
        return
    status = {"SUCCEEDED": "LAUNCHED", "FAILED": "FAILED", "PENDING": "PENDING"}[result]
    record["lifeCycle"]["lastLaunch"] = {
        "initiated": {
            "apiCallDateTime": _iso(now - timedelta(days=rng.randint(0, 90))),
            "jobID": "drsjob-" + _hex(rng, 17),
            "type": rng.choice(("DRILL", "DRILL", "DRILL", "RECOVERY")),
        },
        "status": status,
    }
    if result == "SUCCEEDED":
        record["recoveryInstanceId"] = "i-" + _hex(rng, 17)


def _disks(rng: random.Random, is_windows: bool) -> list[tuple[str, int]]:
    names = (
        ["disk0", "disk1", "disk2", "disk3"]
        if is_windows
        else ["/dev/xvda", "/dev/xvdb", "/dev/xvdc", "/dev/xvdd"]
    )
    count = rng.choice((1, 1, 2, 2, 3, 4))
    return [(names[i], rng.choice((8, 20, 50, 100, 200, 500)) * _GIB) for i in range(count)]


def _weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _uuid(rng: random.Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _mac(rng: random.Random) -> str:
    # 0x02 prefix: a locally administered unicast address, as virtual NICs use.
    return "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))


def _private_ip(rng: random.Random, ec2_origin: bool) -> str:
    if ec2_origin:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(4, 255)}"
    return f"192.168.{rng.randrange(256)}.{rng.randrange(4, 255)}"


def _ec2_domain(region: str) -> str:
    return "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _iso(moment: datetime) -> str:
    """ISO8601DatetimeString as the model's pattern wants it: UTC with a trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _duration(seconds: int) -> str:
    """ISO8601DurationString, e.g. PT3S, P12DT4H5M6S."""
    days, rest = divmod(max(seconds, 0), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    time_part = "".join(
        f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if value
    )
    if not days and not time_part:
        return "PT0S"
    return "P" + (f"{days}D" if days else "") + (f"T{time_part}" if time_part else "")
