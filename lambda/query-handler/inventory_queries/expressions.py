"""Placeholders for one DynamoDB request's key condition and filter.

Every attribute name goes through a `#name` placeholder and every value through a
`:value` one: `region` is a reserved word, and tag keys may hold dots, spaces or colons
(`aws:cloudformation:stack-name`) that would otherwise be read as expression syntax.
One builder serves both expressions of a request because DynamoDB rejects placeholders
that no expression uses.
"""

from __future__ import annotations

from typing import Any


class Expressions:
    """Collects clauses and placeholders; `request_args()` gives the Query/Scan arguments."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        self._key_clauses: list[str] = []
        self._filter_clauses: list[str] = []

    def path(self, *parts: str) -> str:
        """`#n0.#n1...` for the nested attribute path `parts` (one placeholder per part)."""
        placeholders = []
        for part in parts:
            placeholder = next((k for k, v in self._names.items() if v == part), None)
            if placeholder is None:
                placeholder = f"#n{len(self._names)}"
                self._names[placeholder] = part
            placeholders.append(placeholder)
        return ".".join(placeholders)

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self._values)}"
        self._values[placeholder] = value
        return placeholder

    def key(self, clause: str) -> None:
        """Add a clause to the key condition (ANDed)."""
        self._key_clauses.append(clause)

    def filter(self, clause: str) -> None:
        """Add a clause to the filter (ANDed); each clause should be parenthesised if it ORs."""
        self._filter_clauses.append(clause)

    def request_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self._key_clauses:
            args["KeyConditionExpression"] = " AND ".join(self._key_clauses)
        if self._filter_clauses:
            args["FilterExpression"] = " AND ".join(self._filter_clauses)
        if self._names:
            args["ExpressionAttributeNames"] = dict(self._names)
        if self._values:
            args["ExpressionAttributeValues"] = dict(self._values)
        return args
