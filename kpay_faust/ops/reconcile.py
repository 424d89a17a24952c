"""Live reconciliation: KPay proves its own books.

Each worker checks the partitions it owns (``local_books``), on a timer and when asked:

* every account's balance is the money that entered and left it
  (``Account.expected_balance``: funded + credited - debited), and none is negative;
* every totals row has ``inflight == admitted - released`` and no negative total;
* no payment has been in flight longer than ``KPAY_STUCK_SECONDS`` (listed by id).

``GET /reconcile`` sums every worker's books (``cluster_report``) and adds what only the whole
cluster can show: the balances add up to the money funded less what is *in transit* (debited
from a payer, not yet credited to the payee or refunded), which must be zero whenever nothing is
in flight. Workers are read one after the other, not at one instant, so under load a payment
can be counted as debited on one worker and not yet on another; the in-transit check is only
judged on two reads with no admission in between and nothing in flight, and reported as
``settling`` otherwise. A payment whose money never arrives stays in flight, and the stuck check
names it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from kpay_faust.app import settings
from kpay_faust.payments import inflight
from kpay_faust.payments.models import Account, PipelineTotals
from kpay_faust.payments.tables import STEP, ledger, payment_status, pipeline_totals
from kpay_faust.payments.totals import violations
from kpay_faust.web.cluster import active_partitions

#: Problems listed per check (their number is always given in full).
LISTED = 50
ZERO = Decimal("0.00")


def local_books(
    now: float | None = None, partitions: Iterable[int] | None = None
) -> dict[str, Any]:
    """This worker's figures and findings, for its actively owned partitions (or
    ``partitions`` of every table)."""
    now = time.time() if now is None else now
    chosen = None if partitions is None else sorted(partitions)
    books: dict[str, Any] = {
        "ledger_partitions": chosen or sorted(active_partitions(ledger)),
        "totals_partitions": chosen or sorted(active_partitions(pipeline_totals)),
    }
    books.update(_accounts(books["ledger_partitions"]))
    books.update(_totals(books["totals_partitions"]))
    inflight.index.follow(chosen or active_partitions(payment_status))
    inflight.index.catch_up()
    books["stuck"] = inflight.index.stuck(now - settings.stuck_seconds, now)
    books["not_indexed"] = sorted(inflight.index.rebuilding)
    return books


def _accounts(partitions: Iterable[int]) -> dict[str, Any]:
    count = untracked = 0
    sums = dict.fromkeys(("balance", "funded", "debited", "credited"), ZERO)
    wrong: list[dict[str, str]] = []
    negative: list[dict[str, str]] = []
    unreadable: list[dict[str, str]] = []
    # Step outcomes share the ledger under ``~``, after every account id.
    for raw_key, raw_value in ledger.scan(partitions, b"", STEP.encode()):
        try:
            row = ledger.decode_value(raw_value)
        except Exception as exc:  # bytes no stage wrote (a tampered changelog): a finding
            unreadable.append({"account": raw_key.decode(errors="replace"), "error": str(exc)})
            continue
        if not isinstance(row, Account):
            continue
        account, count = raw_key.decode(), count + 1
        if row.balance < 0:
            negative.append({"account": account, "balance": str(row.balance)})
        expected = row.expected_balance()
        if expected is None:
            untracked += 1
            continue
        sums["balance"] += row.balance
        sums["funded"] += row.funded or ZERO
        sums["debited"] += row.debited or ZERO
        sums["credited"] += row.credited or ZERO
        if row.balance != expected:
            wrong.append(
                {"account": account, "balance": str(row.balance), "expected": str(expected)}
            )
    return {
        "accounts": count,
        "untracked_accounts": untracked,
        **{name: str(value) for name, value in sums.items()},
        "balance_mismatches": wrong,
        "negative_balances": negative,
        "unreadable_rows": unreadable,
    }


def _totals(partitions: Iterable[int]) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    wrong: list[dict[str, Any]] = []
    sums = {kind: [0, ZERO] for kind in ("inflight", "admitted", "released")}
    for partition in partitions:
        row = pipeline_totals.get(str(partition)) or PipelineTotals.fresh()
        rows[str(partition)] = {
            kind: {"count": row.of(kind).count, "amount": str(row.of(kind).amount)}
            for kind in ("inflight", "confirmed", "rejected")
        }
        for kind, total in sums.items():
            total[0] += row.of(kind).count
            total[1] += row.of(kind).amount
        if not row.tracks_admissions():
            continue
        admitted, released, inflight = row.of("admitted"), row.of("released"), row.of("inflight")
        if (inflight.count, inflight.amount) != (
            admitted.count - released.count,
            admitted.amount - released.amount,
        ):
            wrong.append(
                {
                    "partition": partition,
                    "inflight": {"count": inflight.count, "amount": str(inflight.amount)},
                    "admitted": {"count": admitted.count, "amount": str(admitted.amount)},
                    "released": {"count": released.count, "amount": str(released.amount)},
                }
            )
    return {
        **{kind: {"count": c, "amount": str(a)} for kind, (c, a) in sums.items()},
        "totals_mismatches": wrong,
        "negative_totals": violations(rows),
    }


#: Each list of findings in a worker's books, and what a finding in it means.
FINDINGS = {
    "balance_mismatches": "balances that are not funded + credited - debited",
    "negative_balances": "negative balances",
    "unreadable_rows": "account rows that cannot be read",
    "totals_mismatches": "totals rows where inflight is not admitted - released",
    "negative_totals": "negative totals",
    "stuck": f"payments in flight for more than {settings.stuck_seconds:g} s",
}


def local_failures(books: dict[str, Any]) -> list[str]:
    """The checks this worker's own books fail, each with its cause."""
    failed = []
    for name, what in FINDINGS.items():
        found = books[name]
        if found:
            failed.append(f"{len(found)} {what}: {_examples(found)}")
    return failed


