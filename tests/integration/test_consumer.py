"""KPayConsumer's seek to committed offsets, against the real broker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from kpay_faust.engine.consumer import rewind_uncommitted

pytestmark = pytest.mark.integration


async def test_a_partition_without_a_commit_is_read_again_from_its_beginning(bootstrap):
    topic = f"rewind-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition in (0, 1):
            for i in range(10):
                await producer.send(topic, str(i).encode(), partition=partition)
        await producer.flush()
    finally:
        await producer.stop()

    never, once = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"g-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([never, once])
        read = 0
        while read < 20:
            read += sum(len(r) for r in (await consumer.getmany(timeout_ms=1000)).values())
        await consumer.commit({once: 4})

        committed = await consumer.seek_to_committed()
        # What Faust relies on after dropping fetched records, and aiokafka does not do:
        assert await consumer.position(never) == 10
        assert await consumer.position(once) == 4

        assert await rewind_uncommitted(consumer, committed) == [never]
        assert await consumer.position(never) == 0
        assert await consumer.position(once) == 4
    finally:
        await consumer.stop()
