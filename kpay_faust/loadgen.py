"""Load generation, shared by ``faust -A kpay generate``, ``make bench`` and the tests: accounts
opened with stable refs, random payments between them, offered at a steady rate in bursts, and
their outcomes read back from ``payments.confirmed`` with the latency a client sees.

It speaks to Kafka with aiokafka alone (plain JSON, raw keys), as any client of KPay would, so
it needs no running app.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from kpay_faust.engine import clients

TICKS = 100  # a rate is offered in this many bursts a second

Send = Callable[[str, bytes, bytes], Awaitable[Any]]  # (topic, key, value)


def open_account_docs(accounts: Iterable[str], balance: Decimal | str, ref: str) -> list[dict]:
    """Commands that open ``accounts`` with ``balance``; the refs are stable (``ref`` and the
    account), so sending them again opens and funds nothing twice."""
    return [
        {"ref": f"{ref}-{name}", "action": "open", "account": name, "amount": str(balance)}
        for name in accounts
    ]


class PaymentMaker:
    """Random payments between ``accounts``, amounts from 0.01 to ``amount_max``, ids
    ``<prefix><n>``, stamped with ``created_at`` when made."""

    def __init__(
        self,
        accounts: list[str],
        amount_max: Decimal | str = "50.00",
        prefix: str = "p-",
        rng: random.Random | None = None,
    ) -> None:
        if len(accounts) < 2:
            raise ValueError("payments need at least two accounts")
        self.accounts = accounts
        self.cents_max = int(Decimal(amount_max) * 100)
        self.prefix = prefix
        self.rng = rng or random.Random()
        self.made = 0

    def __call__(self) -> dict:
        payer, payee = self.rng.sample(self.accounts, 2)
        doc = {
            "id": f"{self.prefix}{self.made}",
            "from": payer,
            "to": payee,
            "amount": f"{Decimal(self.rng.randint(1, self.cents_max)) / 100:.2f}",
            "created_at": time.time(),
        }
        self.made += 1
        return doc


def random_payments(maker: PaymentMaker, count: int) -> list[dict]:
    return [maker() for _ in range(count)]


def encoded(doc: dict, key_field: str) -> tuple[bytes, bytes]:
    return str(doc[key_field]).encode(), orjson.dumps(doc)


async def send_all(send: Send, topic: str, docs: Iterable[dict], key_field: str) -> int:
    """Send every document keyed by its ``key_field``, as fast as the producer batches them."""
    count = 0
    for doc in docs:
        await send(topic, *encoded(doc, key_field))
        count += 1
    return count


async def offer_at_rate(
    send: Send,
    topic: str,
    make: Callable[[], dict],
    rate: float,
    seconds: float,
    on_sent: Callable[[dict], None] | None = None,
    report: Callable[[int, float], None] | None = None,
) -> int:
    """Offer ``rate`` payments a second for ``seconds`` (0: until cancelled), in ``TICKS``
    bursts a second; returns how many were sent. ``report(sent, elapsed)`` about once a second."""
    started = last_report = time.monotonic()
    sent = 0
    while True:
        elapsed = time.monotonic() - started
        if 0 < seconds <= elapsed:
            return sent
        due = int(elapsed * rate)
        while sent < due:
            doc = make()
            if on_sent is not None:
                on_sent(doc)
            await send(topic, *encoded(doc, "id"))
            sent += 1
        if report is not None and time.monotonic() - last_report >= 1:
            report(sent, elapsed)
            last_report = time.monotonic()
        await asyncio.sleep(1 / TICKS)


def producer(bootstrap: str | list[str], linger_ms: int = 5, **security: Any) -> AIOKafkaProducer:
    """A producer for load; ``security``: aiokafka's security options, if the broker needs any."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, **security)


def sender(client: AIOKafkaProducer) -> Send:
    async def send(topic: str, key: bytes, value: bytes) -> Any:
        return await client.send(topic, key=key, value=value)

    return send


class OutcomeReader:
    """Reads ``payments.confirmed`` as a client would and keeps each watched payment's first
    outcome and its latency: ``created_at`` to the outcome's arrival here (one clock), and
    from the gateway's admission stamp (``started_at``) to that arrival, which leaves out the
    time a payment waited in Kafka before it was admitted."""

    def __init__(
        self, bootstrap: str | list[str], topic: str, partitions: int, **security: Any
    ) -> None:
        self.submitted: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}
        self.latencies_ms: dict[str, float] = {}
        self.admitted_ms: dict[str, float] = {}
        self.topic, self.partitions = topic, partitions
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, **security
        )
        self._task: asyncio.Task | None = None

    def watch(self, doc: dict) -> None:
        self.submitted[doc["id"]] = doc["created_at"]

    async def start(self, from_end: bool = True) -> None:
        """Start reading; ``from_end`` starts at the topic's end now, so no outcome of a payment
        sent later is missed and none sent before is read."""
        consumer = self._consumer
        await consumer.start()
        try:
            consumer.assign([TopicPartition(self.topic, p) for p in range(self.partitions)])
            if from_end:
                await consumer.seek_to_end()
            else:
                await consumer.seek_to_beginning()
            for tp in consumer.assignment():
                await consumer.position(tp)  # resolved before any payment is sent
        except BaseException:
            await consumer.stop()
            raise
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            arrived = time.time()
            for records in batches.values():
                for record in records:
                    outcome = orjson.loads(record.value)
                    payment_id = outcome.get("id")
                    submitted = self.submitted.get(payment_id)
                    if submitted is not None and payment_id not in self.outcomes:
                        self.outcomes[payment_id] = outcome.get("state", "?")
                        self.latencies_ms[payment_id] = (arrived - submitted) * 1000
                        started = outcome.get("started_at")
                        if isinstance(started, int | float):
                            self.admitted_ms[payment_id] = (arrived - started) * 1000

    async def wait(self, timeout: float, report: Callable[[str], None] | None = None) -> bool:
        """Wait until every watched payment has an outcome; False if ``timeout`` passed."""
        last_report = time.monotonic()
        deadline = last_report + timeout
        while len(self.outcomes) < len(self.submitted) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if report is not None and time.monotonic() - last_report >= 1:
                report(f"waiting: {len(self.outcomes)} of {len(self.submitted)} finished")
                last_report = time.monotonic()
        return len(self.outcomes) == len(self.submitted)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await clients.stop(self._consumer)

    def summary(self) -> str:
        states = list(self.outcomes.values())
        line = (
            f"finished: {states.count('confirmed')} confirmed, {states.count('rejected')} "
            f"rejected, {len(self.submitted) - len(states)} without outcome"
        )
        latencies = list(self.latencies_ms.values())
        if len(latencies) >= 2:
            cuts = statistics.quantiles(latencies, n=100, method="inclusive")
            line += (
                f"; latency ms p50 {cuts[49]:.1f} p95 {cuts[94]:.1f} p99 {cuts[98]:.1f} "
                f"max {max(latencies):.1f}"
            )
        return line
