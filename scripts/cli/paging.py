"""Listings that page through nextToken: every item, with the reading shown on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from scripts.cli.output import stderr_console


class PageProgress:
    """ "WHAT: page N, M UNIT" on stderr while a listing pages through nextToken (terminal
    only; gone once closed)."""

    def __init__(self, what: str, unit: str = "items") -> None:
        self.console = stderr_console()
        self.what = what
        self.unit = unit
        self.pages = self.items = 0
        self._status = self.console.status(what) if self.console.is_terminal else None
        if self._status is not None:
            self._status.start()

    def page(self, items: int) -> None:
        self.pages += 1
        self.items += items
        if self._status is not None:
            self._status.update(f"{self.what}: page {self.pages}, {self.items} {self.unit}")

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()


def paged_items(
    invoke: Callable[..., Any],
    operation: str,
    *,
    progress: str | None = None,
    unit: str = "items",
    **params: Any,
) -> Iterator[dict[str, Any]]:
    """Every item `operation` lists, in order: `invoke(operation, nextToken=..., **params)`
    (`Console.query` or `Console.manage`) page after page until an answer has no nextToken.

    With `progress`, "PROGRESS: page N, M UNIT" shows on stderr while it reads (on a
    terminal). Raises what `invoke` raises (ConsoleError), after the items read so far."""
    shown = PageProgress(progress, unit) if progress else None
    token = None
    try:
        while True:
            page = invoke(operation, nextToken=token, **params)
            items = page.get("items") or []
            if shown is not None:
                shown.page(len(items))
            yield from items
            token = page.get("nextToken")
            if not token:
                return
    finally:
        if shown is not None:
            shown.close()
