"""The retention horizon on the real broker: a finished payment's status and its step records
are deleted, with tombstones in their changelogs, once ``KPAY_RETENTION_SECONDS`` have passed;
balances and totals stay."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import DefaultPartitioner

from tests.integration.conftest import new_cluster
from tests.integration.test_payments import (
    balance,
    offer,
    open_accounts,
    outcome,
    pay,
    pipeline,
    random_payments,
    settle,
    uid,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

HORIZON = 3  # seconds


TOPIC_CONFIG = 1  # a config entry's source: set on the topic (DescribeConfigs v1)


async def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    """The configs set on ``topic`` itself (not the broker's defaults)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (answer,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    (resource,) = answer.resources
    return {name: value for name, value, _, source, *_ in resource[4] if source == TOPIC_CONFIG}


async def changelog(bootstrap: str, topic: str, count: int) -> dict[str, bytes | None]:
    """The last value of each key in ``topic`` (``count`` partitions), read to its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        end = await consumer.end_offsets(partitions)
        last: dict[str, bytes | None] = {}
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    last[record.key.decode()] = record.value
        return last
    finally:
        await consumer.stop()


def accounts_on_every_partition(partitions: int, per_partition: int) -> list[str]:
    """Account ids whose keys cover every partition ``per_partition`` times (Kafka's default
    partitioner), so payments between them reach every partition of the account stage."""
    partitioner, every = DefaultPartitioner(), list(range(partitions))
    found: dict[int, list[str]] = {p: [] for p in every}
    while any(len(ids) < per_partition for ids in found.values()):
        account = uid("busy")
        found[partitioner(account.encode(), every, every)].append(account)
    return [account for ids in found.values() for account in ids[:per_partition]]


async def test_a_payment_past_the_horizon_leaves_tombstones_and_its_money(
    broker, bootstrap, tmp_path
):
    cluster = new_cluster(
        broker, tmp_path, KPAY_RETENTION_SECONDS=str(HORIZON), KPAY_STORE="rocksdb://"
    )
    try:
        cluster.worker().start().wait_ready()
        payer, payee = uid("ret"), uid("ret")
        open_accounts(cluster, {payer: "10.00", payee: "0.00"})
        first = pay(cluster, payer, payee, "4.00")
        assert outcome(cluster, first)["state"] == "confirmed"

        # Sweeps run as the stages work: keep payments flowing on every partition.
        partitions = int(cluster.env["KPAY_PARTITIONS"])
        others = accounts_on_every_partition(partitions, per_partition=3)
        open_accounts(cluster, dict.fromkeys(others, "100.00"))
        rng = random.Random(3)

        step_keys = (f"~{first}:debit", f"~{first}:credit")

        async def gone() -> tuple[dict, dict] | None:
            before = pipeline(cluster)
            docs = random_payments(rng, others, 200)
            await offer(bootstrap, cluster.topic("payments.incoming"), docs)
            settle(cluster, before, len(docs), worker=0)
            if cluster.workers[0].get(f"/payments/{first}")[0] != 404:
                return None
            statuses = await changelog(
                bootstrap, f"{cluster.name}-payment-status-changelog", partitions
            )
            if statuses.get(first) is not None:
                return None  # expired (404 already), but no sweep has deleted it yet
            steps = await changelog(bootstrap, f"{cluster.name}-ledger-changelog", partitions)
            if any(steps.get(key) is not None for key in step_keys):
                return None
            return statuses, steps

        for _ in range(30):
            found = await gone()
            if found is not None:
                break
        else:
            raise AssertionError(
                f"payment {first} still has state long after the horizon:\n"
                + cluster.workers[0].log_tail(60)
            )

        statuses, steps = found
        assert first in statuses and statuses[first] is None  # a tombstone: compaction drops it
        # ... once its segment is closed: KPay sets the changelogs' segment size.
        for table in ("ledger", "payment-status"):
            config = await topic_config(bootstrap, f"{cluster.name}-{table}-changelog")
            assert config["segment.bytes"] == str(64 * 2**20), config
            assert config["cleanup.policy"] == "compact", config
        assert all(key in steps and steps[key] is None for key in step_keys)
        assert steps[payer] is not None  # the account row stays
        assert balance(cluster, payer) == Decimal("6.00")
        assert balance(cluster, payee) == Decimal("4.00")
        assert pipeline(cluster)["confirmed"]["count"] >= 1

        # Past the horizon the id is free: the same request is a new payment.
        assert pay(cluster, payer, payee, "4.00", pid=first) == first
        eventually(lambda: balance(cluster, payee), lambda b: b == Decimal("8.00"))
        assert balance(cluster, payer) == Decimal("2.00")
    finally:
        cluster.stop()
