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
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

LOOPBACK = "127.0.0.1"


class _SerialisedApp:
    """WSGI middleware: one request inside moto at a time; the body is drained under the lock."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


class LocalMotoServer:
    """A moto server bound to 127.0.0.1 on a free port (or `port`), stopped by `stop()`."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalMotoServer is not started")
        return f"http://{LOOPBACK}:{self._server.server_port}"

    def start(self) -> str:
        app = _SerialisedApp(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(LOOPBACK, self._port, app, threaded=True)
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
    args = parser.parse_args(argv)
    server = make_server(
        LOOPBACK,
        args.port,
        _SerialisedApp(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
    )

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
