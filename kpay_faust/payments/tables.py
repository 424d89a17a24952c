"""The business function's state. Tables keyed by account or payment id are written only while
processing an event of that key's partition, so ``router.key_store`` finds their owner."""

from __future__ import annotations

from kpay_faust.app import app, settings
from kpay_faust.payments.models import Account, PaymentStatus, PipelineTotals


def _table(name: str, value_type: type, help: str):
    return app.Table(
        name, key_type=str, value_type=value_type, partitions=settings.partitions, help=help
    )


balances = _table("balances", Account, "Balance per account id.")
payment_status = _table("payment-status", PaymentStatus, "State per payment id.")
applied_steps = _table(
    "applied-steps", str, "'<payment id>:<step>' -> the step's outcome: 'ok' or 'rejected: ...'."
)
# Totals over all payments: one row per partition (key = partition number), summed when read.
pipeline_totals = _table(
    "pipeline-totals", PipelineTotals, "Inflight, confirmed and rejected totals, per partition."
)
