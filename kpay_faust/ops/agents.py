"""The operational plane's timers: each worker reconciles its own partitions periodically, and
the group's leader measures how many dead letters are waiting."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiokafka import TopicPartition

from kpay_faust import topics
from kpay_faust.app import app, settings
from kpay_faust.instruments import DEAD_LETTER_DEPTH, RECONCILE_FAILURES, STUCK_PAYMENTS
from kpay_faust.ops.reading import reader
from kpay_faust.ops.reconcile import local_books, local_failures

log = logging.getLogger(__name__)
#: This worker's last check, and the dead letters the leader last counted (for the console).
latest: dict[str, Any] = {"checked_at": None, "failures": [], "stuck": 0, "dead_letters": None}


@app.timer(interval=settings.reconcile_seconds)
async def reconcile_own_partitions() -> None:
    check_own_books()


def check_own_books() -> None:
    """Check this worker's books; the gauges let an alert fire, the log says why. A check that
    cannot run is a failure too, never a reason to stop the worker (an exception in a timer
    would crash it)."""
    try:
        books = local_books()
        failures = local_failures(books)
        stuck = len(books["stuck"])
    except Exception as exc:
        log.exception("reconciliation could not run")
        failures, stuck = [f"reconciliation could not run: {exc!r}"], 0
    RECONCILE_FAILURES.set(len(failures))
    STUCK_PAYMENTS.set(stuck)
    latest.update(checked_at=time.time(), failures=failures, stuck=stuck)
    for failure in failures:
        log.warning("reconciliation failed: %s", failure)


@app.timer(interval=settings.reconcile_seconds)
async def measure_dead_letters() -> None:
    """Dead letters kept on ``kpay.dlq``, measured by the leader alone (0 on every other
    worker), so the gauge sums over workers like every other."""
    if not app.is_leader():
        DEAD_LETTER_DEPTH.set(0)
        latest["dead_letters"] = None
        return
    name = topics.dlq.get_topic_name()
    partitions = [TopicPartition(name, p) for p in range(topics.dlq.partitions or 1)]
    try:
        async with reader() as client:
            ends = await client.end_offsets(partitions)
            begins = await client.beginning_offsets(partitions)
    except Exception as exc:  # the broker is away: keep the last figure, say so
        log.warning("could not measure the dead-letter topic: %r", exc)
        return
    depth = sum(ends[tp] - begins[tp] for tp in partitions)
    DEAD_LETTER_DEPTH.set(depth)
    latest["dead_letters"] = depth
