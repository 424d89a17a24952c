"""Reading the audit trail back (``GET /audit``, ``faust -A kpay audit``)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from kpay_faust.ops import reading
from kpay_faust.ops.models import AuditRecord
from kpay_faust.ops.reading import Found


def _record(raw: bytes | None) -> AuditRecord | None:
    if raw is None:
        return None
    try:
        return AuditRecord.model_validate_json(raw)
    except ValidationError:
        return None


async def read(
    client: AIOKafkaConsumer,
    topic: str,
    count: int,
    *,
    principal: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[Found[AuditRecord]]:
    """Audit records, oldest first (``reading.read``); only ``principal``'s when given."""
    return await reading.read(
        client,
        topic,
        count,
        _record,
        lambda record: record.at,
        keep=lambda record: principal is None or record.principal == principal,
        since=since,
        limit=limit,
    )
