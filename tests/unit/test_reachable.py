"""scripts.local.reachable: an endpoint that is down is named, before any AWS call."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from scripts.local.reachable import first_unreachable, main, unreachable_reason


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m scripts.local.reachable ARGS`, as the shell scripts run it."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.local.reachable", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


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
    result = run_command(f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert "refused" in result.stdout.lower()


def _listening_and_closed() -> tuple[socket.socket, str, str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    return server, f"http://127.0.0.1:{server.getsockname()[1]}", f"http://127.0.0.1:{closed}"


def test_labelled_endpoints_name_the_first_one_down_with_the_hint() -> None:
    server, up, down = _listening_and_closed()
    with server:
        message = first_unreachable(
            [("local AWS (moto)", up), ("DRS simulator", down), ("third", down)],
            hint="is python -m scripts.local.stack running?",
        )
        assert first_unreachable([("local AWS (moto)", up)]) is None
    assert message == (
        f"cannot reach the DRS simulator at {down} (Connection refused): "
        "is python -m scripts.local.stack running?"
    )


def test_the_command_with_labels_prints_the_whole_message() -> None:
    server, up, down = _listening_and_closed()
    with server:
        result = run_command(
            "--hint", "start it", f"local AWS (moto)={up}", f"DRS simulator={down}"
        )
    assert result.returncode == 1
    assert (
        result.stdout
        == f"cannot reach the DRS simulator at {down} (Connection refused): start it\n"
    )


def test_the_command_exits_0_when_every_labelled_endpoint_listens() -> None:
    server, up, _ = _listening_and_closed()
    with server:
        assert main([f"local AWS (moto)={up}", f"DRS simulator={up}"]) == 0


def test_a_bare_url_among_labels_is_a_usage_error() -> None:
    server, up, _ = _listening_and_closed()
    with server, pytest.raises(SystemExit) as exited:
        main([f"local AWS (moto)={up}", up])
    assert exited.value.code == 2
