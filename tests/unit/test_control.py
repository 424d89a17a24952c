"""The control plane on its own: folding commands, the gateway's gate, bad commands."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from faust.types import TP

from kpay_faust.control import agents
from kpay_faust.control.models import ControlCommand, ControlState
from kpay_faust.control.state import control, held_for_load
from kpay_faust.control.views import pipeline_state
from kpay_faust.payments import agents as payments
from tests.unit.test_stages import payment


def fold(*commands: dict) -> ControlState:
    state = ControlState()
    for offset, doc in enumerate(commands):
        state = state.apply(ControlCommand.model_validate(doc), at=100.0 + offset, offset=offset)
    return state


def test_pause_resume_and_rate_fold_into_one_state():
    state = fold({"command": "pause"}, {"command": "pause"}, {"command": "rate", "per_second": 5})
    assert state.paused and state.since == 100.0 and state.per_second == 5 and state.offset == 2
    state = fold({"command": "pause"}, {"command": "resume"}, {"command": "rate"})
    assert not state.paused and state.since == 101.0 and state.per_second is None


@pytest.mark.parametrize(
    "doc",
    [
        {"command": "halt"},
        {"command": "pause", "per_second": 3},
        {"command": "rate", "per_second": 0},
    ],
)
def test_invalid_commands_are_refused(doc):
    with pytest.raises(ValueError):
        ControlCommand.model_validate(doc)


def test_a_worker_folds_only_valid_commands():
    control.state = ControlState()
    control.fold(b"{not json", at=1.0, offset=0)
    control.fold(b'{"command": "pause"}', at=2.0, offset=1)
    assert control.state.paused and control.state.since == 2.0


async def test_gateway_admits_nothing_while_paused_and_all_after_resume(producer):
    control.state = ControlState(paused=True)
    async with payments.inflight_gateway.test_context() as gateway:
        for n in range(3):
            await gateway.put(payment(f"p{n}"), key=f"p{n}", wait=False)
        await asyncio.sleep(0.3)
        assert producer.to("payments.inflight") == []
        control.state = ControlState(paused=False)
        for _ in range(100):
            if len(producer.to("payments.inflight")) == 3:
                break
            await asyncio.sleep(0.02)
    assert [orjson.loads(s.value)["id"] for s in producer.to("payments.inflight")] == [
        "p0",
        "p1",
        "p2",
    ]


async def test_a_worker_that_has_not_read_the_control_topic_admits_nothing(producer):
    control.caught_up = False
    async with payments.inflight_gateway.test_context() as gateway:
        await gateway.put(payment("p1"), key="p1", wait=False)
        await asyncio.sleep(0.2)
        assert producer.to("payments.inflight") == []
        control.caught_up = True
        await asyncio.sleep(0.2)
    assert len(producer.to("payments.inflight")) == 1


async def test_malformed_control_messages_are_dead_lettered(producer):
    async with agents.control_plane.test_context() as agent:
        await agent.put(b"pause please", key="pipeline")
        await agent.put(b'{"command": "explode"}', key="pipeline")
        await agent.put(b'{"command": "pause"}', key="pipeline")
    letters = [orjson.loads(s.value) for s in producer.to("dlq")]
    assert [d["stage"] for d in letters] == ["control_plane", "control_plane"]
    assert "explode" in letters[1]["value"]


def test_status_is_draining_until_inflight_is_zero_on_every_worker():
    paused = {"paused": True, "since": 1.0, "per_second": None, "offset": 3}
    worker = {"state": paused, "holding": True}
    assert pipeline_state([worker], {"count": 2, "amount": "5.00"})["state"] == "draining"
    assert pipeline_state([worker], {"count": 0, "amount": "0.00"})["state"] == "paused"
    late = {"state": paused, "holding": False}
    assert pipeline_state([worker, late], {"count": 0})["state"] == "draining"
    running = {**paused, "paused": False, "offset": 4}
    assert pipeline_state([{"state": running}], {"count": 2})["state"] == "running"


def test_status_follows_the_newest_command_any_worker_has_read():
    paused = {"paused": True, "since": 1.0, "per_second": None, "offset": 5}
    behind = {"paused": False, "since": None, "per_second": None, "offset": 4}
    workers = [{"state": behind, "holding": False}, {"state": paused, "holding": True}]
    answer = pipeline_state(workers, {"count": 0})
    assert answer["state"] == "draining" and answer["since"] == 1.0


def test_an_input_partition_is_held_at_the_limit_until_half_its_payments_finished():
    a, b = TP("payments.incoming", 0), TP("payments.incoming", 1)
    assert held_for_load({a: 40, b: 39}, set(), limit=40) == {a}
    assert held_for_load({a: 21, b: 39}, {a}, limit=40) == {a}  # still over half: held
    assert held_for_load({a: 20, b: 39}, {a}, limit=40) == set()
    assert held_for_load({b: 45}, {a}, limit=40) == {b}  # a partition no longer ours is let go
