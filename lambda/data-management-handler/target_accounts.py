"""Registry of target accounts: the accounts whose DRS the sync reads through an assumed role.

Each operation takes the event parameters and returns a plain dict. Bad input raises
InvalidParameterError before anything is written; conditional writes make "add" refuse an
existing account and "update"/"delete" refuse a missing one.

Input is strict (see `shared.validation`): accountId is 12 ASCII digits matched in full;
roleArn is an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME, ASCII) in that same
account; externalId follows STS (2-1224 ASCII letters, digits and _+=,.@:/-); accountName is 1-256
characters, not blank; enabled is a JSON boolean. A parameter given as null is refused, not
read as absent: omit it instead.

Every change of the registry (add, update, enable, disable, delete) logs one audit line,
after its write landed: `{"message": "registry change", "audit": true, "operation", "action",
"accountId", "changedFields"}`. It names fields, never their values: an externalId is a
shared secret, a roleArn and an accountName say more about an account than its id.
A refused call changes nothing and logs no audit line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from shared.aws import environment_pool, error_code
from shared.config import table_names
from shared.exceptions import ConflictError, InvalidParameterError, NotFoundError
from shared.observability import get_logger
from shared.operations import Field, check_params
from shared.pagination import MAX_TOKEN_LENGTH, decode_token, encode_token
from shared.validation import ACCOUNT_ID, EXTERNAL_ID, ROLE_ARN, account_of

MAX_NAME_LENGTH = 256
MAX_EXTERNAL_ID_LENGTH = 1224  # STS's limit
DEFAULT_PAGE_SIZE = 50
MAX_EC2_SOURCE_ACCOUNTS = 100
MAX_PAGE_SIZE = 100

ACCOUNT_ID_FIELD = Field((str,), required=True, pattern=ACCOUNT_ID)
_MUTABLE_FIELDS = {
    "roleArn": Field((str,), pattern=ROLE_ARN),
    "externalId": Field((str,), pattern=EXTERNAL_ID, max_length=MAX_EXTERNAL_ID_LENGTH),
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
ADD_SPEC = {"accountId": ACCOUNT_ID_FIELD, **_MUTABLE_FIELDS}
UPDATE_SPEC = ADD_SPEC
KEY_SPEC = {"accountId": ACCOUNT_ID_FIELD}
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


def add_target_account(
    params: dict[str, Any],
    context: Any = None,
    *,
    table: Any = None,
    hub_account_id: str | None = None,
) -> dict[str, Any]:
    """Register an account. Returns {"account": item}.

    Raises InvalidParameterError (bad fields; roleArn missing for a non-hub account) and
    ConflictError (already registered).
    """
    operation = "add_target_account"
    check_params(operation, params, ADD_SPEC)
    account_id = params["accountId"]
    _check_role_account(operation, account_id, params)
    if "roleArn" not in params and account_id != _hub_account_id(hub_account_id):
        raise InvalidParameterError(
            f"{operation}: roleArn is required for account {account_id} (it is not the hub account)"
        )
    now = _now()
    item: dict[str, Any] = {
        "accountId": account_id,
        "enabled": params.get("enabled", True),
        "createdAt": now,
        "updatedAt": now,
    }
    for name in ("roleArn", "externalId", "accountName"):
        if name in params:
            item[name] = params[name]
    if "ec2SourceAccountIds" in params:
        item["ec2SourceAccountIds"] = sorted(set(params["ec2SourceAccountIds"]))
    try:
        _table(table).put_item(Item=item, ConditionExpression="attribute_not_exists(accountId)")
    except ClientError as exc:
        if _is_conditional_failure(exc):
            raise ConflictError(f"{operation}: account {account_id} is already registered") from exc
        raise
    _audit(operation, "add", account_id, _registry_fields(item))
    return {"account": item}


def get_target_account(
    params: dict[str, Any], context: Any = None, *, table: Any = None
) -> dict[str, Any]:
    """Return {"account": item}. Raises NotFoundError when it is not registered."""
    operation = "get_target_account"
    check_params(operation, params, KEY_SPEC)
    item = (
        _table(table)
        .get_item(Key={"accountId": params["accountId"]}, ConsistentRead=True)
        .get("Item")
    )
    if item is None:
        raise NotFoundError(f"{operation}: account {params['accountId']} is not registered")
    return {"account": item}


def list_target_accounts(
    params: dict[str, Any], context: Any = None, *, table: Any = None
) -> dict[str, Any]:
    """Return {"items": [...], "nextToken": str|None}, one page of at most `limit` accounts."""
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
    return {"items": page.get("Items", []), "nextToken": encode_token(page.get("LastEvaluatedKey"))}


def _start_key(operation: str, token: str) -> dict[str, Any]:
    """The ExclusiveStartKey in a list_target_accounts token; its accountId is checked like
    a parameter, so a forged token can never reach DynamoDB as a malformed key."""
    key = decode_token(token, {"accountId"})
    if not ACCOUNT_ID.matches(key["accountId"]):
        raise InvalidParameterError(f"{operation}: nextToken is malformed")
    return key


def update_target_account(
    params: dict[str, Any], context: Any = None, *, table: Any = None
) -> dict[str, Any]:
    """Change roleArn, externalId, accountName, enabled and/or ec2SourceAccountIds. Returns
    {"account": new item}.

    The audit line lists the fields whose value this call changed (a field given with the
    value it already had is not listed); its action is "enable" or "disable" when `enabled`
    changed, else "update". Raises InvalidParameterError (nothing to change, bad fields)
    and NotFoundError.
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
    given = dict(changes)
    changes["updatedAt"] = _now()
    names = {f"#{field}": field for field in changes}
    values = {f":{field}": value for field, value in changes.items()}
    assignments = ", ".join(f"#{field} = :{field}" for field in changes)
    try:
        # The item as it was before this write (atomically): what changed is told from it,
        # and the new item is it with the SET applied (SET is all this expression does).
        result = _table(table).update_item(
            Key={"accountId": account_id},
            UpdateExpression=f"SET {assignments}",
            ConditionExpression="attribute_exists(accountId)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        )
    except ClientError as exc:
        if _is_conditional_failure(exc):
            raise NotFoundError(f"{operation}: account {account_id} is not registered") from exc
        raise
    before = result.get("Attributes", {})
    changed = [name for name, value in given.items() if name not in before or before[name] != value]
    action = "update"
    if "enabled" in changed:
        action = "enable" if given["enabled"] else "disable"
    _audit(operation, action, account_id, changed)
    return {"account": {**before, **changes}}


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
