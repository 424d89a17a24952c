"""``GET /metrics`` in Prometheus text format: this worker's view, meant to be scraped per worker.

Stages count into ``kpay_faust.instruments``; totals and consumer lag are read here at scrape
time from the partitions this worker actively owns, so summing a series over all workers gives
the cluster total.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from kpay_faust.app import app
from kpay_faust.engine.consumer import KPayConsumer
from kpay_faust.engine.restore import RESTORED
from kpay_faust.engine.stages import CPU_SECONDS
from kpay_faust.engine.stores import memory_bytes
from kpay_faust.instruments import REGISTRY
from kpay_faust.payments.totals import local_pipeline


class KPayCollector(Collector):
    """Reads tables and the consumer at scrape time; nothing is kept twice."""

    def collect(self) -> Iterator[Any]:
        totals: dict[str, dict[str, Any]] = {}
        for row in local_pipeline()["partitions"].values():
            for kind, value in row.items():
                entry = totals.setdefault(kind, {"count": 0, "amount": 0.0})
                entry["count"] += value["count"]
                entry["amount"] += float(value["amount"])
        payments_total = CounterMetricFamily(
            "kpay_payments", "Payments finished, by outcome.", labels=["outcome"]
        )
        amount_total = CounterMetricFamily(
            "kpay_payment_amount", "Value of finished payments, by outcome.", labels=["outcome"]
        )
        for outcome in ("confirmed", "rejected"):
            value = totals.get(outcome, {"count": 0, "amount": 0.0})
            payments_total.add_metric([outcome], value["count"])
            amount_total.add_metric([outcome], value["amount"])
        yield payments_total
        yield amount_total
        inflight = totals.get("inflight", {"count": 0, "amount": 0.0})
        yield GaugeMetricFamily(
            "kpay_inflight_payments", "Payments admitted, not finished.", value=inflight["count"]
        )
        yield GaugeMetricFamily(
            "kpay_inflight_amount", "Value admitted, not finished.", value=inflight["amount"]
        )
        lag = GaugeMetricFamily(
            "kpay_consumer_lag", "Messages not yet read, per topic.", labels=["topic"]
        )
        for topic, behind in sorted(consumer_lag().items()):
            lag.add_metric([topic], behind)
        yield lag
        cpu = CounterMetricFamily(
            "kpay_stage_cpu_seconds",
            "CPU time of this worker's event loop spent in each stage's own work.",
            labels=["stage"],
        )
        for stage, seconds in sorted(CPU_SECONDS.items()):
            cpu.add_metric([stage], seconds)
        yield cpu
        yield CounterMetricFamily(
            "kpay_restored_records",
            "Changelog records written into this worker's stores by bulk restore.",
            value=RESTORED["records"],
        )
        yield CounterMetricFamily(
            "kpay_restore_seconds",
            "Time this worker spent restoring changelogs in bulk.",
            value=RESTORED["seconds"],
        )
        yield GaugeMetricFamily(
            "kpay_paced",
            "1 while this worker is busy and paces its fetches and produced batches as "
            "KPAY_FETCH_INTERVAL_MS and KPAY_PRODUCER_LINGER_MS say, 0 while it is light and "
            "paces them as the shorter KPAY_LIGHT_* settings say.",
            value=1 if app.pacing.busy else 0,
        )
        rocksdb = GaugeMetricFamily(
            "kpay_rocksdb_memory_bytes",
            "Memory of this worker's RocksDB stores: the shared block cache (with index and "
            "filter blocks), all memtables, and table readers outside the cache.",
            labels=["kind"],
        )
        for kind, held in sorted(memory_bytes(app.store_memory, app.tables.values()).items()):
            rocksdb.add_metric([kind], held)
        yield rocksdb


def consumer_lag() -> dict[str, int]:
    """High-water mark minus the next offset to read, summed per topic of this worker. The
    changelog partitions of the tables it serves are left out: it writes them and reads them
    only to recover, so their high-water mark runs ahead of a read position that never moves.
    The read position is the last record the fetch loop handed over (Faust's monitor sees only
    the records it delivers, not those of stages the fetch loop calls itself)."""
    consumer, committed = app.consumer, app.monitor.tp_committed_offsets
    if isinstance(consumer, KPayConsumer):
        last_read = consumer.last_delivered
    else:
        last_read = app.monitor.tp_read_offsets.get
    written = {tp for tp in app.assignor.assigned_actives() if tp.topic.endswith("-changelog")}
    lag: Counter[str] = Counter()
    for tp in consumer.assignment() - written:
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # no fetch yet for this partition
            continue
        if highwater is None:
            continue
        read = last_read(tp)
        position = max((-1 if read is None else read) + 1, committed.get(tp, 0))
        lag[tp.topic] += max(highwater - position, 0)
    return dict(lag)


REGISTRY.register(KPayCollector())


def exposition() -> bytes:
    return generate_latest(REGISTRY)
