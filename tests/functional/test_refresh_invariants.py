"""The refresh's invariants over generated schedules of DRS changes, faulted deliveries,
duplicate events and full syncs (hypothesis).

Each example: 2 accounts x 2 regions, 3 servers a scope, a clean first sync; then a schedule
of steps: a server's replication state changes in DRS, a server is removed from DRS, a
batch of events is delivered through the SQS adapter (1-4 events, sometimes the same event
twice, sometimes with one scope's DRS failing: an error or a malformed answer), or a full
sync runs. After every delivery, whatever its fault:

a. no server DRS still lists is soft-deleted;
b. a scope whose read failed left its items byte-for-byte as they were, and every message
   naming one of its servers (and only those) is returned for redelivery;
c. every server a healthy scope was asked about shows DRS's state now (its replication
   state), or is soft-deleted when DRS no longer lists it;
d. scopes the batch did not name are untouched.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scripts.local.drs_simulator import Fault
from scripts.local.moto_server import LocalMotoServer
from tests.functional.test_refresh_source_servers import deliver, drs_event, sqs_batch
from tests.functional.test_sync_invariants import SCOPES, _by_scope, _fresh_tables
from tests.support.world import World

SERVERS = 3
STATES = ["STALLED", "CONTINUOUS", "PAUSED"]
scope_index = st.integers(min_value=0, max_value=len(SCOPES) - 1)
server_index = st.integers(min_value=0, max_value=SERVERS - 1)
read_fault = st.one_of(
    st.builds(
        Fault,
        error_code=st.sampled_from(
            ["ThrottlingException", "AccessDeniedException", "InternalServerException"]
        ),
    ),
    st.builds(Fault, kind=st.sampled_from(["missing_items", "items_not_list"])),
)
step = st.one_of(
    st.tuples(st.just("change"), scope_index, server_index, st.sampled_from(STATES)),
    st.tuples(st.just("remove"), scope_index, server_index),
    st.tuples(
        st.just("deliver"),
        st.lists(st.tuples(scope_index, server_index), min_size=1, max_size=4),
        st.one_of(st.none(), st.tuples(scope_index, read_fault)),
        st.booleans(),  # the first event delivered twice in the batch
    ),
    st.tuples(st.just("sync")),
)


@settings(
    max_examples=20,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=7))
def test_every_delivery_keeps_the_refresh_invariants(
    world: World,
    moto_server: LocalMotoServer,
    monkeypatch: pytest.MonkeyPatch,
    steps: list[tuple[Any, ...]],
) -> None:
    _fresh_tables(world, monkeypatch, moto_server)
    fleet = {
        scope: [s["sourceServerID"] for s in world.add_servers(*scope, SERVERS, ec2_fraction=0.0)]
        for scope in SCOPES
    }
    assert world.sync()["status"] == "SUCCEEDED"

    for number, action in enumerate(steps):
        kind = action[0]
        if kind == "change":
            scope, sid = SCOPES[action[1]], fleet[SCOPES[action[1]]][action[2]]
            if sid in world.simulator.source_server_ids(*scope):
                world.simulator.set_replication_state(*scope, sid, action[3])
        elif kind == "remove":
            scope = SCOPES[action[1]]
            world.simulator.remove_source_server(*scope, fleet[scope][action[2]])
        elif kind == "sync":
            world.sync()
        else:
            _deliver_and_judge(world, fleet, action, f"step {number} of {steps}")


def _deliver_and_judge(
    world: World, fleet: dict[tuple[str, str], list[str]], action: tuple[Any, ...], where: str
) -> None:
    _, named, fault, duplicate = action
    refs = [(SCOPES[i], fleet[SCOPES[i]][j]) for i, j in named]
    if duplicate:
        refs.insert(0, refs[0])
    faulted = SCOPES[fault[0]] if fault is not None else None
    if fault is not None:
        world.simulator.set_fault(*faulted, fault[1])
    before = _by_scope(world.raw_items(world.tables.inventory))
    bodies = [drs_event(*scope, sid) for scope, sid in refs]

    answer = deliver(world, sqs_batch(*bodies))
    world.simulator.clear_faults()

    after = _by_scope(world.raw_items(world.tables.inventory))
    context = f"{where}; answer {answer['refresh']}"
    retried = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    expected_retried = {f"m-{n}" for n, (scope, _) in enumerate(refs) if scope == faulted}
    # b. exactly the faulted scope's messages come back
    assert retried == expected_retried, context
    for scope in SCOPES:
        listed = {
            r["arn"]: r for r in world.simulator.source_servers(*scope) if isinstance(r, dict)
        }
        items = after.get(scope, {})
        # a. nothing DRS lists is soft-deleted
        for arn in listed:
            assert "deletedAt" not in items.get(arn, {}), (scope, arn, context)
        asked = {sid for s, sid in refs if s == scope}
        if scope == faulted or not asked:
            # b, d. a failed scope, or one the batch did not name: untouched
            assert items == before.get(scope, {}), (scope, context)
            continue
        # c. every asked-about server shows DRS's state now, or is soft-deleted when gone
        for sid in asked:
            arn = next(
                (a for a, r in listed.items() if r["sourceServerID"] == sid),
                None,
            )
            if arn is not None:
                state = listed[arn]["dataReplicationInfo"]["dataReplicationState"]
                assert items[arn]["replicationState"]["S"] == state, (scope, sid, context)
            else:
                gone = [i for i in items.values() if i["sourceServerID"]["S"] == sid]
                assert all("deletedAt" in i for i in gone), (scope, sid, context)
