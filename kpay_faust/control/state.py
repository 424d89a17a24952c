"""Each worker's copy of the control state, and what it does with it.

Every worker reads the whole control topic with its own group-less consumer (one partition, a
handful of messages), so every worker obeys, including one that starts while paused: it does not
admit a payment before it has read the topic to its end. The worker then keeps the gateway's
input partitions paused while the pipeline is paused, re-applying the pause after every
rebalance (Faust resumes all partitions after recovery), and the gateway gates any payment that
was fetched before the pause took hold.
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
from kpay_faust.engine.pausing import client_pause
from kpay_faust.kafka_security import client_options

log = logging.getLogger(__name__)

GATE_POLL = 0.05  # seconds between checks while a payment waits at the gate
RECONCILE_EVERY = 0.1


class WorkerControl:
    """The control state as this worker knows it, the gate, and the admission rate limit."""

    def __init__(self) -> None:
        self.state = ControlState()
        self.caught_up = False
        self.paused_by_us: set[TP] = set()
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

    async def admission_gate(self, event: EventT) -> bool:
        """Wait, in short steps, until this worker may admit a payment, then take a token.
        False if a rebalance happened meanwhile: the partition may be another worker's now,
        and Faust redelivers the event to whoever owns it."""
        generation = event.message.generation_id
        while not self.admitting:
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
            await asyncio.sleep(min((1.0 - self._tokens) / share, 1.0))
            if not self.admitting:
                return await self.admission_gate(event)

    def incoming_partitions(self) -> set[TP]:
        name = topics.payments_incoming.get_topic_name()
        return {tp for tp in app.consumer.assignment() if tp.topic == name}

    async def reconcile(self) -> None:
        """Keep the gateway's input paused while paused (again after each rebalance, which
        forgets pauses); resume it once running. Never touches partitions during recovery.

        The pause is the Kafka client's own (``AIOKafkaConsumer.pause``), not Faust's
        ``pause_partitions``: Faust drops records of a partition paused while their batch is
        being delivered and later commits past the gap, which lost payments. The client's pause
        stops fetching and keeps the position at the first record not yet handed over; what was
        handed over reaches the gateway and waits at the gate.
        """
        if app.rebalancing or app.tables.recovery.in_recovery:
            return
        incoming = self.incoming_partitions()
        if not self.admitting:
            newly = await client_pause(app.consumer, incoming, paused=True)
            if newly:
                log.info("control: paused input partitions %s", _numbers(newly))
            self.paused_by_us = incoming
        elif self.paused_by_us:
            await client_pause(app.consumer, self.paused_by_us & incoming, paused=False)
            log.info("control: resumed input partitions %s", _numbers(incoming))
            self.paused_by_us = set()

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
        }


control = WorkerControl()


def _numbers(tps: set[TP]) -> list[int]:
    return sorted(tp.partition for tp in tps)


@app.task
async def follow_control_topic() -> None:
    """Fold the control topic into ``control``, from its beginning, for as long as we run."""
    name = topics.control.get_topic_name()
    while not app.should_stop:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.broker.removeprefix("kafka://"),
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
