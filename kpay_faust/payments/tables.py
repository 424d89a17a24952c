"""The business function's state. Tables keyed by account or payment id are written only while
processing an event of that key's partition, so ``router.key_store`` finds their owner."""

from __future__ import annotations

import contextlib
import time
from typing import Any, cast

from faust.serializers import codecs

from kpay_faust.app import app, settings
from kpay_faust.engine.table import KPayTable
from kpay_faust.payments.models import Account, PaymentStatus, PipelineTotals

#: Step outcomes are kept in the ledger under this prefix; account ids start with a letter or
#: a digit, so the two kinds of key never meet.
STEP = "~"
_AT = "\t"  # between a step outcome's text and the time it was recorded


class StepOutcome(str):
    """A step's outcome (``ok`` or ``rejected: <reason>``) and when it was recorded (None for
    outcomes recorded before they carried a time, which are kept)."""

    at: float | None

    def __new__(cls, text: str, at: float | None = None) -> StepOutcome:
        outcome = super().__new__(cls, text)
        outcome.at = at
        return outcome


class LedgerCodec(codecs.Codec):
    """Ledger values: an ``Account`` row as JSON, a step outcome as ``~``, its text, a tab and
    the time it was recorded. (Faust writes a Record with the Record's own JSON serializer, so
    only outcomes come here.)"""

    def _dumps(self, obj: Any) -> bytes:
        at = getattr(obj, "at", None)
        return (STEP + str(obj) + ("" if at is None else f"{_AT}{at:.3f}")).encode()

    def _loads(self, s: bytes) -> Any:
        if s.startswith(STEP.encode()):
            return step_outcome_of(s)
        return Account.loads(s)


def step_outcome_of(raw: bytes) -> StepOutcome:
    """A step outcome from the ledger's bytes (``~ok\t1764532800.123``)."""
    text, at = raw[len(STEP) :].decode(), None
    head, tab, tail = text.rpartition(_AT)
    if tab:
        with contextlib.suppress(ValueError):  # a tab inside an outcome's text: no time
            text, at = head, float(tail)
    return StepOutcome(text, at)


codecs.register("kpay_ledger", LedgerCodec())


class LedgerTable(KPayTable):
    """A table of account rows and step outcomes, with values in the ledger codec."""

    def _serializer_from_type(self, typ: Any) -> Any:
        return "kpay_ledger" if typ is None else super()._serializer_from_type(typ)


def _table(name: str, value_type: type, help: str) -> KPayTable:
    table = app.Table(
        name,
        key_type=str,
        value_type=value_type,
        partitions=settings.partitions,
        help=help,
        extra_topic_configs=app.changelog_config,
    )
    return cast(KPayTable, table)  # the app's Table class


# Balances and the outcomes of the steps that moved them share one table, so one changelog
# partition holds both in the order they were written: after a crash the recovered state is a
# prefix of that log, never a step's outcome without the balance it moved (nor the reverse
# unnoticed: an account row names the last step applied to it, ``Account.last_step``).
ledger: LedgerTable = app.tables.add(  # type: ignore[assignment]
    LedgerTable(
        app,
        name="ledger",
        key_type=str,
        partitions=settings.partitions,
        beacon=app.tables.beacon,
        extra_topic_configs=app.changelog_config,
        help="Account rows by account id, and '~<payment id>:<step>' -> 'ok' or 'rejected: ...'.",
    )
)
payment_status = _table("payment-status", PaymentStatus, "State per payment id.")
# Totals over all payments: one row per partition (key = partition number), summed when read.
pipeline_totals = _table(
    "pipeline-totals", PipelineTotals, "Inflight, confirmed and rejected totals, per partition."
)


def account_row(account_id: str) -> Account | None:
    """The account's row, or None (also for a step key asked for as an account id)."""
    row = ledger.get(account_id)
    return row if isinstance(row, Account) else None


def step_outcome(step: str) -> str | None:
    """The recorded outcome of a step (``'<payment id>:<state>'`` or ``'account:<ref>'``)."""
    outcome = ledger.get(STEP + step)
    return outcome if isinstance(outcome, str) else None


def record_step(step: str, outcome: str) -> str:
    """Record a step's outcome, in the event's changelog partition after its balance write."""
    ledger[STEP + step] = StepOutcome(outcome, time.time())
    return outcome
