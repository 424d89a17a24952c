"""The CLI's way to a worker's HTTP API (``reconcile``, ``drain``, ``resume``): the address and
token from options, ``KPAY_TOKEN`` or the settings, JSON in and out, and one clear line when the
worker cannot be reached or refuses."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from faust.cli import option

from kpay_faust.settings import get_settings

URL_OPTION = option(
    "--url", type=str, default=None, help="A worker's address (default: this one's)."
)
TOKEN_OPTION = option(
    "--token", type=str, default=None, help="Bearer token (default: $KPAY_TOKEN)."
)


def worker_url(url: str | None = None) -> str:
    settings = get_settings()
    return (url or f"http://{settings.web_host}:{settings.web_port}").rstrip("/")


def call(
    command: str,
    method: str,
    url: str | None,
    path: str,
    token: str | None,
    body: Any = None,
    timeout: float = 60,
) -> tuple[int, Any]:
    """(status, decoded JSON) of one request; an HTTP error status is returned, an unreachable
    worker ends the command with a line saying so."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(worker_url(url) + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    token = token or os.environ.get("KPAY_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")
    except OSError as exc:
        raise SystemExit(f"{command}: cannot reach {worker_url(url)}: {exc}") from None


def expect(command: str, answer: tuple[int, Any], *statuses: int) -> Any:
    """The body of an answer with one of ``statuses``; any other ends the command."""
    status, body = answer
    if status not in statuses:
        error = body.get("error") if isinstance(body, dict) else body
        raise SystemExit(f"{command}: {status} {error}")
    return body
