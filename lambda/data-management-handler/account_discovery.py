"""Discovery: the organization's accounts, compared with the registry, registered on request.

`discover_target_accounts` reads AWS Organizations' ListAccounts (every page) and plans:

    {"toRegister": [{"accountId", "accountName", "roleArn"}],   ACTIVE, not registered
     "toDisable": [{"accountId", "state"}],                     registered and enabled, but
                                                                SUSPENDED/PENDING_CLOSURE/CLOSED
     "alreadyRegistered": [{"accountId", "enabled", "state"}],  nothing to do
     "notInOrganization": [{"accountId", "enabled"}],           registered, not listed: left alone
     "skipped": [{"accountId", "reason"}]}                      the hub; accounts not ACTIVE

A registered account that the organization does not list is reported, never disabled: the
registry may hold accounts of another organization or registered by hand, and one
organization's listing says nothing about them. Only an account the organization itself says
is closing or closed is disabled (not deleted: its inventory and history stay).

Dry by default (`apply` false): the plan is the answer and nothing is written. With `apply`,
each planned change goes through the registry's own validated operations
(`add_target_account`, `update_target_account` enabled=false), one outcome per account
(`{"accountId", "action": "register"|"disable", "ok", "error"?: {"code", "message"},
"connectionTest"?}`), a failing account never stopping the others. Every account registered
by one apply gets the same external id: the one given (`externalId`, e.g. the StackSet's) or
one the hub generates for this apply and returns once as `externalId`. Connection tests
(concurrent, bounded) run before the registrations unless `skipConnectionTest` is given, or
the id was just generated (no role can trust it yet).

Organizations: the hub calls it directly when it is the management account or a delegated
administrator. Otherwise `organizationsRoleArn` names a role (in the management account)
that may call organizations:ListAccounts; it is assumed WITHOUT an external id: the id
guards a role against being assumed on someone else's behalf by a party that serves many
customers, and this role belongs to the operator's own organization, trusts the hub's role
by ARN and reads account names and ids only. It is assumed with the hub's SourceIdentity
and must match the role-name pattern the hub's role may assume (drs-orchestration-*).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from account_checks import run_connection_test
from inventory_sync.models import SyncSettings
from shared.aws import (
    ASSUME_ROLE_SECONDS,
    ClientFactory,
    deployment_name,
    error_code,
    error_message,
    hub_source_identity,
    new_session,
)
from shared.exceptions import (
    ConnectionTestFailedError,
    OrchestrationError,
    OrganizationsAccessError,
)
from shared.observability import get_logger
from shared.operations import Field, check_params
from shared.validation import ROLE_ARN, TARGET_ROLE_NAME
from target_accounts import (
    MAX_NAME_LENGTH,
    TEST_SPEC,
    add_target_account,
    generate_external_id,
    registered_accounts,
    update_target_account,
)

OPERATION = "discover_target_accounts"
DEFAULT_ROLE_NAME = "drs-orchestration-cross-account"
DISCOVER_SPEC = {
    "apply": Field((bool,)),
    "roleName": Field((str,), pattern=TARGET_ROLE_NAME),
    "organizationsRoleArn": Field((str,), pattern=ROLE_ARN),
    "externalId": TEST_SPEC["externalId"],
    "skipConnectionTest": Field((bool,)),
}
ACTIVE = "ACTIVE"
# What Organizations says of an account that is leaving (State; Status before it).
CLOSING = frozenset({"SUSPENDED", "PENDING_CLOSURE", "CLOSED"})
MAX_TEST_WORKERS = 4

logger = get_logger("data-management-handler")


def discover_target_accounts(
    params: dict[str, Any],
    context: Any = None,
    *,
    table: Any = None,
    factory: ClientFactory | None = None,
) -> dict[str, Any]:
    """Plan (and with `apply`, carry out) the registry changes the organization implies.

    Params (all optional): apply (default false), roleName (default
    drs-orchestration-cross-account), organizationsRoleArn, externalId (32-1224),
    skipConnectionTest. Returns {"applied": bool, "plan": {...}} plus, with apply,
    "results": [...] and "externalId" when accounts were registered with it (see the module
    docstring). Raises InvalidParameterError and OrganizationsAccessError.
    """
    check_params(OPERATION, params, DISCOVER_SPEC)
    factory = factory or ClientFactory()
    hub = factory.hub_account_id()
    accounts = _organization_accounts(factory, params.get("organizationsRoleArn"))
    registry = registered_accounts(table)
    plan = plan_discovery(accounts, registry, hub, params.get("roleName", DEFAULT_ROLE_NAME))
    logger.info(
        "discovery planned",
        extra={"apply": bool(params.get("apply"))}
        | {name: len(entries) for name, entries in plan.items()},
    )
    answer: dict[str, Any] = {"applied": bool(params.get("apply")), "plan": plan}
    if not params.get("apply"):
        return answer
    external_id = params.get("externalId")
    generated = external_id is None
    if generated and plan["toRegister"]:
        external_id = generate_external_id()
    results: list[dict[str, Any]] = []
    tests: dict[str, dict[str, Any]] = {}
    if plan["toRegister"] and not params.get("skipConnectionTest") and not generated:
        tests = _connection_tests(plan["toRegister"], external_id)
    for entry in plan["toRegister"]:
        results.append(_register(entry, external_id, tests.get(entry["accountId"]), table, hub))
    for entry in plan["toDisable"]:
        results.append(_disable(entry["accountId"], table))
    answer["results"] = results
    if external_id is not None and any(r["action"] == "register" and r["ok"] for r in results):
        answer["externalId"] = external_id
        answer["externalIdGenerated"] = generated
    return answer


def _state(account: Mapping[str, Any]) -> str:
    # `State` replaces `Status` (retired in 2026); either names the lifecycle stage.
    return str(account.get("State") or account.get("Status") or "UNKNOWN")


def _partition(account: Mapping[str, Any]) -> str:
    arn = str(account.get("Arn") or "")
    parts = arn.split(":")
    return parts[1] if len(parts) > 1 and parts[0] == "arn" and parts[1] else "aws"


def plan_discovery(
    accounts: Iterable[Mapping[str, Any]],
    registry: Iterable[Mapping[str, Any]],
    hub: str,
    role_name: str,
) -> dict[str, list[dict[str, Any]]]:
    """The plan (see the module docstring) from ListAccounts' accounts and the registry's
    items. Pure: no AWS call."""
    registered = {str(item["accountId"]): item for item in registry}
    plan: dict[str, list[dict[str, Any]]] = {
        "toRegister": [],
        "toDisable": [],
        "alreadyRegistered": [],
        "notInOrganization": [],
        "skipped": [],
    }
    listed: set[str] = set()
    for account in sorted(accounts, key=lambda a: str(a.get("Id"))):
        account_id = str(account.get("Id"))
        listed.add(account_id)
        state = _state(account)
        item = registered.get(account_id)
        if account_id == hub:
            plan["skipped"].append(
                {"accountId": account_id, "reason": "the hub account (synced without a role)"}
            )
        elif item is not None:
            enabled = bool(item.get("enabled", True))
            if enabled and state in CLOSING:
                plan["toDisable"].append({"accountId": account_id, "state": state})
            else:
                plan["alreadyRegistered"].append(
                    {"accountId": account_id, "enabled": enabled, "state": state}
                )
        elif state != ACTIVE:
            plan["skipped"].append({"accountId": account_id, "reason": f"state {state}"})
        else:
            entry = {
                "accountId": account_id,
                "roleArn": f"arn:{_partition(account)}:iam::{account_id}:role/{role_name}",
            }
            name = str(account.get("Name") or "").strip()
            if name:
                entry["accountName"] = name[:MAX_NAME_LENGTH]
            plan["toRegister"].append(entry)
    for account_id in sorted(set(registered) - listed - {hub}):
        enabled = bool(registered[account_id].get("enabled", True))
        plan["notInOrganization"].append({"accountId": account_id, "enabled": enabled})
    return plan


# --- Organizations ---------------------------------------------------------------------------
def _organization_accounts(factory: ClientFactory, role_arn: str | None) -> list[dict[str, Any]]:
    client = _organizations_client(factory, role_arn)
    accounts: list[dict[str, Any]] = []
    try:
        for page in client.get_paginator("list_accounts").paginate():
            accounts.extend(page.get("Accounts", []))
    except ClientError as exc:
        code = error_code(exc)
        _log_aws("ListAccounts", code, error_message(exc))
        raise OrganizationsAccessError(_list_message(code, role_arn)) from exc
    except BotoCoreError as exc:
        _log_aws("ListAccounts", type(exc).__name__, str(exc))
        raise OrganizationsAccessError(
            f"{OPERATION}: AWS Organizations could not be reached, or did not answer in time"
        ) from exc
    return accounts


def _list_message(code: str, role_arn: str | None) -> str:
    caller = f"the role {role_arn}" if role_arn else "the hub"
    if code == "AWSOrganizationsNotInUseException":
        return (
            f"{OPERATION}: {caller} is in an account that belongs to no organization "
            "(AWSOrganizationsNotInUseException); run discovery where the organization is "
            "visible: from its management account or a delegated administrator, or pass "
            "organizationsRoleArn naming a role in the management account"
        )
    if code in ("AccessDeniedException", "AccessDenied"):
        return (
            f"{OPERATION}: AWS Organizations denied ListAccounts to {caller} "
            f"({code}): ListAccounts answers only the organization's management account and "
            "delegated administrators, and the caller's policy must allow "
            "organizations:ListAccounts; deploy the hub in such an account, or pass "
            "organizationsRoleArn naming a role in the management account that may call it"
        )
    return (
        f"{OPERATION}: AWS Organizations answered {code} to ListAccounts; "
        "the function's log has the details"
    )


def _organizations_client(factory: ClientFactory, role_arn: str | None) -> Any:
    region = factory.home_region
    if role_arn is None:
        return factory.client("organizations", region)
    request: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": f"drs-discovery-{deployment_name()}",
        "DurationSeconds": ASSUME_ROLE_SECONDS,
    }
    if SyncSettings.from_env().set_source_identity:
        request["SourceIdentity"] = hub_source_identity()
    try:
        assumed = factory.client("sts", region).assume_role(**request)["Credentials"]
    except ClientError as exc:
        code = error_code(exc)
        _log_aws("AssumeRole", code, error_message(exc))
        if code in ("AccessDenied", "AccessDeniedException"):
            raise OrganizationsAccessError(
                f"{OPERATION}: the hub's role cannot assume organizationsRoleArn {role_arn} "
                f"({code}): the role does not exist, does not trust the hub's role, or its "
                "name is outside the pattern the hub's role may assume (drs-orchestration-*)"
            ) from exc
        raise OrganizationsAccessError(
            f"{OPERATION}: AssumeRole of organizationsRoleArn {role_arn} failed: STS answered "
            f"{code}; the function's log has the details"
        ) from exc
    except BotoCoreError as exc:
        _log_aws("AssumeRole", type(exc).__name__, str(exc))
        raise OrganizationsAccessError(
            f"{OPERATION}: STS could not be reached to assume organizationsRoleArn {role_arn}"
        ) from exc
    session = new_session(
        Credentials(assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"])
    )
    return session.client("organizations", region_name=region, config=factory.config)


def _log_aws(call: str, code: str, text: str, account_id: str | None = None) -> None:
    logger.warning(
        "discovery: AWS error",
        extra={"call": call, "errorCode": code, "error": text, "accountId": account_id},
    )


# --- apply -----------------------------------------------------------------------------------
def _connection_tests(entries: list[dict[str, Any]], external_id: str | None) -> dict[str, Any]:
    """Every new account's connection test, a few at a time (each tests its regions
    concurrently too); the registrations that follow are serial."""

    def test(entry: dict[str, Any]) -> dict[str, Any]:
        return run_connection_test(entry["accountId"], entry["roleArn"], external_id)

    with ThreadPoolExecutor(max_workers=MAX_TEST_WORKERS, thread_name_prefix="discovery") as pool:
        return {
            entry["accountId"]: result
            for entry, result in zip(entries, pool.map(test, entries), strict=True)
        }


def _register(
    entry: dict[str, Any],
    external_id: str | None,
    test: dict[str, Any] | None,
    table: Any,
    hub: str,
) -> dict[str, Any]:
    account_id = entry["accountId"]
    params: dict[str, Any] = {**entry}
    if external_id is not None:
        params["externalId"] = external_id
    if test is None:
        params["skipConnectionTest"] = True
    outcome: dict[str, Any] = {"accountId": account_id, "action": "register"}
    try:
        add_target_account(
            params,
            table=table,
            hub_account_id=hub,
            tester=lambda *_: test or {},  # the test already run for this account
        )
    except Exception as exc:  # one account's failure is its outcome, not the run's
        return outcome | _failure(exc, account_id)
    if test is not None:
        outcome["connectionTest"] = test
    return outcome | {"ok": True}


def _disable(account_id: str, table: Any) -> dict[str, Any]:
    outcome: dict[str, Any] = {"accountId": account_id, "action": "disable"}
    try:
        update_target_account({"accountId": account_id, "enabled": False}, table=table)
    except Exception as exc:  # one account's failure is its outcome, not the run's
        return outcome | _failure(exc, account_id)
    return outcome | {"ok": True}


def _failure(exc: Exception, account_id: str) -> dict[str, Any]:
    """An outcome's error: the handler's own message for its own errors; for AWS errors the
    code only (the text goes to the log)."""
    failure: dict[str, Any] = {"ok": False}
    if isinstance(exc, ConnectionTestFailedError):
        failure["connectionTest"] = exc.result
    if isinstance(exc, OrchestrationError):
        failure["error"] = {"code": exc.error_code, "message": str(exc)}
        return failure
    if isinstance(exc, ClientError):
        code = error_code(exc)
        _log_aws(exc.operation_name, code, error_message(exc), account_id)
    else:
        code = type(exc).__name__
        _log_aws("registry", code, str(exc), account_id)
    failure["error"] = {
        "code": code,
        "message": f"AWS answered {code}; the function's log has the details",
    }
    return failure
