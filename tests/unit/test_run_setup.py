"""RunSetup: the one place the sync and the refresh get their deadline and tuned clients."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inventory_sync.models import Scope, SyncSettings
from inventory_sync.refresh import RefreshOutcome, ServerRef
from inventory_sync.run_setup import RunSetup
from shared.aws import ClientFactory, ClientPool, make_config
from tests.support.lambda_context import FakeLambdaContext


def factory() -> ClientFactory:
    return ClientFactory(ClientPool(), config=make_config(max_pool_connections=12))


@pytest.mark.parametrize(
    ("timeout_ms", "reserve", "expected_budget"),
    [
        (900_000, 30, 840.0),  # Lambda's 900 s: the sync's max run (schedule - 2 reserves)
        (100_000, 30, 75.0),  # a short context: the reserve is at most a quarter of it
        (8_000, 2, 6.0),
    ],
)
def test_the_deadline_leaves_the_reserve_before_lambdas_timeout(
    timeout_ms: int, reserve: int, expected_budget: float
) -> None:
    setup = RunSetup.for_invocation(
        FakeLambdaContext(timeout_ms=timeout_ms),
        session_prefix="drs-test",
        factory=factory(),
        settings=SyncSettings(deadline_reserve_seconds=reserve),
    )

    assert setup.deadline.left() == pytest.approx(expected_budget, abs=0.5)
    assert setup.deadline.reserve <= timeout_ms / 1000 / 4


def test_the_clients_are_tuned_to_the_deadline_and_the_run_has_an_id() -> None:
    made = factory()
    clock = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731

    setup = RunSetup.for_invocation(
        FakeLambdaContext(timeout_ms=60_000),
        session_prefix="drs-test",
        factory=made,
        settings=SyncSettings(deadline_reserve_seconds=10),
        clock=clock,
    )

    assert setup.factory is made and setup.clock is clock
    # 50 s left: a read waits at most a twelfth of it, three attempts in all
    assert made.config.read_timeout == pytest.approx(50 / 12, abs=0.2)
    assert made.config.retries["max_attempts"] == 3
    assert len(setup.run_id) == 32
    other = RunSetup.for_invocation(None, session_prefix="drs-test", factory=factory())
    assert other.run_id != setup.run_id


def test_without_a_context_the_run_has_its_whole_budget() -> None:
    setup = RunSetup.for_invocation(
        None, session_prefix="drs-test", factory=factory(), settings=SyncSettings()
    )

    assert setup.deadline.left() == pytest.approx(SyncSettings().max_run_seconds, abs=0.5)


def test_a_ref_is_refreshed_unless_the_outcome_names_it() -> None:
    scope = Scope("111111111111", "us-east-1")
    outcome = RefreshOutcome({}, frozenset({scope}), frozenset({(scope, "s-1")}))

    assert not outcome.refreshed(ServerRef(scope.account_id, scope.region, "s-1"))
    assert outcome.refreshed(ServerRef(scope.account_id, scope.region, "s-2"))
    assert outcome.refreshed(ServerRef("222222222222", "us-east-1", "s-1"))
