"""What the instrumentation plane keeps per window: counts, amounts and a latency sketch.

Latency percentiles come from a DDSketch (relative accuracy 1 %), which merges exactly across
partitions, workers and windows, so a percentile over a minute is a true estimate and never an
average of per-second percentiles.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import faust
from ddsketch import DDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as DDSketchMessage
from ddsketch.pb.proto import DDSketchProto

RELATIVE_ACCURACY = 0.01
PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def new_sketch() -> DDSketch:
    return DDSketch(relative_accuracy=RELATIVE_ACCURACY)


def encode_sketch(sketch: Any) -> str:
    return base64.b64encode(DDSketchProto.to_proto(sketch).SerializeToString()).decode()


def decode_sketch(text: str) -> Any:
    if not text:
        return new_sketch()
    message = DDSketchMessage()
    message.ParseFromString(base64.b64decode(text))
    return DDSketchProto.from_proto(message)


class WindowStats(faust.Record, serializer="json", include_metadata=False, coerce=True):
    """Finished payments in one window of one partition."""

    count: int = 0
    confirmed: int = 0
    rejected: int = 0
    amount: Decimal = Decimal("0.00")  # confirmed value
    largest: Decimal | None = None  # largest confirmed payment
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_min_ms: float | None = None
    latency_max_ms: float | None = None
    latency_sketch: str = ""  # base64 DDSketch protobuf, milliseconds
    #: Highest offset folded in per source: ``complete:<partition>`` for outcomes that name the
    #: message that finished them, else ``confirmed`` (the outcome's own offset). An outcome
    #: delivered again or republished after a crash repeats its source and is not counted twice.
    counted_through: dict[str, int] = {}  # never mutated: every change builds a new dict

    def merge(self, other: WindowStats) -> WindowStats:
        sketch = decode_sketch(self.latency_sketch)
        if other.latency_count:
            sketch.merge(decode_sketch(other.latency_sketch))
        return WindowStats(
            count=self.count + other.count,
            confirmed=self.confirmed + other.confirmed,
            rejected=self.rejected + other.rejected,
            amount=self.amount + other.amount,
            largest=_max(self.largest, other.largest),
            latency_count=self.latency_count + other.latency_count,
            latency_sum_ms=self.latency_sum_ms + other.latency_sum_ms,
            latency_min_ms=_min(self.latency_min_ms, other.latency_min_ms),
            latency_max_ms=_max(self.latency_max_ms, other.latency_max_ms),
            latency_sketch=encode_sketch(sketch) if sketch.count else "",
            counted_through=_merge_marks(self.counted_through, other.counted_through),
        )

    @classmethod
    def merge_all(cls, rows: list[WindowStats]) -> WindowStats:
        """One window's rows merged, each sketch decoded once and the result encoded once
        (pairwise ``merge`` decodes and encodes the growing sketch at every step)."""
        sketch = new_sketch()
        for row in rows:
            if row.latency_count:
                sketch.merge(decode_sketch(row.latency_sketch))
        merged = cls()
        for row in rows:
            merged = merged.merge(row.derive(latency_sketch="", latency_count=0))
        return merged.derive(
            latency_count=sum(row.latency_count for row in rows),
            latency_sketch=encode_sketch(sketch) if sketch.count else "",
        )

    def latency_ms(self) -> dict[str, float | None]:
        """min, mean, p50, p95, p99, max; percentiles clamped to the exact min and max."""
        if not self.latency_count:
            return {"min": None, "mean": None, **dict.fromkeys(PERCENTILES), "max": None}
        sketch = decode_sketch(self.latency_sketch)
        low, high = self.latency_min_ms or 0.0, self.latency_max_ms or 0.0
        quantiles = {
            name: round(min(max(sketch.get_quantile_value(q) or 0.0, low), high), 3)
            for name, q in PERCENTILES.items()
        }
        mean = self.latency_sum_ms / self.latency_count
        return {"min": round(low, 3), "mean": round(mean, 3), **quantiles, "max": round(high, 3)}


def _merge_marks(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {source: max(a.get(source, -1), b.get(source, -1)) for source in a.keys() | b.keys()}


def _min(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


class BatchStats:
    """Accumulates one batch's payments for one (partition, window) before a single write."""

    def __init__(self) -> None:
        self.count = self.confirmed = self.rejected = 0
        self.amount = Decimal("0.00")
        self.largest: Decimal | None = None
        self.sketch = new_sketch()
        self.latency_sum = 0.0
        self.latency_min: float | None = None
        self.latency_max: float | None = None

    def add(self, confirmed: bool, amount: Decimal | None, latency_ms: float | None) -> None:
        self.count += 1
        if confirmed:
            self.confirmed += 1
            self.amount += amount or 0
            self.largest = _max(self.largest, amount)
        else:
            self.rejected += 1
        if latency_ms is not None and latency_ms >= 0:
            self.sketch.add(latency_ms)
            self.latency_sum += latency_ms
            self.latency_min = _min(self.latency_min, latency_ms)
            self.latency_max = _max(self.latency_max, latency_ms)

    def stats(self) -> WindowStats:
        return WindowStats(
            count=self.count,
            confirmed=self.confirmed,
            rejected=self.rejected,
            amount=self.amount,
            largest=self.largest,
            latency_count=int(self.sketch.count),
            latency_sum_ms=self.latency_sum,
            latency_min_ms=self.latency_min,
            latency_max_ms=self.latency_max,
            latency_sketch=encode_sketch(self.sketch) if self.sketch.count else "",
        )
