"""Output in the AWS CLI's manner: `--output table|json|csv` and `--query` (JMESPath).

A command hands `emit` its JSON answer and, optionally, its own table view and CSV rows.
`--query` always applies to the JSON answer; after a query the table and CSV views are the
generic ones (a list of objects is a table with one column per key).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.exceptions
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from scripts.cli.errors import EXIT_USAGE, ConsoleError

OUTPUTS = ("table", "json", "csv")
# Without a terminal rich would wrap tables at 80 columns; a pipe or a file gets them whole.
PIPE_WIDTH = 200

Rows = tuple[Sequence[str], Sequence[Sequence[Any]]]


def stdout_console() -> Console:
    terminal = sys.stdout.isatty()
    return Console(width=None if terminal else PIPE_WIDTH, highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    # Messages are not wrapped: a path or a command in them must stay whole (and greppable).
    return Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Output:
    """The `--output` and `--query` options."""

    format: str = "table"
    query: str | None = None

    def __post_init__(self) -> None:
        if self.query is not None:
            try:
                jmespath.compile(self.query)
            except jmespath.exceptions.JMESPathError as exc:
                raise ConsoleError(f"--query {self.query!r}: {exc}", EXIT_USAGE) from exc

    def emit(
        self,
        data: Any,
        *,
        table: Callable[[Any], RenderableType | str] | None = None,
        rows: Callable[[Any], Rows] | None = None,
    ) -> None:
        """Print `data` (the JSON answer) as asked: the command's own `table`/`rows` view
        unless a query reshaped it."""
        if self.query is not None:
            data = jmespath.search(self.query, data)
            table = rows = None
        if self.format == "json":
            sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        elif self.format == "csv":
            headers, body = rows(data) if rows else generic_rows(data)
            sys.stdout.write(to_csv(headers, body))
        else:
            print_view(table(data) if table else generic_table(data))


def print_view(view: RenderableType | str) -> None:
    """Print a rich view on stdout; to a pipe or file without the padding rich puts at the
    end of table lines (so the output diffs and greps cleanly)."""
    console = stdout_console()
    if console.is_terminal:
        console.print(view)
        return
    with console.capture() as captured:
        console.print(view)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def cell(value: Any) -> str:
    """A value as a table or CSV cell: scalars as text, structures as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def generic_rows(data: Any) -> Rows:
    """Headers and rows for any JSON value: a list of objects gets one column per key."""
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        headers: list[str] = []
        for item in data:
            headers += [key for key in item if key not in headers]
        return headers, [[cell(item.get(h)) for h in headers] for item in data]
    if isinstance(data, list):
        return ["value"], [[cell(x)] for x in data]
    if isinstance(data, dict):
        return ["key", "value"], [[k, cell(v)] for k, v in data.items()]
    return ["value"], [[cell(data)]]


def generic_table(data: Any) -> RenderableType | str:
    if not isinstance(data, list | dict):
        return cell(data)
    headers, body = generic_rows(data)
    return make_table(headers, body)


def make_table(
    headers: Sequence[str], body: Sequence[Sequence[Any]], title: str | None = None
) -> Table:
    """A borderless rich table; cells that are `Text` keep their style."""
    table = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in body:
        table.add_row(*(value if isinstance(value, Text) else cell(value) for value in row))
    return table


def to_csv(headers: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    for row in body:
        writer.writerow([cell(v) if not isinstance(v, str) else v for v in row])
    return buffer.getvalue()
