"""Each worker's copy of the control state, and what it does with it.

Every worker reads the whole control topic with its own group-less consumer (one partition, a
handful of messages), so every worker obeys, including one that starts while paused: it does not
admit a payment before it has read the topic to its end. The worker then keeps the gateway's
input partitions paused while the pipeline is paused, re-applying the pause after every
rebalance (Faust resumes all partitions after recovery), and the gateway leaves in Kafka any
payment that was fetched before the pause took hold (``admission_gate``).

The same pause holds back load: an input partition whose payments in flight (admitted, not yet
finished) reach ``KPAY_ADMISSION_LIMIT`` stays paused until half of them have finished. The
gateway never waits for this (a waiting gateway would hold up the stages that finish payments),
so what was fetched is admitted, and the backlog waits in Kafka instead of in the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust import EventT
from faust.types import TP

from kpay_faust import topics
from kpay_faust.app import app, settings
from kpay_faust.control.models import ControlCommand, ControlState
from kpay_faust.engine.consumer import KPayConsumer
from kpay_faust.engine.pausing import client_pause
from kpay_faust.instruments import ADMISSION_HELD
from kpay_faust.kafka_security import client_options
from kpay_faust.payments.models import PipelineTotals
from kpay_faust.payments.tables import pipeline_totals

log = logging.getLogger(__name__)

GATE_POLL = 0.05  # seconds between checks while a payment waits at the gate
RECONCILE_EVERY = 0.1


class WorkerControl:
    """The control state as this worker knows it, the gate, and the admission rate limit."""

    def __init__(self) -> None:
        self.state = ControlState()
        self.caught_up = False
        self.paused_by_us: set[TP] = set()
        self.held_for_load: set[TP] = set()
        self._tokens = 0.0
        self._refilled = time.monotonic()

    def fold(self, raw: bytes, at: float, offset: int) -> None:
        try:
            command = ControlCommand.model_validate_json(raw)
        except ValueError:
            return  # the control_plane agent dead-letters it; here it changes nothing
        self.state = self.state.apply(command, at, offset)
        log.warning(
            "control: %s -> paused=%s rate=%s",
            command.command,
            self.state.paused,
            self.state.per_second,
        )

    async def wait_applied(self, offset: int, timeout: float) -> bool:
        """Wait until the command at ``offset`` is folded here; False if it took too long."""
        deadline = time.monotonic() + timeout
        while self.state.offset < offset:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(GATE_POLL / 2)
        return True

    @property
    def admitting(self) -> bool:
        return self.caught_up and not self.state.paused

    async def admission_gate(self, event: EventT, wait: bool = True) -> bool:
        """Wait, in short steps, until this worker may admit a payment, then take a token.
        False if a rebalance happened meanwhile: the partition may be another worker's now,
        and Faust redelivers the event to whoever owns it. Without ``wait`` (the gateway called
        by the fetch loop, which must not wait) False at once when it may not admit now: the
        gateway leaves the payment in Kafka, its partition is paused, and ``reconcile``
        resumes it within ``RECONCILE_EVERY`` unless the pipeline is paused or it is held."""
        generation = event.message.generation_id
        while not self.admitting:
            if not wait:
                return False
            await asyncio.sleep(GATE_POLL)
        if generation != app.consumer_generation_id:
            return False
        rate = self.state.per_second
        if rate is None:
            return True
        share = rate * max(len(self.incoming_partitions()), 1) / settings.partitions
        while True:
            now = time.monotonic()
            self._tokens = min(self._tokens + (now - self._refilled) * share, max(share, 1.0))
            self._refilled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            if not wait:
                return False
            await asyncio.sleep(min((1.0 - self._tokens) / share, 1.0))
            if not self.admitting:
                return await self.admission_gate(event)

    def incoming_partitions(self) -> set[TP]:
        name = topics.payments_incoming.get_topic_name()
        return {tp for tp in app.consumer.assignment() if tp.topic == name}

    def inflight(self, partitions: set[TP]) -> dict[TP, int]:
        """Payments in flight per input partition: those the totals rows this worker owns count
        (the gateway and the confirmed stage of a payment id work on the same partition), and
        those delivered to the gateway that it has not counted yet."""
        consumer = app.consumer
        counts = {}
        for tp in partitions:
            row = pipeline_totals.get(str(tp.partition)) or PipelineTotals()
            counts[tp] = row.inflight_count
            if isinstance(consumer, KPayConsumer):
                delivered = consumer.last_delivered(tp)
                if delivered is not None and delivered > row.incoming_offset:
                    counts[tp] += delivered - row.incoming_offset
        return counts

    async def reconcile(self) -> None:
        """Keep the gateway's input paused while paused (again after each rebalance, which
        forgets pauses), and each input partition held for load while it is; resume the rest.
        Never touches partitions during recovery.

        The pause is the Kafka client's own (``AIOKafkaConsumer.pause``), not Faust's
        ``pause_partitions``: Faust drops records of a partition paused while their batch is
        being delivered and later commits past the gap, which lost payments. The client's pause
        stops fetching and keeps the position at the first record not yet handed over; what was
        handed over reaches the gateway, which leaves it in Kafka while paused (``admission_gate``).
        """
        if app.rebalancing or app.tables.recovery.in_recovery:
            return
        incoming = self.incoming_partitions()
        was_held = self.held_for_load
        limit = settings.admission_limit
        inflight = self.inflight(incoming)
        self.held_for_load = held_for_load(inflight, self.held_for_load, limit)
        ADMISSION_HELD.set(len(self.held_for_load))
        if isinstance(app.consumer, KPayConsumer):  # what was fetched already waits too
            app.consumer.credit = {
                tp: 0 if tp in self.held_for_load else max(limit - count, 0)
                for tp, count in inflight.items()
            }
            # paused by the fetch loop when their credit ran out: resumed below unless held
            self.paused_by_us |= app.consumer.starved
            app.consumer.starved = set()
        hold = incoming if not self.admitting else self.held_for_load
        if hold:
            newly = await client_pause(app.consumer, hold, paused=True)
            if newly - self.held_for_load:
                log.info("control: paused input partitions %s", _numbers(newly))
        release = (self.paused_by_us & incoming) - hold
        if release:
            await client_pause(app.consumer, release, paused=False)
            if release - was_held:
                log.info("control: resumed input partitions %s", _numbers(release))
        self.paused_by_us = hold

    def describe(self) -> dict:
        incoming = self.incoming_partitions()
        return {
            "worker": str(app.conf.canonical_url),
            "paused": self.state.paused,
            "state": self.state.model_dump(),
            # paused with its input partitions paused: it admits nothing more
            "holding": not self.admitting and incoming <= self.paused_by_us,
            "caught_up": self.caught_up,
            "per_second": self.state.per_second,
            "incoming_partitions": sorted(tp.partition for tp in incoming),
            "paused_partitions": sorted(tp.partition for tp in self.paused_by_us),
            "held_for_load": sorted(tp.partition for tp in self.held_for_load),
            "admission_limit": settings.admission_limit,
        }


control = WorkerControl()


def held_for_load(inflight: dict[TP, int], held: set[TP], limit: int) -> set[TP]:
    """The input partitions to hold back: those with ``limit`` payments in flight, and those
    already held until their count is down to half of it (so a partition is not paused and
    resumed on every check)."""
    return {
        tp
        for tp, count in inflight.items()
        if count >= limit or (tp in held and count > limit // 2)
    }


def _numbers(tps: set[TP]) -> list[int]:
    return sorted(tp.partition for tp in tps)


@app.task
async def follow_control_topic() -> None:
    """Fold the control topic into ``control``, from its beginning, for as long as we run."""
    name = topics.control.get_topic_name()
    while not app.should_stop:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=app.bootstrap_servers,
            enable_auto_commit=False,
            client_id=f"{settings.app_id}-control-follower",
            **client_options(settings),
        )
        try:
            await consumer.start()
            partition = TopicPartition(name, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            while not app.should_stop:
                batches = await consumer.getmany(partition, timeout_ms=200)
                for message in batches.get(partition, []):
                    control.fold(message.value or b"", message.timestamp / 1000, message.offset)
                if not control.caught_up and await consumer.position(partition) >= end:
                    control.caught_up = True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("control: reading %s failed; retrying", name)
            await asyncio.sleep(1)
        finally:
            await consumer.stop()


@app.timer(RECONCILE_EVERY)
async def reconcile_pause() -> None:
    try:
        await control.reconcile()
    except Exception:  # a timer that raises stops the worker; retry on the next tick instead
        log.exception("control: reconciling the pause failed; retrying")
