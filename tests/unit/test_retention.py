"""The retention horizon: statuses of finished payments and step outcomes are deleted once
``KPAY_RETENTION_SECONDS`` have passed; everything else is kept."""

from __future__ import annotations

import time
from decimal import Decimal

from faust.serializers import codecs
from hypothesis import given
from hypothesis import strategies as st

from kpay_faust.app import settings
from kpay_faust.payments import agents, retention
from kpay_faust.payments.models import PaymentStatus, State
from kpay_faust.payments.tables import (
    STEP,
    StepOutcome,
    ledger,
    payment_status,
    step_outcome_of,
)
from tests.unit.test_stages import event, open_account

HORIZON = settings.retention_seconds


def same_partition(table, key: str, prefix: str, count: int) -> list[str]:
    """``count`` keys starting with ``prefix`` in ``key``'s partition of ``table``."""
    partition, found, n = table.partition_of(key), [], 0
    while len(found) < count:
        candidate = f"{prefix}{n}"
        if table.partition_of(candidate) == partition:
            found.append(candidate)
        n += 1
    return found


def test_a_step_outcome_keeps_the_time_it_was_recorded():
    _, raw = ledger.encode("~p1:debit", StepOutcome("rejected: insufficient funds", 1234.5))
    assert raw == b"~rejected: insufficient funds\t1234.500"
    outcome = codecs.loads("kpay_ledger", raw)
    assert outcome == "rejected: insufficient funds" and outcome.at == 1234.5
    untimed = codecs.loads("kpay_ledger", b"~ok")  # recorded before outcomes carried a time
    assert untimed == "ok" and untimed.at is None
    assert not retention.step_expired(b"~ok", time.time())
    assert retention.step_expired(raw, 1234.5 + HORIZON + 1)
    assert not retention.step_expired(raw, 1234.5 + HORIZON - 1)


@given(raw=st.binary(max_size=40), at=st.floats(allow_nan=False), now=st.floats(0, 4e9))
def test_a_step_is_judged_on_its_bytes_as_on_its_decoded_outcome(raw, at, now):
    """The sweep reads only the time off a stored step; decoding it must agree."""
    for stored in (STEP.encode() + raw, STEP.encode() + raw + f"\t{at}".encode(), raw):
        try:
            decoded = step_outcome_of(stored) if stored.startswith(STEP.encode()) else None
        except UnicodeDecodeError:
            continue  # no stage writes such bytes; the sweep keeps them
        assert retention.step_expired(stored, now) == retention.step_expired(decoded, now)


def test_only_statuses_finished_before_the_horizon_have_expired():
    now = 10 * HORIZON
    old = PaymentStatus(id="a", state=State.CONFIRMED, finished_at=now - HORIZON - 1)
    recent = old.derive(finished_at=now - HORIZON + 1)
    unfinished = PaymentStatus(id="b", state=State.DEBIT, started_at=0.0, inflight=True)
    assert retention.status_expired(old, now)
    assert retention.status_expired(payment_status.encode("a", old)[1], now)  # RocksDB bytes
    assert not retention.status_expired(recent, now)
    assert not retention.status_expired(payment_status.encode("a", recent)[1], now)
    assert not retention.status_expired(unfinished, now)
    assert not retention.status_expired(b"not json", now)


