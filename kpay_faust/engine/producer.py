"""KPay's producer: table changelog writes and stage outputs in batches, flushed before a
commit.

Faust sends every record as its own message through its producer buffer, with its own future
and callback, and stores a changelog offset in RocksDB once per table write. Here the records
made in one turn of the event loop go to aiokafka as one batch per topic partition, and a
table's persisted offset is stored once per batch (measured in docs/benchmarks.md).

Faust flushes its producer before it commits consumer offsets; ``KPayProducer.flush`` first
hands every pending record to aiokafka and waits for the broker, so an input offset is never
committed before the table writes and the outputs it caused. Under ``exactly_once`` records
take Faust's own path, which ties them to the transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from aiokafka.client import CoordinationType
from aiokafka.errors import KafkaError
from faust.transport.drivers.aiokafka import Producer
from faust.types import TP, TopicT

from kpay_faust.engine import compat
from kpay_faust.engine.fetching import Pacing

log = logging.getLogger(__name__)

#: Told when a batch is stored: (topic partition, offset of its last record, its records).
OnSent = Callable[[TP, int, list[tuple[bytes | None, bytes | None]]], None]
#: Kafka headers of a record: (name, value) pairs.
Headers = list[tuple[str, bytes]]

#: Records waiting for the sender beyond which ``KPayProducer.emit`` waits (back-pressure).
MAX_PENDING = 5_000


class RecordBatcher:
    """Collects records per (topic, partition) and sends each group as one batch."""

    def __init__(self) -> None:
        # Records are (key, value), or (key, value, headers) for stage outputs with headers.
        self._pending: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
        self._on_sent: dict[tuple[str, int], OnSent | None] = {}
        self._task: asyncio.Task | None = None
        self._in_flight: set[asyncio.Future] = set()
        self.pending_count = 0
        self.failure: BaseException | None = None

    def add(
        self,
        producer: Any,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        on_sent: OnSent | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Queue one record; ``on_sent`` learns the offset of the last record of its batch,
        and the batch's records, once the broker has stored it."""
        record = (key, value) if headers is None else (key, value, headers)
        self._pending.setdefault((topic, partition), []).append(record)
        self._on_sent[(topic, partition)] = on_sent
        self.pending_count += 1
        if self._task is None:
            self._task = asyncio.ensure_future(self._send_pending(producer))

    async def _send_pending(self, producer: Any) -> None:
        try:
            while self._pending:
                pending, self._pending = self._pending, {}
                on_sent, self._on_sent = self._on_sent, {}
                self.pending_count = 0
                for (topic, partition), records in pending.items():
                    await self._send(producer, topic, partition, records, on_sent[topic, partition])
        except BaseException as exc:  # never lose a record silently: drain() re-raises it
            self.failure = exc
            log.exception("batching: sending records failed")
        finally:
            self._task = None

    async def _send(
        self, producer: Any, topic: str, partition: int, records: list, on_sent: OnSent | None
    ) -> None:
        batch, first = producer.create_batch(), 0
        for n, record in enumerate(records):
            key, value = record[0], record[1]
            headers = record[2] if len(record) > 2 else []
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                await self._submit(producer, batch, TP(topic, partition), records[first:n], on_sent)
                batch, first = producer.create_batch(), n  # the full batch went: a new one
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        await self._submit(producer, batch, TP(topic, partition), records[first:], on_sent)

    async def _submit(
        self, producer: Any, batch: Any, tp: TP, records: list, on_sent: OnSent | None
    ) -> None:
        future = await producer.send_batch(batch, tp.topic, partition=tp.partition)
        self._in_flight.add(future)

        def done(fut: asyncio.Future) -> None:
            self._in_flight.discard(fut)
            if fut.cancelled() or fut.exception() is not None:
                self.failure = self.failure or fut.exception() or asyncio.CancelledError()
                log.error("batching: a batch to %s failed: %r", tp, self.failure)
                return
            if on_sent is not None:
                on_sent(tp, fut.result().offset + len(records) - 1, records)

        future.add_done_callback(done)

    async def handed_over(self) -> None:
        """Wait until every pending record is in aiokafka's hands (not yet acknowledged)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    def idle(self) -> bool:
        """Whether every record was sent and acknowledged, none failing."""
        return (
            self._task is None
            and not self._pending
            and not self._in_flight
            and self.failure is None
        )

    async def drain(self) -> None:
        """Hand every pending record to aiokafka and wait until the broker has them all."""
        await self.handed_over()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))
        if self.failure is not None:
            raise RuntimeError(f"records were not stored: {self.failure!r}")


class KPayProducer(Producer):
    """Faust's aiokafka producer, with table writes and stage outputs batched; a flush drains
    them first."""

    def __init__(self, *args: Any, pacing: Pacing | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batcher = RecordBatcher()
        self.pacing = pacing
        if pacing is not None:
            pacing.on_change(lambda busy: self._follow(pacing))

    async def on_start(self) -> None:
        await super().on_start()
        if self.pacing is not None:
            self._follow(self.pacing)

    def _follow(self, pacing: Pacing) -> None:
        """Let batches linger as long as ``pacing`` says now (none while the worker is light)."""
        if self._producer is not None:
            compat.set_linger(self._producer, pacing.linger())

    def batches_changelogs(self) -> bool:
        return self._producer is not None and not self.app.in_transaction

    def send_changelog_soon(
        self, topic: str, partition: int, key: bytes, value: bytes | None, on_sent: OnSent
    ) -> Any:
        self.batcher.add(self._producer, topic, partition, key, value, on_sent)
        # what Table.on_key_set reads from the FutureMessage Faust would return
        return SimpleNamespace(message=SimpleNamespace(partition=partition))

    async def emit(
        self, topic: TopicT, key: str, value: bytes, headers: Headers | None = None
    ) -> None:
        """Send a stage's output record: queued in a batch when it can be, else through Faust
        (under ``exactly_once``, before the producer started, or before the topic's metadata
        is known, which Faust's send fetches).

        A batched record keeps the partition aiokafka's partitioner gives the key, as a plain
        send would, so the records of a key keep their partition and their order.
        """
        producer = self._producer
        name = topic.get_topic_name()
        if (
            producer is None
            or not self.batches_changelogs()
            or not producer.client.cluster.partitions_for_topic(name)
        ):
            await topic.send(key=key, value=value, headers=headers)
            return
        raw_key = key.encode()
        partition = compat.key_partition(producer, name, raw_key, value)
        self.batcher.add(producer, name, partition, raw_key, value, headers=headers)
        if self.batcher.pending_count > MAX_PENDING:
            await self.batcher.handed_over()

    async def knows_topic(self, topic: str) -> bool:
        """Whether ``topic``'s partitions are known, fetching its metadata if need be. The router
        maps keys to partitions with this producer's metadata, which holds only the topics that
        existed at start-up or were written since. False before the producer has started."""
        if self._producer is None:
            return False
        client = self._producer.client
        if client.cluster.partitions_for_topic(topic) is None:
            await client.add_topic(topic)
        return client.cluster.partitions_for_topic(topic) is not None

    async def await_group_coordinator(self, group_id: str, timeout: float = 30.0) -> bool:
        """Wait until the broker names a coordinator for ``group_id``; whether it did in time.

        A brand-new broker creates its offsets topic on the first coordinator lookup and answers
        "not available" until it has; the consumer's lookup then logged an ERROR on a new
        deployment's first start. Asked here first, quietly, the consumer's finds it at once.
        """
        if self._producer is None:
            return False
        client, loop = self._producer.client, asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await client.coordinator_lookup(CoordinationType.GROUP, group_id)
                return True
            except KafkaError as exc:
                if not exc.retriable or loop.time() > deadline:
                    log.info("no coordinator for group %s yet (%r)", group_id, exc)
                    return False
            await asyncio.sleep(0.1)

    async def flush(self) -> None:
        await self.batcher.drain()
        await super().flush()

    async def on_stop(self) -> None:
        """Send what is pending before aiokafka stops (Faust stops tables, then flushes)."""
        if self._producer is not None:
            try:
                await self.batcher.drain()
            except Exception:  # the worker's next start recovers from the changelogs alone
                log.exception("batching: records pending at stop were not all stored")
        await super().on_stop()
