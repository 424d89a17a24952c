"""``GET /metrics`` in Prometheus text format: this worker's view, meant to be scraped per worker.

Totals come from the partitions this worker actively owns, so summing a series over all workers
gives the cluster total. The latency histogram is observed by this worker's metrics stage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()

LATENCY_SECONDS = Histogram(
    "kpay_payment_latency_seconds",
    "Time from the gateway's admission stamp to the payment's outcome.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


class KPayCollector(Collector):
    """Reads tables and counters at scrape time; nothing is kept twice."""

    def collect(self) -> Iterator[Any]:
        from kpay_faust.metrics.agents import recorded
        from kpay_faust.ops.deadletter import dead_letters_sent
        from kpay_faust.payments import agents as payments
        from kpay_faust.payments.views import local_pipeline

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
        yield _by_label(
            "kpay_stage_events",
            "Events handled per stage.",
            "stage",
            payments.processed + Counter({"payment_metrics": recorded.total()}),
        )
        yield _by_label(
            "kpay_stage_duplicates",
            "Repeated events not applied twice.",
            "stage",
            payments.duplicates,
        )
        yield _by_label(
            "kpay_dead_letters", "Events sent to the dead-letter topic.", "stage", dead_letters_sent
        )
        lag = GaugeMetricFamily(
            "kpay_consumer_lag", "Messages not yet read, per topic.", labels=["topic"]
        )
        for topic, behind in sorted(consumer_lag().items()):
            lag.add_metric([topic], behind)
        yield lag


def _by_label(name: str, text: str, label: str, counts: Counter[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=[label])
    for key, value in sorted(counts.items()):
        family.add_metric([key], value)
    return family


def consumer_lag() -> dict[str, int]:
    """High-water mark minus the next offset to read, summed per topic of this worker."""
    from kpay_faust.app import app

    read, committed = app.monitor.tp_read_offsets, app.monitor.tp_committed_offsets
    lag: Counter[str] = Counter()
    for tp in app.consumer.assignment():
        try:
            highwater = app.consumer.highwater(tp)
        except Exception:  # no fetch yet for this partition
            continue
        if highwater is None:
            continue
        position = max(read.get(tp, -1) + 1, committed.get(tp, 0))
        lag[tp.topic] += max(highwater - position, 0)
    return dict(lag)


REGISTRY.register(KPayCollector())


def exposition() -> bytes:
    return generate_latest(REGISTRY)
