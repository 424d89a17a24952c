"""``faust -A kpay generate``: open and fund accounts, then offer payments at a steady rate."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from decimal import Decimal

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.cli import AppCommand, option

from kpay_faust import topics
from kpay_faust.app import app, settings
from kpay_faust.payments.models import AccountAction, AccountCommand

TICK = 0.01


def account_name(index: int) -> str:
    return f"gen-{index:05d}"


async def open_accounts(count: int, balance: Decimal) -> None:
    """Open ``count`` accounts; the refs are stable, so a rerun does not fund them twice."""
    for index in range(count):
        name = account_name(index)
        command = AccountCommand(
            ref=f"generate-open-{name}", action=AccountAction.OPEN, account=name, amount=balance
        )
        await topics.accounts.send(key=name, value=command.encode())
    await app.producer.flush()


class OutcomeWatcher:
    """Reads ``payments.confirmed`` from its current end, as a client would, and keeps each
    payment's first outcome and its latency: submission (``created_at``) to the outcome's
    arrival here, both on this process's clock."""

    def __init__(self) -> None:
        self.submitted: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}
        self.latencies_ms: list[float] = []
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=[f"{url.host}:{url.port or 9092}" for url in app.conf.broker],
            enable_auto_commit=False,
        )
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Start at the topic's end now, so no outcome of a payment sent later is missed."""
        consumer = self._consumer
        await consumer.start()
        name = topics.payments_confirmed.get_topic_name()
        partitions = topics.payments_confirmed.partitions or settings.partitions
        try:
            consumer.assign([TopicPartition(name, p) for p in range(partitions)])
            await consumer.seek_to_end()
            for tp in consumer.assignment():
                await consumer.position(tp)  # the end offsets, resolved before any payment
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
                        self.latencies_ms.append((arrived - submitted) * 1000)

    async def wait(self, timeout: float, report) -> bool:
        """Wait until every submitted payment has an outcome; False if ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        while len(self.outcomes) < len(self.submitted) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if report and time.monotonic() - last_report >= 1:
                report(f"waiting: {len(self.outcomes)} of {len(self.submitted)} finished")
                last_report = time.monotonic()
        return len(self.outcomes) == len(self.submitted)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    def summary(self) -> str:
        states = list(self.outcomes.values())
        line = (
            f"finished: {states.count('confirmed')} confirmed, {states.count('rejected')} "
            f"rejected, {len(self.submitted) - len(states)} without outcome"
        )
        if len(self.latencies_ms) >= 2:
            cuts = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
            line += (
                f"; latency ms p50 {cuts[49]:.1f} p95 {cuts[94]:.1f} p99 {cuts[98]:.1f} "
                f"max {max(self.latencies_ms):.1f}"
            )
        return line


@app.command(
    option("--rate", type=float, default=100.0, help="Payments offered per second."),
    option("--accounts", type=int, default=100, help="Accounts to open, fund and pay between."),
    option("--duration", type=float, default=10.0, help="Seconds to run; 0 runs until stopped."),
    option("--amount-max", type=str, default="50.00", help="Largest payment amount."),
    option("--balance", type=str, default="1000.00", help="Opening balance of each account."),
    option("--seed", type=int, default=None, help="Random seed, for a repeatable load."),
    option("--quiet", is_flag=True, default=False, help="No progress lines."),
    option(
        "--wait",
        is_flag=True,
        default=False,
        help="Then wait for every outcome; report confirmed/rejected and latency percentiles.",
    ),
    option("--wait-timeout", type=float, default=120.0, help="Longest wait for outcomes (s)."),
)
async def generate(
    self: AppCommand,
    rate: float,
    accounts: int,
    duration: float,
    amount_max: str,
    balance: str,
    seed: int | None,
    quiet: bool,
    wait: bool,
    wait_timeout: float,
) -> None:
    """Open and fund accounts, then produce payments between them at RATE per second."""
    if rate <= 0 or accounts < 2:
        raise SystemExit("generate: --rate must be > 0 and --accounts at least 2")
    rng = random.Random(seed)
    cents_max = int(Decimal(amount_max) * 100)
    await topics.declare_all()
    await open_accounts(accounts, Decimal(balance))
    watcher = OutcomeWatcher() if wait else None
    if watcher is not None:
        await watcher.start()
    run = uuid.uuid4().hex[:8]
    sent, started, last_report = 0, time.monotonic(), time.monotonic()
    while duration <= 0 or time.monotonic() - started < duration:
        due = int((time.monotonic() - started) * rate)
        while sent < due:
            payer, payee = rng.sample(range(accounts), 2)
            payment_id = f"gen-{run}-{sent}"
            doc = {
                "id": payment_id,
                "from": account_name(payer),
                "to": account_name(payee),
                "amount": f"{Decimal(rng.randint(1, cents_max)) / 100:.2f}",
                "created_at": time.time(),
            }
            if watcher is not None:
                watcher.submitted[payment_id] = doc["created_at"]
            await topics.payments_incoming.send(key=payment_id, value=orjson.dumps(doc))
            sent += 1
        now = time.monotonic()
        if not quiet and now - last_report >= 1:
            self.say(f"sent {sent} payments, {sent / (now - started):.0f}/s")
            last_report = now
        await asyncio.sleep(TICK)
    await app.producer.flush()
    elapsed = time.monotonic() - started
    self.say(f"done: sent {sent} payments in {elapsed:.1f}s ({sent / elapsed:.0f}/s)")
    if watcher is not None:
        try:
            complete = await watcher.wait(wait_timeout, None if quiet else self.say)
        finally:
            await watcher.stop()
        self.say(watcher.summary())
        if not complete:
            raise SystemExit(f"generate: not every outcome arrived within {wait_timeout:g}s")
