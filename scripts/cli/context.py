"""What every command is handed: the resolved target, the output options, a client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from scripts.cli.client import DATA_MANAGEMENT, QUERY, FunctionClient, LogSink, Target, connect
from scripts.cli.output import Output


@dataclass
class Console:
    """What every command gets: where to talk to, how to print, a client made on first use."""

    target: Target
    output: Output
    _client: FunctionClient | None = None

    @property
    def client(self) -> FunctionClient:
        if self._client is None:
            self._client = connect(self.target)
        return self._client

    def query(self, operation: str, **params: Any) -> Any:
        """Invoke the query-handler's `operation` with the parameters that are not None."""
        return self.client.invoke(QUERY, _payload(operation, params))

    def manage(self, operation: str, *, log_sink: LogSink | None = None, **params: Any) -> Any:
        """Invoke the data-management-handler's `operation` (parameters that are not None)."""
        return self.client.invoke(DATA_MANAGEMENT, _payload(operation, params), log_sink=log_sink)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _payload(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"operation": operation, **{k: v for k, v in params.items() if v is not None}}


pass_console = click.make_pass_decorator(Console)
