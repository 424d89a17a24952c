"""Pausing partitions in the Kafka client itself.

Faust's ``consumer.pause_partitions`` drops the records of a partition paused while their
fetched batch is being delivered, although the fetch position has passed them, and later
commits past the gap; Faust also resumes every partition after each rebalance. The client's own
pause (``AIOKafkaConsumer.pause``) stops fetching and keeps the position at the first record not
yet handed over, so callers pause here and re-apply the pause from their own state.
"""

from __future__ import annotations

from aiokafka import TopicPartition
from faust.types import TP, ConsumerT

from kpay_faust.engine import compat


async def client_pause(consumer: ConsumerT, tps: set[TP], *, paused: bool) -> set[TP]:
    """Pause or resume ``tps`` in the Kafka client, inside Faust's consumer thread where the
    client lives; returns the partitions whose state changed."""
    thread = compat.consumer_thread(consumer)

    async def apply() -> set[TP]:
        client = compat.aiokafka_consumer(thread)
        assigned, already = client.assignment(), client.paused()
        wanted = {TopicPartition(tp.topic, tp.partition) for tp in tps}
        changed = {tp for tp in wanted if tp in assigned and (tp in already) != paused}
        if changed:
            (client.pause if paused else client.resume)(*changed)
        return {TP(tp.topic, tp.partition) for tp in changed}

    return await thread.call_thread(apply)
