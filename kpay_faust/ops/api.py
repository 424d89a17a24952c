"""The operational plane's HTTP shapes: queries of the append-only topics and the answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kpay_faust.ops.models import AuditRecord, DeadLetter, LogRecord
from kpay_faust.ops.reading import SINCE_MAX
from kpay_faust.payments.api import Money, TotalAnswer


class Window(BaseModel):
    """Which records of an append-only topic: the newest ``limit``, or the first ``limit``
    since ``since`` (epoch seconds)."""

    model_config = ConfigDict(extra="forbid")
    since: float | None = Field(default=None, ge=0, le=SINCE_MAX, description="Epoch seconds.")
    limit: int = Field(default=100, ge=1, le=1000)


class DeadLetterQuery(Window):
    stage: str | None = Field(default=None, max_length=64, description="Only this stage's.")


class AuditQuery(Window):
    principal: str | None = Field(default=None, max_length=128, description="Only theirs.")


class LogQuery(Window):
    level: Literal["WARNING", "ERROR", "CRITICAL"] = Field(
        "WARNING", description="This level and above."
    )


class DeadLetterAnswer(DeadLetter):
    dlq_partition: int
    dlq_offset: int


class DeadLettersAnswer(BaseModel):
    dead_letters: list[DeadLetterAnswer] = Field(description="Oldest first.")
    count: int


class AuditAnswer(BaseModel):
    records: list[AuditRecord] = Field(description="Oldest first.")
    count: int


class LogsAnswer(BaseModel):
    records: list[LogRecord] = Field(description="Oldest first.")
    count: int


class MoneyAnswer(BaseModel):
    balances: Money
    funded: Money = Field(description="Opening balances and deposits.")
    in_transit: Money = Field(description="Debited and not yet credited or refunded.")
    debited: Money
    credited: Money


class ReconcileAnswer(BaseModel):
    """Whether every worker's books reconcile; each failure names what is wrong."""

    passed: bool
    failures: list[str]
    conservation: Literal["pass", "settling", "fail"] = Field(
        description="settling: payments between debit and credit while the books were read."
    )
    money: MoneyAnswer
    payments: dict[Literal["inflight", "admitted", "released"], TotalAnswer]
    accounts: int
    untracked_accounts: int
    stuck_after_seconds: float
    stuck_not_yet_checked_partitions: list[int]
    balance_mismatches: list[Any]
    negative_balances: list[Any]
    unreadable_rows: list[Any] = Field(
        description="Account rows whose stored bytes no stage wrote (a tampered changelog)."
    )
    totals_mismatches: list[Any]
    negative_totals: list[Any]
    stuck: list[Any]


DEAD_LETTER_PLACE = r"^[0-9]{1,6}@[0-9]{1,19}$"


class ReplayRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"dead_letters": ["0@12"]}]}
    )

    dead_letters: list[Annotated[str, Field(pattern=DEAD_LETTER_PLACE)]] = Field(
        min_length=1, max_length=100, description="PARTITION@OFFSET of each, on kpay.dlq."
    )

    def positions(self) -> set[tuple[int, int]]:
        return {(int(p), int(o)) for p, _, o in (d.partition("@") for d in self.dead_letters)}


class ReplayResult(BaseModel):
    dead_letter: str
    stage: str
    replayed: bool
    why: str | None = Field(None, description="Why it was not replayed.")
    topic: str | None = None
    key: str | None = None
    partition: int | None = Field(None, description="Where the replayed record was written.")
    offset: int | None = None


class ReplayAnswer(BaseModel):
    """What was done with each dead letter asked for that was found."""

    results: list[ReplayResult]
    replayed: int
    not_found: list[str]
