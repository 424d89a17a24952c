"""Totals over all payments: one ``pipeline-totals`` row per partition, written once per batch
by the gateway and the confirmed stage, and summed over every worker's partitions when read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from faust import EventT

from kpay_faust.engine.stages import make_current
from kpay_faust.payments.models import TOTAL_KINDS, PipelineTotals, Totals
from kpay_faust.payments.tables import pipeline_totals
from kpay_faust.web.cluster import active_partitions

ZERO = Decimal("0.00")
Moves = list[tuple[str, Any, int]]  # (total kind, amount, sign) applied to a totals row


def count_batch(source: str) -> Callable[[list[tuple[EventT, Moves | None]]], None]:
    """Apply a batch's moves to each partition's totals row in one write per partition.

    The row keeps the last offset of ``source`` it counted, so an event redelivered after a
    crash is not counted again, whichever of its table writes had reached the changelog.
    """
    field = f"{source}_offset"

    def finish(done: list[tuple[EventT, Moves | None]]) -> None:
        groups: dict[int, list[tuple[EventT, Moves | None]]] = {}
        for event, moves in done:
            groups.setdefault(event.message.partition, []).append((event, moves))
        for partition, members in groups.items():
            make_current(members[-1][0])  # the row's changelog partition
            key = str(partition)
            row = pipeline_totals.get(key) or PipelineTotals.fresh()
            counted_through = getattr(row, field)
            sums: dict[str, tuple[int, Decimal]] = {}
            for event, moves in members:
                if event.message.offset > counted_through:
                    for kind, amount, sign in moves or ():
                        count, total = sums.get(kind, (0, ZERO))
                        sums[kind] = (count + sign, total + sign * (amount or ZERO))
            last = max(event.message.offset for event, _ in members)
            pipeline_totals[key] = row.moved(sums, **{field: max(last, counted_through)})

    return finish


def local_pipeline() -> dict[str, Any]:
    """This worker's rows: ``{"partitions": {"3": {"inflight": {"count", "amount"}, ...}}}``."""
    rows: dict[str, dict[str, Any]] = {}
    for partition in active_partitions(pipeline_totals):
        row = pipeline_totals.get(str(partition), PipelineTotals())
        rows[str(partition)] = {kind: totals_json(row.of(kind)) for kind in TOTAL_KINDS}
    return {"partitions": rows}


def sum_pipeline(partitions: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The sum of per-partition rows as ``local_pipeline`` gives them."""
    sums = {name: Totals() for name in TOTAL_KINDS}
    for rows in partitions:
        for name, row in rows.items():
            sums[name] = Totals(
                count=sums[name].count + row["count"],
                amount=sums[name].amount + Decimal(row["amount"]),
            )
    return {name: totals_json(t) for name, t in sums.items()}


def totals_json(totals: Totals) -> dict[str, Any]:
    return {"count": totals.count, "amount": str(totals.amount)}


def violations(partitions: dict[str, dict[str, Any]]) -> list[str]:
    """What is wrong with per-partition rows as ``local_pipeline`` gives them: no count or
    amount may be negative (inflight below zero means a release without its admission)."""
    found = []
    for partition, rows in sorted(partitions.items()):
        for kind, totals in rows.items():
            if totals["count"] < 0 or Decimal(totals["amount"]) < 0:
                found.append(
                    f"partition {partition}: {kind} {totals['count']} / {totals['amount']}"
                )
    return found
