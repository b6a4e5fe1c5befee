"""tests/events/*.json are real events: each runs through its handler against moto + DRS.

File names say which handler takes them: `<handler folder>.<what>.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cfn import load_template
from tests.support.handlers import load_handler
from tests.support.lambda_context import FakeLambdaContext
from tests.support.world import TARGET_A, World

EVENTS = sorted((Path(__file__).resolve().parents[1] / "events").glob("*.json"))


def test_the_scheduled_event_is_exactly_the_rules_input() -> None:
    rule = load_template("eventbridge-stack.yaml")["Resources"]["InventorySyncScheduleRule"]
    (target,) = rule["Properties"]["Targets"]
    scheduled = json.loads(
        (EVENTS[0].parent / "data-management-handler.scheduled-sync.json").read_text()
    )
    assert json.loads(target["Input"]) == scheduled


@pytest.mark.parametrize("path", EVENTS, ids=[p.name for p in EVENTS])
def test_sample_event_runs_through_its_handler(path: Path, world: World) -> None:
    folder = path.name.split(".", 1)[0]
    event = json.loads(path.read_text())
    if folder == "query-handler":
        # the queries read an inventory the real sync wrote
        world.add_servers(TARGET_A, "us-east-1", 3, ec2_fraction=0.0)
        world.sync()
    elif "Records" in event:
        # a batch of DRS events as Lambda's SQS poller delivers it (the event source mapping)
        answer = load_handler(folder).lambda_handler(event, FakeLambdaContext())
        assert answer["batchItemFailures"] == [], answer
        assert answer["refresh"]["requested"] == 1
        return
    elif event["operation"] == "add_target_account":
        # the world registered this account already; the sample registers it anew
        world.invoke("delete_target_account", accountId=event["accountId"])

    result = load_handler(folder).handle_direct_invocation(event, None)

    json.dumps(result)  # a plain JSON-serialisable dict, as Lambda returns it
    assert isinstance(result, dict) and result
