"""The local STS's trust-policy judgement: what AWS refuses is refused, what it grants granted."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.local.local_sts import judge_assume_role

HUB = "123456789012"
OTHER = "999988887777"
EXTERNAL_ID = "drs-orchestration-3f9a"
HUB_ROLE = f"arn:aws:iam::{HUB}:role/service-role/drs/data-management-handler"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(principal: Any, condition: dict[str, Any] | None = None, action: Any = None) -> dict:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": action or ["sts:AssumeRole", "sts:SetSourceIdentity"],
    }
    if condition is not None:
        statement["Condition"] = condition
    return statement


HUB_WITH_EXTERNAL_ID = _policy(
    _allow({"AWS": f"arn:aws:iam::{HUB}:root"}, {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}})
)


def judge(
    policy: dict[str, Any],
    *,
    principal: str | None = HUB_ROLE,
    account: str | None = HUB,
    service: str | None = None,
    external_id: str | None = EXTERNAL_ID,
    source_identity: str | None = None,
    **kwargs: Any,
) -> str | None:
    return judge_assume_role(
        policy, principal, account, service, external_id, source_identity, **kwargs
    )


# ---- external id ------------------------------------------------------------------------------


def test_a_missing_external_id_is_refused() -> None:
    reason = judge(HUB_WITH_EXTERNAL_ID, external_id=None)

    assert reason is not None
    assert "sts:ExternalId" in reason and "absent" in reason


def test_a_wrong_external_id_is_refused() -> None:
    assert judge(HUB_WITH_EXTERNAL_ID, external_id="drs-orchestration-0000") is not None


def test_the_right_external_id_is_allowed() -> None:
    assert judge(HUB_WITH_EXTERNAL_ID) is None


def test_condition_keys_are_case_insensitive_and_values_case_sensitive() -> None:
    policy = _policy(_allow({"AWS": HUB}, {"StringEquals": {"STS:EXTERNALID": "Abc"}}))

    assert judge(policy, external_id="Abc") is None
    assert judge(policy, external_id="abc") is not None


# ---- principals -------------------------------------------------------------------------------


def test_a_principal_of_another_account_is_refused() -> None:
    reason = judge(HUB_WITH_EXTERNAL_ID, principal=f"arn:aws:iam::{OTHER}:role/x", account=OTHER)

    assert reason is not None and "not among" in reason


def test_the_root_principal_and_the_bare_account_id_trust_any_caller_of_the_account() -> None:
    for entry in (f"arn:aws:iam::{HUB}:root", HUB):
        policy = _policy(_allow({"AWS": entry}))
        assert judge(policy, principal=f"arn:aws:iam::{HUB}:user/moto") is None
        assert judge(policy, principal=HUB_ROLE) is None
        assert judge(policy, principal=f"arn:aws:iam::{OTHER}:root", account=OTHER) is not None


def test_a_role_arn_principal_matches_that_role_with_its_path_only() -> None:
    policy = _policy(_allow({"AWS": [f"arn:aws:iam::{OTHER}:root", HUB_ROLE]}))
    pathless = f"arn:aws:iam::{HUB}:role/data-management-handler"

    assert judge(policy) is None
    assert judge(policy, principal=pathless) is not None
    assert judge(policy, principal=f"arn:aws:iam::{HUB}:role/service-role/drs/other") is not None


def test_a_service_principal_is_matched_against_service_entries_only() -> None:
    lambda_trust = _policy(_allow({"Service": "lambda.amazonaws.com"}, action="sts:AssumeRole"))

    assert judge(lambda_trust, service="lambda.amazonaws.com", principal=None) is None
    assert judge(lambda_trust, service="ec2.amazonaws.com", principal=None) is not None
    # A caller of the account is not the service, whatever its account.
    assert judge(lambda_trust) is not None
    # And a service is not a caller of the account the policy trusts.
    assert judge(HUB_WITH_EXTERNAL_ID, service="lambda.amazonaws.com") is not None


def test_a_service_has_no_principal_arn_in_the_request_context() -> None:
    policy = _policy(
        _allow(
            {"Service": ["events.amazonaws.com", "lambda.amazonaws.com"]},
            {"Null": {"aws:PrincipalArn": "true"}},
        )
    )

    assert judge(policy, service="lambda.amazonaws.com", external_id=None) is None


def test_star_principal_trusts_everyone() -> None:
    assert judge(_policy(_allow("*")), principal=None, account=OTHER) is None


@pytest.mark.parametrize(
    "principal", [{"Federated": "cognito-identity.amazonaws.com"}, {"CanonicalUser": "abc"}]
)
def test_principal_types_not_modelled_never_allow(principal: dict[str, str]) -> None:
    assert judge(_policy(_allow(principal))) is not None


# ---- actions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action", ["sts:AssumeRole", ["sts:AssumeRole"], "sts:*", "*", "STS:assume*"]
)
def test_assume_role_is_allowed_by_any_action_form_that_names_it(action: Any) -> None:
    assert judge(_policy(_allow({"AWS": HUB}, action=action))) is None


def test_an_allow_of_other_actions_only_is_refused() -> None:
    policy = _policy(_allow({"AWS": HUB}, action=["sts:TagSession", "sts:AssumeRoleWithSAML"]))

    assert judge(policy) is not None


def test_source_identity_needs_set_source_identity() -> None:
    assume_only = _policy(_allow({"AWS": HUB}, action="sts:AssumeRole"))

    reason = judge(assume_only, source_identity="drs-inventory-sync")

    assert reason is not None and reason.startswith("sts:SetSourceIdentity")
    assert judge(assume_only) is None
    assert judge(_policy(_allow({"AWS": HUB})), source_identity="drs-inventory-sync") is None


def test_session_tags_need_tag_session() -> None:
    assert judge(_policy(_allow({"AWS": HUB})), session_tags=True) is not None
    tagging = _policy(_allow({"AWS": HUB}, action=["sts:AssumeRole", "sts:TagSession"]))
    assert judge(tagging, session_tags=True) is None


# ---- deny, fail closed ------------------------------------------------------------------------


def test_an_explicit_deny_wins_over_an_allow() -> None:
    policy = _policy(
        _allow({"AWS": HUB}),
        {
            "Sid": "NoHandlerSessions",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{HUB}:role/service-role/*"}
            },
        },
    )

    reason = judge(policy)

    assert reason is not None and "NoHandlerSessions" in reason
    assert judge(policy, principal=f"arn:aws:iam::{HUB}:user/moto") is None


def test_an_unknown_condition_operator_fails_closed() -> None:
    policy = _policy(
        _allow({"AWS": HUB}, {"StringEqualsIgnoreCase": {"sts:ExternalId": EXTERNAL_ID}})
    )

    reason = judge(policy)

    assert reason is not None and "StringEqualsIgnoreCase" in reason


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEquals": {"aws:RequestTag/team": "dr"}},
        {"ForAnyValue:StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
        {"NullIfExists": {"sts:ExternalId": "false"}},
    ],
)
def test_unknown_keys_and_set_operators_fail_closed(condition: dict[str, Any]) -> None:
    assert judge(_policy(_allow({"AWS": HUB}, condition))) is not None


def test_a_deny_that_cannot_be_judged_refuses() -> None:
    policy = _policy(
        _allow({"AWS": HUB}),
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "*",
            "Condition": {"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
        },
    )

    assert judge(policy) is not None


@pytest.mark.parametrize(
    "policy",
    [
        {},
        {"Statement": []},
        {"Statement": "x"},
        _policy({"Effect": "Allow", "NotPrincipal": {"AWS": OTHER}, "Action": "*"}),
    ],
)
def test_a_policy_it_cannot_read_refuses(policy: dict[str, Any]) -> None:
    assert judge(policy) is not None


# ---- condition operators ----------------------------------------------------------------------


def test_string_like_takes_star_and_question_mark() -> None:
    policy = _policy(
        _allow({"AWS": HUB}, {"StringLike": {"sts:ExternalId": "drs-orchestration-???a"}})
    )

    assert judge(policy) is None
    assert judge(policy, external_id="drs-orchestration-3f9ab") is not None
    star = _policy(_allow({"AWS": HUB}, {"StringLike": {"sts:ExternalId": ["nope", "drs-*"]}}))
    assert judge(star) is None
    assert judge(star, external_id=None) is not None


def test_arn_equals_and_arn_like_match_component_wise_with_wildcards() -> None:
    for operator in ("ArnEquals", "ArnLike"):
        policy = _policy(
            _allow(
                {"AWS": HUB}, {operator: {"aws:PrincipalArn": f"arn:aws:iam::{HUB}:role/*/drs/*"}}
            )
        )
        assert judge(policy) is None, operator
        assert judge(policy, principal=f"arn:aws:iam::{HUB}:user/moto") is not None, operator
    exact = _policy(_allow({"AWS": HUB}, {"ArnEquals": {"aws:PrincipalArn": HUB_ROLE}}))
    assert judge(exact) is None
    assert judge(exact, principal="not-an-arn") is not None


def test_string_not_equals_holds_for_an_absent_key() -> None:
    policy = _policy(_allow({"AWS": HUB}, {"StringNotEquals": {"sts:SourceIdentity": "admin"}}))

    assert judge(policy) is None
    assert judge(policy, source_identity="admin") is not None
    assert judge(policy, source_identity="drs-inventory-sync") is None


def test_if_exists_holds_for_an_absent_key_only() -> None:
    policy = _policy(
        _allow({"AWS": HUB}, {"StringEqualsIfExists": {"sts:SourceIdentity": "drs-inventory-sync"}})
    )

    assert judge(policy) is None
    assert judge(policy, source_identity="drs-inventory-sync") is None
    assert judge(policy, source_identity="someone") is not None


def test_null_checks_presence() -> None:
    requires_id = _policy(_allow({"AWS": HUB}, {"Null": {"sts:ExternalId": "false"}}))

    assert judge(requires_id) is None
    assert judge(requires_id, external_id=None) is not None


def test_principal_account_and_session_source_identity_keys() -> None:
    policy = _policy(
        _allow(
            "*",
            {
                "StringEquals": {"aws:PrincipalAccount": HUB, "aws:SourceIdentity": "alice"},
            },
        )
    )

    assert judge(policy, session_source_identity="alice") is None
    assert judge(policy) is not None
    assert judge(policy, account=OTHER, session_source_identity="alice") is not None


def test_every_operator_and_key_must_hold() -> None:
    policy = _policy(
        _allow(
            {"AWS": HUB},
            {
                "StringEquals": {"sts:ExternalId": EXTERNAL_ID},
                "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{HUB}:role/service-role/*"},
            },
        )
    )

    assert judge(policy) is None
    assert judge(policy, principal=f"arn:aws:iam::{HUB}:user/moto") is not None
    assert judge(policy, external_id="x") is not None
