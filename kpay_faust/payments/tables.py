"""The business function's state. Tables keyed by account or payment id are written only while
processing an event of that key's partition, so ``router.key_store`` finds their owner."""

from __future__ import annotations

from kpay_faust.app import app, settings
from kpay_faust.payments.models import Account, PaymentStatus, Totals


def _table(name: str, value_type: type, help: str):
    return app.Table(
        name, key_type=str, value_type=value_type, partitions=settings.partitions, help=help
    )


balances = _table("balances", Account, "Balance per account id.")
payment_status = _table("payment-status", PaymentStatus, "State per payment id.")
applied_steps = _table(
    "applied-steps", float, "'<payment id>:<step>' -> when the step moved money (idempotency)."
)
# Totals over all payments: one row per partition (key = partition number), summed when read.
inflight_totals = _table("inflight-totals", Totals, "Value in flight, per partition.")
confirmed_totals = _table("confirmed-totals", Totals, "Confirmed payments, per partition.")
rejected_totals = _table("rejected-totals", Totals, "Rejected payments, per partition.")

TOTALS = {
    "inflight": inflight_totals,
    "confirmed": confirmed_totals,
    "rejected": rejected_totals,
}
