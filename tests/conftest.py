"""Fixtures shared by every test suite: a loopback moto server and tables from the templates.

Every server a test starts binds to 127.0.0.1 on a free port and is stopped by the fixture
that started it, whatever the test's outcome.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from scripts.local.moto_server import LocalMotoServer
from shared.config import (
    DRS_REGIONS_ENV,
    INVENTORY_EVENT_BUS_ENV,
    INVENTORY_TABLE_ENV,
    REGION_STATUS_TABLE_ENV,
    SYNC_LEASE_TABLE_ENV,
    TARGET_ACCOUNTS_TABLE_ENV,
    TableNames,
)
from tests.support.aws import create_tables_from_template

pytest_plugins = ["tests.support.drs", "tests.support.world"]

HUB_ACCOUNT_ID = "123456789012"  # moto's default account: the hub in every test
HELD_REQUEST_WAIT_SECONDS = 60.0


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach real AWS or read the developer's profile."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DRS",
        "MOTO_ACCOUNT_ID",
        DRS_REGIONS_ENV,
        INVENTORY_EVENT_BUS_ENV,  # the change feed is off unless a test creates its bus
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[LocalMotoServer]:
    with LocalMotoServer() as server:
        yield server


@pytest.fixture
def moto_endpoint(moto_server: LocalMotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean moto (state reset, no faults) that every boto3 client in the test talks to.

    Faults the test arms on the shared server are cleared when it ends.
    """
    # A request an earlier test held with a "hang" fault lands when its hang ends: never
    # inside this test's fresh tables.
    if not moto_server.wait_for_held_requests(timeout=HELD_REQUEST_WAIT_SECONDS):
        raise RuntimeError(
            f"a request held by a hang fault was still in moto after "
            f"{HELD_REQUEST_WAIT_SECONDS}s: the test that armed it must end its hang"
        )
    request = urllib.request.Request(f"{moto_server.endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    moto_server.clear_faults()
    moto_server.reset_counts()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    yield moto_server.endpoint
    moto_server.clear_faults()


@pytest.fixture
def tables(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> TableNames:
    """The three tables, built from cfn/dynamodb-stack.yaml, named in the function env vars."""
    names = create_tables_from_template("test")
    monkeypatch.setenv(INVENTORY_TABLE_ENV, names.inventory)
    monkeypatch.setenv(REGION_STATUS_TABLE_ENV, names.region_status)
    monkeypatch.setenv(TARGET_ACCOUNTS_TABLE_ENV, names.target_accounts)
    monkeypatch.setenv(SYNC_LEASE_TABLE_ENV, names.sync_lease)
    return names
