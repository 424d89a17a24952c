"""The JSON error shape on a bare aiohttp server with KPay's middleware and protocol renderer:
what a worker does before any view runs."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import kpay_faust.app  # noqa: F401 - installs the JSON renderer for protocol errors
from kpay_faust.engine.table import UnreadableRow
from kpay_faust.web.middleware import json_errors


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"size": len(await request.read())})


async def unreadable(request: web.Request) -> web.Response:
    raise UnreadableRow("ledger", "mallory", ValueError("not JSON"))


@pytest.fixture()
async def server():
    app = web.Application(middlewares=[json_errors], client_max_size=1024)
    app.router.add_post("/echo", echo)
    app.router.add_get("/unreadable", unreadable)
    async with TestServer(app) as running:
        yield running


async def raw(server: TestServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), fields, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Bad: a\x7fb\r\n\r\n", 400),  # parser refuses it
        (b"BR\x00KEN / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        (b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n"
            + b"x" * 2000,
            413,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 1\r\n"
            b"Connection: close\r\n\r\n\x1f",
            415,
        ),
    ],
)
async def test_every_refusal_is_json(server, request_bytes, status):
    code, fields, body = await raw(server, request_bytes)
    assert code == status, body
    assert fields.get("Content-Type", "").startswith("application/json"), (fields, body)
    assert orjson.loads(body[body.index(b"{") :])["error"]


async def test_a_stored_row_that_cannot_be_read_is_answered_409_naming_it(server):
    status, fields, body = await raw(
        server, b"GET /unreadable HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 409 and fields["Content-Type"].startswith("application/json")
    assert "ledger row 'mallory' cannot be read" in orjson.loads(body)["error"]
