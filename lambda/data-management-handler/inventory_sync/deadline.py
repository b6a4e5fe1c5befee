"""The run's deadline: when work stops, and the gate every write passes through.

A run works until `stop_at`, at most `SyncSettings.max_run_seconds` (so it and its lease end
before the next scheduled run) and `deadline_reserve_seconds` before Lambda's timeout (so
the supervisor can record unfinished scopes and release the lease). Work still running then
is *abandoned*: its thread may stay blocked in a hung call, or be frozen with the execution
environment and resume inside a later invocation, so every write checks `writes_allowed()`
first. Both the monotonic and the wall clock are checked: a thread thawed in a later
invocation sees the wall clock far past the deadline even if the monotonic clock paused.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from botocore.config import Config

from inventory_sync.exceptions import DeadlineReachedError
from shared.messages import DEADLINE_REACHED

DEADLINE_CODE = DEADLINE_REACHED
# botocore's own bounds, kept when the run has plenty of time.
MAX_CONNECT_TIMEOUT = 5.0
MAX_READ_TIMEOUT = 30.0


class Deadline:
    """A point in time, on both clocks, after which the run's workers stop."""

    def __init__(self, seconds: float, reserve: float = 0.0) -> None:
        self.seconds = max(0.0, seconds)
        self.reserve = reserve  # kept after the deadline for the supervisor's last writes
        self._mono_stop = time.monotonic() + self.seconds
        self._wall_stop = time.time() + self.seconds
        self._abandoned = threading.Event()

    @classmethod
    def for_run(
        cls, remaining_seconds: float | None, max_run_seconds: float, reserve_seconds: float
    ) -> Deadline:
        """The deadline of a run with `remaining_seconds` of Lambda time (None: no context)."""
        budget = float(max_run_seconds)
        reserve = float(reserve_seconds)
        if remaining_seconds is not None:
            reserve = min(reserve, remaining_seconds / 4)
            budget = min(budget, remaining_seconds - reserve)
        return cls(budget, reserve)

    def left(self) -> float:
        """Seconds until the deadline (<= 0 once reached or abandoned)."""
        if self._abandoned.is_set():
            return 0.0
        return min(self._mono_stop - time.monotonic(), self._wall_stop - time.time())

    def reached(self) -> bool:
        return self.left() <= 0

    def abandon(self) -> None:
        """Stop every worker now, whatever the clocks say (the supervisor gave up on them)."""
        self._abandoned.set()

    def check(self, what: str) -> None:
        """Raise DeadlineReachedError when the deadline is reached; `what` names the work."""
        if self.reached():
            raise DeadlineReachedError(f"{what}: the run's deadline was reached")

    def wall_epoch(self) -> float:
        """The deadline as epoch seconds (for the lease's expiry)."""
        return self._wall_stop

    def client_config(self, base: Config) -> Config:
        """`base` with connect/read timeouts and retry attempts sized to the time left.

        One hung call (and its retries) can then cost at most about a third of the run, and
        never the whole of a short one.
        """
        left = max(1.0, self.left())
        read_timeout = min(MAX_READ_TIMEOUT, max(1.0, left / 12))
        connect_timeout = min(MAX_CONNECT_TIMEOUT, max(1.0, left / 60))
        attempts = 5 if left >= 300 else 3
        overrides: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retries": {"mode": "standard", "max_attempts": attempts},
        }
        return base.merge(Config(**overrides))


def remaining_seconds(context: Any) -> float | None:
    """Seconds Lambda leaves this invocation, or None without a Lambda context."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return float(remaining()) / 1000.0
