"""Registry of target accounts: the accounts whose DRS the sync reads through an assumed role.

Each operation takes the event parameters and returns a plain dict. Bad input raises
InvalidParameterError before anything is written; conditional writes make "add" refuse an
existing account and "update"/"delete" refuse a missing one.

Input is strict (see `shared.validation`): accountId is 12 ASCII digits matched in full;
roleArn is an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME, ASCII) in that same
account; externalId is 32-1224 of STS's characters (ASCII letters, digits and _+=,.@:/-);
accountName is 1-256 characters, not blank; enabled and skipConnectionTest are JSON booleans.
A parameter given as null is refused, not read as absent: omit it instead.

External ids belong to the hub. Every account but the hub has one: `add_target_account`
generates it (`secrets.token_urlsafe`, 43 characters) unless the operator gives one of at
least 32 characters (e.g. the one a StackSet gives every role). It is returned in full only
by `add_target_account` and `rotate_external_id`; every other answer (get, list, update)
shows `externalIdSet` (bool) and `externalIdLast4` (None for an id shorter than 32) instead.
A refused externalId is never repeated in the error message.

Connection test: `add_target_account`, and `update_target_account` when it changes roleArn
or externalId or enables the account, first run the connection test (`account_checks`) with
the values the write would store, and write nothing when it fails (ConnectionTestFailedError
naming each failed check). `skipConnectionTest: true` writes without it, and so does an add
whose external id the hub has just generated: no role can trust an id that did not exist, so
the answer says to deploy the role with it and then call `test_target_account`.

Every change of the registry (add, update, enable, disable, delete) logs one audit line,
after its write landed: `{"message": "registry change", "audit": true, "operation", "action",
"accountId", "changedFields"}`. It names fields, never their values: an externalId is a
shared secret, a roleArn and an accountName say more about an account than its id.
`rotate_external_id` logs action "rotate" with changedFields ["externalId"].
A refused call changes nothing and logs no audit line.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from account_checks import last4, run_connection_test
from shared.aws import environment_pool, error_code
from shared.config import drs_regions, table_names
from shared.exceptions import (
    ConflictError,
    ConnectionTestFailedError,
    InvalidParameterError,
    NotFoundError,
)
from shared.observability import get_logger
from shared.operations import Field, check_params
from shared.pagination import MAX_TOKEN_LENGTH, decode_token, encode_token
from shared.validation import (
    ACCOUNT_ID,
    REGION,
    REGISTERED_EXTERNAL_ID,
    ROLE_ARN,
    account_of,
    listed,
)

MAX_NAME_LENGTH = 256
MAX_EXTERNAL_ID_LENGTH = 1224  # STS's limit
DEFAULT_PAGE_SIZE = 50
MAX_EC2_SOURCE_ACCOUNTS = 100
MAX_PAGE_SIZE = 100

ACCOUNT_ID_FIELD = Field((str,), required=True, pattern=ACCOUNT_ID)
_MUTABLE_FIELDS = {
    "roleArn": Field((str,), pattern=ROLE_ARN),
    "externalId": Field(
        (str,), pattern=REGISTERED_EXTERNAL_ID, max_length=MAX_EXTERNAL_ID_LENGTH, secret=True
    ),
    "accountName": Field((str,), non_empty=True, max_length=MAX_NAME_LENGTH),
    "enabled": Field((bool,)),
    # Accounts whose EC2 instances this account's DRS replicates (cross-account DR): the sync
    # reads their instances' details with their own role. Declared here by an operator, never
    # taken from DRS data (which the target account controls).
    "ec2SourceAccountIds": Field(
        (list,), items=str, pattern=ACCOUNT_ID, max_items=MAX_EC2_SOURCE_ACCOUNTS
    ),
}
# The registry fields an audit line names (accountId is the line's own field; createdAt and
# updatedAt are bookkeeping that every write sets).
AUDITED_FIELDS = tuple(_MUTABLE_FIELDS)
SKIP_TEST_FIELD = Field((bool,))
ADD_SPEC = {"accountId": ACCOUNT_ID_FIELD, **_MUTABLE_FIELDS, "skipConnectionTest": SKIP_TEST_FIELD}
UPDATE_SPEC = ADD_SPEC
KEY_SPEC = {"accountId": ACCOUNT_ID_FIELD}
MAX_TEST_REGIONS = 64
TEST_SPEC = {
    "accountId": ACCOUNT_ID_FIELD,
    "regions": Field((list,), items=str, pattern=REGION, max_items=MAX_TEST_REGIONS),
    "roleArn": _MUTABLE_FIELDS["roleArn"],
    "externalId": _MUTABLE_FIELDS["externalId"],
}
GENERATED_ID_BYTES = 32  # token_urlsafe: 43 characters of [A-Za-z0-9_-], within STS's set
# (account_id, role_arn, external_id) -> the connection test's answer; tests inject their own.
Tester = Callable[[str, "str | None", "str | None"], dict[str, Any]]
LIST_SPEC = {
    "limit": Field((int,)),
    "nextToken": Field((str,), non_empty=True, max_length=MAX_TOKEN_LENGTH),
    "enabledOnly": Field((bool,)),
}

logger = get_logger("data-management-handler")
# boto3's resource layer logs every call with its parameters at INFO ("Calling
# dynamodb:put_item with {...}"): at the function's INFO log level the registry's writes
# would put externalId, roleArn and accountName values in the logs. Its warnings still pass.
logging.getLogger("boto3.resources.action").setLevel(logging.WARNING)


def _audit(operation: str, action: str, account_id: str, changed: Iterable[str]) -> None:
    """Log the one audit line of a registry change: the account and the NAMES of the fields
    the change set or removed (sorted), never their values."""
    logger.info(
        "registry change",
        extra={
            "audit": True,
            "operation": operation,
            "action": action,
            "accountId": account_id,
            "changedFields": sorted(changed),
        },
    )


def _registry_fields(item: Mapping[str, Any]) -> list[str]:
    return [name for name in AUDITED_FIELDS if name in item]


def _table(table: Any | None) -> Any:
    # The resource is built once per execution environment (environment_pool), not per call.
    if table is not None:
        return table
    return environment_pool().resource("dynamodb").Table(table_names().target_accounts)


def _hub_account_id(hub_account_id: str | None) -> str:
    if hub_account_id is not None:
        return hub_account_id
    return environment_pool().hub_account()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _check_role_account(operation: str, account_id: str, params: dict[str, Any]) -> None:
    """A roleArn (format already checked) must name a role in the account it is for."""
    role_arn = params.get("roleArn")
    if role_arn is None:
        return
    role_account = account_of(ROLE_ARN, role_arn)
    if role_account != account_id:
        raise InvalidParameterError(
            f"{operation}: roleArn is in account {role_account}, "
            f"not in the target account {account_id}"
        )


def _is_conditional_failure(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def generate_external_id() -> str:
    """A new external id: 43 random characters of [A-Za-z0-9_-] (STS accepts them all)."""
    return secrets.token_urlsafe(GENERATED_ID_BYTES)


def masked(item: Mapping[str, Any]) -> dict[str, Any]:
    """A registry item as answers show it: without externalId, with `externalIdSet` and
    `externalIdLast4` (None for an id shorter than 32 characters)."""
    shown = {name: value for name, value in item.items() if name != "externalId"}
    shown["externalIdSet"] = bool(item.get("externalId"))
    shown["externalIdLast4"] = last4(item.get("externalId"))
    return shown


def _connection_test(account_id: str, role_arn: str | None, external_id: str | None) -> dict:
    return run_connection_test(account_id, role_arn, external_id)


def _require_test(
    operation: str,
    account_id: str,
    role_arn: str | None,
    external_id: str | None,
    tester: Tester | None,
) -> dict[str, Any]:
    """Run the connection test with the values a write would store; raise
    ConnectionTestFailedError (nothing written) when it fails."""
    result = (tester or _connection_test)(account_id, role_arn, external_id)
    if not result.get("ok"):
        raise ConnectionTestFailedError(operation, result)
    return result


def _read(table: Any, account_id: str) -> dict[str, Any] | None:
    item = table.get_item(Key={"accountId": account_id}, ConsistentRead=True).get("Item")
    return dict(item) if item is not None else None


def add_target_account(
    params: dict[str, Any],
    context: Any = None,
    *,
    table: Any = None,
    hub_account_id: str | None = None,
    tester: Tester | None = None,
) -> dict[str, Any]:
    """Register an account.

    Params: accountId; roleArn (required unless it is the hub account); externalId (32-1224
    characters; generated when omitted, for every account but the hub); accountName;
    enabled (default true); ec2SourceAccountIds; skipConnectionTest (default false).

    Returns {"account": masked item, "externalId": the id in full (absent for a hub account
    without one; the only answer but rotate_external_id's that carries it),
    "externalIdGenerated": bool, "connectionTest": the test's answer, or None when it did not
    run, "connectionTestSkipped": why it did not run (absent when it ran)}.

    Raises InvalidParameterError (bad fields; roleArn missing for a non-hub account),
    ConflictError (already registered) and ConnectionTestFailedError (the test failed;
    nothing written).
    """
    operation = "add_target_account"
    check_params(operation, params, ADD_SPEC)
    account_id = params["accountId"]
    _check_role_account(operation, account_id, params)
    is_hub = account_id == _hub_account_id(hub_account_id)
    if "roleArn" not in params and not is_hub:
        raise InvalidParameterError(
            f"{operation}: roleArn is required for account {account_id} (it is not the hub account)"
        )
    external_id = params.get("externalId")
    generated = external_id is None and not is_hub
    if generated:
        external_id = generate_external_id()
    target = _table(table)
    test: dict[str, Any] | None = None
    skipped: str | None = None
    if params.get("skipConnectionTest"):
        skipped = "skipConnectionTest was given"
    elif generated:
        skipped = (
            "the external id was generated by this call, so no role can trust it yet: deploy "
            "the role with it, then call test_target_account"
        )
    else:
        if _read(target, account_id) is not None:  # no test for an add that cannot land
            raise ConflictError(f"{operation}: account {account_id} is already registered")
        test = _require_test(operation, account_id, params.get("roleArn"), external_id, tester)
    now = _now()
    item: dict[str, Any] = {
        "accountId": account_id,
        "enabled": params.get("enabled", True),
        "createdAt": now,
        "updatedAt": now,
    }
    for name in ("roleArn", "accountName"):
        if name in params:
            item[name] = params[name]
    if external_id is not None:
        item["externalId"] = external_id
    if "ec2SourceAccountIds" in params:
        item["ec2SourceAccountIds"] = sorted(set(params["ec2SourceAccountIds"]))
    try:
        target.put_item(Item=item, ConditionExpression="attribute_not_exists(accountId)")
    except ClientError as exc:
        if _is_conditional_failure(exc):
            raise ConflictError(f"{operation}: account {account_id} is already registered") from exc
        raise
    _audit(operation, "add", account_id, _registry_fields(item))
    answer: dict[str, Any] = {
        "account": masked(item),
        "externalIdGenerated": generated,
        "connectionTest": test,
    }
    if external_id is not None:
        answer["externalId"] = external_id
    if skipped is not None:
        answer["connectionTestSkipped"] = skipped
    return answer


def get_target_account(
    params: dict[str, Any], context: Any = None, *, table: Any = None
) -> dict[str, Any]:
    """Return {"account": masked item}. Raises NotFoundError when it is not registered."""
    operation = "get_target_account"
    check_params(operation, params, KEY_SPEC)
    item = _read(_table(table), params["accountId"])
    if item is None:
        raise NotFoundError(f"{operation}: account {params['accountId']} is not registered")
    return {"account": masked(item)}


def list_target_accounts(
    params: dict[str, Any], context: Any = None, *, table: Any = None
) -> dict[str, Any]:
    """Return {"items": [masked item, ...], "nextToken": str|None}, one page of at most
    `limit` accounts."""
    operation = "list_target_accounts"
    check_params(operation, params, LIST_SPEC)
    limit = params.get("limit", DEFAULT_PAGE_SIZE)
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidParameterError(f"{operation}: limit must be 1-{MAX_PAGE_SIZE}, got {limit}")
    scan: dict[str, Any] = {"Limit": limit}
    if "nextToken" in params:
        scan["ExclusiveStartKey"] = _start_key(operation, params["nextToken"])
    if params.get("enabledOnly"):
        scan["FilterExpression"] = "enabled = :true"
        scan["ExpressionAttributeValues"] = {":true": True}
    page = _table(table).scan(**scan)
    return {
        "items": [masked(item) for item in page.get("Items", [])],
        "nextToken": encode_token(page.get("LastEvaluatedKey")),
    }


def registered_accounts(table: Any = None) -> list[dict[str, Any]]:
    """Every registry item (all pages of a consistent scan), unmasked: for the hub's own use
    (discovery), never to be returned as is."""
    kwargs: dict[str, Any] = {"ConsistentRead": True}
    items: list[dict[str, Any]] = []
    target = _table(table)
    while True:
        page = target.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _start_key(operation: str, token: str) -> dict[str, Any]:
    """The ExclusiveStartKey in a list_target_accounts token; its accountId is checked like
    a parameter, so a forged token can never reach DynamoDB as a malformed key."""
    key = decode_token(token, {"accountId"})
    if not ACCOUNT_ID.matches(key["accountId"]):
        raise InvalidParameterError(f"{operation}: nextToken is malformed")
    return key


def update_target_account(
    params: dict[str, Any],
    context: Any = None,
    *,
    table: Any = None,
    tester: Tester | None = None,
) -> dict[str, Any]:
    """Change roleArn, externalId (32-1224 characters), accountName, enabled and/or
    ec2SourceAccountIds. Returns {"account": new item, masked, "connectionTest": the test's
    answer or None when none ran}.

    A change of roleArn or externalId, or enabling a disabled account, first runs the
    connection test with the values the item would then hold (unless skipConnectionTest);
    the write then lands only if the item was not changed meanwhile (ConflictError).

    The audit line lists the fields whose value this call changed (a field given with the
    value it already had is not listed); its action is "enable" or "disable" when `enabled`
    changed, else "update". Raises InvalidParameterError (nothing to change, bad fields),
    NotFoundError, ConnectionTestFailedError and ConflictError.
    """
    operation = "update_target_account"
    check_params(operation, params, UPDATE_SPEC)
    account_id = params["accountId"]
    changes = {name: params[name] for name in _MUTABLE_FIELDS if name in params}
    if "ec2SourceAccountIds" in changes:
        changes["ec2SourceAccountIds"] = sorted(set(changes["ec2SourceAccountIds"]))
    if not changes:
        raise InvalidParameterError(
            f"{operation}: nothing to change; give at least one of {', '.join(_MUTABLE_FIELDS)}"
        )
    _check_role_account(operation, account_id, changes)
    target = _table(table)
    condition = "attribute_exists(accountId)"
    seen: dict[str, Any] = {}
    test: dict[str, Any] | None = None
    if not params.get("skipConnectionTest") and _may_need_test(changes):
        current = _read(target, account_id)
        if current is None:
            raise NotFoundError(f"{operation}: account {account_id} is not registered")
        if _needs_test(current, changes):
            after = {**current, **changes}
            test = _require_test(
                operation, account_id, after.get("roleArn"), after.get("externalId"), tester
            )
            # What was tested is what the write keeps: the role and id the test read from
            # the item must still be there when the write lands.
            for name in _TESTED_FIELDS:
                if name in current:
                    condition += f" AND #tested_{name} = :tested_{name}"
                    seen[f":tested_{name}"] = current[name]
                else:
                    condition += f" AND attribute_not_exists(#tested_{name})"
    given = dict(changes)
    changes["updatedAt"] = _now()
    names = {f"#{field}": field for field in changes}
    if test is not None:
        names |= {f"#tested_{name}": name for name in _TESTED_FIELDS}
    values = {f":{field}": value for field, value in changes.items()} | seen
    assignments = ", ".join(f"#{field} = :{field}" for field in changes)
    try:
        # The item as it was before this write (atomically): what changed is told from it,
        # and the new item is it with the SET applied (SET is all this expression does).
        result = target.update_item(
            Key={"accountId": account_id},
            UpdateExpression=f"SET {assignments}",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        )
    except ClientError as exc:
        if not _is_conditional_failure(exc):
            raise
        if test is not None and _read(target, account_id) is not None:
            raise ConflictError(
                f"{operation}: account {account_id} was changed while its connection test ran; "
                "nothing was written, call again"
            ) from exc
        raise NotFoundError(f"{operation}: account {account_id} is not registered") from exc
    before = result.get("Attributes", {})
    changed = [name for name, value in given.items() if name not in before or before[name] != value]
    action = "update"
    if "enabled" in changed:
        action = "enable" if given["enabled"] else "disable"
    _audit(operation, action, account_id, changed)
    return {"account": masked({**before, **changes}), "connectionTest": test}


_TESTED_FIELDS = ("roleArn", "externalId")


def _may_need_test(changes: Mapping[str, Any]) -> bool:
    return "roleArn" in changes or "externalId" in changes or changes.get("enabled") is True


def _needs_test(current: Mapping[str, Any], changes: Mapping[str, Any]) -> bool:
    """A new role or external id, or a disabled account enabled: what the sync would
    use from now on has not been tried."""
    for name in ("roleArn", "externalId"):
        if name in changes and changes[name] != current.get(name):
            return True
    return changes.get("enabled") is True and current.get("enabled", True) is False


def rotate_external_id(
    params: dict[str, Any],
    context: Any = None,
    *,
    table: Any = None,
    hub_account_id: str | None = None,
) -> dict[str, Any]:
    """Give a registered account a new, hub-generated external id.

    Returns {"account": masked item, "externalId": the new id in full (the only time it is
    shown)}. No connection test: the role still trusts the old id until its trust policy is
    updated with the new one, and until then the sync records the account's scopes as
    AssumeRoleFailed; call test_target_account once it is. Raises NotFoundError, and
    InvalidParameterError for the hub account (it assumes no role).
    """
    operation = "rotate_external_id"
    check_params(operation, params, KEY_SPEC)
    account_id = params["accountId"]
    if account_id == _hub_account_id(hub_account_id):
        raise InvalidParameterError(
            f"{operation}: account {account_id} is the hub account: it is read with the "
            "function's own credentials and has no external id"
        )
    external_id = generate_external_id()
    try:
        result = _table(table).update_item(
            Key={"accountId": account_id},
            UpdateExpression="SET #externalId = :externalId, #updatedAt = :updatedAt",
            ConditionExpression="attribute_exists(accountId)",
            ExpressionAttributeNames={"#externalId": "externalId", "#updatedAt": "updatedAt"},
            ExpressionAttributeValues={":externalId": external_id, ":updatedAt": _now()},
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if _is_conditional_failure(exc):
            raise NotFoundError(f"{operation}: account {account_id} is not registered") from exc
        raise
    _audit(operation, "rotate", account_id, ["externalId"])
    return {"account": masked(result.get("Attributes", {})), "externalId": external_id}


def test_target_account(
    params: dict[str, Any], context: Any = None, *, table: Any = None
) -> dict[str, Any]:
    """Run the connection test for an account (see `account_checks` for the answer).

    Params: accountId; regions (optional, among the function's DRS regions; default all of
    them); roleArn and externalId (optional: test these instead of the registered ones,
    e.g. before update_target_account; required for an account not yet registered, apart
    from the hub). Writes nothing. Raises InvalidParameterError and NotFoundError.
    """
    operation = "test_target_account"
    check_params(operation, params, TEST_SPEC)
    account_id = params["accountId"]
    _check_role_account(operation, account_id, params)
    regions = params.get("regions")
    if regions is not None:
        configured = drs_regions()
        unknown = sorted(set(regions) - set(configured))
        if unknown:
            raise InvalidParameterError(
                f"{operation}: regions {listed(unknown)} are not DRS regions this function "
                f"syncs; valid regions: {listed(configured)}"
            )
    current = _read(_table(table), account_id) or {}
    is_hub = account_id == _hub_account_id(None)
    if not current and not is_hub and "roleArn" not in params:
        raise NotFoundError(
            f"{operation}: account {account_id} is not registered; give roleArn and externalId "
            "to test an account before adding it"
        )
    role_arn = params.get("roleArn", current.get("roleArn"))
    external_id = params.get("externalId", current.get("externalId"))
    return run_connection_test(account_id, role_arn, external_id, regions)


# pytest must not take the operation for a test when a test module imports it.
test_target_account.__test__ = False  # type: ignore[attr-defined]


def delete_target_account(
    params: dict[str, Any], context: Any = None, *, table: Any = None
) -> dict[str, Any]:
    """Remove an account from the registry. Returns {"deleted": accountId}.

    Its inventory items are soft-deleted by the next full sync. Raises NotFoundError.
    """
    operation = "delete_target_account"
    check_params(operation, params, KEY_SPEC)
    account_id = params["accountId"]
    try:
        result = _table(table).delete_item(
            Key={"accountId": account_id},
            ConditionExpression="attribute_exists(accountId)",
            ReturnValues="ALL_OLD",  # the audit line names the fields that went with it
        )
    except ClientError as exc:
        if _is_conditional_failure(exc):
            raise NotFoundError(f"{operation}: account {account_id} is not registered") from exc
        raise
    _audit(operation, "delete", account_id, _registry_fields(result.get("Attributes", {})))
    return {"deleted": account_id}
