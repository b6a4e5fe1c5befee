"""Whether an endpoint accepts TCP connections: asked before the first AWS call, so an
endpoint that is down is named as such instead of surfacing as "missing credentials".

`python -m scripts.local.reachable URL` exits 0 when something accepts a connection at the
URL's host and port (5 s), else prints why (e.g. "Connection refused") and exits 1. The
shell scripts (deploy.sh, invoke-sync.sh, e2e-inventory-sync.sh) and `drs-inventory` share it.
"""

from __future__ import annotations

import socket
import sys
import urllib.parse
from collections.abc import Sequence

TIMEOUT_SECONDS = 5.0


def unreachable_reason(url: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """None when something accepts a TCP connection at `url`'s host and port (default port
    by scheme), else why not."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "strerror", None) or exc)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m scripts.local.reachable URL", file=sys.stderr)
        return 2
    reason = unreachable_reason(args[0])
    if reason is None:
        return 0
    print(reason)
    return 1


if __name__ == "__main__":
    sys.exit(main())
