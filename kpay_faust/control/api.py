"""The control plane's HTTP shapes: command bodies and the answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kpay_faust.control.models import ControlCommand, ControlState
from kpay_faust.payments.api import TotalAnswer


class Operator(BaseModel):
    """Optional body of pause and resume: who asked, for the audit trail (a token's name wins
    when the caller has one)."""

    model_config = ConfigDict(extra="forbid")
    by: str | None = Field(default=None, max_length=128)


class RateLimit(Operator):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"per_second": 500}]})

    per_second: float | None = Field(
        gt=0,
        le=1_000_000,
        strict=True,  # no true for 1/s
        description="Admissions a second over the whole cluster; null lifts the cap.",
    )


class CommandAccepted(BaseModel):
    accepted: ControlCommand
    offset: int = Field(description="Where the command sits on kpay.control.")
    applied: bool = Field(description="Whether the answering worker has applied it (5 s wait).")


class WorkerControl(BaseModel):
    worker: str
    paused: bool
    state: ControlState
    holding: bool = Field(description="Paused, with its input partitions paused.")
    caught_up: bool
    per_second: float | None
    incoming_partitions: list[int]
    paused_partitions: list[int]
    held_for_load: list[int] = Field(
        description="Input partitions held back: admission_limit payments in flight."
    )
    admission_limit: int


class StatusAnswer(BaseModel):
    state: Literal["running", "draining", "paused"] = Field(
        description="draining: paused with payments in flight; paused once none are."
    )
    inflight: TotalAnswer
    since: float | None
    per_second: float | None
    workers: list[WorkerControl]
