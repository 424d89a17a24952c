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


def request_json(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, Any]:
    """(status, decoded JSON body) of one request; an error status is returned, not raised (an
    unreachable worker raises ``OSError``). ``body``: bytes as they are, anything else as JSON."""
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def call(
    command: str,
    method: str,
    url: str | None,
    path: str,
    token: str | None,
    body: Any = None,
    timeout: float = 60,
) -> tuple[int, Any]:
    """``request_json`` for a CLI command: the token from ``KPAY_TOKEN`` when not given, and an
    unreachable worker ends the command with a line saying so."""
    token = token or os.environ.get("KPAY_TOKEN")
    try:
        return request_json(method, worker_url(url) + path, body, token=token, timeout=timeout)
    except OSError as exc:
        raise SystemExit(f"{command}: cannot reach {worker_url(url)}: {exc}") from None


def expect(command: str, answer: tuple[int, Any], *statuses: int) -> Any:
    """The body of an answer with one of ``statuses``; any other ends the command."""
    status, body = answer
    if status not in statuses:
        error = body.get("error") if isinstance(body, dict) else body
        raise SystemExit(f"{command}: {status} {error}")
    return body
