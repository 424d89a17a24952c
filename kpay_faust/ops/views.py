"""HTTP API of the operational plane: ``GET /reconcile`` (every worker's books, checked) and
``GET /dlq`` (the dead letters), ``GET /audit`` (the audit trail), ``GET /logs`` (warnings)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from faust.web import Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kpay_faust.app import app, settings
from kpay_faust.ops import audit_trail, dlq
from kpay_faust.ops.reading import Found, reader
from kpay_faust.ops.reconcile import cluster_report, local_books, merge, needs_second_read
from kpay_faust.web.cluster import gather, require_all_partitions
from kpay_faust.web.errors import KPayView

#: Seconds between the two reads that tell money lost in transit from a payment caught between
#: its debit and its credit while the workers were read.
SECOND_READ_AFTER = 1.0


async def read_books() -> dict[str, Any]:
    """Every worker's books, merged; 503 while a partition is unowned."""
    merged = merge(await gather("/internal/reconcile", local_books))
    require_all_partitions(merged["ledger_partitions"], settings.partitions)
    require_all_partitions(merged["totals_partitions"], settings.partitions)
    return merged


@app.page("/reconcile")
class ReconcileView(KPayView):
    async def get(self, request: Request) -> Response:
        """Whether the books of every worker reconcile, with the figures and each problem."""
        first, second = await read_books(), None
        if needs_second_read(first):
            await asyncio.sleep(SECOND_READ_AFTER)
            second = await read_books()
        return self.json(cluster_report(first, second))


@app.page("/internal/reconcile")
class LocalReconcileView(KPayView):
    async def get(self, request: Request) -> Response:
        return self.json(local_books())


class Window(BaseModel):
    """Which records of an append-only topic: the newest ``limit``, or the first ``limit``
    since ``since`` (epoch seconds)."""

    model_config = ConfigDict(extra="forbid")
    since: float | None = Field(default=None, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)


class DeadLetterQuery(Window):
    stage: str | None = Field(default=None, max_length=64)


class AuditQuery(Window):
    principal: str | None = Field(default=None, max_length=128)


class LogQuery(Window):
    level: Literal["WARNING", "ERROR", "CRITICAL"] = "WARNING"


@app.page("/dlq")
class DeadLettersView(KPayView):
    async def get(self, request: Request) -> Response:
        """Dead letters, oldest first; only ``stage``'s when given."""
        query = self.read_query(request, DeadLetterQuery)
        async with reader() as client:
            found = await dlq.read(client, stage=query.stage, since=query.since, limit=query.limit)
        return self.json({"dead_letters": [dlq.as_json(f) for f in found], "count": len(found)})


@app.page("/audit")
class AuditView(KPayView):
    async def get(self, request: Request) -> Response:
        """Audit records, oldest first; only ``principal``'s when given."""
        query = self.read_query(request, AuditQuery)
        async with reader() as client:
            found = await audit_trail.audit_records(
                client, principal=query.principal, since=query.since, limit=query.limit
            )
        return self.json(records_json(found))


@app.page("/logs")
class LogsView(KPayView):
    async def get(self, request: Request) -> Response:
        """Every worker's warnings and errors, oldest first; only ``level`` and above."""
        query = self.read_query(request, LogQuery)
        async with reader() as client:
            found = await audit_trail.log_records(
                client, level=query.level, since=query.since, limit=query.limit
            )
        return self.json(records_json(found))


def records_json(found: list[Found[Any]]) -> dict[str, Any]:
    records = [f.item.model_dump(exclude_none=True) for f in found]
    return {"records": records, "count": len(records)}
