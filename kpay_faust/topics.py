"""Every KPay topic, in dataflow order: its name, key, value and who writes and reads it.

Keys are raw UTF-8 strings and values raw bytes (JSON documents of the model named, which each
stage decodes itself), so any Kafka client can produce and read them. Topics that share a key
space have the same partition count, which makes Faust assign partition N of each to the same
worker. ``DATAFLOW`` keeps the table below for tests and docs.
"""

from __future__ import annotations

from dataclasses import dataclass

from faust import TopicT

from kpay_faust.app import app, settings
from kpay_faust.control.models import ControlCommand
from kpay_faust.ops.models import AuditRecord, DeadLetter, LogRecord
from kpay_faust.payments.models import AccountCommand, PaymentEvent, PaymentSubmission


@dataclass(frozen=True)
class Flow:
    topic: TopicT
    key: str
    value: type
    writers: tuple[str, ...]
    readers: tuple[str, ...]


DATAFLOW: list[Flow] = []


def _flow(
    suffix: str, key: str, value: type, writers: str, readers: str, partitions: int = 0
) -> TopicT:
    topic = app.owned_topic(f"{settings.topic_prefix}.{suffix}", partitions or settings.partitions)
    DATAFLOW.append(Flow(topic, key, value, tuple(writers.split(", ")), tuple(readers.split(", "))))
    return topic


# fmt: off
#                           name                  key            value              writers ─▶ readers
payments_incoming  = _flow("payments.incoming",  "payment id",  PaymentSubmission, "clients, POST /payments, inflight_gateway", "inflight_gateway")
payments_inflight  = _flow("payments.inflight",  "account id",  PaymentEvent,      "inflight_gateway, account_stage", "account_stage")
payments_complete  = _flow("payments.complete",  "payment id",  PaymentEvent,      "inflight_gateway, account_stage", "confirmed_stage")
payments_confirmed = _flow("payments.confirmed", "payment id",  PaymentEvent,      "confirmed_stage", "payment_metrics, clients")
accounts           = _flow("accounts",           "account id",  AccountCommand,    "clients, POST /accounts, accounts_ledger", "accounts_ledger")
control            = _flow("control",            "pipeline",    ControlCommand,    "POST /control/*, clients", "control_plane, every worker's control follower", partitions=1)
dlq                = _flow("dlq",                "origin's key", DeadLetter,       "every stage, dlq replay", "GET /dlq, dlq list|replay")
logs               = _flow("logs",               "worker",      LogRecord,         "every worker's WARNING and above", "GET /logs, faust -A kpay logs")
audit              = _flow("audit",              "principal",   AuditRecord,       "every command over HTTP, control_plane, accounts_ledger, dlq replay", "GET /audit, faust -A kpay audit")
# fmt: on