def _examples(found: list[Any]) -> str:
    shown = ", ".join(
        str(item.get("account") or item.get("id") or item.get("partition"))
        if isinstance(item, dict)
        else str(item)
        for item in found[:5]
    )
    return shown + (", ..." if len(found) > 5 else "")


def merge(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Every worker's books as one: figures summed, findings joined."""
    merged: dict[str, Any] = {"ledger_partitions": [], "totals_partitions": []}
    money = ("balance", "funded", "debited", "credited")
    for field in money:
        merged[field] = ZERO
    for kind in ("inflight", "admitted", "released"):
        merged[kind] = {"count": 0, "amount": ZERO}
    lists = (*FINDINGS, "not_indexed")
    for name in lists:
        merged[name] = []
    merged["accounts"] = merged["untracked_accounts"] = 0
    for books in answers:
        merged["ledger_partitions"] += books["ledger_partitions"]
        merged["totals_partitions"] += books["totals_partitions"]
        merged["accounts"] += books["accounts"]
        merged["untracked_accounts"] += books["untracked_accounts"]
        for field in money:
            merged[field] += Decimal(books[field])
        for kind in ("inflight", "admitted", "released"):
            merged[kind]["count"] += books[kind]["count"]
            merged[kind]["amount"] += Decimal(books[kind]["amount"])
        for name in lists:
            merged[name] += books[name]
    return merged


def cluster_report(first: dict[str, Any], second: dict[str, Any] | None) -> dict[str, Any]:
    """The answer of ``GET /reconcile`` from one merged read of every worker's books, and a
    second taken just after when the first found money in transit with nothing in flight."""
    books = second or first
    in_transit = books["debited"] - books["credited"]
    failures = local_failures(books)
    quiet = books["inflight"]["count"] == 0 and (
        second is None or first["admitted"]["count"] == second["admitted"]["count"]
    )
    if in_transit == 0 and books["balance"] == books["funded"]:
        conservation = "pass"
    elif quiet and (second is not None or in_transit == 0):
        conservation = "fail"
        failures.append(
            f"nothing is in flight, yet {in_transit} is in transit and the balances add up to "
            f"{books['balance']} of {books['funded']} funded"
        )
    else:
        conservation = "settling"  # payments between debit and credit while the books were read
    listed = {name: books[name][:LISTED] for name in FINDINGS}
    return {
        "passed": not failures,
        "failures": failures,
        "conservation": conservation,
        "money": {
            "balances": str(books["balance"]),
            "funded": str(books["funded"]),
            "in_transit": str(in_transit),
            "debited": str(books["debited"]),
            "credited": str(books["credited"]),
        },
        "payments": {
            kind: {"count": books[kind]["count"], "amount": str(books[kind]["amount"])}
            for kind in ("inflight", "admitted", "released")
        },
        "accounts": books["accounts"],
        "untracked_accounts": books["untracked_accounts"],
        "stuck_after_seconds": settings.stuck_seconds,
        # Partitions whose payments in flight are still being read back after a rebalance:
        # their stuck payments are not listed yet.
        "stuck_not_yet_checked_partitions": sorted(books["not_indexed"]),
        **listed,
    }


def needs_second_read(merged: dict[str, Any]) -> bool:
    """Money seems in transit with nothing in flight: read again to tell a loss from a race."""
    in_transit = merged["debited"] - merged["credited"]
    return merged["inflight"]["count"] == 0 and in_transit != 0
