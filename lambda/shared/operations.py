"""The operation-map pattern both handlers use, and parameter checking.

An event is `{"operation": NAME, ...parameters}`; parameters sit at the top level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import error_code, error_message
from shared.exceptions import (
    AssumeRoleError,
    AwsServiceError,
    InvalidParameterError,
    InvalidRequestError,
    UnknownOperationError,
)
from shared.validation import TextFormat, json_type, listed, shown

Operation = Callable[[dict[str, Any], Any], dict[str, Any]]


def split_event(event: object) -> tuple[str, dict[str, Any]]:
    """Return (operation name, parameters) of an invocation event.

    Raises InvalidRequestError when the event is not an object or names no operation.
    """
    if not isinstance(event, dict):
        raise InvalidRequestError(
            f"event must be a JSON object with an 'operation' key, got {type(event).__name__}"
        )
    name = event.get("operation")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("event has no 'operation' (a non-empty string)")
    params = {key: value for key, value in event.items() if key != "operation"}
    return name, params


def dispatch(
    operations: Mapping[str, Operation],
    event: object,
    context: Any,
    logger: Logger,
) -> dict[str, Any]:
    """Look the event's operation up in `operations`, run it and return its dict.

    Raises UnknownOperationError (listing the valid operations) for a name not in the map.
    An AWS failure the operation lets through (ClientError, BotoCoreError, AssumeRoleError)
    is raised as AwsServiceError, whose message holds the AWS error code but not AWS's
    error text: that text goes to `logger` (one warning with operation, errorCode and
    error), since an error answer is shown to the invoker and kept by whoever invoked.
    """
    name, params = split_event(event)
    operation = operations.get(name)
    if operation is None:
        raise UnknownOperationError(name, operations.keys())
    try:
        return operation(params, context)
    except (ClientError, BotoCoreError, AssumeRoleError) as exc:
        raise _aws_failure(name, exc, logger) from exc


def _aws_failure(operation: str, exc: Exception, logger: Logger) -> AwsServiceError:
    """The AwsServiceError `exc` becomes, after its AWS text is logged."""
    call: str | None
    if isinstance(exc, ClientError):
        code, call, text = error_code(exc), exc.operation_name, error_message(exc)
    elif isinstance(exc, AssumeRoleError):
        code, call, text = exc.error_code, "AssumeRole", str(exc)
    else:
        code, call, text = type(exc).__name__, None, str(exc)
    logger.warning(
        "operation failed: AWS error",
        extra={"operation": operation, "errorCode": code, "call": call, "error": text},
    )
    return AwsServiceError(operation, code, call)


DEFAULT_MAX_LENGTH = 2048  # characters of any string parameter without its own limit
DEFAULT_MAX_ITEMS = 1000  # items of any list (keys of any object) without its own limit


@dataclass(frozen=True)
class Field:
    """One accepted parameter.

    types:      the JSON type(s) accepted (bool is never an int, even though Python says so)
    required:   the parameter must be given
    items:      for a list, the type of every item
    pattern:    a TextFormat every string (or string item of a list) must match in full
    non_empty:  a string must hold a non-blank character, an object at least one key
    max_length: characters of a string or of each string item (default DEFAULT_MAX_LENGTH)
    max_items:  items of a list, keys of an object (default DEFAULT_MAX_ITEMS)
    secret:     a refused value is never repeated in the error (an external id): the message
                says only how long it was

    A list given is never empty (an empty filter would select nothing, or be read as "all").
    """

    types: tuple[type, ...]
    required: bool = False
    items: type | None = None
    pattern: TextFormat | None = None
    non_empty: bool = False
    max_length: int | None = None
    max_items: int | None = None
    secret: bool = False

    def describe(self) -> str:
        names = "|".join(_TYPE_NAMES.get(t, t.__name__) for t in self.types)
        if self.items is not None:
            names += f" of {_TYPE_NAMES.get(self.items, self.items.__name__)}"
        return names


_TYPE_NAMES = {str: "string", bool: "boolean", int: "integer", list: "list", dict: "object"}


def _is_instance(value: object, types: tuple[type, ...]) -> bool:
    # JSON booleans are Python ints; an int field must not accept true/false.
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def check_params(operation: str, params: Mapping[str, Any], spec: Mapping[str, Field]) -> None:
    """Validate `params` against `spec`: names, types, formats, lengths.

    An absent parameter takes its default; a parameter given as null is refused like any
    other wrong type (a caller that sends null meant *something*, and guessing "absent"
    could widen a filter to everything). Omit a parameter to get its default.

    Raises InvalidParameterError naming the offending field (every missing required one at
    once) and listing the valid fields; refused values are shown cut short and long lists
    end in "... and N more".
    """
    valid = ", ".join(f"{name} ({field.describe()})" for name, field in spec.items()) or "none"
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise InvalidParameterError(
            f"{operation}: unknown parameter(s) {listed(shown(name) for name in unknown)}; "
            f"valid parameters: {valid}"
        )
    # Every missing one in one answer: a caller learns what is required in one failed call.
    missing = [name for name, field in spec.items() if field.required and name not in params]
    if missing:
        raise InvalidParameterError(
            f"{operation}: missing required parameter{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; valid parameters: {valid}"
        )
    for name, field in spec.items():
        if name in params:
            _check_value(operation, name, params[name], field)


def _check_value(operation: str, name: str, value: Any, field: Field) -> None:
    if not _is_instance(value, field.types):
        raise InvalidParameterError(
            f"{operation}: parameter {name} must be {field.describe()}, got {json_type(value)}"
            + ("; omit it to use the default" if value is None and not field.required else "")
        )
    if isinstance(value, str):
        _check_text(operation, name, value, field)
    elif isinstance(value, list | dict):
        _check_size(operation, name, value, field)
        if isinstance(value, list) and field.items is not None:
            _check_items(operation, name, value, field)


def _check_text(operation: str, where: str, value: str, field: Field) -> None:
    max_length = DEFAULT_MAX_LENGTH if field.max_length is None else field.max_length
    if len(value) > max_length:
        raise InvalidParameterError(
            f"{operation}: {where} must be at most {max_length} characters, got {len(value)}"
        )
    if field.non_empty and not value.strip():
        raise InvalidParameterError(f"{operation}: {where} must not be empty")
    if field.pattern is not None and not field.pattern.matches(value):
        got = f"a string of {len(value)} characters" if field.secret else shown(value)
        raise InvalidParameterError(
            f"{operation}: {where} must be {field.pattern.description}, got {got}"
        )


def _check_size(operation: str, name: str, value: list[Any] | dict[Any, Any], field: Field) -> None:
    noun = "item" if isinstance(value, list) else "key"
    if not value and (isinstance(value, list) or field.non_empty):
        raise InvalidParameterError(
            f"{operation}: {name} must hold at least one {noun}; omit it to use the default"
        )
    max_items = DEFAULT_MAX_ITEMS if field.max_items is None else field.max_items
    if len(value) > max_items:
        raise InvalidParameterError(
            f"{operation}: {name} may hold at most {max_items} {noun}s, got {len(value)}"
        )


def _check_items(operation: str, name: str, value: list[Any], field: Field) -> None:
    item_type = field.items
    if item_type is None:
        return
    wrong = [i for i, item in enumerate(value) if not _is_instance(item, (item_type,))]
    if wrong:
        raise InvalidParameterError(
            f"{operation}: every item of {name} must be {_TYPE_NAMES.get(item_type)}; "
            f"not so: {listed(f'item {i} ({json_type(value[i])})' for i in wrong)}"
        )
    if item_type is not str:
        return
    max_length = DEFAULT_MAX_LENGTH if field.max_length is None else field.max_length
    too_long = [item for item in value if len(item) > max_length]
    if too_long:
        raise InvalidParameterError(
            f"{operation}: every item of {name} must be at most {max_length} characters; "
            f"not so: {listed(shown(item) for item in too_long)}"
        )
    refused = [
        item
        for item in value
        if (field.non_empty and not item.strip())
        or (field.pattern is not None and not field.pattern.matches(item))
    ]
    if refused:
        wanted = field.pattern.description if field.pattern is not None else "a non-empty string"
        raise InvalidParameterError(
            f"{operation}: every item of {name} must be {wanted}; "
            f"not so: {listed(shown(item) for item in refused)}"
        )
