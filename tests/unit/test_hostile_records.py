"""Records no KPay writer sends: keys that are not UTF-8, values of any size, a dead-letter topic
that cannot be written. Each is answered (processed, rejected or dead-lettered) and no stage
stops."""

from __future__ import annotations

import asyncio
import hashlib
from decimal import Decimal

import orjson
import pytest

from kpay_faust.ops import deadletter
from kpay_faust.ops.models import KEEP_VALUE
from kpay_faust.payments import agents
from kpay_faust.payments.tables import ledger
from tests.unit.test_stages import all_totals, open_account, payment

NOT_UTF8 = b"\xff\xfe\x80"


async def test_a_payment_whose_key_is_not_utf8_is_keyed_by_its_id_not_lost(producer):
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(payment("p-hostile"), key=NOT_UTF8)
    [rekeyed] = producer.to("payments.incoming")
    assert rekeyed.key == "p-hostile" and orjson.loads(rekeyed.value)["id"] == "p-hostile"
    assert not producer.to("dlq")


async def test_an_account_command_whose_key_is_not_utf8_is_keyed_by_its_account(producer):
    command = {"ref": "r1", "action": "open", "account": "neil", "amount": "5.00"}
    async with agents.accounts_ledger.test_context() as agent:
        await agent.put(orjson.dumps(command), key=NOT_UTF8)
    [rekeyed] = producer.to("accounts")
    assert rekeyed.key == "neil"


async def test_a_huge_binary_value_is_dead_lettered_within_the_topics_limit(producer):
    value = bytes(range(256)) * 3200  # 800 KB, not UTF-8, not JSON
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(value, key=NOT_UTF8 * 400, partition=3)
    [letter] = producer.to("dlq")
    assert len(letter.value) < 200_000  # far below the broker's 1 MB
    record = orjson.loads(letter.value)
    assert record["value_size"] == len(value) and record["truncated"] is True
    assert record["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert record["value_encoding"] == "base64" and record["key_encoding"] == "base64"
    assert len(record["value"]) <= KEEP_VALUE * 4 // 3 + 4
    assert record["partition"] == 3 and record["error"].startswith("not JSON")
    assert letter.key == hashlib.sha256(record["key"].encode()).hexdigest()


async def test_a_5000_digit_amount_is_rejected_with_a_reason(producer):
    raw = b'{"id":"big","from":"a","to":"c","amount":' + b"9" * 5000 + b"}"
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(raw, key="big")
    [outcome] = producer.to("payments.complete")
    assert orjson.loads(outcome.value)["reason"].startswith("amount: must be a decimal string")
    assert not producer.to("dlq")


async def test_a_stage_waits_and_retries_while_dead_letters_cannot_be_written(
    producer, monkeypatch
):
    monkeypatch.setattr(deadletter, "RETRY_FIRST", 0.01)
    failures = 3
    real_send = producer.send

    async def flaky(topic, *args, **kwargs):
        nonlocal failures
        if topic.endswith(".dlq") and failures:
            failures -= 1
            raise OSError("dead-letter topic unavailable")
        return await real_send(topic, *args, **kwargs)

    monkeypatch.setattr(producer, "send", flaky)
    open_account("neil", "100.00")
    stalled_seen = []
    async with agents.account_stage.test_context() as agent:
        waiting = asyncio.ensure_future(agent.put(b"garbage", key="neil"))
        while not waiting.done():
            stalled_seen.append(deadletter.stalled_since is not None)
            await asyncio.sleep(0.005)
        await waiting
    assert failures == 0 and any(stalled_seen)
    assert len(producer.to("dlq")) == 1 and deadletter.stalled_since is None


async def test_garbage_between_payments_takes_none_of_them_with_it(producer):
    open_account("neil", "100.00")
    async with agents.inflight_gateway.test_context() as agent:
        for n in range(6):
            await agent.put(payment(f"g{n}"), key=f"g{n}")
            await agent.put(NOT_UTF8 * n, key=NOT_UTF8)
    assert sorted(orjson.loads(s.value)["id"] for s in producer.to("payments.inflight")) == [
        f"g{n}" for n in range(6)
    ]
    assert len(producer.to("dlq")) == 6
    assert sum(t.amount for t in all_totals("inflight")) == Decimal("60.00")
    assert ledger.get("neil") is not None


@pytest.fixture(autouse=True)
def _no_stall_left():
    yield
    deadletter.stalled_since = None


async def test_a_negative_total_is_reported_as_a_violation(producer, monkeypatch):
    from kpay_faust.instruments import REGISTRY
    from kpay_faust.payments import invariants, totals

    rows = {
        "3": {
            "inflight": {"count": -16, "amount": "-3959.59"},
            "confirmed": {"count": 2, "amount": "1.00"},
        }
    }
    monkeypatch.setattr(invariants, "local_pipeline", lambda: {"partitions": rows})
    assert invariants.check() == ["partition 3: inflight -16 / -3959.59"]
    assert REGISTRY.get_sample_value("kpay_invariant_violations") == 1
    rows["3"]["inflight"] = {"count": 0, "amount": "0.00"}
    assert invariants.check() == [] and totals.violations(rows) == []
    assert REGISTRY.get_sample_value("kpay_invariant_violations") == 0
