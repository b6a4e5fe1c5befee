"""Clients live as long as the execution environment; credentials only as long as a run.

A warm Lambda environment runs the next invocation in the same process: the sync's clients
(one per service, account and region) are built once and reused, while each run assumes
every target account's role again and signs with what it got, or not at all.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlparse

import pytest
from botocore.exceptions import NoCredentialsError

from inventory_sync import sync_source_server_inventory
from inventory_sync.models import SyncSettings
from shared.aws import (
    HUB,
    AccountCredentials,
    ClientFactory,
    ClientPool,
    environment_pool,
    make_config,
    new_session,
)
from tests.functional.test_inventory_sync import small_fleet
from tests.support.sockets import established_to
from tests.support.world import TARGET_A, TARGET_B, CallLog, World, role_arn

SETTINGS = SyncSettings(max_concurrency=4, page_size=25, deadline_reserve_seconds=0)


class Signatures:
    """The access key of every DRS request, and the keys each AssumeRole handed out."""

    def __init__(self) -> None:
        self.drs_keys: Counter[str] = Counter()
        self.assumed: dict[str, str] = {}  # access key -> account

    def session(self, world: World, credentials: Any = None) -> Any:
        session = world.session(None, credentials)
        session.events.register("before-send.drs", self._drs_request)
        session.events.register("after-call.sts.AssumeRole", self._assumed)
        return session

    def _drs_request(self, request: Any, **_: Any) -> None:
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        key = authorization.split("Credential=", 1)[1].split("/", 1)[0]
        self.drs_keys[key] += 1

    def _assumed(self, parsed: dict[str, Any], **_: Any) -> None:
        if "Credentials" not in parsed:
            return  # an error answer
        user = parsed["AssumedRoleUser"]["Arn"]
        self.assumed[parsed["Credentials"]["AccessKeyId"]] = user.split(":")[4]


def _run(pool: ClientPool) -> dict[str, Any]:
    factory = ClientFactory(pool, config=make_config(max_pool_connections=8))
    return sync_source_server_inventory({}, None, factory=factory, settings=SETTINGS)


def test_a_warm_run_reuses_every_client_and_signs_with_its_own_credentials(
    world: World,
) -> None:
    small_fleet(world)
    signatures = Signatures()
    pool = ClientPool(lambda credentials=None: signatures.session(world, credentials))

    first = _run(pool)
    built = pool.clients_built
    first_keys = set(signatures.drs_keys)
    signatures.drs_keys.clear()
    second = _run(pool)

    assert first["status"] == second["status"] == "SUCCEEDED"
    assert pool.clients_built == built  # nothing built again in the warm run
    assert built >= 9  # one DRS client per scope at least, all from the first run
    # One AssumeRole per target account per run, and run 2 signed only with run 2's keys.
    assert first["counts"]["apiCalls"]["assumeRole"] == 2
    assert second["counts"]["apiCalls"]["assumeRole"] == 2
    second_keys = set(signatures.drs_keys)
    assumed_accounts = {signatures.assumed.get(key) for key in second_keys} - {None}
    assert assumed_accounts == {TARGET_A, TARGET_B}
    assert not (second_keys - {k for k in second_keys if k not in signatures.assumed}) & (
        first_keys - {k for k in first_keys if k not in signatures.assumed}
    ), "run 2 signed a target account's request with run 1's credentials"


def test_a_role_that_stops_working_is_not_read_with_the_last_runs_credentials(
    world: World,
) -> None:
    small_fleet(world)
    signatures = Signatures()
    pool = ClientPool(lambda credentials=None: signatures.session(world, credentials))
    assert _run(pool)["status"] == "SUCCEEDED"

    world.denied_roles.add(role_arn(TARGET_B))
    signatures.drs_keys.clear()
    second = _run(pool)

    assert second["status"] == "PARTIAL"
    failed = {(f["accountId"], f["errorCode"]) for f in second["failures"]}
    assert {account for account, _ in failed} == {TARGET_B}
    signed_for = Counter(signatures.assumed.get(key, HUB) for key in signatures.drs_keys)
    assert TARGET_B not in signed_for  # no DRS request of B was sent at all
    assert signed_for[TARGET_A] > 0


def test_no_drs_connection_outlives_its_scope(world: World) -> None:
    # Each DRS client (one per account and region) holds a connection; 1,120 scopes would
    # exceed Lambda's 1,024 file descriptors if they all stayed open until the run ends.
    small_fleet(world)
    drs_port = urlparse(world.simulator.endpoint).port
    assert drs_port is not None
    pool = world.pool()
    summary = _run(pool)
    assert summary["status"] == "SUCCEEDED"
    assert summary["counts"]["scopes"] == 9
    assert sum(1 for entry in pool.cached() if entry[0] == "drs") == 9  # kept for reuse
    assert established_to(drs_port) == 0
    # A disconnected client connects again when the next run needs it.
    assert _run(pool)["status"] == "SUCCEEDED"
    assert established_to(drs_port) == 0


def test_the_environment_pool_follows_the_aws_configuration(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = environment_pool()
    assert environment_pool() is pool  # same configuration: the same clients
    monkeypatch.setenv("AWS_ENDPOINT_URL_DRS", "http://127.0.0.1:9")
    assert environment_pool() is not pool


def test_a_failed_assume_is_one_call_per_run_even_with_many_scopes(world: World) -> None:
    small_fleet(world)
    world.denied_roles.update({role_arn(TARGET_A), role_arn(TARGET_B)})
    pool = ClientPool(lambda credentials=None: world.session(None, credentials))
    for _ in range(2):
        summary = _run(pool)
        assert summary["counts"]["apiCalls"]["assumeRole"] == 2
        assert summary["status"] == "PARTIAL"


def test_an_account_never_assumed_signs_nothing(moto_endpoint: str) -> None:
    credentials = AccountCredentials()
    session = new_session(credentials)
    assert session.get_credentials() is credentials
    with pytest.raises(NoCredentialsError):  # never the environment's (hub) credentials
        session.client("sts", region_name="us-east-1").get_caller_identity()
    credentials.update({"AccessKeyId": "AKIA1", "SecretAccessKey": "s", "SessionToken": "t"})
    assert credentials.get_frozen_credentials().access_key == "AKIA1"
    credentials.clear()
    with pytest.raises(NoCredentialsError):
        session.client("sts", region_name="us-east-1").get_caller_identity()


def test_each_assumed_session_names_the_environment_and_the_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_fleet(world)
    monkeypatch.setenv("DEPLOYMENT_ENVIRONMENT", "qa")
    log = CallLog()
    summary = world.sync(log)
    assert len(log.assume_roles) == 2
    for params in log.assume_roles:
        assert params["DurationSeconds"] == 900
        assert params["RoleSessionName"] == f"drs-inventory-qa-{summary['runId']}"
        assert params["SourceIdentity"] == "drs-inventory-sync-qa"
        assert params["ExternalId"]  # still the account's


def test_source_identity_can_be_turned_off_for_roles_that_do_not_allow_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_fleet(world)
    monkeypatch.setenv("SYNC_SET_SOURCE_IDENTITY", "false")
    log = CallLog()
    factory = ClientFactory(world.pool(log), config=make_config(max_pool_connections=8))
    sync_source_server_inventory({}, None, factory=factory)
    assert log.assume_roles and all("SourceIdentity" not in p for p in log.assume_roles)
