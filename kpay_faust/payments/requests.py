"""HTTP request bodies: the public API's shapes, kept apart from the Kafka events."""

from __future__ import annotations

import uuid
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from kpay_faust.payments.models import AccountId, Amount, Balance, Parties, PaymentId

_STRICT = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class OpenAccount(BaseModel):
    model_config = _STRICT

    id: AccountId
    balance: Balance = Decimal("0.00")


class Deposit(BaseModel):
    model_config = _STRICT

    amount: Amount


class SubmitPayment(Parties):
    model_config = _STRICT

    id: PaymentId = Field(default_factory=lambda: uuid.uuid4().hex)
    amount: Amount
    created_at: float | None = None


class AccountsPage(BaseModel):
    """``GET /accounts?after=<id>&limit=<n>``: the accounts after ``after`` (the previous page's
    ``next``), in id order. ``extra="forbid"`` turns a misspelt parameter into a 400."""

    model_config = _STRICT

    after: str | None = Field(None, min_length=1, max_length=256)
    limit: int = Field(100, ge=1, le=1000)

    def query(self) -> dict[str, str]:
        return {"limit": str(self.limit)} | ({"after": self.after} if self.after else {})
