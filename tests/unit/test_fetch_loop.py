"""The fetch loop's delivery (``KPayConsumer._deliver``): what it records as read when a seek
or a rebalance overlaps a fetch; and the fetches' settings and pacing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from kpay_faust.app import app, settings
from kpay_faust.engine.consumer import KPayConsumer
from kpay_faust.engine.fetching import FetchTuning, Pacing, pace_fetches
from kpay_faust.engine.producer import KPayProducer

TOPIC_PARTITION = TP("kpay.control", 0)  # read by an agent Faust delivers to


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


async def test_each_fetch_tells_the_pacing_how_many_records_it_handed_over(producer) -> None:
    consumer = _consumer([])
    seen: list[int] = []
    consumer.pacing = SimpleNamespace(observe=seen.append)
    consumer._read_offset[TOPIC_PARTITION] = 6
    await consumer._deliver(_fetched([4, 5, 6, 7, 8]))  # 4 and 5 were delivered before
    await consumer._deliver(_fetched([]))
    assert seen == [3, 0]


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


async def test_a_partition_delivers_no_more_than_its_credit_and_is_rewound(producer) -> None:
    """Past its credit, a partition's records wait in Kafka: none is delivered or recorded as
    read, and the partition is fetched again from the first of them; others flow on."""
    delivered: list[int] = []
    consumer = _consumer(delivered)
    rewound: list[tuple[TP, int]] = []

    async def rewind(tp: TP, offset: int) -> None:
        rewound.append((tp, offset))

    consumer._rewind = rewind  # type: ignore[method-assign]
    other = TP(TOPIC_PARTITION.topic, 1)
    consumer.credit = {TOPIC_PARTITION: 2}

    async def fetched() -> AsyncIterator[tuple[TP, object]]:
        for offset in (5, 6, 7, 8):
            yield TOPIC_PARTITION, SimpleNamespace(offset=offset, topic=TOPIC_PARTITION.topic)
            yield other, SimpleNamespace(offset=offset + 100, topic=other.topic)

    assert await consumer._deliver(fetched()) is True
    assert delivered == [5, 105, 6, 106, 107, 108]
    assert rewound == [(TOPIC_PARTITION, 7)]
    assert consumer._read_offset[TOPIC_PARTITION] == 6
    assert consumer.credit[TOPIC_PARTITION] == 0


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
    """Faust fixes a wait of 1,500 ms, which idled the worker that long with a backlog (see
    docs/benchmarks.md); KPay's settings reach the aiokafka consumer."""
    thread = app._new_consumer()._new_consumer_thread()
    client = thread._create_worker_consumer(app.transport)
    assert client._fetch_max_wait_ms == settings.fetch_max_wait_ms < 1500
    assert client._fetch_min_bytes == settings.fetch_min_bytes


def _fetcher() -> SimpleNamespace:
    """What the pacing sees of aiokafka's fetcher: a plan that always has a fetch to send."""
    fetch = [(1, "fetch request")]
    return SimpleNamespace(_get_actions_per_node=lambda assignment: (fetch, {}, 0.2, False, []))


def test_a_fetch_is_held_back_until_the_interval_since_the_last_one_is_up() -> None:
    now = [100.0]
    fetcher = _fetcher()
    pace_fetches(fetcher, lambda: 0.015, clock=lambda: now[0])
    plan = fetcher._get_actions_per_node
    assert plan(None)[0] == [(1, "fetch request")]  # the first goes at once
    now[0] += 0.005
    fetches, resets, timeout, _, _ = plan(None)
    assert fetches == [] and resets == {}
    assert timeout == pytest.approx(0.010)  # the fetcher wakes when it may send
    now[0] += 0.010
    assert plan(None)[0] == [(1, "fetch request")]
    assert plan(None)[0] == []


async def test_the_consumer_thread_paces_its_fetcher(producer, monkeypatch) -> None:
    fetcher = _fetcher()

    async def started(thread) -> None:  # aiokafka's consumer, as far as the pacing sees it
        thread._consumer = SimpleNamespace(_fetcher=fetcher)

    monkeypatch.setattr(AIOKafkaConsumerThread, "on_start", started)
    now = [0.0]
    # light and unpaced (``KPAY_LIGHT_FETCH_INTERVAL_MS=0``), so the light fetches below do not
    # depend on the real clock the fetcher's pacing reads
    tuning = FetchTuning(
        interval_ms=settings.fetch_interval_ms, follows_load=True, light_interval_ms=0
    )
    pacing = Pacing(tuning, clock=lambda: now[0])
    consumer = app._new_consumer()
    consumer.pacing = pacing
    await consumer._new_consumer_thread().on_start()
    plan = fetcher._get_actions_per_node
    assert plan(None)[0] and plan(None)[0]  # light: each fetch goes as soon as it can
    feed(pacing, now, 10 * tuning.busy_records_per_second, 2)  # the worker is loaded
    assert plan(None)[0] == []  # busy: the next, right after the last, is held back
    assert settings.fetch_interval_ms > 0


