"""The hub's DRS event plumbing (cfn/eventbridge-stack.yaml): bus, its policy, rule, queue,
event source mapping, cross-checked against what drs_events.py understands."""

from __future__ import annotations

from typing import Any

import pytest

from drs_events import DRS_EVENT_SOURCE, DRS_SOURCE, SERVER_API_CALLS, SERVER_DETAIL_TYPES
from tests.support.cfn import CFN_DIR, load_template
from tests.support.cfn_eval import Evaluator
from tests.unit.test_templates import LAMBDA_PARAMS

ENV = "qa"
PROJECT = "aws-drs-orchestration"
DMH_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{PROJECT}-data-management-handler-{ENV}"


def stack(**overrides: str) -> Evaluator:
    params = {"Environment": ENV, "DataManagementHandlerFunctionArn": DMH_ARN, **overrides}
    return Evaluator(load_template("eventbridge-stack.yaml"), **params)


def resources() -> dict[str, Any]:
    return load_template("eventbridge-stack.yaml")["Resources"]


def test_the_bus_and_the_queue_have_the_contract_names() -> None:
    evaluated = stack()
    assert evaluated.resource_properties("DrsEventBus")["Name"] == f"{PROJECT}-drs-events-{ENV}"
    queue = evaluated.resource_properties("DrsEventsQueue")
    assert queue["QueueName"] == f"{PROJECT}-drs-events-{ENV}"
    assert queue["SqsManagedSseEnabled"] is True


def test_the_rule_matches_exactly_what_the_handler_understands() -> None:
    rule = stack().resource_properties("DrsEventsRule")
    assert rule["EventBusName"] == f"{PROJECT}-drs-events-{ENV}"
    assert rule["State"] == "ENABLED"
    service, api_calls = rule["EventPattern"]["$or"]
    assert service["source"] == [DRS_SOURCE]
    assert set(service["detail-type"]) == SERVER_DETAIL_TYPES
    assert api_calls["source"] == [DRS_SOURCE]
    assert api_calls["detail-type"] == ["AWS API Call via CloudTrail"]
    assert api_calls["detail"]["eventSource"] == [DRS_EVENT_SOURCE]
    assert set(api_calls["detail"]["eventName"]) == SERVER_API_CALLS
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["DrsEventsQueue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DrsEventsDeadLetterQueue", "Arn"]}


@pytest.mark.parametrize(
    "detail_type", ["DRS PIT Snapshot Taken", "DRS Recovery Instance Failback State Change"]
)
def test_events_left_to_the_full_sync_are_neither_accepted_nor_forwarded(detail_type: str) -> None:
    # A failback state change names a recovery instance (never attributed); a PIT snapshot,
    # every ~10 minutes per replicating server, changes nothing the inventory stores.
    hub = stack().resource_properties("DrsEventsRule")["EventPattern"]
    forwarding = load_template("target-account-role.yaml")["Resources"]["DrsEventForwardingRule"]
    for pattern in (hub, forwarding["Properties"]["EventPattern"]):
        service, _ = pattern["$or"]
        assert detail_type not in service["detail-type"]
    assert detail_type not in SERVER_DETAIL_TYPES


def test_target_accounts_forward_exactly_what_the_hub_rule_accepts() -> None:
    # A forwarded event the hub's rule drops is paid for and lost; one the hub accepts but
    # no account forwards is a freshness promise nobody keeps.
    hub = stack().resource_properties("DrsEventsRule")["EventPattern"]
    forwarding = load_template("target-account-role.yaml")["Resources"]["DrsEventForwardingRule"]
    assert _as_sets(forwarding["Properties"]["EventPattern"]) == _as_sets(hub)


def _as_sets(value: Any) -> Any:
    """A pattern with its value lists as sets (their order means nothing to EventBridge)."""
    if isinstance(value, dict):
        return {key: _as_sets(inner) for key, inner in value.items()}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    if isinstance(value, list):
        return [_as_sets(v) for v in value]
    return value


def test_only_the_rule_may_send_to_the_queues() -> None:
    for queue, policy_id in (
        ("DrsEventsQueue", "DrsEventsQueuePolicy"),
        ("DrsEventsDeadLetterQueue", "DrsEventsDeadLetterQueuePolicy"),
    ):
        policy = resources()[policy_id]["Properties"]
        assert policy["Queues"] == [{"Ref": queue}]
        (allow,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        assert allow["Principal"] == {"Service": "events.amazonaws.com"}
        assert allow["Action"] == "sqs:SendMessage"
        assert allow["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert allow["Condition"] == {
            "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["DrsEventsRule", "Arn"]}}
        }


def test_failed_records_are_redelivered_then_dead_lettered() -> None:
    queue = stack().resource_properties("DrsEventsQueue")
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DrsEventsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    # Lambda refuses a queue whose visibility timeout is shorter than the function's timeout.
    function = load_template("lambda-stack.yaml")["Resources"]["DataManagementHandlerFunction"]
    assert queue["VisibilityTimeout"] >= function["Properties"]["Timeout"]


def test_the_mapping_batches_to_the_data_management_handler_with_partial_failures() -> None:
    mapping = stack().resource_properties("DrsEventsSourceMapping")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["DrsEventsQueue", "Arn"]}
    assert mapping["FunctionName"] == DMH_ARN
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= mapping["BatchSize"] <= 10_000
    assert 0 < mapping["MaximumBatchingWindowInSeconds"] <= 60


