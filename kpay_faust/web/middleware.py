"""Every HTTP answer in one shape: errors are JSON ``{"error": "..."}``, aiohttp's own included
(unknown path, wrong method, body too large), and no request can make a worker answer 500
with a traceback. A stored row that cannot be read (a changelog written to by something other
than KPay) is answered 409, naming it.

Bodies are read as sent: a ``Content-Encoding`` other than ``identity`` is refused with 415.
aiohttp inflates gzip and deflate bodies itself, and a body that did not match its encoding
raised out of the view (500), or, cut short, read as empty and was accepted as ``{}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from kpay_faust.engine.table import UnreadableRow

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps({"error": message})


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=error_body(status, message),
        status=status,
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if encoding not in ("", "identity"):
        return json_error(
            415, f"Content-Encoding {encoding[:40]!r} is not accepted: send the body as is"
        )
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in (hdrs.ALLOW, hdrs.RETRY_AFTER)}
        return json_error(exc.status, exc.reason or "error", headers)
    except HttpProcessingError as exc:  # a body aiohttp could not read
        return json_error(400, f"the request body could not be read: {exc.message}")
    except UnreadableRow as exc:  # the resource's stored state, not the request, is bad
        log.error("%s %s: %s", request.method, request.path, exc)
        return json_error(409, str(exc))
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return json_error(500, "internal error: the worker logged it")
