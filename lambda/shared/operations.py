"""The operation-map pattern both handlers use, and parameter checking.

An event is `{"operation": NAME, ...parameters}`; parameters sit at the top level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.exceptions import InvalidParameterError, InvalidRequestError, UnknownOperationError

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


def dispatch(operations: Mapping[str, Operation], event: object, context: Any) -> dict[str, Any]:
    """Look the event's operation up in `operations`, run it and return its dict.

    Raises UnknownOperationError (listing the valid operations) for a name not in the map.
    """
    name, params = split_event(event)
    operation = operations.get(name)
    if operation is None:
        raise UnknownOperationError(name, operations.keys())
    return operation(params, context)


@dataclass(frozen=True)
class Field:
    """One accepted parameter: its JSON type(s), whether it is required, and list item type."""

    types: tuple[type, ...]
    required: bool = False
    items: type | None = None

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
    """Validate `params` against `spec`.

    Raises InvalidParameterError naming the offending field and listing the valid fields.
    """
    valid = ", ".join(f"{name} ({field.describe()})" for name, field in spec.items()) or "none"
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise InvalidParameterError(
            f"{operation}: unknown parameter(s) {', '.join(unknown)}; valid parameters: {valid}"
        )
    for name, field in spec.items():
        if name not in params or params[name] is None:
            if field.required:
                raise InvalidParameterError(
                    f"{operation}: missing required parameter {name}; valid parameters: {valid}"
                )
            continue
        value = params[name]
        if not _is_instance(value, field.types):
            raise InvalidParameterError(
                f"{operation}: parameter {name} must be {field.describe()}, "
                f"got {type(value).__name__}"
            )
        if field.items is not None and not all(_is_instance(v, (field.items,)) for v in value):
            raise InvalidParameterError(
                f"{operation}: every item of {name} must be {_TYPE_NAMES.get(field.items)}"
            )
