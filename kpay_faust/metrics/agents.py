"""The metrics stage: outcomes in, per-window counts, amounts and latency sketches out.

It reads ``payments.confirmed`` in batches gathered for up to ``BATCH_WITHIN`` and writes each
(partition, window) once per batch: per-event writes of a sketch would cost more than the
payment itself. The fetch loop gathers the batches (``KPayApp.gathering_stage``); with direct
delivery off, the agent does (``take_events``). The changelog partition of a table write is
the current event's, so each group is written with one of its own events as the current event.
Events are acked only after their batch is written.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from faust import EventT, StreamT

from kpay_faust import topics
from kpay_faust.app import app
from kpay_faust.engine.stages import cpu_of, make_current, ownership
from kpay_faust.instruments import LATENCY_SECONDS, STAGE_EVENTS
from kpay_faust.metrics.models import BatchStats, WindowStats
from kpay_faust.metrics.tables import WINDOWED
from kpay_faust.ops.deadletter import dead_letter
from kpay_faust.payments.models import PaymentEvent, State

log = logging.getLogger(__name__)

BATCH_MAX = 2000
BATCH_WITHIN = 0.25  # seconds: the live 1 s series lags by at most this much

#: Outcomes this worker's metrics stage has counted.
recorded = STAGE_EVENTS.labels("payment_metrics")


@app.agent(topics.payments_confirmed, name="payment_metrics")
async def payment_metrics(stream: StreamT) -> AsyncIterator[int]:
    """Keeps throughput, amounts and latency per tumbling window (1 s and 1 min)."""
    async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
        with cpu_of("payment_metrics"):
            await record_outcomes(events, ownership(stream))
        yield len(events)


async def record_outcomes(events: Sequence[EventT], owns: Callable[[Any], bool]) -> None:
    """Count a batch of outcomes of the partitions ``owns`` says this worker owns."""
    groups: dict[tuple[str, str, float], list[tuple[EventT, PaymentEvent]]] = {}
    owned = {tp: owns(tp) for tp in {event.message.tp for event in events}}
    for event in events:
        if not owned[event.message.tp]:
            continue  # fetched before a rebalance took its partition: its new owner counts it
        try:
            payment = PaymentEvent.decode(event.message.value)
            if payment.state not in (State.CONFIRMED, State.REJECTED):
                raise ValueError(f"payment {payment.id} in state {payment.state!r} as an outcome")
        except Exception as exc:
            await dead_letter("payment_metrics", exc, event)
            continue
        key = str(event.message.partition)
        # A republished outcome repeats its completion, so it falls in the same window as the
        # first publication, where that window's marks recognise it.
        at = payment.completion.timestamp if payment.completion else event.message.timestamp
        for name, table in WINDOWED.items():
            ((start, _end),) = table.table.window.ranges(at)
            groups.setdefault((key, name, start), []).append((event, payment))
    for (key, name, start), members in groups.items():
        make_current(members[-1][0])  # the changelog partition
        window = WINDOWED[name].relative_to(float(start))
        try:
            row = window[key].value()
            fresh, marks = _not_counted(members, row.counted_through)
            if fresh:
                stats = _batch_stats(fresh, observe=name == FIRST_SERIES)
                window[key] = row.merge(stats.derive(counted_through=marks))
        except Exception:  # a metrics fault must not stop the stage: log it and go on
            log.exception("metrics %s: window %s of partition %s not updated", name, start, key)


app.gathering_stage(
    topics.payments_confirmed, "payment_metrics", record_outcomes, BATCH_WITHIN, BATCH_MAX
)


def _not_counted(
    members: list[tuple[EventT, PaymentEvent]], marks: dict[str, int]
) -> tuple[list[tuple[EventT, PaymentEvent]], dict[str, int]]:
    """The outcomes whose source offset is past the window's marks, and the marks after them."""
    marks, fresh = dict(marks), []
    for event, payment in members:
        if payment.completion is not None:
            source, offset = f"complete:{payment.completion.partition}", payment.completion.offset
        else:
            source, offset = "confirmed", event.message.offset
        if offset > marks.get(source, -1):
            marks[source] = offset
            fresh.append((event, payment))
    return fresh, marks


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
            recorded.inc()
        batch.add(payment.state is State.CONFIRMED, payment.amount, latency_ms)
    return batch.stats()
