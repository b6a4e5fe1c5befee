"""DRS test support: the `drs_simulator` fixture, DRS clients, raw-body capture, model checks.

Register the fixtures with `pytest_plugins = ["tests.support.drs"]` in the root conftest (or
import them into a test module).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape
from botocore.retries.standard import ExponentialBackoff

from scripts.local.drs_simulator import DrsSimulator

# Standard retries as the sync uses them: 3 attempts in all (botocore's standard default).
STANDARD_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 3})

# A fresh Session loads the model and endpoint rules again (~0.1 s); one shared session makes
# clients in milliseconds. Sessions are not thread-safe, so client creation is serialised.
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()


@pytest.fixture
def drs_simulator(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[DrsSimulator]:
    """A fresh simulator attributing callers through moto's STS; AWS_ENDPOINT_URL_DRS points at it.

    Stopped (listener, keep-alive connections, handler threads) when the test ends.
    """
    with DrsSimulator(sts_endpoint=moto_endpoint) as simulator:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DRS", simulator.endpoint)
        yield simulator


@pytest.fixture
def no_retry_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore still decides and counts retries, but does not sleep between them.

    Standard mode waits up to 1 s, then 2 s, ... for throttling; the tests check the retry
    decisions, not the clock.
    """
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


def drs_client(
    endpoint: str,
    region: str = "us-east-1",
    credentials: dict[str, str] | None = None,
    config: Config = STANDARD_RETRIES,
) -> Any:
    """A stock boto3 DRS client at `endpoint`; `credentials` is an STS Credentials dict or None."""
    kwargs: dict[str, Any] = {}
    if credentials is not None:
        kwargs = {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials.get("SessionToken"),
        }
    with _SESSION_LOCK:
        return _SESSION.client(
            "drs", endpoint_url=endpoint, region_name=region, config=config, **kwargs
        )


class RawBodies:
    """Records the raw JSON bodies a client receives (botocore drops unknown keys when parsing)."""

    def __init__(self, client: Any, operation: str) -> None:
        self.bodies: list[Any] = []
        client.meta.events.register(f"before-parse.drs.{operation}", self._record)

    def _record(self, response_dict: dict[str, Any], **kwargs: Any) -> None:
        if response_dict["status_code"] == 200:
            self.bodies.append(json.loads(response_dict["body"]))


def drs_shape(name: str) -> Shape:
    """A shape of botocore's DRS model by name (e.g. "SourceServer")."""
    return botocore.session.get_session().get_service_model("drs").shape_for(name)


def output_shape(operation: str) -> Shape:
    model = botocore.session.get_session().get_service_model("drs")
    shape = model.operation_model(operation).output_shape
    assert shape is not None
    return shape


def shape_violations(value: Any, shape: Shape, path: str = "$") -> list[str]:
    """Every way the wire-format `value` departs from `shape`: unknown keys, wrong JSON types,
    enum values, patterns, lengths and ranges, missing required members. [] means it conforms.
    """
    meta = shape.metadata
    problems: list[str] = []
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return [f"{path}: expected object for {shape.name}, got {type(value).__name__}"]
        missing = [name for name in shape.required_members if name not in value]
        problems += [f"{path}: missing required {name}" for name in missing]
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                problems.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                problems += shape_violations(item, member, f"{path}.{key}")
        return problems
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return [f"{path}: expected list, got {type(value).__name__}"]
        for index, item in enumerate(value):
            problems += shape_violations(item, shape.member, f"{path}[{index}]")
        return problems + _size_violations(len(value), meta, path)
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            return [f"{path}: expected object (map), got {type(value).__name__}"]
        for key, item in value.items():
            problems += shape_violations(key, shape.key, f"{path}<key {key!r}>")
            problems += shape_violations(item, shape.value, f"{path}[{key!r}]")
        return problems + _size_violations(len(value), meta, path)
    if isinstance(shape, StringShape):
        if not isinstance(value, str):
            return [f"{path}: expected string, got {type(value).__name__}"]
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in enum {shape.name}")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {meta['pattern']}")
        return problems + _size_violations(len(value), meta, path)
    kind = shape.type_name
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: expected integer, got {type(value).__name__}"]
        if "min" in meta and value < meta["min"]:
            problems.append(f"{path}: {value} < min {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"{path}: {value} > max {meta['max']}")
        return problems
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected boolean"]
    if kind in ("double", "float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected number"]
    if kind == "timestamp":
        # rest-json's default timestamp wire format is epoch seconds (a JSON number).
        ok = isinstance(value, int | float | str) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected timestamp"]
    if kind == "blob":
        return [] if isinstance(value, str) else [f"{path}: expected base64 string"]
    return [f"{path}: unsupported shape type {kind}"]


def _size_violations(size: int, meta: dict[str, Any], path: str) -> list[str]:
    problems = []
    if "min" in meta and size < meta["min"]:
        problems.append(f"{path}: length {size} < min {meta['min']}")
    if "max" in meta and size > meta["max"]:
        problems.append(f"{path}: length {size} > max {meta['max']}")
    return problems


def member_paths(value: Any, shape: Shape, path: str = "") -> set[str]:
    """The model member paths present in `value` (list indexes collapsed to `[]`), for coverage."""
    paths: set[str] = set()
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                child = f"{path}.{key}" if path else key
                paths.add(child)
                paths |= member_paths(item, shape.members[key], child)
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for item in value:
            paths |= member_paths(item, shape.member, f"{path}[]")
    return paths