def feed(pacing: Pacing, now: list[float], per_second: float, seconds: float) -> None:
    """Fetches of 10 records at ``per_second`` records a second for ``seconds``."""
    for _ in range(int(per_second * seconds / 10)):
        now[0] += 10 / per_second
        pacing.observe(10)


def test_pacing_turns_busy_above_its_rate_and_light_only_below_half_of_it() -> None:
    now = [0.0]
    tuning = FetchTuning(interval_ms=15, linger_ms=2, busy_records_per_second=1000)
    pacing = Pacing(tuning, clock=lambda: now[0])
    changes: list[bool] = []
    pacing.on_change(changes.append)
    assert (pacing.busy, pacing.fetch_interval(), pacing.linger()) == (False, 0.004, 0.0)
    feed(pacing, now, 800, 5)  # below the rate: stays light
    assert not pacing.busy
    feed(pacing, now, 3000, 3)
    assert pacing.busy and changes == [True]
    assert (pacing.fetch_interval(), pacing.linger()) == (0.015, 0.002)
    feed(pacing, now, 800, 5)  # between half and the rate again: stays busy (no flapping)
    assert pacing.busy
    feed(pacing, now, 200, 5)
    assert not pacing.busy and changes == [True, False]


def test_a_burst_shorter_than_the_averaging_does_not_turn_the_worker_busy() -> None:
    now = [0.0]
    pacing = Pacing(FetchTuning(busy_records_per_second=1000), clock=lambda: now[0])
    feed(pacing, now, 200, 2)
    now[0] += 0.01
    pacing.observe(200)  # one full fetch (the funding of 200 accounts, say)
    feed(pacing, now, 200, 0.5)
    assert not pacing.busy


def test_a_light_worker_paces_as_its_own_settings_say() -> None:
    now = [0.0]
    tuning = FetchTuning(
        interval_ms=15,
        linger_ms=2,
        busy_records_per_second=1000,
        light_interval_ms=5,
        light_linger_ms=1,
    )
    pacing = Pacing(tuning, clock=lambda: now[0])
    feed(pacing, now, 100, 2)
    assert not pacing.busy and (pacing.fetch_interval(), pacing.linger()) == (0.005, 0.001)
    feed(pacing, now, 5000, 2)
    assert pacing.busy and (pacing.fetch_interval(), pacing.linger()) == (0.015, 0.002)


def test_pacing_not_following_the_load_is_always_busy() -> None:
    pacing = Pacing(FetchTuning(interval_ms=15, linger_ms=2, follows_load=False))
    for _ in range(50):
        pacing.observe(0)
    assert pacing.busy and (pacing.fetch_interval(), pacing.linger()) == (0.015, 0.002)


async def test_the_producer_lingers_as_the_pacing_says(producer) -> None:
    now = [0.0]
    pacing = Pacing(FetchTuning(linger_ms=2, follows_load=True), clock=lambda: now[0])
    kpay = KPayProducer(app.transport, loop=asyncio.get_running_loop(), pacing=pacing)
    client = kpay._producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", linger_ms=2)
    try:
        kpay._follow(pacing)
        assert client._message_accumulator._linger_time == 0.0  # light: sent at once
        feed(pacing, now, 100_000, 2)
        assert pacing.busy and client._message_accumulator._linger_time == 0.002
    finally:
        await client.stop()


class Fetched:
    """A message as the consumer acknowledges it (hashable and weakly referenced)."""

    def __init__(self, tp: TP, offset: int, topic: str) -> None:
        self.tp, self.offset, self.topic, self.acked = tp, offset, topic, False


async def test_only_assigned_partitions_are_committed(producer, monkeypatch) -> None:
    """An event fetched before a rebalance and finished after it must not be committed by its
    old owner: the new owner may not have read the committed offset yet."""
    consumer = app._new_consumer()
    kept, lost = TP("kpay.payments.incoming", 0), TP("kpay.payments.incoming", 1)
    monkeypatch.setattr(consumer, "assignment", lambda: {kept})
    committed: list[dict] = []

    async def commit_offsets(offsets, start_new_transaction=True) -> bool:
        committed.append(dict(offsets))
        return True

    monkeypatch.setattr(consumer, "_commit_offsets", commit_offsets)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)  # agents not started
    for tp in (kept, lost):
        consumer.ack(Fetched(tp=tp, offset=4, topic=tp.topic))
    assert await consumer.force_commit() is True
    assert [set(offsets) for offsets in committed] == [{kept}]
    # while it is being revoked, a partition is still committed
    await consumer.force_commit({kept, lost})
    assert set(committed[-1]) == {lost}
