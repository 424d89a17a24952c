"""A producer that records what the stages emit, for ``agent.test_context()`` unit tests.

It partitions keys exactly like the Kafka producer (murmur2), so partition-local logic is
exercised as in production; the integration tests use the real broker instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata
from faust.types import TP, TopicT

from kpay_faust.app import settings
from kpay_faust.engine.producer import KPayProducer


@dataclass(frozen=True)
class Sent:
    topic: str
    key: str | None
    value: bytes
    headers: Any = None


class RecordingProducer(KPayProducer):
    """KPay's producer with every send recorded instead of produced: stage outputs (``emit``),
    table changelog writes and plain sends alike."""

    def __init__(self, transport: Any) -> None:
        super().__init__(transport)
        self.sent: list[Sent] = []
        self._offsets: dict[TP, int] = {}
        self._partitioner = DefaultPartitioner()

    def _partition(self, key: bytes | None) -> int:
        partitions = list(range(settings.partitions))
        return self._partitioner(key, partitions, partitions)

    def key_partition(self, topic: str, key: bytes) -> TP:
        return TP(topic, self._partition(key))

    async def send(self, topic, key, value, partition, timestamp, headers, **kw) -> Any:
        tp = TP(topic, self._partition(key) if partition is None else partition)
        offset = self._offsets[tp] = self._offsets.get(tp, -1) + 1
        self.sent.append(Sent(topic, key.decode() if key is not None else None, value, headers))
        future = asyncio.get_running_loop().create_future()
        future.set_result(RecordMetadata(topic, tp.partition, tp, offset, 0, 0, 0))
        return future

    def send_soon(self, fut: Any) -> None:
        """Changelog writes: tables already hold the value; nothing to record."""

    def batches_changelogs(self) -> bool:
        return False  # tables take Faust's own path, which ends in send_soon

    async def emit(self, topic: TopicT, key: str, value: bytes, headers: Any = None) -> None:
        await topic.send(key=key, value=value, headers=headers)  # to ``send`` below

    async def knows_topic(self, topic: str) -> bool:
        return True

    async def flush(self) -> None:
        """Nothing is pending: every send was recorded at once."""

    async def on_start(self) -> None:
        """No Kafka client to start."""

    async def on_stop(self) -> None:
        """No Kafka client to stop."""

    def to(self, topic_suffix: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == f"{settings.topic_prefix}.{topic_suffix}"]
