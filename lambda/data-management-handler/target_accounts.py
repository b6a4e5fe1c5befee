"""Registry of target accounts: the accounts whose DRS the sync reads through an assumed role.

Each operation takes the event parameters and returns a plain dict. Bad input raises
InvalidParameterError before anything is written; conditional writes make "add" refuse an
existing account and "update"/"delete" refuse a missing one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from shared.config import table_names
from shared.exceptions import ConflictError, InvalidParameterError, NotFoundError
from shared.operations import Field, check_params
from shared.pagination import decode_token, encode_token

ACCOUNT_ID = re.compile(r"^\d{12}$")
# IAM role ARN: partition, the account, and a role path/name of IAM's allowed characters.
ROLE_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
# STS ExternalId: 2-1224 characters of [\w+=,.@:/-].
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
MAX_NAME_LENGTH = 256
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100

_MUTABLE_FIELDS = {
    "roleArn": Field((str,)),
    "externalId": Field((str,)),
    "accountName": Field((str,)),
    "enabled": Field((bool,)),
}
ADD_SPEC = {"accountId": Field((str,), required=True), **_MUTABLE_FIELDS}
UPDATE_SPEC = ADD_SPEC
KEY_SPEC = {"accountId": Field((str,), required=True)}
LIST_SPEC = {"limit": Field((int,)), "nextToken": Field((str,)), "enabledOnly": Field((bool,))}


def _table(table: Any | None) -> Any:
    return (
        table
        if table is not None
        else boto3.resource("dynamodb").Table(table_names().target_accounts)
    )


def _hub_account_id(hub_account_id: str | None) -> str:
    if hub_account_id is not None:
        return hub_account_id
    return str(boto3.client("sts").get_caller_identity()["Account"])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _check_account_id(operation: str, account_id: str) -> None:
    if not ACCOUNT_ID.match(account_id):
        raise InvalidParameterError(f"{operation}: accountId must be 12 digits, got {account_id!r}")


def _check_fields(operation: str, account_id: str, params: dict[str, Any]) -> None:
    role_arn = params.get("roleArn")
    if role_arn is not None:
        match = ROLE_ARN.match(role_arn)
        if not match:
            raise InvalidParameterError(
                f"{operation}: roleArn must be an IAM role ARN "
                f"(arn:aws:iam::{account_id}:role/NAME), got {role_arn!r}"
            )
        if match.group(1) != account_id:
            raise InvalidParameterError(
                f"{operation}: roleArn is in account {match.group(1)}, "
                f"not in the target account {account_id}"
            )
    external_id = params.get("externalId")
    if external_id is not None and not EXTERNAL_ID.match(external_id):
        raise InvalidParameterError(
            f"{operation}: externalId must be 2-1224 characters of letters, digits and +=,.@:/-_"
        )
    name = params.get("accountName")
    if name is not None and not 1 <= len(name.strip()) <= MAX_NAME_LENGTH:
        raise InvalidParameterError(
            f"{operation}: accountName must be 1-{MAX_NAME_LENGTH} characters"
        )


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


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
    _check_account_id(operation, account_id)
    _check_fields(operation, account_id, params)
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
        if params.get(name) is not None:
            item[name] = params[name]
    try:
        _table(table).put_item(Item=item, ConditionExpression="attribute_not_exists(accountId)")
    except ClientError as exc:
        if _is_conditional_failure(exc):
            raise ConflictError(f"{operation}: account {account_id} is already registered") from exc
        raise
    return {"account": item}


def get_target_account(
    params: dict[str, Any], context: Any = None, *, table: Any = None
) -> dict[str, Any]:
    """Return {"account": item}. Raises NotFoundError when it is not registered."""
    operation = "get_target_account"
    check_params(operation, params, KEY_SPEC)
    _check_account_id(operation, params["accountId"])
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
    if params.get("nextToken"):
        scan["ExclusiveStartKey"] = decode_token(params["nextToken"], {"accountId"})
    if params.get("enabledOnly"):
        scan["FilterExpression"] = "enabled = :true"
        scan["ExpressionAttributeValues"] = {":true": True}
    page = _table(table).scan(**scan)
    return {"items": page.get("Items", []), "nextToken": encode_token(page.get("LastEvaluatedKey"))}


def update_target_account(
    params: dict[str, Any], context: Any = None, *, table: Any = None
) -> dict[str, Any]:
    """Change roleArn, externalId, accountName and/or enabled. Returns {"account": new item}.

    Raises InvalidParameterError (nothing to change, bad fields) and NotFoundError.
    """
    operation = "update_target_account"
    check_params(operation, params, UPDATE_SPEC)
    account_id = params["accountId"]
    _check_account_id(operation, account_id)
    changes = {name: params[name] for name in _MUTABLE_FIELDS if params.get(name) is not None}
    if not changes:
        raise InvalidParameterError(
            f"{operation}: nothing to change; give at least one of {', '.join(_MUTABLE_FIELDS)}"
        )
    _check_fields(operation, account_id, changes)
    changes["updatedAt"] = _now()
    names = {f"#{field}": field for field in changes}
    values = {f":{field}": value for field, value in changes.items()}
    assignments = ", ".join(f"#{field} = :{field}" for field in changes)
    try:
        result = _table(table).update_item(
            Key={"accountId": account_id},
            UpdateExpression=f"SET {assignments}",
            ConditionExpression="attribute_exists(accountId)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if _is_conditional_failure(exc):
            raise NotFoundError(f"{operation}: account {account_id} is not registered") from exc
        raise
    return {"account": result["Attributes"]}


def delete_target_account(
    params: dict[str, Any], context: Any = None, *, table: Any = None
) -> dict[str, Any]:
    """Remove an account from the registry. Returns {"deleted": accountId}.

    Its inventory items are soft-deleted by the next full sync. Raises NotFoundError.
    """
    operation = "delete_target_account"
    check_params(operation, params, KEY_SPEC)
    account_id = params["accountId"]
    _check_account_id(operation, account_id)
    try:
        _table(table).delete_item(
            Key={"accountId": account_id}, ConditionExpression="attribute_exists(accountId)"
        )
    except ClientError as exc:
        if _is_conditional_failure(exc):
            raise NotFoundError(f"{operation}: account {account_id} is not registered") from exc
        raise
    return {"deleted": account_id}
