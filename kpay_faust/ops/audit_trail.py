"""Reading the audit and warning trails back (``GET /audit``, ``GET /logs`` and the CLI)."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer

from kpay_faust import topics
from kpay_faust.ops.models import AuditRecord, LogRecord
from kpay_faust.ops.reading import Found, read_models


async def audit_records(
    client: AIOKafkaConsumer,
    *,
    principal: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[Found[AuditRecord]]:
    """Audit records, oldest first; only ``principal``'s when given."""
    return await read_models(
        client,
        topics.audit,
        AuditRecord,
        lambda record: principal is None or record.principal == principal,
        since=since,
        limit=limit,
    )


async def log_records(
    client: AIOKafkaConsumer,
    *,
    level: str = "WARNING",
    since: float | None = None,
    limit: int = 100,
) -> list[Found[LogRecord]]:
    """Warnings and errors of every worker, oldest first; only ``level`` and above."""
    least = logging.getLevelName(level)
    return await read_models(
        client,
        topics.logs,
        LogRecord,
        lambda record: logging.getLevelName(record.level) >= least,
        since=since,
        limit=limit,
    )
