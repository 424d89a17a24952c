"""HTTP views of the instrumentation plane: windowed throughput and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import orjson
from faust.web import Request, Response

from kpay_faust.app import app, settings
from kpay_faust.metrics.api import ThroughputAnswer, ThroughputQuery
from kpay_faust.metrics.models import WindowStats
from kpay_faust.metrics.prometheus import exposition
from kpay_faust.metrics.tables import SERIES, WINDOWED
from kpay_faust.web.cluster import active_partitions, gather, require_all_partitions
from kpay_faust.web.contract import GATHERED, operation
from kpay_faust.web.errors import BadRequest, KPayView

PROMETHEUS_TEXT = "text/plain; version=0.0.4"


def local_windows(name: str, since: float = 0.0) -> dict[str, Any]:
    """Every window of the partitions this worker actively owns (those that end after
    ``since``), one row per partition."""
    table = WINDOWED[name].table
    owned = active_partitions(table)
    rows = []
    for key, stats in table.data.items():
        partition, (start, end) = key
        if int(partition) in owned and end > since:
            rows.append({"start": start, "end": end, "stats": orjson.loads(stats.dumps())})
    return {"partitions": sorted(owned), "windows": rows}


def merge_windows(answers: list[dict[str, Any]], size: float, limit: int) -> list[dict]:
    """The newest ``limit`` windows, each merged over its partitions' rows; only those windows'
    rows are decoded and merged (a merge of latency sketches is the costly part)."""
    rows_by_start: dict[float, list[dict[str, Any]]] = {}
    for answer in answers:
        for row in answer["windows"]:
            rows_by_start.setdefault(row["start"], []).append(row)
    newest = sorted(rows_by_start, reverse=True)[:limit]
    merged = []
    for start in newest:
        rows = rows_by_start[start]
        stats = WindowStats.merge_all([WindowStats.from_data(row["stats"]) for row in rows])
        merged.append(_window_json(start, rows[0]["end"], size, stats))
    return merged


def _window_json(start: float, end: float, size: float, stats: WindowStats) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "count": stats.count,
        "confirmed": stats.confirmed,
        "amount": str(stats.amount),
        "rejected": stats.rejected,
        "per_second": round(stats.count / size, 3),
        "latency_ms": stats.latency_ms(),
        "largest_payment": None if stats.largest is None else str(stats.largest),
    }


@app.page("/metrics/throughput")
class ThroughputView(KPayView):
    @operation("metrics", ThroughputAnswer, query=ThroughputQuery, errors=GATHERED)
    async def get(self, request: Request) -> Response:
        """Payments, confirmed amount and latency percentiles per window, newest first,
        merged over all partitions and workers (a payment counts in the window it finished)."""
        query = self.read_query(request, ThroughputQuery)
        name, limit = query.window, query.limit
        answers = await gather(f"/internal/metrics/{name}", lambda: local_windows(name))
        require_all_partitions(
            (p for answer in answers for p in answer["partitions"]), settings.partitions
        )
        size, _ = SERIES[name]
        windows = merge_windows(answers, size, limit)
        return self.reply(ThroughputAnswer, {"window": name, "windows": windows})


@app.page("/internal/metrics/{name}")
class LocalThroughputView(KPayView):
    async def get(self, request: Request, name: str) -> Response:
        if name not in SERIES:
            raise BadRequest(f"window must be one of {', '.join(SERIES)}")
        return self.json(local_windows(name))


@app.page("/metrics")
class PrometheusView(KPayView):
    @operation("metrics", None, media_type=PROMETHEUS_TEXT)
    async def get(self, request: Request) -> Response:
        """This worker's metrics in Prometheus' text format (scrape every worker and sum)."""
        return self.bytes(exposition(), content_type=PROMETHEUS_TEXT)
