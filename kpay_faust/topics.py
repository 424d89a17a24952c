"""Every KPay topic, in dataflow order.

    client ─▶ payments.incoming ─▶ inflight_gateway ─▶ payments.inflight (keyed by account)
              accounts ─▶ accounts_ledger                 │ account_stage: debit ▸ credit ▸ refund
                                                          ▼
              payments.complete (keyed by payment id) ─▶ confirmed_stage (releases inflight)
                                                          ▼
              payments.confirmed (the outcome) ─▶ payment_metrics and clients
              control ─▶ control plane         dlq ◀─ anything that cannot be processed

Keys are raw UTF-8 strings and values raw bytes (JSON documents that each stage decodes once),
so any Kafka client can produce and read them. Topics that share a key space have the same
partition count, which makes Faust assign partition N of each to the same worker.
"""

from __future__ import annotations

from faust import TopicT

from kpay_faust.app import app, settings


def _topic(suffix: str, *, partitions: int | None = None) -> TopicT:
    return app.topic(
        f"{settings.topic_prefix}.{suffix}",
        partitions=partitions or settings.partitions,
        key_type=str,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        # KPay owns these topics: "internal" makes Faust create them, with these partitions,
        # before its consumer subscribes, so the first assignment of a new cluster has them.
        internal=True,
    )


payments_incoming = _topic("payments.incoming")  # keyed by payment id (keyless accepted)
payments_inflight = _topic("payments.inflight")  # keyed by the account to act on
payments_complete = _topic("payments.complete")  # keyed by payment id
payments_confirmed = _topic("payments.confirmed")  # keyed by payment id: the outcome
accounts = _topic("accounts")  # keyed by account id
control = _topic("control", partitions=1)  # one partition: one total order of commands
dlq = _topic("dlq")  # keyed by the origin's key

ALL_TOPICS = (
    payments_incoming,
    payments_inflight,
    payments_complete,
    payments_confirmed,
    accounts,
    control,
    dlq,
)


async def declare_all() -> None:
    """Create every topic that does not exist yet (idempotent)."""
    for topic in ALL_TOPICS:
        await topic.maybe_declare()


@app.task
async def declare_topics() -> None:
    """Create the topics no agent subscribes to (and so Faust does not), such as the DLQ."""
    await declare_all()


async def emit(topic: TopicT, key: str, value: bytes) -> None:
    """Send a stage's output record: in a batch when the producer can (``KPayProducer.emit``),
    else through Faust (under ``exactly_once``, and in unit tests)."""
    batched = getattr(app.producer, "emit", None)
    if batched is None or not await batched(topic, key, value):
        await topic.send(key=key, value=value)
