"""Fetching as KPay needs it: the broker's fetch wait and size from settings, and paced fetches.

aiokafka keeps one fetch request in flight per broker, and leaves out of it every partition
whose fetched records are not all consumed yet. A request sent while the input partitions still
had records in hand covers only partitions that get new records once the worker has processed
those; the broker holds such a request until ``fetch_max_wait_ms`` (Faust fixes 1,500 ms), and
the worker sat idle with a backlog on its input for up to that long.

The broker answers a fetch as soon as it has ``fetch_min_bytes`` (one byte by default), so
records produced while a fetch is waiting come back at once, instead of waiting out the rest of
``fetch_max_wait_ms``; pacing keeps that from becoming a fetch per few records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from kpay_faust.engine import compat


@dataclass(frozen=True)
class FetchTuning:
    """``KPAY_FETCH_MAX_WAIT_MS``, ``KPAY_FETCH_MIN_BYTES``, ``KPAY_FETCH_INTERVAL_MS``,
    ``KPAY_PRODUCER_LINGER_MS``, ``KPAY_PACING_FOLLOWS_LOAD``, ``KPAY_PACED_ABOVE``,
    ``KPAY_LIGHT_FETCH_INTERVAL_MS`` and ``KPAY_LIGHT_LINGER_MS``."""

    max_wait_ms: int = 100
    min_bytes: int = 1
    interval_ms: int = 15
    linger_ms: int = 2
    follows_load: bool = True
    busy_records_per_second: int = 1500
    light_interval_ms: int = 4
    light_linger_ms: int = 0


class Pacing:
    """How long a worker lets fetches and produced batches wait, following its load.

    Pacing (a fetch at most every ``interval_ms``, batches lingering ``linger_ms``) keeps a busy
    worker from spending its CPU on fetches of a few records and requests of a few records.
    On a lightly loaded worker it only adds latency: each hop of a payment waited out part of
    the interval and the linger, about 40 ms of a 70 ms median at 100 payments/s. A light worker
    paces with ``light_interval_ms`` and ``light_linger_ms`` instead: a short interval keeps
    most of the latency gained and saves a third of the CPU that fetching every record as it
    arrives costs (each fetch is Python work for every partition read; docs/benchmarks.md).

    The load is the rate of records the fetch loop hands to the stages, averaged over about a
    second: unlike the records per fetch, it does not depend on the pacing itself. A worker is
    *busy* above ``tuning.busy_records_per_second`` and *light* again only below half of it, so
    it does not switch back and forth at the edge. Paced always if ``tuning.follows_load`` is
    off.
    """

    PERIOD = 0.25  # seconds between two looks at the rate
    WEIGHT = 0.3  # of the newest look in the average

    def __init__(self, tuning: FetchTuning, clock: Callable[[], float] = time.monotonic) -> None:
        self.tuning = tuning
        self.busy = not tuning.follows_load
        self.rate = 0.0  # records a second, averaged
        self._clock = clock
        self._since = clock()
        self._count = 0
        self._listeners: list[Callable[[bool], None]] = []

    def observe(self, delivered: int) -> None:
        """A fetch handed over ``delivered`` records."""
        if not self.tuning.follows_load:
            return
        self._count += delivered
        now = self._clock()
        elapsed = now - self._since
        if elapsed < self.PERIOD:
            return
        self.rate += (self._count / elapsed - self.rate) * self.WEIGHT
        self._since, self._count = now, 0
        limit = self.tuning.busy_records_per_second
        busy = self.rate >= limit / 2 if self.busy else self.rate > limit
        if busy != self.busy:
            self.busy = busy
            for listener in self._listeners:
                listener(busy)

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(busy)`` whenever the worker turns busy or light."""
        self._listeners.append(listener)

    def fetch_interval(self) -> float:
        """Seconds a fetch waits after the one before it, now."""
        tuning = self.tuning
        return (tuning.interval_ms if self.busy else tuning.light_interval_ms) / 1000

    def linger(self) -> float:
        """Seconds a produced batch may wait for more records, now."""
        return (self.tuning.linger_ms if self.busy else self.tuning.light_linger_ms) / 1000


class KPayConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with the fetch wait and size of ``tuning`` and paced fetches."""

    def __init__(self, *args: Any, pacing: Pacing, **kwargs: Any) -> None:
        self.pacing = pacing
        self.tuning = pacing.tuning
        super().__init__(*args, **kwargs)

    async def on_start(self) -> None:
        await super().on_start()  # starts the aiokafka consumer, which makes its fetcher
        client = compat.started_aiokafka_consumer(self)
        if (self.tuning.interval_ms or self.tuning.light_interval_ms) and client is not None:
            pace_fetches(compat.fetcher_of(client), self.pacing.fetch_interval)

    def _create_worker_consumer(self, transport: Any) -> Any:
        client = super()._create_worker_consumer(transport)
        compat.set_fetch_tuning(client, self.tuning.max_wait_ms, self.tuning.min_bytes)
        return client


def pace_fetches(
    fetcher: Any, interval: Callable[[], float], clock: Callable[[], float] = time.monotonic
) -> None:
    """Make aiokafka's ``fetcher`` send a fetch request no sooner than ``interval()`` seconds
    after the one before it (``Pacing.fetch_interval``: short while the worker is light).

    aiokafka sends the next fetch as soon as the records of the last one are consumed, which is
    when the worker produces what those records caused. With a fetch that waits for many bytes,
    those outputs reached the broker just after the next request and waited out the whole
    ``fetch_max_wait_ms`` at each hop (four per payment); with one that returns on the first
    byte, a busy worker fetched a few records at a time and spent its CPU on fetches. Paced, a
    fetch returns at once with what arrived since the last one, so a record waits half the
    interval on average, and a worker sends at most ``1 / interval`` fetches a second.

    The fetcher's routine asks its plan what to send each time it wakes (on a response, on
    records consumed, or after the timeout this returns); a fetch held back here is sent on the
    next call after the interval.
    """
    plan = compat.fetch_plan(fetcher)
    last_sent = float("-inf")

    def paced(assignment: Any) -> Any:
        nonlocal last_sent
        fetches, resets, timeout, invalid_metadata, resume = plan(assignment)
        if fetches:
            now = clock()
            early = last_sent + interval() - now
            if early > 0:
                return [], resets, min(timeout, early), invalid_metadata, resume
            last_sent = now
        return fetches, resets, timeout, invalid_metadata, resume

    compat.replace_fetch_plan(fetcher, paced)
