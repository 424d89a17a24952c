"""``faust -A kpay generate``: open and fund accounts, then offer payments at a steady rate."""

from __future__ import annotations

import random
import time
import uuid
from decimal import Decimal

from faust.cli import AppCommand, option

from kpay_faust import loadgen, topics
from kpay_faust.app import app, settings
from kpay_faust.kafka_security import client_options


def account_name(index: int) -> str:
    return f"gen-{index:05d}"


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
    await app.declare_topics()
    bootstrap = app.bootstrap_servers
    security = client_options(settings)
    names = [account_name(index) for index in range(accounts)]
    make = loadgen.PaymentMaker(
        names, amount_max, prefix=f"gen-{uuid.uuid4().hex[:8]}-", rng=random.Random(seed)
    )
    watcher = None
    if wait:
        name, partitions = topics.payments_confirmed.get_topic_name(), settings.partitions
        watcher = loadgen.OutcomeReader(bootstrap, name, partitions, **security)
        await watcher.start()
    client = loadgen.producer(bootstrap, **security)
    await client.start()
    try:
        send = loadgen.sender(client)
        opens = loadgen.open_account_docs(names, Decimal(balance), ref="generate-open")
        await loadgen.send_all(send, topics.accounts.get_topic_name(), opens, "account")
        await client.flush()

        def report(sent: int, elapsed: float) -> None:
            self.say(f"sent {sent} payments, {sent / elapsed:.0f}/s")

        started = time.monotonic()
        sent = await loadgen.offer_at_rate(
            send,
            topics.payments_incoming.get_topic_name(),
            make,
            rate,
            duration,
            on_sent=watcher.watch if watcher is not None else None,
            report=None if quiet else report,
        )
        await client.flush()
        elapsed = time.monotonic() - started
    finally:
        await client.stop()
    self.say(f"done: sent {sent} payments in {elapsed:.1f}s ({sent / elapsed:.0f}/s)")
    if watcher is not None:
        try:
            complete = await watcher.wait(wait_timeout, None if quiet else self.say)
        finally:
            await watcher.stop()
        self.say(watcher.summary())
        if not complete:
            raise SystemExit(f"generate: not every outcome arrived within {wait_timeout:g}s")
