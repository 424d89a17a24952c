"""HTTP API of the operational plane: ``GET /reconcile`` (every worker's books, checked) and
``GET /dlq`` (the dead letters), ``GET /audit`` (the audit trail), ``GET /logs`` (warnings)."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.web import Request, Response

from kpay_faust import topics
from kpay_faust.app import app, settings
from kpay_faust.ops import audit_trail, dlq
from kpay_faust.ops.api import (
    AuditAnswer,
    AuditQuery,
    DeadLetterQuery,
    DeadLettersAnswer,
    LogQuery,
    LogsAnswer,
    ReconcileAnswer,
    ReplayAnswer,
    ReplayRequest,
)
from kpay_faust.ops.reading import Found, reader, writer
from kpay_faust.ops.reconcile import cluster_report, local_books, merge, needs_second_read
from kpay_faust.web.cluster import gather, require_all_partitions
from kpay_faust.web.contract import GATHERED, operation
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
    @operation("operations", ReconcileAnswer, errors=GATHERED)
    async def get(self, request: Request) -> Response:
        """Whether the books of every worker reconcile, with the figures and each problem.

        Money is conserved (balances add up to what was funded, with what is in transit),
        every balance is its funding plus credits less debits, every partition's in-flight
        total is its admissions less releases, nothing is negative and no payment is stuck.
        """
        first, second = await read_books(), None
        if needs_second_read(first):
            await asyncio.sleep(SECOND_READ_AFTER)
            second = await read_books()
        return self.reply(ReconcileAnswer, cluster_report(first, second))


@app.page("/internal/reconcile")
class LocalReconcileView(KPayView):
    async def get(self, request: Request) -> Response:
        return self.json(local_books())


@app.page("/dlq")
class DeadLettersView(KPayView):
    @operation("operations", DeadLettersAnswer, query=DeadLetterQuery)
    async def get(self, request: Request) -> Response:
        """Dead letters, oldest first; only ``stage``'s when given."""
        query = self.read_query(request, DeadLetterQuery)
        async with reader() as client:
            found = await dlq.read(client, stage=query.stage, since=query.since, limit=query.limit)
        letters = [dlq.as_json(f) for f in found]
        return self.reply(DeadLettersAnswer, {"dead_letters": letters, "count": len(letters)})


@app.page("/dlq/replay")
class ReplayView(KPayView):
    @operation("operations", ReplayAnswer, body=ReplayRequest)
    async def post(self, request: Request) -> Response:
        """Send dead letters back to the topics they came from, marked as replays: the stage
        handles each again (safe to repeat: a payment or command already applied is not
        applied twice). Fix the cause first."""
        asked = await self.read_model(request, ReplayRequest)
        wanted = asked.positions()
        dlq_topic = topics.dlq.get_topic_name()
        async with reader() as client:
            found = await dlq.read(client, limit=len(wanted), wanted=wanted)
            async with writer() as producer:
                results = await dlq.replay(client, producer, found, dlq_topic)
        missing = wanted - {(f.partition, f.offset) for f in found}
        answer = {
            "results": results,
            "replayed": sum(1 for r in results if r["replayed"]),
            "not_found": [f"{p}@{o}" for p, o in sorted(missing)],
        }
        return self.reply(ReplayAnswer, answer)


@app.page("/audit")
class AuditView(KPayView):
    @operation("operations", AuditAnswer, query=AuditQuery)
    async def get(self, request: Request) -> Response:
        """Audit records, oldest first; only ``principal``'s when given."""
        query = self.read_query(request, AuditQuery)
        async with reader() as client:
            found = await audit_trail.audit_records(
                client, principal=query.principal, since=query.since, limit=query.limit
            )
        return self.reply(AuditAnswer, records_json(found))


@app.page("/logs")
class LogsView(KPayView):
    @operation("operations", LogsAnswer, query=LogQuery)
    async def get(self, request: Request) -> Response:
        """Every worker's warnings and errors, oldest first; only ``level`` and above."""
        query = self.read_query(request, LogQuery)
        async with reader() as client:
            found = await audit_trail.log_records(
                client, level=query.level, since=query.since, limit=query.limit
            )
        return self.reply(LogsAnswer, records_json(found))


def records_json(found: list[Found[Any]]) -> dict[str, Any]:
    records = [f.item.model_dump(exclude_none=True) for f in found]
    return {"records": records, "count": len(records)}
