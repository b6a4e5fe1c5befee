"""scripts.local.reachable: an endpoint that is down is named, before any AWS call."""

from __future__ import annotations

import socket
import subprocess
import sys

from scripts.local.reachable import unreachable_reason


def test_a_listening_endpoint_is_reachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert unreachable_reason(f"http://127.0.0.1:{port}") is None


def test_a_closed_port_is_named_with_the_reason() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the probe is
    reason = unreachable_reason(f"http://127.0.0.1:{port}")
    assert reason is not None and "refused" in reason.lower()


def test_a_malformed_url_is_a_reason_not_a_crash() -> None:
    assert unreachable_reason("http://127.0.0.1:notaport") is not None


def test_the_command_exits_1_and_prints_why() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "scripts.local.reachable", f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "refused" in result.stdout.lower()
