"""Honest pages and tokens of the query-handler (pure: fake DynamoDB pages, no network)."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory_queries.paging import (
    Collected,
    check_limit,
    collect,
    decode_next_token,
    encode_next_token,
    listing_id,
)
from inventory_queries.reader import Page, ServerSelection
from shared.exceptions import InvalidParameterError
from shared.pagination import encode_token

KEY = ("sourceServerArn",)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def item(n: int, **extra: Any) -> dict[str, Any]:
    return {"sourceServerArn": f"arn-{n:04d}", "n": n, **extra}


def pages_of(items: list[dict[str, Any]], sizes: list[int]) -> list[Page]:
    """Split `items` into pages of `sizes` (the last size repeats); each but the last has a
    LastEvaluatedKey (the key of its last item), as DynamoDB pages do."""
    pages = []
    start = 0
    index = 0
    while start < len(items) or not pages:
        size = sizes[min(index, len(sizes) - 1)]
        chunk = items[start : start + size]
        start += size
        index += 1
        more = start < len(items)
        pages.append(
            Page(chunk, {"sourceServerArn": chunk[-1]["sourceServerArn"]} if more else None)
        )
    return pages


def everything(row: Any) -> bool:
    return True


def identity(row: dict[str, Any]) -> dict[str, Any]:
    return row


def run(pages: list[Page], limit: int, keep: Any = everything, **kwargs: Any) -> Collected:
    return collect(pages, key_attributes=KEY, limit=limit, keep=keep, shape=identity, **kwargs)


def test_a_page_that_fills_at_a_dynamodb_page_end_resumes_after_that_page() -> None:
    items = [item(n) for n in range(6)]
    result = run(pages_of(items, [3]), limit=3)
    assert [i["n"] for i in result.items] == [0, 1, 2]
    assert result.resume_key == {"sourceServerArn": "arn-0002"}


def test_a_page_that_fills_mid_page_resumes_after_the_last_item_returned() -> None:
    items = [item(n) for n in range(10)]
    result = run(pages_of(items, [10]), limit=4)
    assert [i["n"] for i in result.items] == [0, 1, 2, 3]
    assert result.resume_key == {"sourceServerArn": "arn-0003"}


def test_filling_exactly_at_the_end_of_the_data_gives_no_token() -> None:
    items = [item(n) for n in range(4)]
    assert run(pages_of(items, [2]), limit=4).resume_key is None


def test_non_matching_tail_of_the_last_page_gives_no_token() -> None:
    items = [item(n) for n in range(8)]
    result = run(pages_of(items, [8]), limit=2, keep=lambda row: row["n"] < 2)
    assert [i["n"] for i in result.items] == [0, 1] and result.resume_key is None


def test_non_matching_tail_before_more_pages_resumes_at_the_page_key() -> None:
    items = [item(n) for n in range(8)]
    result = run(pages_of(items, [4]), limit=2, keep=lambda row: row["n"] in (0, 1, 6))
    assert [i["n"] for i in result.items] == [0, 1]
    assert result.resume_key == {"sourceServerArn": "arn-0003"}


def test_filters_read_on_until_the_page_is_full() -> None:
    items = [item(n) for n in range(30)]
    result = run(pages_of(items, [4]), limit=3, keep=lambda row: row["n"] % 7 == 0)
    assert [i["n"] for i in result.items] == [0, 7, 14]
    assert result.resume_key == {"sourceServerArn": "arn-0015"}  # end of the page read


def test_pages_that_run_out_on_a_key_resume_after_it() -> None:
    # A listing completed by key (the scope index's page read whole) ends on the key the
    # index page stopped at; items missing from it (expired meanwhile) must not lose it.
    pages = [Page([item(0), item(2)], {"sourceServerArn": "arn-0003"})]
    result = run(pages, limit=4)
    assert [i["n"] for i in result.items] == [0, 2]
    assert result.resume_key == {"sourceServerArn": "arn-0003"}


def test_an_empty_table_is_an_empty_page() -> None:
    assert run([Page([], None)], limit=10) == Collected([], None)


def test_the_byte_budget_cuts_before_the_item_that_would_exceed_it() -> None:
    items = [item(n, blob="x" * 100) for n in range(10)]
    one = len(json.dumps(items[0]).encode())
    result = run(pages_of(items, [10]), limit=10, max_bytes=3 * one + 1)
    assert len(result.items) == 3
    assert result.resume_key == {"sourceServerArn": "arn-0002"}


def test_an_item_larger_than_the_budget_is_still_returned_alone() -> None:
    items = [item(n, blob="x" * 100) for n in range(3)]
    result = run(pages_of(items, [3]), limit=10, max_bytes=10)
    assert [i["n"] for i in result.items] == [0]
    assert result.resume_key == {"sourceServerArn": "arn-0000"}


def test_out_of_time_stops_after_the_current_dynamodb_page() -> None:
    items = [item(n) for n in range(9)]
    pages = pages_of(items, [3])
    result = run(pages, limit=9, out_of_time=lambda: True)
    assert [i["n"] for i in result.items] == [0, 1, 2]
    assert result.resume_key == {"sourceServerArn": "arn-0002"}


def test_no_dynamodb_page_is_read_beyond_the_one_that_completes_the_result() -> None:
    read = []

    def lazy_pages() -> Any:
        for page in pages_of([item(n) for n in range(9)], [3]):
            read.append(page)
            yield page

    collect(lazy_pages(), key_attributes=KEY, limit=3, keep=everything, shape=identity)
    assert len(read) == 1


def _walk(items: list[dict[str, Any]], sizes: list[int], limit: int, keep: Any) -> list[list[int]]:
    """Every page a caller gets by passing each resume key back, as tokens do."""
    walked = []
    start = 0
    for _ in range(len(items) + 2):
        result = run(pages_of(items[start:], sizes), limit=limit, keep=keep)
        walked.append([row["n"] for row in result.items])
        if result.resume_key is None:
            return walked
        start = (
            next(
                i
                for i, row in enumerate(items)
                if row["sourceServerArn"] == result.resume_key["sourceServerArn"]
            )
            + 1
        )
    raise AssertionError("the walk did not end")


@given(
    count=st.integers(0, 40),
    sizes=st.lists(st.integers(1, 8), min_size=1, max_size=5),
    limit=st.integers(1, 12),
    modulus=st.integers(1, 4),
)
def test_walking_the_tokens_yields_every_match_once_in_order_with_full_pages(
    count: int, sizes: list[int], limit: int, modulus: int
) -> None:
    items = [item(n) for n in range(count)]
    walked = _walk(items, sizes, limit, lambda row: row["n"] % modulus == 0)
    assert [n for page in walked for n in page] == [n for n in range(count) if n % modulus == 0]
    assert all(len(page) == limit for page in walked[:-1])


# --- tokens --------------------------------------------------------------------------------


def test_a_token_round_trips_its_key() -> None:
    listing = listing_id("list_source_servers", {"accountId": "123456789012"})
    key = {"sourceServerArn": "arn-1", "accountId": "123456789012", "region": "us-east-1"}
    token = encode_next_token(key, listing)
    assert token and "arn-1" not in token  # opaque
    selection = ServerSelection("123456789012", "us-east-1")
    assert decode_next_token("op", token, listing, selection) == key
    assert decode_next_token("op", token, listing, ServerSelection("123456789012")) == key


def test_no_key_no_token() -> None:
    assert encode_next_token(None, "x") is None
    assert encode_next_token({}, "x") is None


def test_the_listing_id_depends_on_every_criterion_and_the_operation() -> None:
    base = {"accountId": None, "hostname": "web"}
    assert listing_id("a", base) == listing_id("a", dict(reversed(base.items())))
    assert listing_id("a", base) != listing_id("b", base)
    assert listing_id("a", base) != listing_id("a", {**base, "hostname": "db"})


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("%%%", "malformed"),
        ("bm90IGpzb24=", "malformed"),  # base64 of "not json"
        (encode_token({"sourceServerArn": "arn-1"}), "does not belong"),  # no listing id
        (encode_token({"key": {"sourceServerArn": "a"}, "listing": "other"}), "different filters"),
        (encode_token({"key": {"wrong": "a"}, "listing": "L"}), "malformed"),
        (encode_token({"key": {"sourceServerArn": 5}, "listing": "L"}), "malformed"),
        (encode_token({"key": ["sourceServerArn"], "listing": "L"}), "malformed"),
        (encode_token({"key": {"sourceServerArn": ""}, "listing": "L"}), "malformed"),
        (encode_token({"key": {"sourceServerArn": "a" * 2049}, "listing": "L"}), "malformed"),
        (encode_token({"key": {"sourceServerArn": ["a"]}, "listing": "L"}), "malformed"),
        (encode_token({"key": None, "listing": "L"}), "malformed"),
        (encode_token({"key": {"sourceServerArn": "a"}, "listing": ["L"]}), "different filters"),
        ("", "malformed"),
        ("A" * 5000, "malformed"),  # longer than any token issued
        ("eyJr", "malformed"),  # base64 of '{"k': not JSON
        ("eyJ", "malformed"),  # not a multiple of four characters
        ("eyJrZXki\nOiAxfQ==", "malformed"),  # a newline inside
        ("ZXlK+/8=", "malformed"),  # the standard, not the urlsafe, alphabet
        ("//79/A==", "malformed"),
        (_b64(b"\xff\xfe\x00garbage"), "malformed"),  # valid base64, not UTF-8
        (_b64(b"[" * 3000), "malformed"),  # deeper than the JSON parser's recursion limit
        (_b64(b'{"key": {"sourceServerArn": "a"}, "listing": NaN}'), "different filters"),
        (_b64(b"1e999999"), "does not belong"),
        (_b64('{"ключ": 1}'.encode()), "does not belong"),
    ],
)
def test_bad_tokens_are_invalid_parameters(token: str, reason: str) -> None:
    with pytest.raises(InvalidParameterError, match=reason):
        decode_next_token("list_source_servers", token, "L", ServerSelection())


@pytest.mark.parametrize("token", [None, 7, 1.5, True, ["x"], {"key": {}}, b"eyJr"])
def test_a_token_that_is_not_a_string_is_malformed(token: Any) -> None:
    with pytest.raises(InvalidParameterError, match="malformed"):
        decode_next_token("list_source_servers", token, "L", ServerSelection())


HUB, TARGET, EAST, WEST = "123456789012", "111122223333", "us-east-1", "us-west-2"


@pytest.mark.parametrize(
    "key",
    [
        {"sourceServerArn": "a", "accountId": TARGET, "region": EAST},  # another account
        {"sourceServerArn": "a", "accountId": HUB, "region": WEST},  # another region
        {"sourceServerArn": "a", "accountId": HUB + "\n", "region": EAST},
        {"sourceServerArn": "a", "accountId": int(HUB), "region": EAST},
        {"sourceServerArn": "a", "accountId": HUB, "region": EAST + "\n"},
        {"sourceServerArn": "a", "accountId": HUB, "region": {"S": EAST}},
        {"sourceServerArn": "a", "accountId": HUB},  # a key attribute missing
    ],
)
def test_a_scope_index_key_must_lie_in_the_queried_scope(key: dict[str, Any]) -> None:
    # DynamoDB answers a start key outside the key condition with a ValidationException;
    # the query-handler must refuse it as a parameter instead.
    token = encode_next_token(key, "L")
    assert token
    with pytest.raises(InvalidParameterError, match="malformed"):
        decode_next_token("list_source_servers", token, "L", ServerSelection(HUB, EAST))


@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda raw: _b64(raw)))
def test_no_string_makes_decoding_fail_other_than_invalid_parameter(token: str) -> None:
    with contextlib.suppress(InvalidParameterError):
        decode_next_token("list_source_servers", token, "L", ServerSelection(HUB, EAST))


@pytest.mark.parametrize(("limit", "expected"), [(None, 100), (1, 1), (1000, 1000)])
def test_limit_defaults_and_bounds(limit: int | None, expected: int) -> None:
    assert check_limit("op", limit) == expected


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_limit_out_of_range(limit: int) -> None:
    with pytest.raises(InvalidParameterError, match="limit must be 1-1000"):
        check_limit("op", limit)
