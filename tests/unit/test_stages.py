"""Each stage on its own, through ``agent.test_context()``."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import orjson
from faust.serializers import codecs

from kpay_faust.payments import agents
from kpay_faust.payments.models import Account, PaymentEvent, State, Totals
from kpay_faust.payments.tables import ledger, payment_status, pipeline_totals, step_outcome


def totals(partition: int, kind: str):
    row = pipeline_totals.get(str(partition))
    return None if row is None else row.of(kind)


def all_totals(kind: str):
    return [row.of(kind) for row in pipeline_totals.values()]


def payment(pid: str = "p1", payer: str = "neil", payee: str = "john", amount="10.00", **kw):
    return orjson.dumps({"id": pid, "from": payer, "to": payee, "amount": amount, **kw})


def event(pid: str, state: State, amount: str = "10.00", **kw) -> bytes:
    return PaymentEvent(
        id=pid, payer="neil", payee="john", amount=Decimal(amount), state=state, **kw
    ).encode()


def open_account(name: str, balance: str) -> None:
    ledger.data[name] = Account(balance=Decimal(balance), opened_at=0.0)  # seed the store
    ledger.forget_cached()


def lose_totals_write(partition: int, **before) -> None:
    """Put a partition's totals row back to ``before`` in the store, as a worker restarted after
    its last totals write was lost would find it."""
    key = str(partition)
    pipeline_totals.data[key] = pipeline_totals[key].derive(**before)
    pipeline_totals.forget_cached()


async def _loop_turns(count: int) -> None:
    """Let the event loop run ``count`` times: time enough for work that waits for nothing."""
    for _ in range(count):
        await asyncio.sleep(0)


def decoded(sent) -> PaymentEvent:
    return PaymentEvent.decode(sent.value)


# ---- inflight gateway ------------------------------------------------------------------


async def test_gateway_admits_counts_inflight_and_emits_debit_keyed_by_payer(producer):
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(payment(), key="p1", partition=3)
    [debit] = producer.to("payments.inflight")
    assert debit.key == "neil"
    out = decoded(debit)
    assert out.state is State.DEBIT and out.amount == Decimal("10.00")
    assert out.started_at is not None
    assert totals(3, "inflight") == Totals(count=1, amount=Decimal("10.00"))
    status = payment_status["p1"]
    assert status.state == State.DEBIT and status.inflight


async def test_gateway_counts_a_redelivered_admission_once(producer):
    """A crash can leave the payment's status written but not the totals row, or both: the
    redelivered message is emitted again and counted in flight exactly once either way."""
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(payment(), key="p1", partition=3)
        agent.sent_offset = 0  # the same message again, both writes had landed
        await agent.put(payment(), key="p1", partition=3)
        assert totals(3, "inflight") == Totals(count=1, amount=Decimal("10.00"))
        # as if only the status write had reached the changelog
        lose_totals_write(3, inflight_count=0, inflight_amount=Decimal("0.00"), incoming_offset=-1)
        agent.sent_offset = 0
        await agent.put(payment(), key="p1", partition=3)
    assert totals(3, "inflight") == Totals(count=1, amount=Decimal("10.00"))
    assert [s.key for s in producer.to("payments.inflight")] == ["neil"] * 3


async def test_gateway_batches_what_has_arrived_without_waiting_for_more(producer):
    """A lone payment is a batch of one, handled at once (no timer: a few turns of the event
    loop, not milliseconds); payments that arrived together are one batch."""
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(payment("p0"), key="p0", wait=False)
        await _loop_turns(100)
        assert list(agent.results.values()) == [1]  # what each batch reported
        for n in range(1, 4):
            await agent.put(payment(f"p{n}"), key=f"p{n}", wait=False)
        await _loop_turns(100)
        assert list(agent.results.values()) == [1, 3]
    assert [s.key for s in producer.to("payments.inflight")] == ["neil"] * 4


async def test_gateway_moves_keyless_payment_to_its_id_partition(producer):
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(payment("p9"), key=None)
    [forwarded] = producer.to("payments.incoming")
    assert forwarded.key == "p9" and forwarded.value == payment("p9")
    assert payment_status.get("p9") is None and not producer.to("payments.inflight")


async def test_gateway_rejects_invalid_payment_with_reason(producer):
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(payment("bad", amount="10.001"), key="bad")
        await agent.put(payment("self", payer="neil", payee="neil"), key="self")
    reasons = {decoded(s).id: decoded(s).reason for s in producer.to("payments.complete")}
    assert reasons == {
        "bad": "amount: must have at most 2 decimal places",
        "self": "payment: payer and payee must differ",
    }
    assert payment_status["bad"].state == State.REJECTED
    assert not producer.to("payments.inflight")
    assert sum(t.count for t in all_totals("inflight")) == 0


async def test_gateway_dead_letters_undecodable_bytes_with_origin(producer):
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(b"\xff{not json", key="x", partition=2)
        await agent.put(b'["a", "list"]', key="y", partition=2)
    letters = [orjson.loads(s.value) for s in producer.to("dlq")]
    assert [letter["error"][:8] for letter in letters] == ["not JSON", "a paymen"]
    first = letters[0]
    assert first["stage"] == "inflight_gateway"
    assert first["partition"] == 2 and first["offset"] == 0
    assert first["value_encoding"] == "base64"


async def test_gateway_never_applies_a_payment_id_twice(producer):
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(payment(), key="p1")
        await agent.put(payment(), key="p1")  # a client retry: ignored
        await agent.put(payment(amount="99.00"), key="p1")  # id reused: dead-lettered
    assert len(producer.to("payments.inflight")) == 1
    assert sum(t.amount for t in all_totals("inflight")) == Decimal("10.00")
    [letter] = producer.to("dlq")
    assert "already used by a different payment" in orjson.loads(letter.value)["error"]


# ---- account stage ---------------------------------------------------------------------


async def test_debit_moves_money_once_and_forwards_credit_keyed_by_payee(producer):
    open_account("neil", "100.00")
    async with agents.account_stage.test_context() as agent:
        await agent.put(event("p1", State.DEBIT), key="neil")
        await agent.put(event("p1", State.DEBIT), key="neil")  # redelivered
    assert ledger["neil"].balance == Decimal("90.00")
    assert ledger["neil"].last_payment == "p1"
    credits = producer.to("payments.inflight")
    assert [(c.key, decoded(c).state) for c in credits] == [("john", State.CREDIT)] * 2


async def test_a_step_whose_outcome_record_was_lost_is_not_applied_again(producer):
    # A crash kept the debit's balance write but not the outcome record written after it:
    # the account row names the step, so the redelivered debit moves no money.
    ledger.data["neil"] = Account(balance=Decimal("90.00"), opened_at=0.0, last_step="p1:debit")
    ledger.forget_cached()
    async with agents.account_stage.test_context() as agent:
        await agent.put(event("p1", State.DEBIT), key="neil")
        await agent.put(event("p2", State.DEBIT), key="neil")  # not applied yet: applied now
    assert ledger["neil"].balance == Decimal("80.00")
    assert ledger["neil"].last_step == "p2:debit"
    assert step_outcome("p1:debit") == "ok" and step_outcome("p2:debit") == "ok"
    credits = [decoded(c).id for c in producer.to("payments.inflight")]
    assert credits == ["p1", "p2"]


def test_ledger_values_round_trip_through_the_changelog_encoding():
    row = Account(balance=Decimal("12.30"), opened_at=1.0, last_step="p1:debit")
    raw_row, raw_step = ledger.encode("neil", row)[1], ledger.encode("~p1:debit", "ok")[1]
    assert raw_step == b"~ok" and raw_row.startswith(b"{")
    assert ledger.changelog_topic.value_serializer == "kpay_ledger"  # recovery decodes alike
    assert codecs.loads("kpay_ledger", raw_step) == "ok"
    assert codecs.loads("kpay_ledger", raw_row) == row


async def test_debit_rejects_insufficient_funds_and_unknown_payer(producer):
    open_account("neil", "5.00")
    async with agents.account_stage.test_context() as agent:
        await agent.put(event("p1", State.DEBIT), key="neil")
        await agent.put(
            PaymentEvent(
                id="p2", payer="ghost", payee="john", amount=Decimal(1), state=State.DEBIT
            ).encode(),
            key="ghost",
        )
    assert ledger["neil"].balance == Decimal("5.00")
    rejected = {decoded(s).id: decoded(s).reason for s in producer.to("payments.complete")}
    assert rejected == {"p1": "insufficient funds", "p2": "unknown payer account"}


async def test_credit_to_unknown_payee_refunds_the_payer(producer):
    open_account("neil", "90.00")  # already debited by 10
    async with agents.account_stage.test_context() as agent:
        await agent.put(event("p1", State.CREDIT), key="john")
        [refund] = producer.to("payments.inflight")
        assert refund.key == "neil" and decoded(refund).state is State.REFUND
        await agent.put(refund.value, key="neil")
    assert ledger["neil"].balance == Decimal("100.00")
    [rejected] = producer.to("payments.complete")
    assert decoded(rejected).state is State.REJECTED
    assert decoded(rejected).reason == "unknown payee account"
    assert step_outcome("p1:refund") == "ok"


async def test_credit_completes_keyed_by_payment_id(producer):
    open_account("john", "0.00")
    async with agents.account_stage.test_context() as agent:
        await agent.put(event("p1", State.CREDIT), key="john")
    assert ledger["john"].balance == Decimal("10.00")
    [complete] = producer.to("payments.complete")
    assert complete.key == "p1" and decoded(complete).state is State.COMPLETE


async def test_account_stage_dead_letters_garbage_and_keeps_running(producer):
    open_account("neil", "100.00")
    async with agents.account_stage.test_context() as agent:
        await agent.put(b"{}", key="neil")
        await agent.put(event("p1", State.DEBIT), key="neil")
    assert len(producer.to("dlq")) == 1
    assert ledger["neil"].balance == Decimal("90.00")


# ---- confirmed stage --------------------------------------------------------------------


async def test_confirmed_stage_counts_each_outcome_once(producer):
    async with agents.confirmed_stage.test_context() as agent:
        await agent.put(event("p1", State.COMPLETE), key="p1", partition=1)
        await agent.put(event("p1", State.COMPLETE), key="p1", partition=1)
        await agent.put(
            event("p2", State.REJECTED, reason="insufficient funds"), key="p2", partition=1
        )
    assert totals(1, "confirmed") == Totals(count=1, amount=Decimal("10.00"))
    assert totals(1, "rejected") == Totals(count=1, amount=Decimal("10.00"))
    outcomes = [(s.key, decoded(s).state) for s in producer.to("payments.confirmed")]
    assert outcomes == [("p1", State.CONFIRMED), ("p2", State.REJECTED)]
    assert payment_status["p2"].reason == "insufficient funds"


async def test_confirmed_stage_releases_inflight_value_once(producer):
    async with agents.inflight_gateway.test_context() as gateway:
        await gateway.put(payment(), key="p1", partition=4)
    assert totals(4, "inflight") == Totals(count=1, amount=Decimal("10.00"))
    async with agents.confirmed_stage.test_context() as confirmed:
        complete = event("p1", State.COMPLETE)
        await confirmed.put(complete, key="p1", partition=4)
        await confirmed.put(complete, key="p1", partition=4)
    assert totals(4, "inflight") == Totals(count=0, amount=Decimal("0.00"))
    assert totals(4, "confirmed") == Totals(count=1, amount=Decimal("10.00"))
    assert not payment_status["p1"].inflight


async def test_a_redelivered_outcome_is_published_again_and_counted_once(producer):
    """After a crash the message that finished a payment comes again: its outcome may not have
    reached the topic, so it is published again; the totals count it once, whether or not the
    totals row had been written before the crash."""
    async with agents.confirmed_stage.test_context() as confirmed:
        await confirmed.put(event("p1", State.COMPLETE), key="p1", partition=2)
        confirmed.sent_offset = 0  # the same message again
        await confirmed.put(event("p1", State.COMPLETE), key="p1", partition=2)
        assert totals(2, "confirmed") == Totals(count=1, amount=Decimal("10.00"))
        # as if the totals write had not reached the changelog
        lose_totals_write(
            2, confirmed_count=0, confirmed_amount=Decimal("0.00"), complete_offset=-1
        )
        confirmed.sent_offset = 0
        await confirmed.put(event("p1", State.COMPLETE), key="p1", partition=2)
        await confirmed.put(event("p1", State.COMPLETE), key="p1", partition=2)  # a duplicate
    assert totals(2, "confirmed") == Totals(count=1, amount=Decimal("10.00"))
    outcomes = [decoded(s) for s in producer.to("payments.confirmed")]
    assert [o.state for o in outcomes] == [State.CONFIRMED] * 3
    # every publication names the same finishing message, so the metrics count it once
    assert {(o.completion.partition, o.completion.offset) for o in outcomes} == {(2, 0)}
    assert len({o.finished_at for o in outcomes}) == 1


# ---- accounts ledger -------------------------------------------------------------------


def command(action: str, account: str, amount: str, ref: str) -> bytes:
    return orjson.dumps({"ref": ref, "action": action, "account": account, "amount": amount})


async def test_ledger_opens_and_funds_accounts_once(producer):
    async with agents.accounts_ledger.test_context() as agent:
        await agent.put(command("open", "neil", "100.00", "r1"), key="neil")
        await agent.put(command("deposit", "neil", "5.50", "r2"), key="neil")
        await agent.put(command("deposit", "neil", "5.50", "r2"), key="neil")  # redelivered
        await agent.put(command("open", "neil", "1.00", "r3"), key="neil")  # exists
        await agent.put(command("deposit", "ghost", "1.00", "r4"), key="ghost")
    assert ledger["neil"].balance == Decimal("105.50")
    assert ledger.get("ghost") is None
    errors = [orjson.loads(s.value)["error"] for s in producer.to("dlq")]
    assert errors == ["account 'neil' already exists", "account 'ghost' does not exist"]


# ---- events of partitions lost in a rebalance ----------------------------------------------


async def test_an_event_left_for_its_new_owner_is_not_acknowledged(producer, monkeypatch):
    from kpay_faust.control.state import control

    gate = control.admission_gate

    async def rebalanced_for_p2(event, wait=True):
        return False if b'"p2"' in event.message.value else await gate(event, wait)

    monkeypatch.setattr(control, "admission_gate", rebalanced_for_p2)
    async with agents.inflight_gateway.test_context() as agent:
        admitted = await agent.put(payment("p1"), key="p1")
        left = await agent.put(payment("p2"), key="p2")
    assert admitted.message.acked and not left.message.acked
    assert [decoded(s).id for s in producer.to("payments.inflight")] == ["p1"]


async def test_events_of_a_partition_this_worker_lost_are_skipped(producer, monkeypatch):
    from kpay_faust.engine.consumer import KPayConsumer

    monkeypatch.setattr(KPayConsumer, "owns", lambda self, tp: tp.partition != 3)
    open_account("neil", "100.00")
    async with agents.account_stage.test_context() as agent:
        await agent.put(event("lost", State.DEBIT), key="neil", partition=3)
        await agent.put(event("kept", State.DEBIT), key="neil", partition=2)
    async with agents.confirmed_stage.test_context() as agent:
        await agent.put(event("lost", State.COMPLETE), key="lost", partition=3)
    assert [decoded(s).id for s in producer.to("payments.inflight")] == ["kept"]
    assert not producer.to("payments.confirmed") and payment_status.get("lost") is None
    assert ledger["neil"].balance == Decimal("90.00")
