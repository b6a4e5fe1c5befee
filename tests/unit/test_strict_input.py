"""Strict input shared by both handlers: formats, Field checks, error messages (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.exceptions import InvalidParameterError
from shared.operations import Field, check_params
from shared.validation import (
    ACCOUNT_ID,
    EXTERNAL_ID,
    REGION,
    ROLE_ARN,
    SOURCE_SERVER_ARN,
    SOURCE_SERVER_ID,
    TextFormat,
    account_of,
    listed,
    shown,
)
from tests.support.strict import look_alikes

VALID = {
    ACCOUNT_ID: "123456789012",
    REGION: "ap-southeast-3",
    SOURCE_SERVER_ID: "s-0123456789abcdef0",
    SOURCE_SERVER_ARN: "arn:aws:drs:us-east-1:123456789012:source-server/s-0123456789abcdef0",
    ROLE_ARN: "arn:aws:iam::123456789012:role/ops/drs-orchestration-x",
    EXTERNAL_ID: "ext_id+=,.@:/-9",
}
FORMATS = list(VALID)


@pytest.mark.parametrize("text", FORMATS, ids=lambda f: f.description[:20])
def test_each_format_accepts_its_example_and_refuses_look_alikes(text: TextFormat) -> None:
    valid = VALID[text]
    assert text.matches(valid)
    for bad in look_alikes(valid):
        if bad != valid:  # an id without digits has no digit look-alike
            assert not text.matches(bad), repr(bad)
    assert not text.matches(" " + valid)
    assert not text.matches(None) and not text.matches(123456789012)


@given(st.sampled_from(FORMATS), st.text(min_size=1))
def test_no_format_matches_non_ascii_text(text: TextFormat, noise: str) -> None:
    if not noise.isascii():
        assert not text.matches(VALID[text] + noise)
        assert not text.matches(noise)


@given(st.sampled_from(FORMATS), st.sampled_from(["\n", "\r\n", "\x00", "\t"]))
def test_no_format_matches_a_trailing_control_character(text: TextFormat, tail: str) -> None:
    assert not text.matches(VALID[text] + tail)


def test_the_account_inside_an_arn() -> None:
    assert account_of(ROLE_ARN, VALID[ROLE_ARN]) == "123456789012"
    assert account_of(SOURCE_SERVER_ARN, VALID[SOURCE_SERVER_ARN]) == "123456789012"
    assert account_of(ROLE_ARN, VALID[ROLE_ARN] + "\n") is None


@pytest.mark.parametrize(
    "role_arn",
    [
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role//x",
        "arn:aws:iam::123456789012:role/x/",
        "arn:aws:iam::123456789012:user/x",
        "arn:aws:iam:us-east-1:123456789012:role/x",
        "arn:aws:iam::123456789012:role/" + "r" * 65,
        "arn:aws:iam::123456789012:role/" + "p/" * 300 + "x",
        "arn:aws:iam::123456789012:role/a b",
    ],
)
def test_role_arns_iam_would_refuse(role_arn: str) -> None:
    assert not ROLE_ARN.matches(role_arn)


def test_external_id_lengths() -> None:
    assert not EXTERNAL_ID.matches("x")
    assert EXTERNAL_ID.matches("xy") and EXTERNAL_ID.matches("x" * 1224)
    assert not EXTERNAL_ID.matches("x" * 1225)


def test_listed_caps_long_lists() -> None:
    assert listed(["a", "b"]) == "a, b"
    assert listed(str(n) for n in range(10)) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert listed(str(n) for n in range(25)) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ... and 15 more"


def test_shown_values_are_short_and_never_recurse() -> None:
    nested: Any = []
    for _ in range(100_000):
        nested = [nested]
    assert shown(nested) == "a list"
    assert shown({"a": 1}) == "an object"
    assert shown(None) == "null" and shown(True) == "boolean" and shown(7) == "7"
    assert len(shown("x" * 1_000_000)) < 120


SPEC = {
    "name": Field((str,), required=True, pattern=ACCOUNT_ID),
    "ids": Field((list,), items=str, pattern=ACCOUNT_ID, max_items=3),
    "note": Field((str,), non_empty=True, max_length=5),
    "flag": Field((bool,)),
    "count": Field((int,)),
    "map": Field((dict,), non_empty=True),
}
GOOD = {"name": "123456789012"}


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"flag": None}, "flag must be boolean, got null; omit it"),
        ({"flag": 1}, "flag must be boolean, got number"),
        ({"count": True}, "count must be integer, got boolean"),
        ({"count": None}, "got null"),
        ({"ids": []}, "ids must hold at least one item"),
        ({"ids": ["123456789012"] * 4}, "at most 3 items"),
        ({"ids": ["123456789012", 5]}, "every item of ids must be string; not so: item 1"),
        ({"ids": ["123456789012\n"]}, "every item of ids must be 12 digits"),
        ({"note": "  "}, "note must not be empty"),
        ({"note": "toolong"}, "note must be at most 5 characters, got 7"),
        ({"map": {}}, "map must hold at least one key"),
        ({"name": "1234"}, "name must be 12 digits"),
        ({"name": None}, "name must be string, got null"),
    ],
)
def test_field_checks(extra: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidParameterError, match=reason):
        check_params("op", {**GOOD, **extra}, SPEC)


def test_a_valid_request_passes() -> None:
    check_params(
        "op",
        {**GOOD, "ids": ["123456789012"], "note": "hi", "flag": False, "count": 0, "map": {"a": 1}},
        SPEC,
    )


def test_a_string_without_its_own_limit_is_bounded() -> None:
    with pytest.raises(InvalidParameterError, match="at most 2048"):
        check_params("op", {"s": "x" * 2049}, {"s": Field((str,))})


def test_an_absent_required_parameter_is_missing_and_a_null_one_is_wrong() -> None:
    with pytest.raises(InvalidParameterError, match="missing required parameter name"):
        check_params("op", {}, SPEC)
    with pytest.raises(InvalidParameterError, match=r"name must be string, got null\Z"):
        check_params("op", {"name": None}, SPEC)
