"""``faust -A kpay generate``: open and fund accounts, then offer payments at a steady rate."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from decimal import Decimal

import orjson
from faust.cli import AppCommand, option

from kpay_faust import topics
from kpay_faust.app import app
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


@app.command(
    option("--rate", type=float, default=100.0, help="Payments offered per second."),
    option("--accounts", type=int, default=100, help="Accounts to open, fund and pay between."),
    option("--duration", type=float, default=10.0, help="Seconds to run; 0 runs until stopped."),
    option("--amount-max", type=str, default="50.00", help="Largest payment amount."),
    option("--balance", type=str, default="1000.00", help="Opening balance of each account."),
    option("--seed", type=int, default=None, help="Random seed, for a repeatable load."),
    option("--quiet", is_flag=True, default=False, help="No progress lines."),
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
) -> None:
    """Open and fund accounts, then produce payments between them at RATE per second."""
    if rate <= 0 or accounts < 2:
        raise SystemExit("generate: --rate must be > 0 and --accounts at least 2")
    rng = random.Random(seed)
    cents_max = int(Decimal(amount_max) * 100)
    await topics.declare_all()
    await open_accounts(accounts, Decimal(balance))
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
