"""Read CloudFormation templates in tests: a YAML loader that keeps `!Ref`-style tags."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CFN_DIR = ROOT / "cfn"

_SHORT_FORMS = (
    "Ref",
    "Sub",
    "GetAtt",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "ImportValue",
    "Base64",
    "Cidr",
    "GetAZs",
    "Condition",
)


class CfnLoader(yaml.SafeLoader):
    """SafeLoader mapping `!Ref X` to `{"Ref": X}` and `!GetAtt A.B` to `{"Fn::GetAtt": [A, B]}`."""


def _construct(tag: str):
    key = "Ref" if tag in ("Ref", "Condition") else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _tag in _SHORT_FORMS:
    CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


@cache
def load_template(name: str) -> dict[str, Any]:
    """The parsed template `cfn/<name>` (cached; do not mutate)."""
    return yaml.load((CFN_DIR / name).read_text(), Loader=CfnLoader)


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: res
        for name, res in template.get("Resources", {}).items()
        if res.get("Type") == resource_type
    }
