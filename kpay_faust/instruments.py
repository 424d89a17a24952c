"""The Prometheus instruments stages update and ``GET /metrics`` exposes: one low module, so a
stage counts without importing the metrics pillar, and the pillar reads without importing stages.
Figures kept in tables (totals, lag) are read at scrape time by ``metrics.prometheus``."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

disable_created_metrics()  # no ``*_created`` series: scrapers get the counters alone

REGISTRY = CollectorRegistry()

STAGE_EVENTS = Counter(
    "kpay_stage_events", "Events handled per stage.", ["stage"], registry=REGISTRY
)
STAGE_DUPLICATES = Counter(
    "kpay_stage_duplicates", "Repeated events not applied twice.", ["stage"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "kpay_dead_letters", "Events sent to the dead-letter topic.", ["stage"], registry=REGISTRY
)
DEAD_LETTER_STALLED = Gauge(
    "kpay_dead_letter_stalled",
    "1 while a dead letter cannot be written and its stage waits, retrying.",
    registry=REGISTRY,
)
ROWS_EXPIRED = Counter(
    "kpay_rows_expired",
    "Rows deleted because they passed the retention horizon (KPAY_RETENTION_SECONDS).",
    ["table"],
    registry=REGISTRY,
)
ADMISSION_HELD = Gauge(
    "kpay_admission_held_partitions",
    "Input partitions of this worker paused because their payments in flight reached the limit.",
    registry=REGISTRY,
)
INVARIANT_VIOLATIONS = Gauge(
    "kpay_invariant_violations",
    "Totals rows of this worker's partitions that break an invariant (a negative total).",
    registry=REGISTRY,
)
DEAD_LETTER_DEPTH = Gauge(
    "kpay_dead_letter_depth",
    "Dead letters kept on kpay.dlq (measured by the group's leader; 0 on other workers).",
    registry=REGISTRY,
)
RECONCILE_FAILURES = Gauge(
    "kpay_reconcile_failures",
    "Reconciliation checks this worker's partitions failed at its last reconciliation.",
    registry=REGISTRY,
)
STUCK_PAYMENTS = Gauge(
    "kpay_stuck_payments",
    "Payments of this worker's partitions in flight longer than KPAY_STUCK_SECONDS.",
    registry=REGISTRY,
)
LOG_RECORDS_DROPPED = Counter(
    "kpay_log_records_dropped",
    "Warnings and errors not sent to kpay.logs: its queue was full or the broker refused them.",
    registry=REGISTRY,
)
LATENCY_SECONDS = Histogram(
    "kpay_payment_latency_seconds",
    "Time from the gateway's admission stamp to the payment's outcome.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


def counted(name: str, stage: str) -> float:
    """What the counter ``name`` (e.g. ``kpay_stage_events``) holds for ``stage`` on this worker."""
    return REGISTRY.get_sample_value(f"{name}_total", {"stage": stage}) or 0.0
