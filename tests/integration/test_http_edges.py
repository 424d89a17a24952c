"""HTTP requests a careless or hostile client sends, answered by a real worker: always a JSON
error with a 4xx status, never a 500 or plain text, and nothing they ask for takes effect."""

from __future__ import annotations

import gzip
import http.client
import json

import pytest

from tests.integration.test_control import status

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    from tests.integration.conftest import new_cluster

    cluster = new_cluster(broker, tmp_path_factory.mktemp("http"), KPAY_MAX_BODY_BYTES="4096")
    try:
        yield cluster.worker().start().wait_ready()
    finally:
        cluster.stop()


def request(worker, method: str, path: str, body: bytes = b"", **headers: str):
    connection = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


EDGES = [
    ("GET", "/no/such/path", b"", {}, 404),
    ("DELETE", "/payments", b"", {}, 405),
    ("PATCH", "/accounts/neil", b"{}", {}, 405),
    ("POST", "/payments", b"x" * 5000, {}, 413),
    ("POST", "/payments", b"not gzip at all", {"Content-Encoding": "gzip"}, 415),
    ("POST", "/control/pause", b"\x1f", {"Content-Encoding": "gzip"}, 415),
    ("POST", "/control/pause", gzip.compress(b"{}"), {"Content-Encoding": "deflate"}, 415),
    ("POST", "/control/rate", b'{"per_second": true}', {}, 400),
    ("POST", "/control/rate", b'{"per_second": "100"}', {}, 400),
    ("POST", "/payments", b"\xff\xfe", {}, 400),
    ("POST", "/payments", b"[1, 2]", {}, 400),
    ("POST", "/accounts", b'{"id": "x", "balance": 1e999}', {}, 400),
    ("GET", "/metrics/throughput?limit=-1", b"", {}, 400),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "expected"), EDGES)
def test_edge_requests_get_a_json_4xx(worker, method, path, body, headers, expected):
    operator = f"Bearer {worker.cluster.tokens['operator']}"
    code, content_type, raw = request(worker, method, path, body, Authorization=operator, **headers)
    assert code == expected, raw[:300]
    assert content_type.startswith("application/json"), (content_type, raw[:200])
    assert json.loads(raw)["error"]


def test_refused_control_requests_change_nothing(worker):
    before = status(worker.cluster)
    operator = f"Bearer {worker.cluster.tokens['operator']}"
    for body, headers in ((b"\x1f", {"Content-Encoding": "gzip"}), (b'{"per_second": true}', {})):
        for path in ("/control/pause", "/control/rate"):
            code, _, _ = request(worker, "POST", path, body, Authorization=operator, **headers)
            assert 400 <= code < 500
    after = status(worker.cluster)
    assert (after["state"], after["per_second"]) == (before["state"], before["per_second"])
    assert after["state"] == "running" and after["per_second"] is None
