"""A stand-in for the Lambda context object: the attributes the handlers read, and a clock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class FakeLambdaContext:
    """Remaining time counts down from `timeout_ms` in real time, as in Lambda."""

    function_name: str = "aws-drs-orchestration-data-management-handler-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:"
        "aws-drs-orchestration-data-management-handler-test"
    )
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    timeout_ms: int = 900_000
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.timeout_ms - (time.monotonic() - self._started) * 1000))
