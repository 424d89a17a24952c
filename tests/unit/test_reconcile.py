"""Reconciliation of the books (``kpay_faust.ops.reconcile``) on the stages' own tables: it
passes after real payments and names the cause of each kind of fault."""

from __future__ import annotations

import time
from decimal import Decimal

from kpay_faust.app import app, settings
from kpay_faust.ops import agents as ops_agents
from kpay_faust.ops.reconcile import cluster_report, local_books, local_failures, merge
from kpay_faust.payments import agents, inflight, views
from kpay_faust.payments.api import AccountsPage
from kpay_faust.payments.models import Account, PaymentStatus, State
from kpay_faust.payments.tables import ledger, payment_status, pipeline_totals
from tests.unit.test_pipeline_in_process import fund, pay, run

EVERY = range(settings.partitions)


async def paid(producer) -> None:
    await run(producer, [fund("neil", "100.00"), fund("john", "5.00"), fund("ann", "0")])
    await run(
        producer,
        [
            pay("p1", "neil", "john", "10.00"),
            pay("p2", "john", "ann", "5.00"),
            pay("p3", "ann", "neil", "99.00"),  # insufficient funds: rejected, nothing moved
            pay("p4", "neil", "nobody", "1.00"),  # unknown payee: debited, then refunded
        ],
    )


def report(now: float | None = None) -> dict:
    return cluster_report(merge([local_books(now, EVERY)]), None)


async def test_the_books_of_real_payments_reconcile(producer):
    await paid(producer)
    books = local_books(partitions=EVERY)
    assert local_failures(books) == []
    assert books["accounts"] == 3 and books["untracked_accounts"] == 0
    assert Decimal(books["balance"]) == Decimal(books["funded"]) == Decimal("105.00")
    assert Decimal(books["debited"]) == Decimal("16.00")  # p1, p2 and p4's debit
    assert Decimal(books["credited"]) == Decimal("16.00")  # p1, p2 and p4's refund
    assert books["admitted"]["count"] == books["released"]["count"] == 4
    answer = report()
    assert answer["passed"] and answer["conservation"] == "pass", answer
    assert answer["money"]["in_transit"] == "0.00"


async def test_a_balance_changed_behind_the_stages_is_named(producer):
    await paid(producer)
    row = ledger.data["john"]
    ledger.data["john"] = row.derive(balance=row.balance + 1000)  # funded/debited/credited kept
    ledger.forget_cached()
    answer = report()
    assert not answer["passed"]
    assert answer["balance_mismatches"] == [
        {"account": "john", "balance": "1010.00", "expected": "10.00"}
    ]
    assert any("john" in failure for failure in answer["failures"])


async def test_money_in_transit_with_nothing_in_flight_fails(producer):
    await paid(producer)
    row = ledger.data["ann"]  # as if a credit to ann had been lost: debited, never credited
    ledger.data["ann"] = row.derive(balance=row.balance - 5, credited=row.credited - 5)
    first = merge([local_books(partitions=EVERY)])
    answer = cluster_report(first, merge([local_books(partitions=EVERY)]))
    assert answer["conservation"] == "fail" and not answer["passed"]
    assert answer["money"]["in_transit"] == "5.00"


async def test_money_in_transit_while_payments_are_in_flight_is_settling(producer):
    await paid(producer)
    key = next(iter(pipeline_totals.data))
    row = pipeline_totals.data[key]
    pipeline_totals.data[key] = row.add("inflight", Decimal("5.00")).add(
        "admitted", Decimal("5.00")
    )
    row = ledger.data["ann"]  # a payment to ann debited, its credit not applied yet
    ledger.data["ann"] = row.derive(balance=row.balance - 5, credited=row.credited - 5)
    answer = report()
    assert answer["conservation"] == "settling" and answer["passed"], answer


async def test_a_totals_row_that_lost_a_release_is_named(producer):
    await paid(producer)
    key = next(iter(pipeline_totals.data))
    pipeline_totals.data[key] = pipeline_totals.data[key].add("released", Decimal("1.00"))
    answer = report()
    assert not answer["passed"]
    assert [m["partition"] for m in answer["totals_mismatches"]] == [int(key)]


async def test_a_payment_in_flight_too_long_is_listed_as_stuck(producer):
    await paid(producer)
    async with agents.inflight_gateway.test_context() as gateway:  # admitted, never finished
        await gateway.put(pay("p9", "neil", "john", "1.00")[2], key="p9")
    assert report()["stuck"] == []  # in flight, not for long
    later = time.time() + settings.stuck_seconds + 5
    answer = report(now=later)
    assert [s["id"] for s in answer["stuck"]] == ["p9"]
    assert not answer["passed"] and any("p9" in f for f in answer["failures"])


async def test_after_a_rebalance_payments_in_flight_are_read_back_from_their_statuses(
    producer, monkeypatch
):
    await paid(producer)
    old = time.time() - settings.stuck_seconds - 5
    payment_status.data["p9"] = PaymentStatus(  # admitted before this worker took it over
        id="p9", state=State.DEBIT, amount=Decimal("1.00"), started_at=old, inflight=True
    )
    payment_status.data["p10"] = PaymentStatus(
        id="p10", state=State.DEBIT, amount=Decimal("1.00"), started_at=time.time(), inflight=True
    )
    assert report()["stuck"] == []  # this worker's index does not know them
    monkeypatch.setattr(app, "consumer_generation_id", app.consumer_generation_id + 1)
    monkeypatch.setattr(inflight, "REBUILD_ROWS", 2)  # the rebuild takes several calls
    calls = [report() for _ in range(4)]
    assert calls[0]["stuck_not_yet_checked_partitions"] != []
    assert calls[-1]["stuck_not_yet_checked_partitions"] == []
    assert [s["id"] for s in calls[-1]["stuck"]] == ["p9"]


async def test_rows_from_before_the_flows_were_kept_are_counted_untracked(producer):
    await paid(producer)
    ledger.data["old"] = Account(balance=Decimal("7.00"), opened_at=0.0)
    books = local_books(partitions=EVERY)
    assert books["untracked_accounts"] == 1 and local_failures(books) == []


async def test_an_account_row_that_cannot_be_read_is_named_not_fatal(producer, monkeypatch):
    """Bytes in the ledger that no stage wrote (a tampered changelog restored into the store)
    are a finding of reconciliation; decoding them used to raise out of the worker's timer,
    which stopped the worker."""
    await paid(producer)
    ledger.data["mallory"] = b"\x00 not an account row"
    try:
        books = local_books(partitions=EVERY)
        assert [row["account"] for row in books["unreadable_rows"]] == ["mallory"]
        assert books["accounts"] == 3  # the readable ones are still checked
        assert any("cannot be read: mallory" in failure for failure in local_failures(books))
        answer = report()
        assert not answer["passed"] and answer["unreadable_rows"][0]["account"] == "mallory"
        monkeypatch.setattr(views, "active_partitions", lambda table: set(EVERY))
        page = views.local_accounts(AccountsPage())  # GET /accounts names it, lists the rest
        assert page["unreadable"] == ["mallory"] and len(page["accounts"]) == 3
    finally:
        del ledger.data["mallory"]


async def test_a_reconciliation_that_cannot_run_is_a_failure_and_the_timer_goes_on(
    producer, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("store closed")

    monkeypatch.setattr(ops_agents, "local_books", broken)
    ops_agents.check_own_books()  # what the timer runs: had it raised, the worker would stop
    assert ops_agents.latest["failures"] == [
        "reconciliation could not run: RuntimeError('store closed')"
    ]
