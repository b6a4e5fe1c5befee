"""One sync invocation in a process of its own, as Lambda runs it: `python -m` this module.

    python -m tests.support.sync_process TIMEOUT_MS

The environment is the function's (table names, DRS_REGIONS, SYNC_* settings) with
AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_DRS pointing at the fakes, and PYTHONPATH holding
lambda/, lambda/data-management-handler/ and the repository root. The data-management-handler's
`handle_direct_invocation` runs with a Lambda-like context that has TIMEOUT_MS left. The
handler's own logs go to stdout too; the result is the one line starting `SYNC_RESULT=`
(the summary as JSON, also when the invocation failed with SyncFailedError). A test may
SIGKILL this process at any moment: that is what it is for.
"""

from __future__ import annotations

import json
import sys

from tests.support.handlers import load_handler
from tests.support.lambda_context import FakeLambdaContext

RESULT_PREFIX = "SYNC_RESULT="


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    context = FakeLambdaContext(timeout_ms=int(args[0]))
    handler = load_handler("data-management-handler")
    from inventory_sync.exceptions import SyncFailedError  # importable once the handler is

    try:
        result = handler.handle_direct_invocation(
            {"operation": "sync_source_server_inventory"}, context
        )
    except SyncFailedError as exc:
        result = exc.summary
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
