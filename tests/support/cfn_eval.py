"""Evaluate the parts of a template that depend only on parameters, as CloudFormation would.

`Ref` to a parameter or pseudo parameter, `Fn::Sub`, `Fn::If` (with the template's
Conditions), `Fn::Join`, `Fn::Split`, `Fn::FindInMap` (the template's Mappings) and
`AWS::NoValue` are resolved; references to resources
(`Ref` to a resource, `Fn::GetAtt`) stay symbolic. Parameter values are checked against
AllowedValues / AllowedPattern / MinLength / MaxLength and the template's Rules (assertions
made of Fn::Equals, Fn::Not, Fn::And, Fn::Or), so tests see what CloudFormation would accept.
"""

from __future__ import annotations

import re
from typing import Any

PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::StackName": "test-stack",
    "AWS::URLSuffix": "amazonaws.com",
}
_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]+)\}")


class ParameterError(ValueError):
    """A parameter value CloudFormation would reject (or a required one is missing)."""


def parameter_values(template: dict[str, Any], **overrides: str) -> dict[str, str]:
    """Every parameter's value (override, else default) as the string CloudFormation uses."""
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise ParameterError(f"not parameters of the template: {sorted(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = overrides[name]
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            raise ParameterError(f"parameter {name} has no default and no value")
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(v) for v in allowed]:
            raise ParameterError(f"{name}={value!r} is not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise ParameterError(f"{name}={value!r} does not match {pattern}")
        if len(value) < int(spec.get("MinLength", 0)):
            raise ParameterError(f"{name} is shorter than MinLength {spec['MinLength']}")
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            raise ParameterError(f"{name} is longer than MaxLength {spec['MaxLength']}")
        values[name] = value
    return values


class Evaluator:
    """Resolve parameter-only intrinsics of `template` for one set of parameter values."""

    def __init__(self, template: dict[str, Any], **overrides: str) -> None:
        self.template = template
        self.parameters = parameter_values(template, **overrides)
        self._conditions: dict[str, bool] = {}
        self._check_rules()

    def _check_rules(self) -> None:
        """Raise ParameterError for the first rule assertion the parameters fail, as
        CloudFormation refuses such a stack before it changes anything."""
        for name, rule in self.template.get("Rules", {}).items():
            if "RuleCondition" in rule and not self._truth(rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self._truth(assertion["Assert"]):
                    reason = assertion.get("AssertDescription", "")
                    raise ParameterError(f"rule {name} fails: {reason}".strip())

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = self._truth(self.template["Conditions"][name])
        return self._conditions[name]

    def _truth(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            ((function, argument),) = expression.items()
            if function == "Fn::Equals":
                left, right = (self.evaluate(part) for part in argument)
                return str(left) == str(right)
            if function == "Fn::Not":
                return not self._truth(argument[0])
            if function == "Fn::And":
                return all(self._truth(part) for part in argument)
            if function == "Fn::Or":
                return any(self._truth(part) for part in argument)
            if function == "Ref":  # the loader reads `!Condition X` as {"Ref": X}
                return self.condition(argument)
        raise ValueError(f"unsupported condition expression: {expression!r}")

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        return {"Ref": name}  # a resource: stays symbolic

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        local = {name: self.evaluate(value) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            literal, name = match.groups()
            if literal:
                return "${" + name + "}"
            value = local[name] if name in local else self._ref(name)
            if not isinstance(value, str):
                return match.group(0)  # a resource attribute: leave the placeholder
            return value

        return _SUB_VARIABLE.sub(replace, text)

    def evaluate(self, value: Any) -> Any:
        """`value` with every parameter-only intrinsic resolved."""
        if isinstance(value, list):
            resolved = [self.evaluate(item) for item in value]
            return [item for item in resolved if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::If":
                name, if_true, if_false = argument
                return self.evaluate(if_true if self.condition(name) else if_false)
            if key == "Fn::FindInMap":
                mapping, top, second = (self.evaluate(part) for part in argument)
                found = self.template["Mappings"][mapping][top][second]
                # Numbers as strings, like every parameter value here.
                return str(found) if isinstance(found, int | float) else found
            if key == "Fn::Split":
                separator, text = argument
                resolved_text = self.evaluate(text)
                if isinstance(resolved_text, str):
                    return resolved_text.split(separator)
                return {"Fn::Split": [separator, resolved_text]}
            if key == "Fn::Join":
                separator, parts = argument
                resolved = self.evaluate(parts)
                if all(isinstance(part, str) for part in resolved):
                    return separator.join(resolved)
                return {"Fn::Join": [separator, resolved]}
        resolved_items = {key: self.evaluate(item) for key, item in value.items()}
        return {key: item for key, item in resolved_items.items() if item is not _NO_VALUE}

    def resource_properties(self, logical_id: str) -> dict[str, Any]:
        return self.evaluate(self.template["Resources"][logical_id].get("Properties", {}))
