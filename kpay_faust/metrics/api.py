"""The instrumentation plane's HTTP shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kpay_faust.payments.api import Money


class ThroughputQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: Literal["1s", "1m"] = Field(
        "1m", description="1 s windows (kept 10 min) or 1 min windows (kept 2 h)."
    )
    limit: int = Field(60, ge=1, le=1000, description="How many of the newest windows.")


class LatencyAnswer(BaseModel):
    """Milliseconds from admission to outcome; null in a window without payments."""

    min: float | None
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


class WindowAnswer(BaseModel):
    start: float
    end: float
    count: int = Field(description="Payments finished in the window, confirmed or rejected.")
    confirmed: int
    amount: Money = Field(description="Confirmed amount.")
    rejected: int
    per_second: float
    latency_ms: LatencyAnswer
    largest_payment: Money | None


class ThroughputAnswer(BaseModel):
    window: Literal["1s", "1m"]
    windows: list[WindowAnswer] = Field(description="Newest first.")
