"""How AWS judges an STS AssumeRole against the role's trust policy: a pure evaluator.

moto's STS hands out credentials for any role ARN, existing or not, with or without the
external id its trust policy asks for. The local moto server (`scripts.local.moto_server`)
asks `judge_assume_role` first and answers AccessDenied when it refuses, so a misregistered
account fails locally as it fails in AWS.

What is modelled (the subset trust policies of this project and its operators use):

- Statements (one or a list) with `Effect` Allow or Deny, `Action` (string or list, matched
  case-insensitively with `*` and `?` wildcards, so `sts:*` and `*` match), `Principal`.
- Every action the request needs must be allowed: `sts:AssumeRole`, plus
  `sts:SetSourceIdentity` when the request sets a SourceIdentity and `sts:TagSession` when
  it passes session tags. A matching Deny statement refuses, whatever allows.
- `Principal`: `"*"`; `{"AWS": ...}` with one or a list of `"*"`, an account id,
  `arn:PARTITION:iam::ACCOUNT:root` (any caller of that account), or the exact ARN of a role
  or user (a role's ARN includes its path); `{"Service": ...}` with one or a list of service
  principals (`lambda.amazonaws.com`). A caller acting as a service principal matches only
  `"*"` and `Service` entries; any other caller only `"*"` and `AWS` entries.
- `Condition` operators StringEquals, StringNotEquals, StringLike (`*`, `?`), ArnEquals and
  ArnLike (both with wildcards, per ARN component, as IAM does), Null; each of them but Null
  with the `IfExists` suffix. Several values of one key: any of them; several keys or
  operators: all of them. A key absent from the request fails every operator but Null,
  StringNotEquals and the IfExists forms.
- Condition keys (names case-insensitive): `sts:ExternalId`, `aws:PrincipalArn` and
  `aws:PrincipalAccount` (absent for a service principal), `sts:SourceIdentity` (the
  request's) and `aws:SourceIdentity` (the caller session's own, when known).

What is not modelled, and fails closed: `NotAction`, `NotPrincipal`, `Federated` and
`CanonicalUser` principals, set operators (`ForAnyValue:`, `ForAllValues:`), any other
operator or condition key. A statement using any of them never allows, and, if it is a Deny,
refuses: the local AWS may refuse what AWS would grant, never grant what AWS would refuse.
Not judged at all: identity-based policies of the caller (the caller's own permission to
call sts:AssumeRole), permission boundaries, SCPs, session policies, tag keys' conditions
(`aws:RequestTag/...`, refused as unknown keys), role chaining limits, session duration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ASSUME_ROLE = "sts:AssumeRole"
SET_SOURCE_IDENTITY = "sts:SetSourceIdentity"
TAG_SESSION = "sts:TagSession"

# The request header through which a local client says it calls as an AWS service (the local
# runner assumes a Lambda function's execution role as `lambda.amazonaws.com` would). Only the
# local moto server reads it, and only on AssumeRole.
SERVICE_PRINCIPAL_HEADER = "x-local-service-principal"

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_ROOT_ARN = re.compile(r"arn:[a-z-]+:iam::([0-9]{12}):root")
_OPERATORS = frozenset(
    {"stringequals", "stringnotequals", "stringlike", "arnequals", "arnlike", "null"}
)
_KEYS = frozenset(
    {
        "sts:externalid",
        "aws:principalarn",
        "aws:principalaccount",
        "sts:sourceidentity",
        "aws:sourceidentity",
    }
)


@dataclass(frozen=True)
class _Verdict:
    """One statement against one action: matches, does not (why), or cannot be judged (why)."""

    matches: bool
    unknown: bool = False
    why: str = ""


_MATCH = _Verdict(True)


def _no(why: str) -> _Verdict:
    return _Verdict(False, why=why)


def _unknown(why: str) -> _Verdict:
    return _Verdict(False, unknown=True, why=why)


def judge_assume_role(
    trust_policy: Mapping[str, Any],
    caller_principal_arn: str | None,
    caller_account: str | None,
    service_principal: str | None,
    external_id: str | None,
    source_identity: str | None,
    *,
    session_tags: bool = False,
    session_source_identity: str | None = None,
) -> str | None:
    """Whether AWS would let this caller assume a role with `trust_policy`.

    caller_principal_arn: the caller's aws:PrincipalArn (an assumed-role session's ROLE ARN,
        path included; a user's ARN); ignored when `service_principal` is given.
    caller_account: the caller's account id (None for a service principal).
    service_principal: the service the caller acts as (e.g. "lambda.amazonaws.com"), or None.
    external_id, source_identity: the request's ExternalId and SourceIdentity (None: absent).
    session_tags: the request passes session tags (needs sts:TagSession).
    session_source_identity: the source identity already on the caller's session, if any.

    Returns None when allowed, else a reason for people debugging (never for the caller: AWS
    answers the same AccessDenied whatever the reason). Never raises on a malformed policy;
    a policy it cannot read refuses.
    """
    statements = trust_policy.get("Statement") if isinstance(trust_policy, Mapping) else None
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        return "the trust policy has no Statement list"
    context: dict[str, str] = {}
    if service_principal is None:
        if caller_principal_arn:
            context["aws:principalarn"] = caller_principal_arn
        if caller_account:
            context["aws:principalaccount"] = caller_account
    if external_id is not None:
        context["sts:externalid"] = external_id
    if source_identity is not None:
        context["sts:sourceidentity"] = source_identity
    if session_source_identity is not None:
        context["aws:sourceidentity"] = session_source_identity
    caller = _Caller(caller_principal_arn, caller_account, service_principal)

    actions = [ASSUME_ROLE]
    if source_identity is not None:
        actions.append(SET_SOURCE_IDENTITY)
    if session_tags:
        actions.append(TAG_SESSION)
    for action in actions:
        refusal = _judge_action(statements, action, caller, context)
        if refusal is not None:
            return f"{action}: {refusal}"
    return None


@dataclass(frozen=True)
class _Caller:
    principal_arn: str | None
    account: str | None
    service: str | None


def _judge_action(
    statements: Sequence[Any], action: str, caller: _Caller, context: Mapping[str, str]
) -> str | None:
    allowed = False
    misses: list[str] = []
    for index, statement in enumerate(statements):
        name = _statement_name(statement, index)
        verdict = _judge_statement(statement, action, caller, context)
        effect = statement.get("Effect") if isinstance(statement, Mapping) else None
        if effect == "Deny" and (verdict.matches or verdict.unknown):
            suffix = f" (cannot be judged locally: {verdict.why})" if verdict.unknown else ""
            return f"explicitly denied by {name}{suffix}"
        if effect == "Allow" and verdict.matches:
            allowed = True
        elif effect == "Allow":
            misses.append(f"{name}: {verdict.why}")
        elif effect != "Deny":
            misses.append(f"{name}: Effect {effect!r} is neither Allow nor Deny")
    if allowed:
        return None
    return "no Allow statement matches (" + "; ".join(misses or ["none"]) + ")"


def _statement_name(statement: Any, index: int) -> str:
    sid = statement.get("Sid") if isinstance(statement, Mapping) else None
    return f"statement {sid!r}" if sid else f"statement #{index + 1}"


def _judge_statement(
    statement: Any, action: str, caller: _Caller, context: Mapping[str, str]
) -> _Verdict:
    if not isinstance(statement, Mapping):
        return _unknown("not an object")
    for unsupported in ("NotAction", "NotPrincipal"):
        if unsupported in statement:
            return _unknown(f"{unsupported} is not modelled")
    action_verdict = _judge_actions(statement.get("Action"), action)
    if not action_verdict.matches:
        return action_verdict
    principal_verdict = _judge_principal(statement.get("Principal"), caller)
    if not principal_verdict.matches:
        return principal_verdict
    return _judge_conditions(statement.get("Condition"), context)


def _judge_actions(patterns: Any, action: str) -> _Verdict:
    listed = _strings(patterns)
    if listed is None:
        return _unknown(f"Action {patterns!r} is not a string or a list of strings")
    if any(_glob(pattern.lower(), action.lower()) for pattern in listed):
        return _MATCH
    return _no(f"Action {listed} does not include {action}")


def _judge_principal(principal: Any, caller: _Caller) -> _Verdict:
    if principal == "*":
        return _MATCH
    if not isinstance(principal, Mapping) or not principal:
        return _unknown(f"Principal {principal!r} is not '*' or an object")
    unsupported = sorted(set(principal) - {"AWS", "Service"})
    if unsupported:
        # Another kind of principal in the same statement could match this caller in AWS.
        return _unknown(f"Principal types {unsupported} are not modelled")
    if caller.service is not None:
        services = _strings(principal.get("Service", []))
        if services is None:
            return _unknown(f"Principal Service {principal['Service']!r} is not understood")
        if caller.service in services:
            return _MATCH
        return _no(f"service principal {caller.service} is not trusted")
    entries = _strings(principal.get("AWS", []))
    if entries is None:
        return _unknown(f"Principal AWS {principal['AWS']!r} is not understood")
    for entry in entries:
        if entry == "*":
            return _MATCH
        account = _entry_account(entry)
        if account is not None and account == caller.account:
            return _MATCH
        if account is None and caller.principal_arn is not None and entry == caller.principal_arn:
            return _MATCH
    return _no(f"caller {caller.principal_arn or caller.account} is not among {entries}")


def _entry_account(entry: str) -> str | None:
    """The account an account-wide principal entry names (`ACCOUNT` or its root ARN)."""
    if _ACCOUNT_ID.fullmatch(entry):
        return entry
    root = _ROOT_ARN.fullmatch(entry)
    return root.group(1) if root else None


def _judge_conditions(conditions: Any, context: Mapping[str, str]) -> _Verdict:
    if conditions is None:
        return _MATCH
    if not isinstance(conditions, Mapping):
        return _unknown(f"Condition {conditions!r} is not an object")
    for operator, keys in conditions.items():
        base, if_exists = _operator(operator)
        if base is None:
            return _unknown(f"condition operator {operator!r} is not modelled")
        if not isinstance(keys, Mapping):
            return _unknown(f"condition {operator} is not an object")
        for key, values in keys.items():
            if key.lower() not in _KEYS:
                return _unknown(f"condition key {key!r} is not modelled")
            expected = _condition_values(values)
            if expected is None:
                return _unknown(f"condition {operator} {key} has values {values!r}")
            actual = context.get(key.lower())
            if actual is None and if_exists:
                continue
            if not _holds(base, actual, expected):
                shown = "absent" if actual is None else repr(actual)
                return _no(f"{operator} {key} {expected} fails ({key} is {shown})")
    return _MATCH


def _operator(name: str) -> tuple[str | None, bool]:
    """(base operator, IfExists) of a modelled operator; (None, False) otherwise."""
    lowered = name.lower()
    if_exists = lowered.endswith("ifexists")
    base = lowered[: -len("ifexists")] if if_exists else lowered
    if base not in _OPERATORS or (if_exists and base == "null"):
        return None, False
    return base, if_exists


def _holds(base: str, actual: str | None, expected: Sequence[str]) -> bool:
    if base == "null":
        return any((actual is None) == (value.lower() == "true") for value in expected)
    if base == "stringnotequals":
        return actual is None or actual not in expected
    if actual is None:
        return False
    if base == "stringequals":
        return actual in expected
    if base == "stringlike":
        return any(_glob(value, actual) for value in expected)
    return any(_arn_like(value, actual) for value in expected)  # arnequals, arnlike


def _arn_like(pattern: str, arn: str) -> bool:
    """IAM's ArnEquals/ArnLike: each of the six ARN components matched on its own."""
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return False
    return all(_glob(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))


def _glob(pattern: str, text: str) -> bool:
    """Case-sensitive match with IAM's two wildcards, `*` (any run) and `?` (one character)."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _condition_values(values: Any) -> list[str] | None:
    """A condition's values as IAM compares them: strings, booleans as "true"/"false"."""
    items = values if isinstance(values, list) else [values]
    converted: list[str] = []
    for item in items:
        if isinstance(item, bool):
            converted.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            converted.append(str(item))
        else:
            return None
    return converted
