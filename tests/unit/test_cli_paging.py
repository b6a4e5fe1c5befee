"""`paged_items`: every page of a listing, through nextToken, in order (no AWS)."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.cli.errors import ConsoleError
from scripts.cli.paging import paged_items
from scripts.cli.status_commands import account_names


class PagedFunction:
    """A listing operation answered from `pages`: page n's nextToken is "n+1" (none on the
    last); with `fail_at`, the call for that page raises ConsoleError instead."""

    def __init__(self, pages: list[list[dict[str, Any]]], fail_at: int | None = None) -> None:
        self.pages = pages
        self.fail_at = fail_at
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, operation: str, **params: Any) -> dict[str, Any]:
        self.calls.append((operation, params))
        index = int(params["nextToken"] or 0)
        if index == self.fail_at:
            raise ConsoleError("throttled")
        answer: dict[str, Any] = {"items": self.pages[index]}
        if index + 1 < len(self.pages):
            answer["nextToken"] = str(index + 1)
        return answer


def test_every_page_is_read_in_order_with_the_same_parameters() -> None:
    function = PagedFunction([[{"n": 1}, {"n": 2}], [], [{"n": 3}]])

    items = list(paged_items(function, "list_things", progress="listing", accountId="1"))

    assert items == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert function.calls == [
        ("list_things", {"accountId": "1", "nextToken": None}),
        ("list_things", {"accountId": "1", "nextToken": "1"}),
        ("list_things", {"accountId": "1", "nextToken": "2"}),
    ]


def test_a_page_without_items_ends_nothing_but_a_missing_token_does() -> None:
    function = PagedFunction([[{"n": 1}]])

    assert list(paged_items(function, "list_things")) == [{"n": 1}]
    assert len(function.calls) == 1


def test_a_failed_page_raises_after_the_items_before_it() -> None:
    function = PagedFunction([[{"n": 1}], [{"n": 2}]], fail_at=1)
    read: list[dict[str, Any]] = []

    with pytest.raises(ConsoleError):
        read.extend(paged_items(function, "list_things", progress="listing"))

    assert read == [{"n": 1}]


class NamesConsole:
    def __init__(self, function: PagedFunction) -> None:
        self.manage = function


def test_account_names_keep_the_pages_read_when_a_later_one_fails() -> None:
    function = PagedFunction(
        [
            [{"accountId": "111122223333", "accountName": "payments"}, {"accountId": "4"}],
            [{"accountId": "777788889999", "accountName": "shared"}],
        ],
        fail_at=1,
    )

    assert account_names(NamesConsole(function)) == {"111122223333": "payments"}  # type: ignore[arg-type]
