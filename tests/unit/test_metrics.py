"""The metrics stage and the window merge, through ``agent.test_context()``."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import orjson
import pytest

from kpay_faust.instruments import counted
from kpay_faust.metrics import agents
from kpay_faust.metrics.models import WindowStats
from kpay_faust.metrics.tables import WINDOWED
from kpay_faust.metrics.views import merge_windows
from kpay_faust.payments.models import Completion, PaymentEvent, State


def recorded() -> float:
    """Outcomes the metrics stage has counted on this process."""
    return counted("kpay_stage_events", "payment_metrics")


T0 = 1_800_000_000.0  # a whole minute


def outcome(
    pid: str, state: State, amount: str, latency_ms: float, at: float, completion=None
) -> bytes:
    return PaymentEvent(
        id=pid,
        payer="a",
        payee="b",
        amount=Decimal(amount),
        state=state,
        started_at=at - latency_ms / 1000,
        finished_at=at,
        completion=completion,
    ).encode()


def windows(name: str) -> dict[tuple[str, float], WindowStats]:
    return {(key[0], key[1][0]): value for key, value in WINDOWED[name].table.data.items()}


async def put_all(agent, rows) -> None:
    """Put without waiting per event (a batch would wait out its timer for each), then wait
    until the stage has counted them all."""
    before = recorded()
    for pid, state, amount, latency, at, partition in rows:
        value = outcome(pid, state, amount, latency, at)
        await agent.put(value, key=pid, partition=partition, timestamp=at, wait=False)
    for _ in range(200):
        if recorded() - before >= len(rows):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the metrics stage did not count every outcome")


async def test_counts_amounts_and_latency_per_window_and_partition(producer):
    rows = [(f"p{i}", State.CONFIRMED, f"{i}.25", float(i), T0 + 0.1, 0) for i in range(1, 101)]
    rows += [("r1", State.REJECTED, "7.00", 500.0, T0 + 0.2, 0)]
    rows += [("q1", State.CONFIRMED, "3.00", 10.0, T0 + 1.5, 1)]
    async with agents.payment_metrics.test_context() as agent:
        await put_all(agent, rows)
    per_second = windows("1s")
    first = per_second["0", T0]
    assert (first.count, first.confirmed, first.rejected) == (101, 100, 1)
    assert first.amount == sum(Decimal(f"{i}.25") for i in range(1, 101))
    assert first.largest == Decimal("100.25")
    latency = first.latency_ms()
    assert latency["min"] == 1.0 and latency["max"] == 500.0
    assert 49 <= latency["p50"] <= 52  # 1 % relative accuracy around the true median, 51
    assert latency["min"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert per_second["1", T0 + 1].count == 1
    per_minute = windows("1m")
    assert per_minute["0", T0].count == 101 and per_minute["1", T0].count == 1


async def test_a_second_batch_merges_into_the_same_window(producer):
    async with agents.payment_metrics.test_context() as agent:
        await put_all(agent, [("p1", State.CONFIRMED, "1.00", 5.0, T0 + 0.1, 2)])
        await put_all(agent, [("p2", State.CONFIRMED, "2.00", 15.0, T0 + 0.9, 2)])
    stats = windows("1s")["2", T0]
    assert stats.count == 2 and stats.amount == Decimal("3.00")
    assert stats.latency_ms()["min"] == 5.0 and stats.latency_ms()["max"] == 15.0


async def test_bad_outcomes_are_dead_lettered_and_the_batch_still_counts(producer):
    async with agents.payment_metrics.test_context() as agent:
        await agent.put(b"not json", key="x", partition=0, timestamp=T0, wait=False)
        await agent.put(
            PaymentEvent(id="d", payer="a", payee="b", state=State.DEBIT).encode(),
            key="d",
            partition=0,
            timestamp=T0,
            wait=False,
        )
        await put_all(agent, [("p1", State.CONFIRMED, "1.00", 5.0, T0 + 0.1, 0)])
    assert [orjson.loads(s.value)["stage"] for s in producer.to("dlq")] == ["payment_metrics"] * 2
    assert windows("1s")["0", T0].count == 1


def _answer(start: float, **stats) -> dict:
    return {"start": start, "end": start + 0.999, "stats": orjson.loads(_stats(**stats).dumps())}


def _stats(count: int, amount: str, latencies: list[float]) -> WindowStats:
    from kpay_faust.metrics.models import BatchStats

    batch = BatchStats()
    for index, latency in enumerate(latencies):
        batch.add(index < count, Decimal(amount) / count, latency)
    return batch.stats()


@pytest.mark.parametrize("limit", [1, 5])
def test_windows_from_two_workers_merge_newest_first(limit):
    fast, slow = [1.0] * 50, [400.0] * 50
    one = {"partitions": [0], "windows": [_answer(T0, count=50, amount="4.00", latencies=fast)]}
    two = {
        "partitions": [1],
        "windows": [
            _answer(T0, count=50, amount="6.00", latencies=slow),
            _answer(T0 + 1, count=1, amount="1.00", latencies=[9]),
        ],
    }
    merged = merge_windows([one, two], 1.0, limit)
    assert [w["start"] for w in merged] == [T0 + 1, T0][:limit]
    if limit > 1:
        both = merged[1]
        assert both["count"] == 100 and both["amount"] == "10.00" and both["per_second"] == 100
        assert both["latency_ms"]["min"] == 1 and both["latency_ms"]["max"] == 400
        assert both["latency_ms"]["mean"] == 200.5
        # merged from the sketches: the true p95 is 400, where a mean of p95s would say 200.5
        assert both["latency_ms"]["p95"] >= 396


async def test_redelivered_outcomes_are_not_counted_twice(producer):
    rows = [(f"p{i}", State.CONFIRMED, "1.00", 5.0, T0 + 0.1, 3) for i in range(3)]
    async with agents.payment_metrics.test_context() as agent:
        await put_all(agent, rows)
    before = recorded()
    async with agents.payment_metrics.test_context() as agent:  # offsets 0.. again: redelivery
        for pid, state, amount, latency, at, partition in [*rows, ("p9", *rows[0][1:])]:
            value = outcome(pid, state, amount, latency, at)
            await agent.put(value, key=pid, partition=partition, timestamp=at, wait=False)
        for _ in range(100):
            if recorded() > before:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
    assert recorded() - before == 1  # only offset 3, the new outcome
    assert windows("1s")["3", T0].count == 4 and windows("1m")["3", T0].count == 4


async def test_a_republished_outcome_counts_once_in_the_window_of_its_completion(producer):
    """After a crash the confirmed stage may publish an outcome again, at a new offset and
    later: it names the same finishing message, so it lands in the same window and is skipped."""
    done = Completion(partition=7, offset=41, timestamp=T0 + 0.5)
    first = outcome("p1", State.CONFIRMED, "2.00", 5.0, T0 + 0.6, done)
    other = outcome(
        "p2", State.CONFIRMED, "3.00", 5.0, T0 + 0.7, done.model_copy(update={"offset": 42})
    )
    async with agents.payment_metrics.test_context() as agent:
        before = recorded()
        await agent.put(first, key="p1", partition=5, timestamp=T0 + 0.6, wait=False)
        await agent.put(other, key="p2", partition=5, timestamp=T0 + 0.7, wait=False)
        await agent.put(first, key="p1", partition=5, timestamp=T0 + 3.2, wait=False)  # again
        await agent.put(other, key="p2", partition=5, timestamp=T0 + 3.3, wait=False)  # again
        late = outcome(
            "p3",
            State.CONFIRMED,
            "4.00",
            5.0,
            T0 + 3.4,
            done.model_copy(update={"offset": 43, "timestamp": T0 + 3.1}),
        )
        await agent.put(late, key="p3", partition=5, timestamp=T0 + 3.4, wait=False)
        for _ in range(200):
            if recorded() - before >= 3:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
    assert recorded() - before == 3
    per_second = windows("1s")
    assert per_second["5", T0].count == 2 and per_second["5", T0].amount == Decimal("5.00")
    assert per_second["5", T0 + 3].count == 1 and per_second["5", T0 + 3].amount == Decimal("4.00")
    assert ("5", T0 + 2) not in per_second
    assert windows("1m")["5", T0].count == 3
    assert windows("1m")["5", T0].counted_through == {"complete:7": 43}


async def test_consumer_lag_counts_records_handed_to_stages_the_fetch_loop_calls(
    producer, monkeypatch
):
    """Faust's monitor sees only the records Faust delivers; the lag of a topic whose stage the
    fetch loop calls itself is measured from the last record handed over, not the last commit."""
    from faust.types import TP

    from kpay_faust.app import app
    from kpay_faust.metrics.prometheus import consumer_lag

    tp = TP("kpay.payments.inflight", 0)
    consumer = app._new_consumer()  # noqa: SLF001
    consumer._read_offset[tp] = 94  # noqa: SLF001  # handed over up to 94; nothing committed
    monkeypatch.setattr(consumer, "assignment", lambda: {tp})
    monkeypatch.setattr(consumer, "highwater", lambda tp: 100)  # records 0..99
    monkeypatch.setattr(app, "_consumer", consumer)
    monkeypatch.setattr(app.assignor, "assigned_actives", lambda: set())
    assert consumer_lag() == {"kpay.payments.inflight": 5}
