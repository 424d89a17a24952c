"""The browser console: its page and files (``/``, ``/assets/...``), and ``GET /console/state``,
the one compact answer it polls about once a second.

The state is made at most once a second per worker and shared by every tab that asks, so ten
open tabs cost the worker about what one does. It is gathered from every worker like the other
cluster-wide answers, but a partition without a serving worker does not make it fail (the
console must stay up through a rebalance): it is listed in ``unserved_partitions``."""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any

from faust.web import Request, Response
from pydantic import BaseModel, Field

from kpay_faust.app import app, settings
from kpay_faust.control.api import StatusAnswer
from kpay_faust.control.state import control
from kpay_faust.control.views import pipeline_state
from kpay_faust.metrics.api import WindowAnswer
from kpay_faust.metrics.prometheus import consumer_lag
from kpay_faust.metrics.views import local_windows, merge_windows
from kpay_faust.ops import agents as checks
from kpay_faust.payments.api import PipelineAnswer
from kpay_faust.payments.totals import local_pipeline, sum_pipeline
from kpay_faust.web.cluster import gather
from kpay_faust.web.contract import operation
from kpay_faust.web.errors import KPayView
from kpay_faust.web.files import ServedFiles
from kpay_faust.web.load import LoadAnswer, runner
from kpay_faust.web.views import local_health

FILES = resources.files("kpay_faust.web") / "console"
ASSETS = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "charts.js": "text/javascript",
    "docs.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
#: The page loads nothing from elsewhere and runs no inline script.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
RECENT_SECONDS = 8  # 1 s windows sent with each state; the page keeps its own history
FRESH_FOR = 0.9  # seconds a made state is served to every tab that asks


class WorkerAnswer(BaseModel):
    worker: str
    health: str = Field(description="ready, recovering, or why a stage waits.")
    incoming_partitions: list[int]
    paused_partitions: list[int]
    held_for_load: list[int]
    lag: dict[str, int] = Field(description="Records not yet read, per topic.")
    reconcile_failures: list[str] = Field(description="Its last check of its own books.")
    stuck_payments: int
    checked_at: float | None


class ConsoleState(BaseModel):
    at: float
    answered_by: str
    partitions: int
    unserved_partitions: list[int]
    pipeline: PipelineAnswer
    control: StatusAnswer
    workers: list[WorkerAnswer]
    recent: list[WindowAnswer] = Field(description="The newest 1 s windows, newest first.")
    dead_letters: int | None = Field(description="Kept on kpay.dlq (the leader counts them).")
    load: LoadAnswer


def input_lag() -> dict[str, int]:
    """Records not yet read of the topics the stages read (the changelogs of the tables a
    worker serves are written by it, not read, so their figure says nothing of a backlog)."""
    return {
        topic: behind
        for topic, behind in consumer_lag().items()
        if topic.startswith(f"{settings.topic_prefix}.")
    }


def local_state() -> dict[str, Any]:
    """This worker's part of the console state."""
    latest = checks.latest
    return {
        "worker": str(app.conf.canonical_url),
        "health": local_health(),
        "control": control.describe(),
        "pipeline": local_pipeline()["partitions"],
        "lag": input_lag(),
        "windows": local_windows("1s", since=time.time() - RECENT_SECONDS)["windows"],
        "checked_at": latest["checked_at"],
        "reconcile_failures": latest["failures"],
        "stuck_payments": latest["stuck"],
        "dead_letters": latest["dead_letters"],
    }


async def cluster_state() -> dict[str, Any]:
    answers = await gather("/internal/console", local_state)
    rows: dict[str, Any] = {}
    for answer in answers:
        rows.update(answer["pipeline"])
    pipeline = sum_pipeline(rows.values())
    control_state = pipeline_state([a["control"] for a in answers], pipeline["inflight"])
    depths = [a["dead_letters"] for a in answers if a["dead_letters"] is not None]
    windows = [{"windows": a["windows"]} for a in answers]
    return {
        "at": time.time(),
        "answered_by": str(app.conf.canonical_url),
        "partitions": settings.partitions,
        "unserved_partitions": sorted(set(range(settings.partitions)) - {int(p) for p in rows}),
        "pipeline": pipeline,
        "control": control_state,
        "workers": [_worker(a) for a in answers],
        "recent": merge_windows(windows, 1.0, RECENT_SECONDS),
        "dead_letters": max(depths) if depths else None,
        "load": runner.describe(),
    }


def _worker(answer: dict[str, Any]) -> dict[str, Any]:
    described = answer["control"]
    return {
        "worker": answer["worker"],
        "health": answer["health"],
        "incoming_partitions": described["incoming_partitions"],
        "paused_partitions": described["paused_partitions"],
        "held_for_load": described["held_for_load"],
        "lag": answer["lag"],
        "reconcile_failures": answer["reconcile_failures"],
        "stuck_payments": answer["stuck_payments"],
        "checked_at": answer["checked_at"],
    }


class SharedState:
    """The newest state, made by one request and served to all for ``FRESH_FOR`` seconds."""

    def __init__(self) -> None:
        self.made_at = 0.0
        self.body = b""
        self.lock = asyncio.Lock()

    async def get(self) -> bytes:
        async with self.lock:
            if time.monotonic() - self.made_at >= FRESH_FOR:
                state = ConsoleState.model_validate(await cluster_state())
                self.body = state.model_dump_json().encode()
                self.made_at = time.monotonic()
            return self.body


shared = SharedState()


@app.page("/console/state")
class ConsoleStateView(KPayView):
    @operation("console", ConsoleState, errors={503: "the workers could not be asked"})
    async def get(self, request: Request) -> Response:
        """Everything the console shows live, in one answer made at most once a second:
        pipeline totals, control state, workers with their partitions, lag and health, the
        newest 1 s windows, dead letters and the demo load."""
        return self.bytes(await shared.get(), content_type="application/json")


@app.page("/internal/console")
class LocalConsoleView(KPayView):
    async def get(self, request: Request) -> Response:
        return self.json(local_state())


@app.page("/")
class ConsolePage(KPayView):
    in_api = False  # a page for people, not part of the API

    async def get(self, request: Request) -> Response:
        page = (FILES / "index.html").read_bytes()
        return self.bytes(page, content_type="text/html", headers=_PAGE_HEADERS)


@app.page("/assets/{name}")
class ConsoleFile(ServedFiles):
    folder = FILES
    files = ASSETS
    headers = _PAGE_HEADERS
