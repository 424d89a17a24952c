"""The business function's HTTP shapes: request bodies and queries, and the answers, kept apart
from the Kafka events. The OpenAPI document is generated from these."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kpay_faust.payments.models import AccountId, Amount, Balance, Parties, PaymentId

_STRICT = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)
_ANSWER = ConfigDict(populate_by_name=True, serialize_by_alias=True)


def with_example(example: dict[str, Any], base: ConfigDict | None = None) -> ConfigDict:
    """A model's config with the example the API document shows (a test validates it)."""
    return ConfigDict(**(base or {}), json_schema_extra={"examples": [example]})


#: Money in an answer: a decimal string, exact (never a JSON number).
Money = Annotated[str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$", examples=["10.50"])]
Epoch = Annotated[float, Field(description="Seconds since the epoch.")]


class OpenAccount(BaseModel):
    model_config = with_example({"id": "neil", "balance": "100.00"}, _STRICT)

    id: AccountId
    balance: Balance = Decimal("0.00")


class Deposit(BaseModel):
    model_config = with_example({"amount": "25.00"}, _STRICT)

    amount: Amount


class SubmitPayment(Parties):
    model_config = with_example({"id": "p-1", "from": "neil", "to": "ben", "amount": "10"}, _STRICT)

    id: PaymentId = Field(
        default_factory=lambda: uuid.uuid4().hex,
        description="Unique per payment; generated when absent. Sending the same payment "
        "again with its id applies it once.",
    )
    amount: Amount
    created_at: float | None = Field(None, description="When the client made it (epoch s).")


class AccountsPage(BaseModel):
    """``GET /accounts?after=<id>&limit=<n>&prefix=<text>``: the accounts after ``after`` (the
    previous page's ``next``) whose id starts with ``prefix``, in id order. ``extra="forbid"``
    turns a misspelt parameter into a 400."""

    model_config = _STRICT

    after: str | None = Field(
        None, min_length=1, max_length=256, description="The previous page's next."
    )
    limit: int = Field(100, ge=1, le=1000)
    prefix: str | None = Field(
        None, min_length=1, max_length=64, description="Only ids that start with this."
    )

    def query(self) -> dict[str, str]:
        given = {"after": self.after, "prefix": self.prefix}
        return {"limit": str(self.limit)} | {k: v for k, v in given.items() if v}


# ---- answers ------------------------------------------------------------------------------


class AccountAnswer(BaseModel):
    model_config = with_example(
        {
            "id": "neil",
            "balance": "90.00",
            "last_payment": "p-1",
            "recent_payments": ["p-1"],
            "opened_at": 1764547200.0,
            "updated_at": 1764547260.5,
        },
        _ANSWER,
    )

    id: str
    balance: Money
    last_payment: str | None = None
    recent_payments: list[str] = Field(
        default_factory=list, description="The last payments that moved it, newest last."
    )
    opened_at: Epoch
    updated_at: Epoch | None = None


class AccountsAnswer(BaseModel):
    accounts: list[AccountAnswer]
    count: int
    next: str | None = Field(description="The after of the following page; null on the last.")
    unreadable: list[str] = Field(
        default_factory=list,
        description="Ids in this page's range whose stored rows cannot be read (bytes KPay "
        "did not write on the ledger's changelog); GET /reconcile lists them too.",
    )


class AccountAccepted(BaseModel):
    """The command is durably on ``kpay.accounts``; the ledger applies it shortly."""

    id: str
    balance: Money
    ref: str = Field(description="The command's reference: applied once however often sent.")


class DepositAccepted(BaseModel):
    id: str
    amount: Money
    ref: str


class PaymentAccepted(BaseModel):
    """The payment is durably on ``kpay.payments.incoming``: poll its status for the outcome."""

    id: str


State = Literal["incoming", "debit", "credit", "refund", "complete", "confirmed", "rejected"]


class PaymentAnswer(BaseModel):
    model_config = with_example(
        {
            "id": "p-1",
            "state": "confirmed",
            "reason": None,
            "from": "neil",
            "to": "ben",
            "amount": "10.00",
            "created_at": 1764547260.41,
            "started_at": 1764547260.42,
            "finished_at": 1764547260.47,
            "inflight": False,
        },
        _ANSWER,
    )

    id: str
    state: State
    reason: str | None = Field(None, description="Why it was rejected.")
    payer: str | None = Field(None, alias="from")
    payee: str | None = Field(None, alias="to")
    amount: Money | None = None
    created_at: Epoch | None = None
    started_at: Epoch | None = Field(None, description="When the gateway admitted it.")
    finished_at: Epoch | None = None
    inflight: bool


class HopAnswer(BaseModel):
    step: str = Field(description="gateway, debit, credit, refund or confirmed.")
    worker: str
    topic: str
    partition: int
    offset: int
    in_: Epoch = Field(alias="in", description="When the step's input was written.")
    out: Epoch = Field(description="When the step wrote its output.")
    ms: float = Field(description="Since the end of the hop before (the first: its input).")

    model_config = _ANSWER


class TraceAnswer(BaseModel):
    id: str
    state: State
    trace_id: str | None
    finished: bool
    latency_ms: float | None = Field(description="Submission to outcome; the hops' ms add up.")
    hops: list[HopAnswer]


class TotalAnswer(BaseModel):
    count: int
    amount: Money


class PipelineAnswer(BaseModel):
    """Payments in flight, confirmed and rejected, summed over every partition and worker."""

    model_config = with_example(
        {
            "inflight": {"count": 3, "amount": "42.10"},
            "confirmed": {"count": 1200, "amount": "30512.75"},
            "rejected": {"count": 4, "amount": "120.00"},
        }
    )

    inflight: TotalAnswer
    confirmed: TotalAnswer
    rejected: TotalAnswer