async def test_the_confirmed_stage_deletes_statuses_of_its_partition_past_the_horizon(producer):
    retention.statuses.forget()
    now = time.time()
    old, recent, unfinished = same_partition(payment_status, "p-new", "s-", 3)
    other = next(k for k in (f"x-{n}" for n in range(100)) if payment_status.partition_of(k)
                 != payment_status.partition_of("p-new"))  # fmt: skip
    finished_long_ago = PaymentStatus(id=old, state=State.CONFIRMED, finished_at=now - HORIZON - 60)
    payment_status.data[old] = finished_long_ago
    payment_status.data[other] = finished_long_ago.derive(id=other)
    payment_status.data[recent] = finished_long_ago.derive(id=recent, finished_at=now - 60)
    payment_status.data[unfinished] = PaymentStatus(
        id=unfinished, state=State.DEBIT, started_at=now - 2 * HORIZON, inflight=True
    )
    partition = payment_status.partition_of("p-new")
    async with agents.confirmed_stage.test_context() as agent:
        await agent.put(event("p-new", State.COMPLETE), key="p-new", partition=partition)
    assert old not in payment_status.data
    assert {recent, unfinished, other, "p-new"} <= set(payment_status.data)  # other: not ours
    assert payment_status.data["p-new"].state == State.CONFIRMED


async def test_the_account_stage_deletes_step_outcomes_past_the_horizon(producer):
    retention.steps.forget()
    open_account("neil", "100.00")
    now = time.time()
    old, recent, untimed = same_partition(ledger, "neil", STEP + "q", 3)
    ledger.data[old] = StepOutcome("ok", now - HORIZON - 60)
    ledger.data[recent] = StepOutcome("ok", now - 60)
    ledger.data[untimed] = StepOutcome("ok")
    async with agents.account_stage.test_context() as agent:
        await agent.put(event("p1", State.DEBIT), key="neil", partition=ledger.partition_of("neil"))
    assert old not in ledger.data
    assert {recent, untimed, "neil", STEP + "p1:debit"} <= set(ledger.data)
    assert ledger.data["neil"].balance == Decimal("90.00")
    assert ledger.data[STEP + "p1:debit"].at >= now


async def test_a_payment_id_reused_past_the_horizon_moves_money_again(producer):
    """The account row still names the step ``p1:debit`` as its last, from before the horizon;
    its record is gone, so the step is not taken as applied (it would be within the horizon:
    a lost record after a crash)."""
    from kpay_faust.payments.models import Account

    long_ago = time.time() - HORIZON - 60
    ledger.data["neil"] = Account(
        balance=Decimal("100.00"), opened_at=0.0, updated_at=long_ago, last_step="p1:debit"
    )
    ledger.forget_cached()
    async with agents.account_stage.test_context() as agent:
        await agent.put(event("p1", State.DEBIT), key="neil")
    assert ledger.data["neil"].balance == Decimal("90.00")


async def test_a_step_recorded_before_the_horizon_and_not_yet_swept_is_applied_anew(
    producer, monkeypatch
):
    """A sweep may not have reached an expired record yet (a partition with no traffic is not
    swept at all): a new payment reusing the id must still debit, not pass the old outcome on
    (that would credit the payee with money nobody was debited)."""
    open_account("neil", "100.00")
    ledger.data[STEP + "p1:debit"] = StepOutcome("ok", time.time() - HORIZON - 60)
    ledger.forget_cached()
    monkeypatch.setattr(retention.steps, "sweep", lambda *args, **kwargs: 0)  # none reaches it
    async with agents.account_stage.test_context() as agent:
        await agent.put(event("p1", State.DEBIT), key="neil")
    assert ledger.data["neil"].balance == Decimal("90.00")
    assert ledger.data[STEP + "p1:debit"].at > time.time() - 60


async def test_a_payment_id_whose_status_expired_is_admitted_anew_before_any_sweep(producer):
    long_ago = time.time() - HORIZON - 60
    payment_status.data["p9"] = PaymentStatus(
        id="p9", state=State.CONFIRMED, amount=Decimal("1.00"), finished_at=long_ago
    )
    assert retention.unexpired_status(payment_status.data["p9"], time.time()) is None
    submission = b'{"id":"p9","from":"neil","to":"john","amount":"5.00"}'
    async with agents.inflight_gateway.test_context() as agent:
        await agent.put(submission, key="p9")
    admitted = payment_status.data["p9"]
    assert admitted.state == State.DEBIT and admitted.amount == Decimal("5.00")
