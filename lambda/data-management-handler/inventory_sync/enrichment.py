"""EC2 details for EC2-origin servers, read from each server's origin account and region.

Instances are looked up in batches with the `instance-id` filter (not the InstanceIds
parameter, which fails the whole call when one instance is gone), so a terminated
instance is simply absent from the answer and counted as not found.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inventory_sync.records import ec2_origin, ec2_summary
from shared.aws import error_code
from shared.exceptions import AssumeRoleError

Ec2ClientFor = Callable[[str, str], Any]  # (account, region) -> EC2 client


@dataclass
class Enrichment:
    """EC2 summaries by (origin account, origin region, instance id), and what could not
    be looked up."""

    instances: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # (account, region, instance id) whose origin could not be read (no access, error)
    unavailable: set[tuple[str, str, str]] = field(default_factory=set)
    # (account, region, instance id) in another account than the one that listed the server:
    # never looked up (see `enrich`)
    refused: set[tuple[str, str, str]] = field(default_factory=set)
    calls: int = 0
    errors: list[tuple[str, str, str, str]] = field(default_factory=list)  # acct, region, code, msg


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def enrich(
    servers: Iterable[dict[str, Any]],
    allowed_accounts: frozenset[str],
    ec2_client_for: Ec2ClientFor,
    batch_size: int,
    check: Callable[[], None] | None = None,
) -> Enrichment:
    """Look up every EC2-origin server's instance in its origin account and region, when
    that account is one of `allowed_accounts`: the account whose DRS listed the servers, and
    the accounts an operator registered as its EC2 sources (never the hub for another
    account's servers; see the sync's plan).

    `sourceCloudProperties.originAccountID` is data the target account's DRS returns: by
    itself it never chooses whose credentials read EC2. Any other origin is refused, not
    looked up: otherwise a target account could have the hub copy another account's
    instance details (tags, addresses) into its own items. Never raises for an AWS failure:
    an origin that cannot be read marks its instances unavailable (the caller keeps what it
    knew before) and is listed in `errors`.
    `check()` runs before every call and may raise (the run's deadline) to stop the lookup.
    """
    by_origin: dict[tuple[str, str], set[str]] = defaultdict(set)
    result = Enrichment()
    for server in servers:
        origin = ec2_origin(server)
        if origin is None:
            continue
        account, region, instance_id = origin
        if account not in allowed_accounts:
            result.refused.add(origin)
        else:
            by_origin[(account, region)].add(instance_id)

    for (account, region), instance_ids in sorted(by_origin.items()):
        wanted = sorted(instance_ids)
        try:
            client = ec2_client_for(account, region)
            for batch in _batches(wanted, batch_size):
                token: str | None = None
                while True:
                    if check is not None:
                        check()
                    request: dict[str, Any] = {
                        "Filters": [{"Name": "instance-id", "Values": batch}],
                        "MaxResults": 1000,
                    }
                    if token:
                        request["NextToken"] = token
                    response = client.describe_instances(**request)
                    result.calls += 1
                    for reservation in response.get("Reservations", []):
                        for instance in reservation.get("Instances", []):
                            key = (account, region, instance["InstanceId"])
                            result.instances[key] = ec2_summary(instance)
                    token = response.get("NextToken")
                    if not token:
                        break
        except (AssumeRoleError, KeyError, ClientError, BotoCoreError) as exc:
            code = _code(exc)
            result.errors.append((account, region, code, str(exc)))
            result.unavailable.update(
                (account, region, i) for i in wanted if (account, region, i) not in result.instances
            )
    return result


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return error_code(exc)
    if isinstance(exc, AssumeRoleError):
        return exc.error_code
    if isinstance(exc, KeyError):
        return "OriginAccountNotRegistered"
    return type(exc).__name__
