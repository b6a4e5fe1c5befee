"""moto in server mode on loopback, with request handling serialised.

moto's backends are plain dicts and are not thread-safe: several threads writing and
scanning one table can fail inside moto ("dictionary changed size during iteration").
This server keeps werkzeug's threaded HTTP handling (so slow clients do not block each
other) but runs moto's request processing under one lock.

Use it in-process (`with LocalMotoServer() as moto: moto.endpoint`) or as a process:
`python -m scripts.local.moto_server [--port N]` prints `MOTO_ENDPOINT=http://127.0.0.1:N`
and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

LOOPBACK = "127.0.0.1"
# werkzeug logs every request at INFO: thousands of lines per sync drown what matters.
logging.getLogger("werkzeug").setLevel(logging.WARNING)
# SigV4 credential scope: Credential=KEY/DATE/REGION/SERVICE/aws4_request
_SERVICE_IN_AUTH = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


class _SerialisedApp:
    """WSGI middleware: one request inside moto at a time; the body is drained under the lock.

    `latency_ms` maps a SigV4 service name (e.g. "ec2") to added latency, slept outside
    the lock so simulated network time overlaps as it would against AWS.
    """

    def __init__(
        self, app: Callable[..., Iterable[bytes]], latency_ms: Mapping[str, float] | None = None
    ) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._latency_ms = dict(latency_ms or {})

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if self._latency_ms:
            match = _SERVICE_IN_AUTH.search(environ.get("HTTP_AUTHORIZATION", ""))
            delay = self._latency_ms.get(match.group(1), 0.0) if match else 0.0
            if delay:
                time.sleep(delay / 1000.0)
        with self._lock:
            return list(self._app(environ, start_response))


def _app(latency_ms: Mapping[str, float] | None = None) -> _SerialisedApp:
    return _SerialisedApp(DomainDispatcherApplication(create_backend_app), latency_ms)


class LocalMotoServer:
    """A moto server bound to 127.0.0.1 on a free port (or `port`), stopped by `stop()`."""

    def __init__(self, port: int = 0, latency_ms: Mapping[str, float] | None = None) -> None:
        self._port = port
        self._latency_ms = latency_ms
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalMotoServer is not started")
        return f"http://{LOOPBACK}:{self._server.server_port}"

    def start(self) -> str:
        self._server = make_server(LOOPBACK, self._port, _app(self._latency_ms), threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-server", daemon=True
        )
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalMotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve moto on 127.0.0.1 until stopped.")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="SERVICE=MS",
        help="added latency per request of a service, e.g. ec2=50 (repeatable)",
    )
    args = parser.parse_args(argv)
    latency: dict[str, float] = {}
    for spec in args.latency:
        service, _, millis = spec.partition("=")
        if not service or not millis:
            parser.error(f"--latency takes SERVICE=MS, got {spec!r}")
        latency[service] = float(millis)
    server = make_server(LOOPBACK, args.port, _app(latency), threaded=True)

    def _stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"MOTO_ENDPOINT=http://{LOOPBACK}:{server.server_port}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
