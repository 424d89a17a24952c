"""Payment and account events as they travel on Kafka, and the records Tables keep.

Events are plain JSON (no framework metadata) with a schema version ``v``; amounts are decimal
strings. Stages validate untrusted input once, at the edge (gateway, accounts ledger).
"""

from __future__ import annotations

import math
from contextlib import suppress
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any

import faust
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from kpay_faust.settings import get_settings

SCHEMA_VERSION = 1
IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]*$"
PaymentId = Annotated[str, Field(min_length=1, max_length=128, pattern=IDENT)]
AccountId = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENT)]
CENT = Decimal("0.01")


class State(StrEnum):
    INCOMING = "incoming"
    DEBIT = "debit"
    CREDIT = "credit"
    REFUND = "refund"
    COMPLETE = "complete"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


FINAL_STATES = frozenset({State.CONFIRMED, State.REJECTED})


def parse_amount(value: Any) -> Decimal:
    """A positive amount with at most 2 decimal places, below the configured maximum.

    Accepts decimal strings and JSON integers; refuses JSON floats, whose value is not exact.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        if isinstance(value, float):
            raise ValueError('must be a decimal string such as "10.50", not a JSON number')
        raise ValueError("must be a decimal string")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{str(value)[:40]!r} is not a decimal number") from None
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    if amount <= 0:
        raise ValueError("must be greater than 0")
    limit = get_settings().max_amount
    if amount > limit:
        raise ValueError(f"must not exceed {limit}")
    if amount != amount.quantize(CENT):
        raise ValueError("must have at most 2 decimal places")
    return amount.quantize(CENT)


def parse_balance(value: Any) -> Decimal:
    """An opening balance or deposit: like an amount, but zero is allowed."""
    if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
        with suppress(InvalidOperation, ValueError):
            if Decimal(value) == 0:
                return Decimal("0.00")
    return parse_amount(value)


#: How the API documents amounts: decimal strings (JSON integers are accepted too; JSON numbers
#: with a fraction are refused, as their value is not exact).
DECIMAL_STRING = r"^[0-9]{1,15}(\.[0-9]{1,2})?$"
Amount = Annotated[
    Decimal,
    BeforeValidator(parse_amount),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DECIMAL_STRING,
            "description": "Greater than 0, at most 2 decimal places, at most KPAY_MAX_AMOUNT.",
            "examples": ["10.50"],
        }
    ),
]
Balance = Annotated[
    Decimal,
    BeforeValidator(parse_balance),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DECIMAL_STRING,
            "description": "0 or more, at most 2 decimal places, at most KPAY_MAX_AMOUNT.",
            "examples": ["100.00"],
        }
    ),
]


class Parties(BaseModel):
    """Payer and payee of a payment, which must differ."""

    payer: AccountId = Field(alias="from")
    payee: AccountId = Field(alias="to")

    @model_validator(mode="after")
    def _distinct(self) -> Parties:
        if self.payer == self.payee:
            raise ValueError("payer and payee must differ")
        return self


class PaymentSubmission(Parties):
    """What a client submits to ``payments.incoming``; validated by the inflight gateway."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    v: int = SCHEMA_VERSION
    id: PaymentId
    amount: Amount
    created_at: float | None = None

    @field_validator("created_at")
    @classmethod
    def _created_at(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite epoch timestamp")
        return value


class Completion(BaseModel):
    """Where the message that finished a payment sits in ``payments.complete``, and when it was
    written: the same on every publication of the outcome, so a count can recognise repeats."""

    model_config = ConfigDict(frozen=True)

    partition: int
    offset: int
    timestamp: float


#: One hop of a payment's journey: (step, worker, input partition, input offset, when the input
#: record was written, when the step wrote its output), epoch seconds. Compact, because every
#: event carries the hops before it; the step names its input topic (``HOP_TOPICS``).
Hop = tuple[str, str, int, int, float, float]
HOP_TOPICS = {
    "gateway": "payments.incoming",
    "debit": "payments.inflight",
    "credit": "payments.inflight",
    "refund": "payments.inflight",
    "confirmed": "payments.complete",
}


class PaymentEvent(BaseModel):
    """A payment between stages; ``amount`` is absent only on rejections of unreadable input.
    ``hops`` is its lineage so far: one ``Hop`` per step that handled it, in order."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    v: int = SCHEMA_VERSION
    id: str
    payer: str | None = Field(None, alias="from")
    payee: str | None = Field(None, alias="to")
    amount: Decimal | None = None
    state: State
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    completion: Completion | None = None  # on outcomes
    hops: tuple[Hop, ...] | None = None

    def advance(self, state: State, **changes: Any) -> PaymentEvent:
        return self.model_copy(update={"state": state, **changes})

    def after(self, hop: Hop, state: State, **changes: Any) -> PaymentEvent:
        """The next event: ``state``, with ``hop`` (the step that made it) added to the lineage."""
        return self.advance(state, hops=(*(self.hops or ()), hop), **changes)

    def encode(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> PaymentEvent:
        return cls.model_validate_json(raw)


class AccountAction(StrEnum):
    OPEN = "open"
    DEPOSIT = "deposit"


class AccountCommand(BaseModel):
    """Opens or funds an account; on ``accounts`` keyed by the account id."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int = SCHEMA_VERSION
    ref: Annotated[str, Field(min_length=1, max_length=128)]
    action: AccountAction
    account: AccountId
    amount: Balance

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


# ---- Table records ---------------------------------------------------------------------


RECENT_PAYMENTS = 5


class Account(faust.Record, serializer="json", include_metadata=False, coerce=True):
    """Balance of one account, the last payment applied to it and the last step that moved it
    (``'<payment id>:<state>'`` or ``'account:<ref>'``), which tells a redelivered step whose
    outcome record a crash lost that it was applied.

    ``funded`` (opening balance and deposits), ``debited`` and ``credited`` (credits and
    refunds) are written with the balance, so ``balance == funded + credited - debited`` holds
    in every row and reconciliation can check it (``kpay_faust.ops.reconcile``). Rows written
    before they existed have None: such an account is counted as untracked."""

    balance: Decimal
    opened_at: float
    last_payment: str | None = None
    updated_at: float | None = None
    last_step: str | None = None
    funded: Decimal | None = None
    debited: Decimal | None = None
    credited: Decimal | None = None
    recent: list[str] | None = None  # the last RECENT_PAYMENTS payment ids, newest last

    def tracked(self) -> bool:
        return None not in (self.funded, self.debited, self.credited)

    def recent_after(self, payment_id: str) -> list[str]:
        """``recent`` once ``payment_id`` moved the account (a refund moves it again)."""
        kept = [p for p in self.recent or () if p != payment_id]
        return [*kept[-(RECENT_PAYMENTS - 1) :], payment_id]

    def expected_balance(self) -> Decimal | None:
        """What the balance must be by the money that entered and left the account."""
        if self.funded is None or self.debited is None or self.credited is None:
            return None
        return self.funded + self.credited - self.debited


class PaymentStatus(faust.Record, serializer="json", include_metadata=False, coerce=True):
    """Where a payment is; ``inflight`` is true from admission until its outcome is released."""

    id: str
    state: str
    payer: str | None = None
    payee: str | None = None
    amount: Decimal | None = None
    reason: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    source_offset: int = -1  # offset of the payments.incoming message that admitted it
    complete_offset: int = -1  # offset of the payments.complete message that finished it
    admitted: bool = False  # counted in flight by the gateway (not rejected there)
    inflight: bool = False
    hops: list[Any] | None = None  # the finished payment's lineage (``Hop`` lists)
    trace_id: str | None = None  # its W3C trace (``traceparent`` headers of its records)

    def same_request(self, other: PaymentSubmission) -> bool:
        return (self.payer, self.payee, self.amount) == (other.payer, other.payee, other.amount)


class Totals(faust.Record, serializer="json", include_metadata=False, coerce=True):
    """A count and an amount, kept per partition and summed when queried."""

    count: int = 0
    amount: Decimal = Decimal("0.00")

    def add(self, amount: Decimal | None, sign: int = 1) -> Totals:
        return Totals(count=self.count + sign, amount=self.amount + sign * (amount or 0))


TOTAL_KINDS = ("inflight", "confirmed", "rejected")


class PipelineTotals(faust.Record, serializer="json", include_metadata=False, coerce=True):
    """Value in flight, confirmed and rejected on one partition: one row, so one changelog
    write per event however many totals it moves. Summed over partitions when queried."""

    inflight_count: int = 0
    inflight_amount: Decimal = Decimal("0.00")
    # Every admission and every release of an admitted payment, so that reconciliation can
    # check ``inflight == admitted - released``; None in rows written before they existed.
    admitted_count: int | None = None
    admitted_amount: Decimal | None = None
    released_count: int | None = None
    released_amount: Decimal | None = None
    confirmed_count: int = 0
    confirmed_amount: Decimal = Decimal("0.00")
    rejected_count: int = 0
    rejected_amount: Decimal = Decimal("0.00")
    # The last offset of each input counted here: a redelivered event is not counted twice.
    incoming_offset: int = -1
    complete_offset: int = -1

    @classmethod
    def fresh(cls) -> PipelineTotals:
        """A new partition's row, tracking admissions and releases from the start."""
        zero = Decimal("0.00")
        return cls(admitted_count=0, admitted_amount=zero, released_count=0, released_amount=zero)

    def of(self, kind: str) -> Totals:
        count, amount = getattr(self, f"{kind}_count"), getattr(self, f"{kind}_amount")
        return Totals(count=count or 0, amount=amount if amount is not None else Decimal("0.00"))

    def tracks_admissions(self) -> bool:
        return self.admitted_count is not None and self.released_count is not None

    def moved(self, sums: dict[str, tuple[int, Decimal]], **other: Any) -> PipelineTotals:
        """The row with each kind's (count, amount) added and ``other`` fields set, in one new
        row: a batch's moves summed first cost one ``derive`` instead of one per move."""
        fields: dict[str, Any] = dict(other)
        for kind, (count, amount) in sums.items():
            current = getattr(self, f"{kind}_count")
            if current is None:
                continue  # a row written before this kind was kept: left untracked
            fields[f"{kind}_count"] = current + count
            fields[f"{kind}_amount"] = getattr(self, f"{kind}_amount") + amount
        return self.derive(**fields) if fields else self

    def add(self, kind: str, amount: Decimal | None, sign: int = 1) -> PipelineTotals:
        if getattr(self, f"{kind}_count") is None:
            return self  # a row written before this kind was kept: left untracked
        moved = self.of(kind).add(amount, sign)
        return self.derive(**{f"{kind}_count": moved.count, f"{kind}_amount": moved.amount})
