"""The operational plane's timers: each worker reconciles its own partitions periodically."""

from __future__ import annotations

import logging

from kpay_faust.app import app, settings
from kpay_faust.instruments import RECONCILE_FAILURES, STUCK_PAYMENTS
from kpay_faust.ops.reconcile import local_books, local_failures

log = logging.getLogger(__name__)


@app.timer(interval=settings.reconcile_seconds)
async def reconcile_own_partitions() -> None:
    """Check this worker's books; the gauges let an alert fire, the log says why."""
    books = local_books()
    failures = local_failures(books)
    RECONCILE_FAILURES.set(len(failures))
    STUCK_PAYMENTS.set(len(books["stuck"]))
    for failure in failures:
        log.warning("reconciliation failed: %s", failure)
