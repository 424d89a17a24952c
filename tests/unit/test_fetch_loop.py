"""The fetch loop's delivery (``KPayConsumer._deliver``): what it records as read when a seek
or a rebalance overlaps a fetch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

from faust.types import TP

from kpay_faust.app import app, settings
from kpay_faust.consumer import KPayConsumer

TOPIC_PARTITION = TP("kpay.payments.complete", 0)


def _consumer(delivered: list[int], on_delivery=None) -> KPayConsumer:
    consumer = app._new_consumer()

    async def callback(message) -> None:
        delivered.append(message.offset)
        if on_delivery is not None:
            await on_delivery(consumer, message.offset)

    consumer.callback = callback
    consumer.resume_flow()
    return consumer


async def _fetched(offsets: list[int]) -> AsyncIterator[tuple[TP, object]]:
    for offset in offsets:
        yield TOPIC_PARTITION, SimpleNamespace(offset=offset, topic=TOPIC_PARTITION.topic)


async def test_a_fetch_is_delivered_and_recorded_as_read(producer) -> None:
    delivered: list[int] = []
    consumer = _consumer(delivered)
    assert await consumer._deliver(_fetched([5, 6, 7])) is True
    assert delivered == [5, 6, 7]
    assert consumer._read_offset[TOPIC_PARTITION] == 7


async def test_records_delivered_before_are_not_delivered_again(producer) -> None:
    delivered: list[int] = []
    consumer = _consumer(delivered)
    consumer._read_offset[TOPIC_PARTITION] = 6
    assert await consumer._deliver(_fetched([4, 5, 6, 7])) is True
    assert delivered == [6, 7]


async def test_a_seek_during_a_fetch_leaves_the_read_offsets_it_set(producer) -> None:
    """The seek back to the commits (offset 0 here) must win: recording 291 as read after it
    would drop records 0..290 when they are fetched again."""
    delivered: list[int] = []

    async def seek_during(consumer: KPayConsumer, offset: int) -> None:
        if offset == 291:
            consumer._seeks += 2  # what perform_seek does around its seek
            consumer._read_offset[TOPIC_PARTITION] = 0

    consumer = _consumer(delivered, seek_during)
    assert await consumer._deliver(_fetched([290, 291, 292])) is False
    assert delivered == [290, 291]
    assert consumer._read_offset[TOPIC_PARTITION] == 0


async def test_a_suspended_flow_stops_delivery_without_recording_the_rest(producer) -> None:
    delivered: list[int] = []
    blocker = asyncio.Event()

    async def waits_then_suspends(consumer: KPayConsumer, offset: int) -> None:
        if offset == 11:
            asyncio.get_running_loop().call_later(0.02, consumer.stop_flow)
            await blocker.wait()  # a full stream buffer: only the rebalance ends the wait

    consumer = _consumer(delivered, waits_then_suspends)
    fetch = consumer._deliver(_fetched([10, 11, 12]))
    assert await asyncio.wait_for(fetch, 2) is True
    assert delivered == [10, 11]
    assert consumer._read_offset[TOPIC_PARTITION] == 10  # 11 was cancelled: it is read again


async def test_the_progress_check_skips_a_partition_whose_position_is_being_reset(
    producer, monkeypatch
) -> None:
    consumer = _consumer([])

    def position_unknown(now: float, tp: TP) -> None:
        raise AssertionError  # aiokafka's ``position`` while a seek to the beginning runs

    monkeypatch.setattr(consumer._thread, "verify_event_path", position_unknown)
    assert consumer.verify_event_path(0.0, TOPIC_PARTITION) is None


async def test_fetches_wait_and_gather_as_set(producer) -> None:
    """Faust fixes a wait of 1,500 ms (the worker idled that long with a backlog) and leaves
    aiokafka's minimum of one byte (a fetch per few records): see docs/benchmarks.md."""
    thread = app._new_consumer()._new_consumer_thread()
    client = thread._create_worker_consumer(app.transport)
    assert client._fetch_max_wait_ms == settings.fetch_max_wait_ms < 1500
    assert client._fetch_min_bytes == settings.fetch_min_bytes > 1
