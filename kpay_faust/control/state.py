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
from faust.types import TP

from kpay_faust import topics
from kpay_faust.app import app, settings
from kpay_faust.control.models import ControlCommand, ControlState

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

    async def admission_gate(self) -> None:
        """Wait, in short steps, until this worker may admit a payment, then take a token."""
        while not self.admitting:
            await asyncio.sleep(GATE_POLL)
        rate = self.state.per_second
        if rate is None:
            return
        share = rate * max(len(self.incoming_partitions()), 1) / settings.partitions
        while True:
            now = time.monotonic()
            self._tokens = min(self._tokens + (now - self._refilled) * share, max(share, 1.0))
            self._refilled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep(min((1.0 - self._tokens) / share, 1.0))
            if not self.admitting:
                await self.admission_gate()
                return

    def incoming_partitions(self) -> set[TP]:
        name = topics.payments_incoming.get_topic_name()
        return {tp for tp in app.consumer.assignment() if tp.topic == name}

    async def reconcile(self) -> None:
        """Pause the gateway's input while paused (again after each rebalance); resume what
        this worker paused once running. Never touches partitions during recovery.

        Faust drops records of a partition paused while their batch is being delivered, though
        the fetch position has moved past them; so a resumed partition is first sought back to
        just after the last record that reached the stream.
        """
        if app.rebalancing or app.tables.recovery.in_recovery:
            return
        incoming = self.incoming_partitions()
        if not self.admitting:
            app.consumer.pause_partitions(incoming)
            self.paused_by_us = incoming
        elif self.paused_by_us:
            resumed, self.paused_by_us = self.paused_by_us & incoming, set()
            read = app.monitor.tp_read_offsets
            for tp in resumed:
                if tp in read:
                    await app.consumer.seek(tp, read[tp] + 1)
            app.consumer.resume_partitions(resumed)

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


@app.task
async def follow_control_topic() -> None:
    """Fold the control topic into ``control``, from its beginning, for as long as we run."""
    name = topics.control.get_topic_name()
    while not app.should_stop:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.broker.removeprefix("kafka://"),
            enable_auto_commit=False,
            client_id=f"{settings.app_id}-control-follower",
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
    await control.reconcile()
