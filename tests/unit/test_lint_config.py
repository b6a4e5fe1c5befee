"""The lint suppressions stay specific and explained.

checkov findings that are accepted are listed in .checkov.baseline, each by resource and
check id with a one-line reason. checkov matches a baseline entry by resource name alone
(`Type.LogicalId`, whatever the file), so a logical id reused in another template would
silently inherit the suppression: these tests refuse that, and entries naming resources
that no longer exist.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cfn import CFN_DIR, ROOT, load_template

BASELINE = ROOT / ".checkov.baseline"
CHECK_ID = re.compile(r"CKV2?_AWS_\d+")


def _findings() -> list[tuple[str, dict[str, Any]]]:
    baseline = json.loads(BASELINE.read_text())
    return [
        (entry["file"], finding)
        for entry in baseline["failed_checks"]
        for finding in entry["findings"]
    ]


def test_the_baseline_lists_findings() -> None:
    assert _findings(), "an empty baseline: delete it and its --baseline in the Makefile"


@pytest.mark.parametrize(
    ("file", "finding"), _findings(), ids=[f["resource"] for _, f in _findings()]
)
def test_each_suppression_names_an_existing_resource_and_says_why(
    file: str, finding: dict[str, Any]
) -> None:
    resource_type, _, logical_id = finding["resource"].rpartition(".")
    template = load_template(Path(file).name)

    assert (CFN_DIR / Path(file).name).exists() and Path(file).parent == Path("/")
    assert template["Resources"][logical_id]["Type"] == resource_type
    assert finding["check_ids"] == sorted(set(finding["check_ids"]))
    assert all(CHECK_ID.fullmatch(check_id) for check_id in finding["check_ids"])
    # One reason per check id, one line each.
    assert sorted(finding["reasons"]) == finding["check_ids"]
    for reason in finding["reasons"].values():
        assert reason.strip() and "\n" not in reason and len(reason) <= 200


def test_suppressed_resources_have_logical_ids_no_other_template_uses() -> None:
    suppressed = {finding["resource"].rpartition(".")[2] for _, finding in _findings()}
    logical_ids = Counter(
        logical_id
        for path in CFN_DIR.glob("*.yaml")
        for logical_id in load_template(path.name)["Resources"]
    )

    assert {logical_id for logical_id in suppressed if logical_ids[logical_id] != 1} == set()


def test_cfn_lint_runs_informational_rules_and_ignores_none() -> None:
    config = yaml.safe_load((ROOT / ".cfnlintrc").read_text())

    assert "I" in config["include_checks"]
    assert not config.get("ignore_checks")


def test_ci_lints_before_it_tests() -> None:
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith("make ")
    ]

    assert commands == ["make lint", "make test"]


def test_checkov_is_pinned_outside_the_test_environment() -> None:
    # checkov pins boto3 itself; beside requirements.txt's boto3 pip cannot resolve it.
    checkov_pins = (ROOT / "requirements-checkov.txt").read_text()
    dev = (ROOT / "requirements-dev.txt").read_text()

    assert re.search(r"^checkov==\d+\.\d+\.\d+$", checkov_pins, re.M)
    assert not re.search(r"^checkov", dev, re.M | re.I)
