"""The DRS simulator's fault kinds, skips and raw records, as a stock boto3 `drs` client sees them.

These are the faults the sync's fault-matrix tests inject: an error after an earlier page
succeeded, answers without an `items` list, a `nextToken` that repeats or never ends, a request
that hangs, and records DRS should never send.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, PaginationError

from scripts.local import fleet
from scripts.local.drs_simulator import (
    ENDLESS_PAGES,
    HANG,
    ITEMS_NOT_LIST,
    MISSING_ITEMS,
    REPEAT_TOKEN,
    THROTTLING,
    UNINITIALIZED,
    Fault,
    SimulatorControl,
    SimulatorControlError,
)
from tests.support.drs import RawBodies, drs_client

HUB = "123456789012"  # moto's default account: what the "testing" key resolves to
OTHER = "111122223333"
REGION = "us-east-1"
LIST = "DescribeSourceServers"
PAGINATOR = "describe_source_servers"
# One attempt per call: each call is one request, so skip/count arithmetic is visible.
NO_RETRIES = Config(retries={"total_max_attempts": 1})


def _ids(items: list[Any]) -> list[str]:
    return [item["sourceServerID"] for item in items]


def _hub_servers(drs_simulator: Any, count: int) -> list[str]:
    servers = fleet.generate_fleet(HUB, REGION, count, seed=7)
    drs_simulator.add_source_servers(HUB, REGION, servers)
    return sorted(_ids(servers))


# ---- skip and count ---------------------------------------------------------------------------


def test_skip_fails_page_two_after_page_one_succeeded(drs_simulator):
    ids = _hub_servers(drs_simulator, 3)
    drs_simulator.set_fault(HUB, REGION, Fault(UNINITIALIZED, operation=LIST, skip=1))
    drs = drs_client(drs_simulator.endpoint, config=NO_RETRIES)

    first = drs.describe_source_servers(maxResults=2, filters={})
    assert _ids(first["items"]) == ids[:2]
    with pytest.raises(ClientError) as raised:
        drs.describe_source_servers(maxResults=2, filters={}, nextToken=first["nextToken"])

    assert raised.value.response["Error"]["Code"] == UNINITIALIZED
    assert drs_simulator.faults()[0]["toSkip"] == 0


def test_count_is_counted_after_the_skip(drs_simulator):
    _hub_servers(drs_simulator, 1)
    drs_simulator.set_fault(HUB, REGION, Fault(THROTTLING, skip=2, count=2))
    drs = drs_client(drs_simulator.endpoint, config=NO_RETRIES)

    outcomes = []
    for _ in range(5):
        try:
            drs.describe_source_servers()
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])

    assert outcomes == ["ok", "ok", THROTTLING, THROTTLING, "ok"]
    assert drs_simulator.faults() == []


def test_shape_faults_neither_touch_nor_count_other_operations(drs_simulator):
    _hub_servers(drs_simulator, 1)
    drs_simulator.set_fault(HUB, REGION, Fault(kind=MISSING_ITEMS, skip=1, count=1))
    drs = drs_client(drs_simulator.endpoint, config=NO_RETRIES)

    assert drs.list_staging_accounts()["accounts"] == []  # not matched: no skip used
    assert len(drs.describe_source_servers()["items"]) == 1  # the skipped one
    assert "items" not in drs.describe_source_servers()
    assert len(drs.describe_source_servers()["items"]) == 1


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "unsupported fault None"),
        ({"kind": "teapot"}, "unsupported fault kind"),
        ({"kind": HANG, "error_code": THROTTLING}, "takes no error_code"),
        ({"kind": REPEAT_TOKEN, "operation": "ListStagingAccounts"}, "DescribeSourceServers only"),
        ({"error_code": THROTTLING, "skip": -1}, "skip"),
        ({"kind": HANG, "hang_seconds": -1.0}, "hang_seconds"),
    ],
)
def test_fault_rejects_what_it_cannot_do(arguments, problem):
    with pytest.raises(ValueError, match=problem):
        Fault(**arguments)


def test_fault_dict_round_trip():
    faults = [
        Fault(THROTTLING, count=2, skip=1, retry_after_seconds=3),
        Fault(kind=HANG, operation=LIST, hang_seconds=0.5),
        Fault(kind=ENDLESS_PAGES, count=3),
    ]
    for fault in faults:
        assert Fault.from_dict(fault.to_dict()) == fault


# ---- response-shape faults --------------------------------------------------------------------


def test_missing_items_answers_an_empty_object(drs_simulator):
    _hub_servers(drs_simulator, 3)
    drs_simulator.set_fault(HUB, REGION, Fault(kind=MISSING_ITEMS))
    drs = drs_client(drs_simulator.endpoint)
    raw = RawBodies(drs, LIST)

    response = drs.describe_source_servers(maxResults=2, filters={})

    assert raw.bodies == [{}]
    assert set(response) == {"ResponseMetadata"}  # no items, no nextToken


def test_items_not_a_list_breaks_botocores_parser(drs_simulator):
    _hub_servers(drs_simulator, 1)
    drs_simulator.set_fault(HUB, REGION, Fault(kind=ITEMS_NOT_LIST))
    drs = drs_client(drs_simulator.endpoint)
    raw = RawBodies(drs, LIST)

    # botocore walks "oops" as a list of SourceServer objects: a bare AttributeError escapes
    # the client call, neither a ClientError nor a BotoCoreError.
    with pytest.raises(AttributeError):
        drs.describe_source_servers()
    assert raw.bodies == [{"items": "oops"}]


def test_repeat_token_answers_the_first_page_forever(drs_simulator):
    ids = _hub_servers(drs_simulator, 5)
    drs_simulator.set_fault(HUB, REGION, Fault(kind=REPEAT_TOKEN, count=3))
    drs = drs_client(drs_simulator.endpoint)

    pages = [drs.describe_source_servers(maxResults=2, filters={})]
    for _ in range(2):
        token = pages[-1]["nextToken"]
        pages.append(drs.describe_source_servers(maxResults=2, filters={}, nextToken=token))

    assert [_ids(page["items"]) for page in pages] == [ids[:2]] * 3
    assert len({page["nextToken"] for page in pages}) == 1
    # Disarmed: the repeated token resumes the listing after the first page.
    rest = drs.describe_source_servers(maxResults=2, filters={}, nextToken=pages[0]["nextToken"])
    assert _ids(rest["items"]) == ids[2:4]


def test_repeat_token_after_a_good_page_and_botocores_paginator(drs_simulator):
    _hub_servers(drs_simulator, 5)
    drs_simulator.set_fault(HUB, REGION, Fault(kind=REPEAT_TOKEN, skip=1))
    paginator = drs_client(drs_simulator.endpoint).get_paginator(PAGINATOR)

    with pytest.raises(PaginationError, match="same next token"):
        list(paginator.paginate(PaginationConfig={"PageSize": 2}))


def test_repeat_token_on_an_empty_scope_still_answers_a_token(drs_simulator):
    drs_simulator.set_fault(HUB, REGION, Fault(kind=REPEAT_TOKEN))
    drs = drs_client(drs_simulator.endpoint)

    first = drs.describe_source_servers()
    second = drs.describe_source_servers(nextToken=first["nextToken"])

    assert first["items"] == second["items"] == []
    assert first["nextToken"] == second["nextToken"]


def test_endless_pages_serve_the_servers_then_empty_pages_with_fresh_tokens(drs_simulator):
    ids = _hub_servers(drs_simulator, 3)
    drs_simulator.set_fault(HUB, REGION, Fault(kind=ENDLESS_PAGES, count=5))
    drs = drs_client(drs_simulator.endpoint)

    pages = [drs.describe_source_servers(maxResults=2, filters={})]
    for _ in range(4):
        token = pages[-1]["nextToken"]
        pages.append(drs.describe_source_servers(maxResults=2, filters={}, nextToken=token))

    assert [_ids(page["items"]) for page in pages] == [ids[:2], ids[2:], [], [], []]
    assert len({page["nextToken"] for page in pages}) == 5
    # Disarmed: the last token is a valid position, and the listing ends there.
    last = drs.describe_source_servers(maxResults=2, nextToken=pages[-1]["nextToken"])
    assert last["items"] == []
    assert "nextToken" not in last


# ---- hang -------------------------------------------------------------------------------------


def test_hang_holds_the_request_then_answers_normally(drs_simulator):
    _hub_servers(drs_simulator, 2)
    drs_simulator.set_fault(HUB, REGION, Fault(kind=HANG, hang_seconds=0.3, count=1))
    drs = drs_client(drs_simulator.endpoint)

    started = time.monotonic()
    response = drs.describe_source_servers()

    assert time.monotonic() - started >= 0.3
    assert len(response["items"]) == 2


def test_a_hung_request_blocks_nobody_and_stop_ends_it_at_once(drs_simulator):
    drs_simulator.set_fault(HUB, REGION, Fault(kind=HANG, hang_seconds=300))
    patient = Config(retries={"total_max_attempts": 1}, read_timeout=120)
    hung = drs_client(drs_simulator.endpoint, config=patient)
    other_region = drs_client(drs_simulator.endpoint, "us-west-2", config=NO_RETRIES)
    control = SimulatorControl(drs_simulator.endpoint, timeout=5)

    def call() -> Any:
        try:
            return hung.describe_source_servers()
        except (BotoCoreError, ClientError) as exc:
            return exc

    with ThreadPoolExecutor(max_workers=1) as pool:
        outcome = pool.submit(call)
        deadline = time.monotonic() + 5
        while drs_simulator.request_count(LIST, HUB, REGION) == 0:
            assert time.monotonic() < deadline, "the hung request never arrived"
            time.sleep(0.01)
        # The simulator lock is free: other callers and the control API are answered.
        assert other_region.describe_source_servers()["items"] == []
        assert control.faults()[0]["fault"]["kind"] == HANG

        started = time.monotonic()
        drs_simulator.stop()
        stop_seconds = time.monotonic() - started
        outcome.result(timeout=5)  # the client is released (answer or closed connection)

    assert stop_seconds < 2.0
    assert not outcome.running()


# ---- raw records ------------------------------------------------------------------------------


def _raw_records(existing_arn: str, existing_id: str) -> list[Any]:
    return [
        {"arn": f"arn:aws:drs:{REGION}:{HUB}:source-server/s-00000000000000nid"},  # no id
        {"sourceServerID": existing_id, "arn": existing_arn},  # duplicate of a server
        {"sourceServerID": "s-zzzzzzzzzzzzzhuge", "lastSeenByServiceDateTime": 1e200},
        {"sourceServerID": 10**40},
        {
            "sourceServerID": "s-zzzzzzzzzzzzzothr",
            "arn": f"arn:aws:drs:eu-west-1:{OTHER}:source-server/s-zzzzzzzzzzzzzothr",
        },
        None,
        {"foo": 1},
    ]


def test_raw_records_are_served_in_a_stable_order_across_pages(drs_simulator):
    servers = fleet.generate_fleet(HUB, REGION, 3, seed=11)
    drs_simulator.add_source_servers(HUB, REGION, servers)
    first = min(servers, key=lambda server: server["sourceServerID"])
    records = _raw_records(first["arn"], first["sourceServerID"])
    assert drs_simulator.add_raw_records(HUB, REGION, records) == len(records)
    drs = drs_client(drs_simulator.endpoint)
    raw = RawBodies(drs, LIST)

    pages = list(drs.get_paginator(PAGINATOR).paginate(PaginationConfig={"PageSize": 3}))
    served = [item for body in raw.bodies for item in body["items"]]

    assert len(pages) == 4
    server_ids = sorted(_ids(servers))
    # Ids in order; a raw record follows the id it names; records without one come last.
    assert served == [
        *[s for s in servers if s["sourceServerID"] == server_ids[0]],
        records[1],
        *[s for s in servers if s["sourceServerID"] == server_ids[1]],
        *[s for s in servers if s["sourceServerID"] == server_ids[2]],
        records[2],
        records[4],
        records[0],
        records[3],
        records[5],
        records[6],
    ]
    assert isinstance(served[-3]["sourceServerID"], int)  # 10**40 crossed the wire intact
    # A second listing serves the same sequence.
    raw.bodies.clear()
    list(drs.get_paginator(PAGINATOR).paginate(PaginationConfig={"PageSize": 4}))
    assert [item for body in raw.bodies for item in body["items"]] == served


def test_what_botocore_makes_of_raw_records(drs_simulator):
    drs_simulator.add_raw_records(
        HUB, REGION, [None, {"foo": 1}, {"sourceServerID": 10**40, "arn": 1e200}]
    )
    items = drs_client(drs_simulator.endpoint).describe_source_servers()["items"]

    # null kept, unknown members dropped, JSON types kept unchecked against the model.
    assert items == [None, {}, {"sourceServerID": 10**40, "arn": 1e200}]


def test_a_non_object_item_breaks_botocores_parser(drs_simulator):
    drs_simulator.add_raw_records(HUB, REGION, ["not-a-server"])
    with pytest.raises(AttributeError):
        drs_client(drs_simulator.endpoint).describe_source_servers()


def test_raw_records_are_not_servers_and_leave_with_the_scope(drs_simulator):
    ids = _hub_servers(drs_simulator, 2)
    drs_simulator.add_raw_records(HUB, REGION, [{"foo": 1}, {"sourceServerID": ids[0]}])

    assert drs_simulator.scope_counts() == {(HUB, REGION): 2}
    assert drs_simulator.source_server_ids(HUB, REGION) == ids
    with pytest.raises(ValueError, match="JSON"):
        drs_simulator.add_raw_records(HUB, REGION, [{"ok": 1}, {"bad": float("nan")}])
    assert len(drs_client(drs_simulator.endpoint).describe_source_servers()["items"]) == 4

    drs_simulator.clear_source_servers(HUB, REGION)
    assert drs_client(drs_simulator.endpoint).describe_source_servers()["items"] == []


# ---- control API ------------------------------------------------------------------------------


def test_control_api_sets_every_fault_kind_and_adds_raw_records(drs_simulator):
    control = SimulatorControl(drs_simulator.endpoint)
    _hub_servers(drs_simulator, 3)
    drs = drs_client(drs_simulator.endpoint, config=NO_RETRIES)

    assert control.add_raw_records(HUB, REGION, [None, {"sourceServerID": 10**40}]) == 2
    control.set_fault(HUB, REGION, Fault(UNINITIALIZED, operation=LIST, skip=1, count=1))
    control.set_fault(HUB, "us-west-2", Fault(kind=HANG, hang_seconds=0.2, count=1))
    control.set_fault(None, "eu-west-1", Fault(kind=ENDLESS_PAGES))
    assert sorted(row["fault"]["kind"] for row in control.faults()) == [
        ENDLESS_PAGES,
        "error",
        HANG,
    ]
    by_region = {row["region"]: row for row in control.faults()}
    assert by_region[REGION]["toSkip"] == 1
    assert Fault.from_dict(by_region["us-west-2"]["fault"]).hang_seconds == 0.2

    page = drs.describe_source_servers(maxResults=4, filters={})
    assert page["items"][-1] is None  # raw records served after the servers
    with pytest.raises(ClientError):
        drs.describe_source_servers(maxResults=4, filters={}, nextToken=page["nextToken"])
    started = time.monotonic()
    drs_client(drs_simulator.endpoint, "us-west-2").describe_source_servers()
    assert time.monotonic() - started >= 0.2
    assert "nextToken" in drs_client(drs_simulator.endpoint, "eu-west-1").describe_source_servers()

    control.clear_faults()
    assert control.faults() == []
    assert control.scope_counts() == {(HUB, REGION): 3}


def test_control_api_rejects_bad_faults_and_records(drs_simulator):
    control = SimulatorControl(drs_simulator.endpoint)
    for bad in ({"kind": "teapot"}, {"kind": HANG, "errorCode": THROTTLING}, {"skip": -1}):
        with pytest.raises(SimulatorControlError, match="400"):
            control._call("POST", "faults", {"fault": bad})
    with pytest.raises(SimulatorControlError, match="400"):
        control._call("POST", f"raw-records/{HUB}/{REGION}", {"nothing": []})
    assert control.faults() == []


def test_stop_releases_every_hung_request_even_many(drs_simulator):
    drs_simulator.set_fault(None, None, Fault(kind=HANG, hang_seconds=300))
    patient = Config(retries={"total_max_attempts": 1}, read_timeout=120)
    clients = [
        drs_client(drs_simulator.endpoint, region, config=patient)
        for region in ("us-east-1", "us-east-2", "us-west-1", "us-west-2")
    ]
    errors: list[BaseException] = []

    def call(client: Any) -> None:
        try:
            client.describe_source_servers()
        except (BotoCoreError, ClientError) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while drs_simulator.request_count(LIST) < len(clients):
        assert time.monotonic() < deadline
        time.sleep(0.01)

    started = time.monotonic()
    drs_simulator.stop()
    for thread in threads:
        thread.join(timeout=5)

    assert time.monotonic() - started < 2.0
    assert not any(thread.is_alive() for thread in threads)
