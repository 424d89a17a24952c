"""HTTP API of the operational plane: ``GET /reconcile`` (every worker's books, checked)."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.web import Request, Response

from kpay_faust.app import app, settings
from kpay_faust.ops.reconcile import cluster_report, local_books, merge, needs_second_read
from kpay_faust.web.cluster import gather, require_all_partitions
from kpay_faust.web.errors import KPayView

#: Seconds between the two reads that tell money lost in transit from a payment caught between
#: its debit and its credit while the workers were read.
SECOND_READ_AFTER = 1.0


async def read_books() -> dict[str, Any]:
    """Every worker's books, merged; 503 while a partition is unowned."""
    merged = merge(await gather("/internal/reconcile", local_books))
    require_all_partitions(merged["ledger_partitions"], settings.partitions)
    require_all_partitions(merged["totals_partitions"], settings.partitions)
    return merged


@app.page("/reconcile")
class ReconcileView(KPayView):
    async def get(self, request: Request) -> Response:
        """Whether the books of every worker reconcile, with the figures and each problem."""
        first, second = await read_books(), None
        if needs_second_read(first):
            await asyncio.sleep(SECOND_READ_AFTER)
            second = await read_books()
        return self.json(cluster_report(first, second))


@app.page("/internal/reconcile")
class LocalReconcileView(KPayView):
    async def get(self, request: Request) -> Response:
        return self.json(local_books())
