"""All stages chained in one process: every emitted event is fed to the stage that reads it."""

from __future__ import annotations

import random
from collections import Counter
from contextlib import AsyncExitStack
from decimal import Decimal

import orjson

from kpay_faust import topics
from kpay_faust.payments import agents
from kpay_faust.payments.models import PaymentEvent, State
from kpay_faust.payments.tables import ledger, pipeline_totals
from kpay_faust.web.cluster import partition_of

STAGES = {
    topics.payments_incoming: agents.inflight_gateway,
    topics.payments_inflight: agents.account_stage,
    topics.payments_complete: agents.confirmed_stage,
    topics.accounts: agents.accounts_ledger,
}


async def run(producer, first: list[tuple[object, str, bytes]]) -> None:
    """Deliver ``first`` and then everything the stages emit, in order, until quiet."""
    async with AsyncExitStack() as stack:
        contexts = {
            topic.get_topic_name(): (topic, await stack.enter_async_context(agent.test_context()))
            for topic, agent in STAGES.items()
        }
        queue = [(t.get_topic_name(), k, v, None) for t, k, v in first]
        delivered = 0
        while queue or delivered < len(producer.sent):
            if delivered < len(producer.sent):
                sent = producer.sent[delivered]
                delivered += 1
                queue.append((sent.topic, sent.key, sent.value, sent.headers))
            name, key, value, headers = queue.pop(0)
            if name in contexts:
                topic, ctx = contexts[name]
                partition = partition_of(topic, key) if key else 0
                await ctx.put(value, key=key, partition=partition, headers=headers)


def totals(name: str) -> tuple[int, Decimal]:
    rows = [row.of(name) for row in pipeline_totals.values()]
    return sum(r.count for r in rows), sum((r.amount for r in rows), Decimal(0))


def fund(account: str, amount: str):
    doc = {"ref": f"open-{account}", "action": "open", "account": account, "amount": amount}
    return (topics.accounts, account, orjson.dumps(doc))


def pay(pid: str, payer: str, payee: str, amount: str):
    doc = {"id": pid, "from": payer, "to": payee, "amount": amount}
    return (topics.payments_incoming, pid, orjson.dumps(doc))


async def test_one_payment_moves_money_and_settles(producer):
    await run(producer, [fund("neil", "100.00"), fund("john", "0.00")])
    await run(producer, [pay("p1", "neil", "john", "10.00")])
    assert ledger["neil"].balance == Decimal("90.00")
    assert ledger["john"].balance == Decimal("10.00")
    assert totals("inflight") == (0, 0)
    assert totals("confirmed") == (1, Decimal("10.00"))


async def test_ten_payers_to_one_payee(producer):
    await run(producer, [fund(f"frank-{i}", "100.00") for i in range(10)] + [fund("neil", "0")])
    await run(producer, [pay(f"f{i}", f"frank-{i}", "neil", "100.00") for i in range(10)])
    assert all(ledger[f"frank-{i}"].balance == 0 for i in range(10))
    assert ledger["neil"].balance == Decimal("1000.00")
    assert totals("confirmed") == (10, Decimal("1000.00"))


async def test_random_payments_conserve_money_and_end_exactly_once(producer):
    rng = random.Random(7)
    accounts = [f"acc-{i}" for i in range(20)]
    await run(producer, [fund(a, "50.00") for a in accounts])
    payments = []
    for i in range(400):
        payer, payee = rng.sample([*accounts, "nobody"], 2)
        payments.append(pay(f"r{i}", payer, payee, f"{rng.randint(1, 4000) / 100:.2f}"))
    payments += payments[:25]  # client retries
    await run(producer, payments)

    assert sum(ledger[a].balance for a in accounts) == Decimal("1000.00")
    assert totals("inflight") == (0, 0)
    assert totals("confirmed")[0] + totals("rejected")[0] == 400
    outcomes = Counter(PaymentEvent.decode(s.value).id for s in producer.to("payments.confirmed"))
    assert len(outcomes) == 400 and set(outcomes.values()) == {1}
    rejected = [PaymentEvent.decode(s.value) for s in producer.to("payments.confirmed")]
    reasons = {e.reason for e in rejected if e.state is State.REJECTED}
    assert {"insufficient funds", "unknown payee account", "unknown payer account"} <= reasons
