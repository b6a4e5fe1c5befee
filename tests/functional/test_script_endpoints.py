"""The operator scripts name an endpoint that is down as such (not as missing credentials),
and take the exports `python -m scripts.local.stack` prints as the local AWS."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def closed_url() -> str:
    """A loopback URL where nothing listens (a port the kernel gave out, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(
        [str(ROOT / "scripts" / script), *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("script", ["e2e-inventory-sync.sh", "invoke-sync.sh"])
def test_an_unreachable_local_aws_is_named_not_taken_for_missing_credentials(
    script: str, closed_url: str
) -> None:
    # Given as options, or as the exports scripts.local.stack prints (loopback: local AWS)
    for args, env in (
        (("--endpoint-url", closed_url, "--drs-endpoint-url", closed_url), {}),
        ((), {"AWS_ENDPOINT_URL": closed_url, "AWS_ENDPOINT_URL_DRS": closed_url}),
    ):
        result = run(script, "qa", *args, **env)

        assert result.returncode == 1, result.stderr
        assert (
            f"cannot reach the local AWS (moto) at {closed_url} (Connection refused): "
            "is python -m scripts.local.stack running?"
        ) in result.stderr
        assert "credentials" not in result.stderr


@pytest.mark.parametrize("script", ["e2e-inventory-sync.sh", "invoke-sync.sh"])
def test_an_unreachable_drs_simulator_is_named(
    script: str, closed_url: str, moto_endpoint: str
) -> None:
    result = run(script, "qa", AWS_ENDPOINT_URL=moto_endpoint, AWS_ENDPOINT_URL_DRS=closed_url)

    assert result.returncode == 1, result.stderr
    assert f"cannot reach the DRS simulator at {closed_url} (Connection refused)" in result.stderr


@pytest.mark.parametrize("script", ["e2e-inventory-sync.sh", "invoke-sync.sh"])
def test_a_local_aws_without_its_drs_endpoint_is_a_usage_error(
    script: str, closed_url: str
) -> None:
    result = run(script, "qa", AWS_ENDPOINT_URL=closed_url)

    assert result.returncode == 2
    assert "AWS_ENDPOINT_URL_DRS is unset" in result.stderr
