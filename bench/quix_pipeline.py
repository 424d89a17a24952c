"""KPay's payment pipeline written as a Quix Streams user would write it, for ``make bench-quix``.

It runs in its own virtualenv (``.venv-quix``, from ``bench/quix-constraints.txt``) and imports
nothing of KPay. The same four hops as KPay's business function, with the same state and the
same records per payment, so the two can be compared on one broker in one sitting:

- gateway (``incoming``, keyed by payment id): validates the payment with pydantic, drops a
  reused id, keeps the payment's status, sends the debit step keyed by the payer;
- account stage (``steps``, keyed by account): opens accounts, debits the payer if the balance
  covers the amount (else the payment is rejected), credits the payee; each account keeps its
  balance and, per step, a marker that makes a redelivered step harmless;
- confirmed stage (``settled``, keyed by payment id): keeps the final status and publishes the
  outcome on ``payments.confirmed`` in the shape KPay's outcome reader reads.

What it leaves out, that KPay carries: HTTP, the metrics, control and operational planes,
dead letters, inflight limits. Usage: ``python bench/quix_pipeline.py BROKER TAG STATE_DIR``.
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from quixstreams import Application

IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]*$"
CENT = Decimal("0.01")


class Payment(BaseModel):
    id: Annotated[str, Field(min_length=1, max_length=128, pattern=IDENT)]
    payer: Annotated[str, Field(min_length=1, max_length=64, pattern=IDENT, alias="from")]
    payee: Annotated[str, Field(min_length=1, max_length=64, pattern=IDENT, alias="to")]
    amount: Decimal

    @field_validator("amount", mode="before")
    @classmethod
    def _decimal_string(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("must be a decimal string")
        return value

    @field_validator("amount")
    @classmethod
    def _cents(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value <= 0 or value != value.quantize(CENT):
            raise ValueError("must be positive with at most 2 decimal places")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Payment:
        if self.payer == self.payee:
            raise ValueError("payer and payee must differ")
        return self


def outcome(payment_id: str, state: str, started_at: float, reason: str | None = None) -> dict:
    return {
        "kind": "settle",
        "id": payment_id,
        "state": state,
        "reason": reason,
        "started_at": started_at,
    }


def admit(doc: Any, state: Any) -> dict | None:
    """Gateway: one status per payment id; a reused id is dropped without touching it (its
    first submission's outcome is the answer, as in KPay)."""
    started_at = time.time()
    payment_id = doc.get("id") if isinstance(doc, dict) else None
    if state.get("status") is not None:
        return None
    try:
        payment = Payment.model_validate(doc)
    except ValidationError as exc:
        state.set("status", "rejected")
        return outcome(str(payment_id), "rejected", started_at, str(exc.errors()[0]["msg"]))
    state.set("status", "debit")
    return {
        "kind": "debit",
        "id": payment.id,
        "from": payment.payer,
        "to": payment.payee,
        "amount": str(payment.amount),
        "started_at": started_at,
    }


def account_step(doc: dict, state: Any) -> dict | None:
    """Account stage: the balance of the record's account, changed at most once per step."""
    kind = doc["kind"]
    if kind == "open":
        if state.get("balance") is None:
            state.set("balance", doc["amount"])
        return None
    marker = f"{kind}:{doc['id']}"
    done = state.get(marker)
    if done is not None:
        return done  # a redelivered step: send the same output again, change nothing
    balance, amount = state.get("balance"), Decimal(doc["amount"])
    if kind == "debit":
        if balance is None or Decimal(balance) < amount:
            out = outcome(doc["id"], "rejected", doc["started_at"], "insufficient funds")
        else:
            state.set("balance", str(Decimal(balance) - amount))
            out = {**doc, "kind": "credit"}
    elif balance is None:  # credit to an account never opened: the payer gets it back
        out = {**doc, "kind": "refund"}
    else:
        state.set("balance", str(Decimal(balance) + amount))
        out = (
            outcome(doc["id"], "confirmed", doc["started_at"])
            if kind == "credit"
            else outcome(doc["id"], "rejected", doc["started_at"], "payee unknown")
        )
    state.set(marker, out)
    return out


def settle(doc: dict, state: Any) -> dict:
    """Confirmed stage: the final status, kept once; the outcome as clients read it."""
    if state.get("status") is None:
        state.set("status", doc["state"])
    return {
        "id": doc["id"],
        "state": doc["state"],
        "reason": doc["reason"],
        "started_at": doc["started_at"],
    }


def main(broker: str, tag: str, state_dir: str) -> None:
    app = Application(
        broker_address=broker,
        consumer_group=tag,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
    )

    def topic(name: str) -> Any:
        return app.topic(f"{tag}.{name}", key_deserializer="str", key_serializer="str")

    incoming, steps = topic("payments.incoming"), topic("steps")
    settled, confirmed = topic("settled"), topic("payments.confirmed")

    def routed(value: dict, *_: Any) -> Any:
        return settled if value["kind"] == "settle" else steps

    def routing_key(value: dict) -> str:
        if value["kind"] == "settle":
            return value["id"]
        return value["from"] if value["kind"] in ("debit", "refund") else value["to"]

    gateway = app.dataframe(incoming).apply(admit, stateful=True)
    gateway = gateway.filter(lambda value: value is not None)
    gateway.to_topic(routed, key=routing_key)
    accounts = app.dataframe(steps).apply(account_step, stateful=True)
    accounts = accounts.filter(lambda value: value is not None)
    accounts.to_topic(routed, key=routing_key)
    outcomes = app.dataframe(settled).apply(settle, stateful=True)
    outcomes.to_topic(confirmed, key=lambda value: value["id"])
    app.run()


if __name__ == "__main__":
    main(*sys.argv[1:4])