ORG = "o-abcd123456"
ORG_CONDITION = {"StringEquals": {"aws:PrincipalOrgID": ORG}}


@pytest.mark.parametrize(
    ("parameters", "principal", "condition"),
    [
        pytest.param({"TargetOrganizationId": ORG}, "*", ORG_CONDITION, id="organization only"),
        pytest.param(
            {"TargetAccountIds": "111111111111,222222222222"},
            {"AWS": ["111111111111", "222222222222"]},
            None,
            id="accounts only",
        ),
        pytest.param(
            {"TargetOrganizationId": ORG, "TargetAccountIds": "111111111111,222222222222"},
            {"AWS": ["111111111111", "222222222222"]},
            ORG_CONDITION,
            id="listed AND in the organization",
        ),
    ],
)
def test_the_bus_accepts_only_the_organization_or_the_listed_accounts(
    parameters: dict[str, str], principal: Any, condition: dict[str, Any] | None
) -> None:
    # The lambda stack's scope (AssumeTargetAccountRoles): with both, an account must be
    # listed AND in the organization. One statement holds both halves, so neither alone grants.
    evaluated = stack(**parameters)
    assert evaluated.condition("AcceptEventsFromTargets")
    policies = [
        logical_id
        for logical_id, resource in resources().items()
        if resource["Type"] == "AWS::Events::EventBusPolicy"
    ]
    # Two policies on one bus would be put in parallel (ConcurrentModificationException).
    assert policies == ["DrsEventBusPolicy"]
    assert resources()["DrsEventBusPolicy"]["Condition"] == "AcceptEventsFromTargets"
    policy = evaluated.resource_properties("DrsEventBusPolicy")
    assert policy["EventBusName"] == f"{PROJECT}-drs-events-{ENV}"
    statement = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == {"Fn::GetAtt": ["DrsEventBus", "Arn"]}
    assert statement["Principal"] == principal
    assert statement.get("Condition") == condition


def test_without_a_target_scope_the_bus_has_no_policy() -> None:
    # Only the hub's own account (its forwarding roles' IAM policies) may put events then.
    assert not stack().condition("AcceptEventsFromTargets")


def test_the_bus_policy_and_the_assume_role_grant_name_the_same_scope() -> None:
    # Both stacks take the scope as the same two parameters, with the same patterns.
    lambda_parameters = load_template("lambda-stack.yaml")["Parameters"]
    event_parameters = load_template("eventbridge-stack.yaml")["Parameters"]
    for name in ("TargetOrganizationId", "TargetAccountIds"):
        assert event_parameters[name]["AllowedPattern"] == lambda_parameters[name]["AllowedPattern"]


def test_deploy_passes_the_event_stack_the_lambda_stacks_target_scope() -> None:
    script = (CFN_DIR.parent / "scripts" / "deploy.sh").read_text()
    eventbridge = script[script.index('params=("DataManagementHandlerFunctionArn=') :]
    eventbridge = eventbridge[: eventbridge.index("deploy_stack eventbridge")]
    assert '"TargetOrganizationId=$TARGET_ORG_CHOSEN"' in eventbridge
    assert '"TargetAccountIds=$TARGET_ACCOUNTS_CHOSEN"' in eventbridge


def test_the_root_stack_tells_target_accounts_the_bus_the_event_stack_makes() -> None:
    main = Evaluator(load_template("main-stack.yaml"), **_main_params())
    arn = main.evaluate(main.template["Outputs"]["DrsEventBusArn"]["Value"])
    name = stack().resource_properties("DrsEventBus")["Name"]
    assert arn == f"arn:aws:events:us-east-1:123456789012:event-bus/{name}"
    forwarding = Evaluator(
        load_template("target-account-role.yaml"),
        HubAccountId="123456789012",
        RoleRegion="none",
        HubEventBusArn=arn,
    )
    assert forwarding.condition("ForwardDrsEvents")  # the template takes the output as it is


def _main_params() -> dict[str, str]:
    keys = (
        "DataManagementHandlerCodeKey",
        "QueryHandlerCodeKey",
        "DataManagementHandlerCodeVersion",
        "QueryHandlerCodeVersion",
    )
    return {"Environment": ENV, **{key: LAMBDA_PARAMS[key] for key in keys}}
