"""The audit trail: ``kpay.audit``, keyed by principal, append-only. HTTP commands come from the
middleware (``kpay_faust.web.audit``), control commands sent straight to ``kpay.control`` from
the control plane's agent, dead-letter replays from the CLI."""

from __future__ import annotations

import getpass
import socket
import time
from typing import Any

from kpay_faust import topics
from kpay_faust.ops.models import AuditRecord, EventPosition
from kpay_faust.web.audit import trail

#: Header a command sent over HTTP carries onto its topic: it was audited there already.
REQUEST_HEADER = "kpay-request-id"


async def write(entry: AuditRecord) -> None:
    """Hand the record to the producer (it goes out with the next batch)."""
    await topics.audit.send(key=entry.principal, value=entry.model_dump_json().encode())


trail.write = write


def from_topic(
    principal: str | None,
    action: str,
    asked: bytes | None,
    where: tuple[str, int, int],
    refused: str | None = None,
) -> AuditRecord:
    """The record of a command a Kafka client wrote straight to a topic."""
    topic, partition, offset = where
    return AuditRecord(
        at=time.time(),
        principal=principal or "kafka client",
        source=f"{topic}[{partition}]@{offset}",
        action=action,
        asked=AuditRecord.asked_text(asked),
        outcome="refused" if refused else "accepted",
        reason=refused,
        event=EventPosition(topic=topic, partition=partition, offset=offset),
    )


def operator_here() -> str:
    """Who runs a CLI command: the OS user on this host."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def of_replay(done: dict[str, Any], asked: str) -> AuditRecord:
    """The record of one dead letter's replay by the CLI."""
    event = None
    if done.get("replayed"):
        event = EventPosition(
            topic=done["topic"], partition=done["partition"], offset=done["offset"]
        )
    return AuditRecord(
        at=time.time(),
        principal=operator_here(),
        source="faust -A kpay dlq replay",
        action="dlq replay",
        asked=asked,
        outcome="accepted" if done.get("replayed") else "refused",
        reason=done.get("why"),
        event=event,
    )
