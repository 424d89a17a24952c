"""Property-based tests of the stages' decoding: whatever bytes arrive, each record gets exactly
one answer, nothing raises out of a stage, and no total goes negative."""

from __future__ import annotations

import asyncio
import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpay_faust.payments import agents
from kpay_faust.payments.tables import pipeline_totals
from tests.unit.test_stages import open_account

ANSWERS = ("dlq", "payments.complete", "payments.inflight", "payments.incoming")

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["neil", "john", "10.00", "0", "-1", "1e400", "NaN", "12.345"]),
)
json_doc = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
payment_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=12), json_leaf),
        "from": st.one_of(st.sampled_from(["neil", "john", "ghost"]), json_leaf),
        "to": st.one_of(st.sampled_from(["neil", "john", "ghost"]), json_leaf),
        "amount": json_leaf,
        "created_at": json_leaf,
        "v": json_leaf,
    },
)
values = st.one_of(
    st.binary(max_size=300),
    json_doc.map(lambda d: json.dumps(d).encode()),  # NaN, Infinity and big integers too
    payment_like.map(lambda d: json.dumps(d).encode()),
)
keys = st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=20).map(str.encode))


def answers(producer) -> int:
    return sum(len(producer.to(topic)) for topic in ANSWERS)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=keys, value=values)
async def test_any_record_on_the_gateway_gets_one_answer(producer, key, value):
    open_account("neil", "100.00")
    open_account("john", "0")
    try:  # a fresh id, so no example repeats an earlier one's
        doc = json.loads(value)
    except ValueError:  # not JSON (nor UTF-8): as it is
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("id"), str):
        doc["id"] = f"{doc['id']}-{uuid.uuid4().hex[:6]}"
        value = json.dumps(doc).encode()
    before = answers(producer)
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(value, key=key)
    assert answers(producer) - before == 1
    assert all(
        row.inflight_count >= 0 and row.inflight_amount >= 0 for row in pipeline_totals.values()
    )


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=keys, value=values)
async def test_any_record_on_the_account_stage_gets_one_answer_or_none_twice(producer, key, value):
    before = answers(producer)
    async with agents.account_stage.test_context() as agent:
        await agent.put(value, key=key)
    assert answers(producer) - before == 1


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=keys, value=values)
async def test_any_record_on_the_accounts_ledger_is_applied_rekeyed_or_dead_lettered(
    producer, key, value
):
    before = len(producer.to("dlq")) + len(producer.to("accounts"))
    async with agents.accounts_ledger.test_context() as agent:
        await agent.put(value, key=key)
    after = len(producer.to("dlq")) + len(producer.to("accounts"))
    assert after - before <= 1  # applied (no record), re-keyed or dead-lettered: never raised


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=keys, value=values)
async def test_any_record_on_the_confirmed_stage_is_finished_or_dead_lettered(producer, key, value):
    before = len(producer.to("dlq")) + len(producer.to("payments.confirmed"))
    async with agents.confirmed_stage.test_context() as agent:
        await agent.put(value, key=key)
    after = len(producer.to("dlq")) + len(producer.to("payments.confirmed"))
    assert after - before == 1
    assert all(row.inflight_count >= 0 for row in pipeline_totals.values())


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=keys, value=values)
async def test_any_record_on_the_control_topic_is_applied_or_dead_lettered(producer, key, value):
    from kpay_faust.control import agents as control_agents
    from kpay_faust.control.state import control

    state = control.state
    before = len(producer.to("dlq"))
    async with control_agents.control_plane.test_context() as agent:
        await agent.put(value, key=key)
    assert len(producer.to("dlq")) - before == 1  # random bytes are never a valid command
    assert control.state == state  # folding happens from the topic itself, never from garbage


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=keys, value=values)
async def test_any_record_on_the_outcome_topic_is_counted_or_dead_lettered(producer, key, value):
    from kpay_faust.metrics import agents as metrics_agents

    before = len(producer.to("dlq"))
    async with metrics_agents.payment_metrics.test_context() as agent:
        await agent.put(value, key=key)
        for _ in range(100):  # the stage batches for up to a quarter second
            if len(producer.to("dlq")) > before:
                break
            await asyncio.sleep(0.01)
    assert len(producer.to("dlq")) - before == 1
