"""A payment's lineage: every step that handled it adds its hop to the event it emits, and the
outcome and the final status keep them all, in order, with times that add up."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import orjson

from kpay_faust import tracecontext
from kpay_faust.payments import agents
from kpay_faust.payments.tables import payment_status
from kpay_faust.payments.views import trace_json
from tests.unit.test_pipeline_in_process import fund, pay, run


async def test_a_confirmed_payment_has_four_hops_that_add_up(producer):
    await run(producer, [fund("neil", "100.00"), fund("john", "0.00")])
    await run(producer, [pay("p1", "neil", "john", "10.00")])
    status = payment_status["p1"]
    assert [h[0] for h in status.hops] == ["gateway", "debit", "credit", "confirmed"]
    outcome = json.loads(next(r.value for r in producer.to("payments.confirmed") if r.key == "p1"))
    assert [h[0] for h in outcome["hops"]] == ["gateway", "debit", "credit", "confirmed"]
    assert outcome["hops"][-1][5] == round(outcome["finished_at"], 3)
    trace = trace_json(status)
    assert trace["finished"] and [h["topic"] for h in trace["hops"]] == [
        "kpay.payments.incoming",
        "kpay.payments.inflight",
        "kpay.payments.inflight",
        "kpay.payments.complete",
    ]
    assert all(h["ms"] >= 0 for h in trace["hops"])
    assert abs(sum(h["ms"] for h in trace["hops"]) - trace["latency_ms"]) < 0.01


async def test_a_refunded_payment_shows_its_refund(producer):
    await run(producer, [fund("neil", "100.00")])
    await run(producer, [pay("p2", "neil", "nobody", "10.00")])  # unknown payee: refunded
    steps = [h[0] for h in payment_status["p2"].hops]
    assert steps == ["gateway", "debit", "credit", "refund", "confirmed"]
    assert payment_status["p2"].state == "rejected"


async def test_a_payment_rejected_at_the_gateway_has_its_two_hops(producer):
    await run(producer, [pay("p3", "neil", "neil", "10.00")])  # payer and payee the same
    assert [h[0] for h in payment_status["p3"].hops] == ["gateway", "confirmed"]


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def traces(producer, payment_id: str) -> list[str]:
    """The traceparent of each payment record written for ``payment_id``, in order."""
    found = []
    for sent in producer.sent:
        if sent.topic.startswith("kpay.payments.") and payment_id.encode() in sent.value:
            found.append(dict(sent.headers or ())[tracecontext.HEADER].decode())
    return found


async def test_the_callers_trace_is_continued_through_every_step(producer):
    await run(producer, [fund("neil", "100.00"), fund("john", "0.00")])
    async with AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(agents.inflight_gateway.test_context())
        submitted = orjson.dumps({"id": "p4", "from": "neil", "to": "john", "amount": "1.00"})
        parent = f"00-{TRACE}-00f067aa0ba902b7-01"
        await gateway.put(submitted, key="p4", headers={tracecontext.HEADER: parent.encode()})
    await run(producer, [])  # the rest of the way
    written = traces(producer, "p4")
    assert len(written) == 4  # inflight (debit), inflight (credit), complete, confirmed
    assert {tracecontext.parse(t)[0] for t in written} == {TRACE}
    assert len({tracecontext.parse(t)[1] for t in written}) == 4  # a new span per step
    assert payment_status["p4"].trace_id == TRACE
    assert trace_json(payment_status["p4"])["trace_id"] == TRACE


async def test_a_payment_without_a_trace_gets_one_trace_for_all_its_records(producer):
    await run(producer, [fund("neil", "100.00"), fund("john", "0.00")])
    await run(producer, [pay("p5", "neil", "john", "1.00")])
    ids = {tracecontext.parse(t)[0] for t in traces(producer, "p5")}
    assert ids == {payment_status["p5"].trace_id}


def test_an_invalid_traceparent_starts_a_new_trace():
    for bad in (None, "", "garbage", f"00-{'0' * 32}-00f067aa0ba902b7-01", b"\xff"):
        assert tracecontext.parse(bad) is None
        assert tracecontext.parse(tracecontext.child(bad)) is not None
    assert tracecontext.parse(f"00-{TRACE}-00f067aa0ba902b7-01") == (
        TRACE,
        "00f067aa0ba902b7",
        "01",
    )
