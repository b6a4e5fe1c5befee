"""What a run of the sync or of a refresh starts from: its id, settings, deadline and clients.

Both operations build the same things the same way, from the Lambda context: the settings
(SYNC_* variables), a Deadline (see deadline.py), one ClientFactory whose clients' timeouts
and retries are sized to that deadline, and AssumeRole sessions named after the run, so a
target account's CloudTrail can trace them to this environment and run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inventory_sync.deadline import Deadline, remaining_seconds
from inventory_sync.models import SyncSettings
from shared.aws import ClientFactory, deployment_name, hub_source_identity, make_config

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunSetup:
    """One run's id, settings, deadline, client factory (tuned to the deadline and named
    after the run) and clock."""

    run_id: str
    settings: SyncSettings
    deadline: Deadline
    factory: ClientFactory
    clock: Clock

    @classmethod
    def for_invocation(
        cls,
        context: Any,
        *,
        session_prefix: str,
        concurrency: int | None = None,
        factory: ClientFactory | None = None,
        settings: SyncSettings | None = None,
        clock: Clock | None = None,
    ) -> RunSetup:
        """The setup of a run invoked with Lambda `context` (None: no Lambda, no time limit
        beyond `settings.max_run_seconds`).

        The deadline leaves `settings.deadline_reserve_seconds` (at most a quarter of the
        time left) before Lambda's timeout. `factory` (default: one on the execution
        environment's pool, its connection pool sized for `concurrency` workers, default
        `settings.max_concurrency`) gets the deadline's timeouts and retries, and names its
        AssumeRole sessions `<session_prefix>-<environment>-<run id>` (with the hub's
        SourceIdentity when `settings.set_source_identity`). `settings` default: from the
        environment (raises ConfigurationError for a bad SYNC_* variable).
        """
        settings = settings or SyncSettings.from_env()
        deadline = Deadline.for_run(
            remaining_seconds(context), settings.max_run_seconds, settings.deadline_reserve_seconds
        )
        workers = settings.max_concurrency if concurrency is None else concurrency
        factory = factory or ClientFactory(config=make_config(max_pool_connections=workers + 4))
        factory.tune(deadline.client_config(factory.config))
        run_id = name_sessions(factory, session_prefix, settings)
        return cls(run_id, settings, deadline, factory, clock or utc_now)


def name_sessions(factory: ClientFactory, session_prefix: str, settings: SyncSettings) -> str:
    """A new run id, after which `factory` names its AssumeRole sessions
    (`<session_prefix>-<environment>-<run id>`, with the hub's SourceIdentity when
    `settings.set_source_identity`): a target account's CloudTrail traces them to this
    environment and run. Returns the run id."""
    run_id = uuid.uuid4().hex
    factory.identify(
        f"{session_prefix}-{deployment_name()}-{run_id}",
        hub_source_identity() if settings.set_source_identity else None,
    )
    return run_id
