"""Windowed metrics tables: one row per (partition, tumbling window), merged when queried.

Keys are partition numbers, like the pipeline totals, because a table write lands in the
changelog partition of the event being processed. Values are recovered from the changelogs on
restart; nothing depends on ``on_window_close``.
"""

from __future__ import annotations

from datetime import timedelta

from kpay_faust.app import app, settings
from kpay_faust.metrics.models import WindowStats

#: The series ``GET /metrics/throughput?window=`` can select: name -> (size, kept for).
SERIES = {
    "1s": (1.0, timedelta(minutes=10)),
    "1m": (60.0, timedelta(hours=2)),
}


def _windowed(name: str, size: float, expires: timedelta):
    return app.Table(
        f"metrics-{name}",
        default=WindowStats,
        value_type=WindowStats,
        # no key_type: windowed keys are (key, (start, end)) tuples, stored as JSON
        partitions=settings.partitions,
        help=f"Finished payments per partition in {name} tumbling windows.",
        extra_topic_configs=app.changelog_config,
    ).tumbling(size, expires=expires, key_index=True)


WINDOWED = {name: _windowed(name, size, expires) for name, (size, expires) in SERIES.items()}
