"""The metrics stage: outcomes in, per-window counts, amounts and latency sketches out.

It reads ``payments.confirmed`` in batches (``take_events``) and writes each (partition, window)
once per batch: per-event writes of a sketch would cost more than the payment itself. The
changelog partition of a table write is the current event's, so each group is written with one
of its own events as the current event. Events are acked only after their batch is written.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence

from faust import EventT, StreamT

from kpay_faust import topics
from kpay_faust.app import app
from kpay_faust.metrics.models import BatchStats, WindowStats
from kpay_faust.metrics.prometheus import LATENCY_SECONDS
from kpay_faust.metrics.tables import WINDOWED
from kpay_faust.ops.deadletter import dead_letter, make_current
from kpay_faust.payments.models import PaymentEvent, State

log = logging.getLogger(__name__)

BATCH_MAX = 2000
BATCH_WITHIN = 0.25  # seconds: the live 1 s series lags by at most this much

#: Outcomes this worker's metrics stage has counted.
recorded: Counter[str] = Counter()


@app.agent(topics.payments_confirmed, name="payment_metrics")
async def payment_metrics(stream: StreamT) -> AsyncIterator[int]:
    """Keeps throughput, amounts and latency per tumbling window (1 s and 1 min)."""
    async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
        await record_outcomes(stream, events)
        yield len(events)


async def record_outcomes(stream: StreamT, events: Sequence[EventT]) -> None:
    groups: dict[tuple[str, str, float], list[tuple[EventT, PaymentEvent]]] = {}
    for event in events:
        try:
            payment = PaymentEvent.decode(event.message.value)
            if payment.state not in (State.CONFIRMED, State.REJECTED):
                raise ValueError(f"payment {payment.id} in state {payment.state!r} as an outcome")
        except Exception as exc:
            await dead_letter("payment_metrics", exc, event)
            continue
        key = str(event.message.partition)
        for name, table in WINDOWED.items():
            ((start, _end),) = table.table.window.ranges(event.message.timestamp)
            groups.setdefault((key, name, start), []).append((event, payment))
    for (key, name, start), members in groups.items():
        make_current(members[-1][0])  # the window and changelog partition
        table = WINDOWED[name]
        try:
            row = table[key].current()
            fresh = [(e, p) for e, p in members if e.message.offset > row.through_offset]
            if fresh:
                table[key] = row.merge(_batch_stats(fresh, observe=name == FIRST_SERIES))
        except Exception:  # a metrics fault must not stop the stage: log it and go on
            log.exception("metrics %s: window %s of partition %s not updated", name, start, key)


FIRST_SERIES = next(iter(WINDOWED))


def _batch_stats(members: list[tuple[EventT, PaymentEvent]], observe: bool) -> WindowStats:
    batch = BatchStats()
    for _, payment in members:
        latency_ms = None
        if payment.started_at is not None and payment.finished_at is not None:
            latency_ms = (payment.finished_at - payment.started_at) * 1000.0
            if observe:
                LATENCY_SECONDS.observe(max(latency_ms, 0.0) / 1000.0)
        if observe:
            recorded[str(payment.state)] += 1
        batch.add(payment.state is State.CONFIRMED, payment.amount, latency_ms)
    stats = batch.stats()
    return stats.derive(through_offset=max(e.message.offset for e, _ in members))
