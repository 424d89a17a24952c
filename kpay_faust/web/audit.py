"""The HTTP side of the audit trail: every request that may change money or the system (any
method but GET, HEAD and OPTIONS, outside ``/internal/``) is recorded with who sent it, from
where, what it asked, what was answered and the event it produced, refused requests included.

The middleware sits outside authentication, so it sees refusals too. Where the record goes is
the operational plane's business (``kpay_faust.ops.audit`` sets ``trail.write``); views note the
event they wrote with ``produced``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from kpay_faust.ops.models import AuditRecord, EventPosition
from kpay_faust.web.auth import principal_of

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID_HEADER = "X-Request-Id"
_EVENT = "kpay_event"
_READS = ("GET", "HEAD", "OPTIONS")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


class AuditTrail:
    """Where audit records go: ``write`` is set by the operational plane."""

    def __init__(self) -> None:
        self.write: Callable[[AuditRecord], Awaitable[None]] | None = None

    async def record(self, entry: AuditRecord) -> None:
        if self.write is None:
            log.warning("audit (no trail yet): %s", entry.model_dump_json())
            return
        try:
            await self.write(entry)
        except Exception:  # the answer stands; the loss of its record is said loudly
            log.exception("audit record not written: %s", entry.model_dump_json())


trail = AuditTrail()


def produced(request: Any, topic: str, partition: int, offset: int) -> None:
    """Note the event this request wrote, for its audit record."""
    request[_EVENT] = EventPosition(topic=topic, partition=partition, offset=offset)


def request_id(request: Any) -> str | None:
    return request.get("kpay_request_id")


@web.middleware
async def auditing(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in _READS or request.path.startswith("/internal/"):
        return await handler(request)
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    ident = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
    request["kpay_request_id"] = ident
    status, reason = 500, "internal error"
    try:
        response = await handler(request)
        status, reason = response.status, _reason(response)
        response.headers[REQUEST_ID_HEADER] = ident
        return response
    except web.HTTPException as exc:
        status, reason = exc.status, exc.reason
        raise
    finally:
        await trail.record(await _entry(request, ident, status, reason))


async def _entry(request: web.Request, ident: str, status: int, reason: str | None) -> AuditRecord:
    caller = principal_of(request)
    try:
        body: bytes | None = await request.read()  # read already (cached), or small enough
    except Exception:
        body = None
    accepted = status < 400
    return AuditRecord(
        at=time.time(),
        principal=caller.name if caller else "anonymous",
        role=caller.role.name if caller else None,
        source=request.remote,
        request_id=ident,
        action=f"{request.method} {request.path}"[:200],
        asked=AuditRecord.asked_text(body) if body else None,
        outcome="accepted" if accepted else "refused",
        status=status,
        reason=None if accepted else reason,
        event=request.get(_EVENT),
    )


def _reason(response: Any) -> str | None:
    """The ``error`` of a JSON error answer."""
    if response.status < 400 or not isinstance(getattr(response, "body", None), bytes):
        return None
    try:
        return str(orjson.loads(response.body).get("error"))[:500]
    except (orjson.JSONDecodeError, AttributeError):
        return None
