"""Tag precedence and the other item predicates of the query-handler (pure)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from inventory_queries.matching import (
    effective_tags,
    has_tag,
    hostname_contains,
    is_deleted,
    tags_match,
)

tag_maps = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["1", "2"]))


def server(drs: dict[str, str] | None, ec2: dict[str, str] | None) -> dict[str, Any]:
    item: dict[str, Any] = {"sourceServerArn": "arn"}
    if drs is not None:
        item["tags"] = drs
    if ec2 is not None:
        item["ec2"] = {"instanceId": "i-1", "tags": ec2}
    return item


def test_the_drs_tag_wins_over_the_ec2_tag_on_the_same_key() -> None:
    item = server({"DRGroup": "web"}, {"DRGroup": "batch", "Team": "payments"})
    assert effective_tags(item) == {"DRGroup": "web", "Team": "payments"}
    assert tags_match(item, {"DRGroup": "web", "Team": "payments"})
    assert not tags_match(item, {"DRGroup": "batch"})


def test_ec2_tags_fill_in_keys_the_drs_record_lacks() -> None:
    item = server({"Environment": "prod"}, {"DRGroup": "batch"})
    assert tags_match(item, {"DRGroup": "batch", "Environment": "prod"})


def test_servers_without_ec2_or_tags_match_only_what_they_have() -> None:
    assert effective_tags(server(None, None)) == {}
    assert not tags_match(server(None, None), {"a": "1"})
    assert tags_match(server({"a": "1"}, None), {"a": "1"})
    assert effective_tags({"ec2": {"instanceId": "i-1"}}) == {}  # ec2 without tags


def test_matching_is_exact_and_case_sensitive() -> None:
    item = server({"Env": "Prod"}, None)
    assert not tags_match(item, {"Env": "prod"})
    assert not tags_match(item, {"env": "Prod"})
    assert not tags_match(server({"Env": ""}, None), {"Env": "x"})
    assert tags_match(server({"Env": ""}, None), {"Env": ""})


@given(drs=tag_maps, ec2=tag_maps, wanted=tag_maps)
def test_precedence_as_a_property(
    drs: dict[str, str], ec2: dict[str, str], wanted: dict[str, str]
) -> None:
    item = server(drs, ec2)
    tags = effective_tags(item)
    assert tags == {**ec2, **drs}
    for key, value in drs.items():
        assert tags[key] == value  # a DRS tag is never overridden
    assert tags_match(item, wanted) == all(tags.get(k) == v for k, v in wanted.items())
    assert tags_match(item, {})  # no constraint, every item


def test_has_tag_with_and_without_a_value() -> None:
    item = server({"a": "1"}, {"a": "2", "b": "3"})
    assert has_tag(item, "a") and has_tag(item, "b") and not has_tag(item, "c")
    assert has_tag(item, "a", "1") and not has_tag(item, "a", "2")


def test_hostname_is_a_case_insensitive_substring() -> None:
    item = {"hostname": "WEB-Prod-01"}
    assert hostname_contains(item, "web-prod")
    assert hostname_contains(item, "PROD-01")
    assert not hostname_contains(item, "db")
    assert not hostname_contains({}, "web")
    assert not hostname_contains({"hostname": None}, "web")


def test_deleted_means_a_deleted_at_timestamp() -> None:
    assert is_deleted({"deletedAt": "2026-01-01T00:00:00.000Z"})
    assert not is_deleted({})
    assert not is_deleted({"deletedAt": None})
