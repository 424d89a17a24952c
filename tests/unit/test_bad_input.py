"""Every kind of bad payment is rejected with a reason or dead-lettered; none moves money."""

from __future__ import annotations

import orjson
import pytest

from kpay_faust.payments import agents
from kpay_faust.payments.models import PaymentEvent, State
from kpay_faust.payments.tables import pipeline_totals

REJECTED = [
    ('{"id":"b","from":"a","to":"c","amount":"0"}', "amount: must be greater than 0"),
    ('{"id":"b","from":"a","to":"c","amount":"-5.00"}', "amount: must be greater than 0"),
    ('{"id":"b","from":"a","to":"c","amount":"NaN"}', "amount: must be a finite number"),
    ('{"id":"b","from":"a","to":"c","amount":"Infinity"}', "amount: must be a finite number"),
    ('{"id":"b","from":"a","to":"c","amount":"1.001"}', "amount: must have at most 2 decimal"),
    ('{"id":"b","from":"a","to":"c","amount":"1e400"}', "amount: must not exceed 1000000.00"),
    (
        '{"id":"b","from":"a","to":"c","amount":"123456789012345678901234567890.00"}',
        "amount: must not exceed",
    ),
    (
        '{"id":"b","from":"a","to":"c","amount":123456789012345678901234567890}',
        "amount: must be a decimal string",
    ),
    ('{"id":"b","from":"a","to":"c","amount":NaN}', "amount: must be a decimal string"),
    ('{"id":"b","from":"a","to":"c","amount":10.5}', "amount: must be a decimal string"),
    ('{"id":"b","from":"a","to":"c","amount":"ten"}', "amount: 'ten' is not a decimal number"),
    ('{"id":"b","from":"a","to":"c","amount":true}', "amount: must be a decimal string"),
    ('{"id":"b","from":"a","to":"c"}', "amount: Field required"),
    ('{"id":"b","to":"c","amount":"1.00"}', "from: Field required"),
    ('{"id":"b","from":7,"to":"c","amount":"1.00"}', "from: Input should be a valid string"),
    ('{"id":"b","from":"a b","to":"c","amount":"1.00"}', "from: String should match pattern"),
    ('{"id":"b","from":"a","to":"a","amount":"1.00"}', "payment: payer and payee must differ"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTED)
async def test_invalid_payment_is_rejected_with_reason(producer, raw, reason):
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(raw.encode(), key="b")
    [outcome] = producer.to("payments.complete")
    event = PaymentEvent.decode(outcome.value)
    assert event.state is State.REJECTED and event.id == "b"
    assert event.reason.startswith(reason), event.reason
    assert not producer.to("payments.inflight")
    assert sum(row.inflight_count for row in pipeline_totals.values()) == 0


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "not JSON"),
        (b"{oops", "not JSON"),
        (b"\x00\x01\x02", "not JSON"),
        (b'"just a string"', "a payment must be a JSON object"),
        (b'{"from":"a","to":"c","amount":"1.00"}', "missing or invalid payment id"),
        (b'{"id":"","from":"a","to":"c","amount":"1.00"}', "missing or invalid payment id"),
        (b'{"id":42,"from":"a","to":"c","amount":"1.00"}', "missing or invalid payment id"),
    ],
)
async def test_undecodable_or_anonymous_input_is_dead_lettered(producer, raw, error):
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(raw, key=None, partition=5)
    [letter] = producer.to("dlq")
    record = orjson.loads(letter.value)
    assert record["error"].startswith(error)
    assert record["topic"] and record["partition"] == 5 and record["offset"] == 0
    assert not producer.to("payments.complete") and not producer.to("payments.inflight")
