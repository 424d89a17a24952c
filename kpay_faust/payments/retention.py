"""How long the business function keeps what makes payments idempotent.

A finished payment's ``payment-status`` row and the ledger's record of each step that moved
money exist so that a redelivered or resubmitted event is not applied twice. Redelivery happens
within seconds of a crash; a client retrying a payment does so within minutes. Kept forever,
they would make every store, changelog and restart grow with the number of payments ever made,
so each is deleted ``KPAY_RETENTION_SECONDS`` (7 days by default) after the payment finished or
the step was recorded. A payment id reused after that is a new payment (docs/http-api.md).
Account rows, totals and payments still in flight are never deleted.
"""

from __future__ import annotations

from typing import Any

import orjson

from kpay_faust.app import settings
from kpay_faust.engine.retention import Sweeper
from kpay_faust.instruments import ROWS_EXPIRED
from kpay_faust.payments.models import PaymentStatus
from kpay_faust.payments.tables import (
    STEP,
    StepOutcome,
    ledger,
    payment_status,
)

_STEP = STEP.encode()


def within_horizon(at: float | None, now: float) -> bool:
    """Whether something done at ``at`` is still remembered (unknown times are)."""
    return at is None or at >= now - settings.retention_seconds


def status_expired(value: Any, now: float) -> bool:
    """A status row (the store's JSON, or the row) of a payment finished before the horizon."""
    if isinstance(value, bytes):
        try:
            finished = orjson.loads(value).get("finished_at")
        except (orjson.JSONDecodeError, AttributeError):
            return False
    elif isinstance(value, PaymentStatus):
        finished = value.finished_at
    else:
        return False
    return isinstance(finished, int | float) and finished < now - settings.retention_seconds


def step_expired(value: Any, now: float) -> bool:
    """A step outcome (the store's bytes, or the outcome) recorded before the horizon."""
    if isinstance(value, bytes):  # the sweep's case, on every row it reads: the time only
        if not value.startswith(_STEP):
            return False
        _text, tab, at = value.rpartition(b"\t")
        try:
            return bool(tab) and float(at) < now - settings.retention_seconds
        except ValueError:  # a tab inside the outcome's text, and no time: kept
            return False
    outcome = value
    if not isinstance(outcome, StepOutcome) or outcome.at is None:
        return False
    return outcome.at < now - settings.retention_seconds


def unexpired_status(status: PaymentStatus | None, now: float) -> PaymentStatus | None:
    """``status``, unless its payment finished before the horizon: such a row is gone as far as
    anyone can tell, whether or not a sweep has reached it yet (a partition with no traffic
    is not swept), so its id is free for a new payment and ``GET /payments/{id}`` finds nothing."""
    return None if status is not None and status_expired(status, now) else status


def unexpired_outcome(outcome: str | None, now: float) -> str | None:
    """A step's recorded ``outcome``, unless it was recorded before the horizon: then the step
    belongs to an earlier payment whose id a new one reuses, and must be applied anew."""
    return None if outcome is not None and step_expired(outcome, now) else outcome


statuses = Sweeper(
    payment_status, status_expired, on_deleted=ROWS_EXPIRED.labels("payment-status").inc
)
steps = Sweeper(ledger, step_expired, start=STEP, on_deleted=ROWS_EXPIRED.labels("ledger").inc)
