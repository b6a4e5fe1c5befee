"""Whether an endpoint accepts TCP connections: asked before the first AWS call, so an
endpoint that is down is named as such instead of surfacing as "missing credentials".

`python -m scripts.local.reachable URL` exits 0 when something accepts a connection at the
URL's host and port (5 s), else prints why (e.g. "Connection refused") and exits 1
(deploy.sh words the rest of its message itself).

`python -m scripts.local.reachable [--hint HINT] LABEL=URL...` checks each endpoint in turn
and, at the first one that is down, prints the whole message for the operator, "cannot
reach the LABEL at URL (why): HINT", and exits 1 (invoke-sync.sh, e2e-inventory-sync.sh).
`drs-inventory` calls `unreachable_reason` itself.
"""

from __future__ import annotations

import argparse
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


def first_unreachable(
    endpoints: Sequence[tuple[str, str]],
    hint: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> str | None:
    """None when every (label, url) in `endpoints` is reachable, else the message naming the
    first that is not: "cannot reach the LABEL at URL (why)", then ": HINT" when given."""
    for label, url in endpoints:
        reason = unreachable_reason(url, timeout)
        if reason is not None:
            message = f"cannot reach the {label} at {url} ({reason})"
            return f"{message}: {hint}" if hint else message
    return None


def _labelled(arg: str) -> tuple[str, str] | None:
    """LABEL=URL as (label, url); None for a bare URL (whose query may hold a '=')."""
    label, sep, url = arg.partition("=")
    return (label, url) if sep and "://" not in label else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.local.reachable",
        description="Exit 0 when every endpoint accepts TCP connections, else say which "
        "does not and exit 1.",
    )
    parser.add_argument("--hint", help="what to suggest after naming an unreachable endpoint")
    parser.add_argument("endpoints", nargs="+", metavar="URL | LABEL=URL")
    args = parser.parse_args(argv)
    pairs = [_labelled(arg) for arg in args.endpoints]
    if pairs == [None] and args.hint is None:
        # The bare form: only why, for a caller that words the message itself.
        message = unreachable_reason(args.endpoints[0])
    elif None in pairs:
        parser.error("name each endpoint as LABEL=URL (or give one bare URL, without --hint)")
    else:
        message = first_unreachable([pair for pair in pairs if pair], args.hint)
    if message is None:
        return 0
    print(message)
    return 1


if __name__ == "__main__":
    sys.exit(main())
