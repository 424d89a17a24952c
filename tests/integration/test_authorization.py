"""Every route with no token, an unknown token and each role, against a real worker: 401 and
403 exactly where docs/security.md says, JSON with a message; and the worker-to-worker routes
open only to the cluster secret. The requests that get through are harmless (bad bodies,
unknown keys), so the matrix changes nothing."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_http_edges import request
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ROLES = ("viewer", "client", "operator")

#: (method, path, harmless body, least role)
ROUTES = [
    ("GET", "/pipeline", b"", "viewer"),
    ("GET", "/reconcile", b"", "viewer"),
    ("GET", "/dlq", b"", "operator"),
    ("GET", "/audit", b"", "operator"),
    ("GET", "/logs", b"", "operator"),
    ("GET", "/metrics", b"", "viewer"),
    ("GET", "/metrics/throughput", b"", "viewer"),
    ("GET", "/control/status", b"", "viewer"),
    ("GET", "/accounts", b"", "viewer"),
    ("GET", "/accounts/nobody", b"", "viewer"),
    ("GET", "/payments/nothing", b"", "viewer"),
    ("GET", "/payments/nothing/trace", b"", "viewer"),
    ("POST", "/payments", b"{}", "client"),
    ("POST", "/accounts", b"{}", "operator"),
    ("POST", "/accounts/nobody/deposits", b"{}", "operator"),
    ("POST", "/control/pause", b'{"bogus": 1}', "operator"),
    ("POST", "/control/resume", b'{"bogus": 1}', "operator"),
    ("POST", "/control/rate", b"{}", "operator"),
    ("GET", "/whoami", b"", "viewer"),
    ("GET", "/console/state", b"", "viewer"),
    ("GET", "/load", b"", "viewer"),
    ("POST", "/load", b'{"bogus": 1}', "operator"),
    ("DELETE", "/load", b"", "operator"),
    ("POST", "/dlq/replay", b"{}", "operator"),
]


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    from tests.integration.conftest import new_cluster

    cluster = new_cluster(broker, tmp_path_factory.mktemp("auth"))
    try:
        worker = cluster.worker().start().wait_ready()
        eventually(lambda: worker.get("/pipeline")[0], lambda s: s == 200)
        yield worker
    finally:
        cluster.stop()


def call(worker, method, path, body, token=None, **headers):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    code, content_type, raw = request(worker, method, path, body, **headers)
    if code >= 400 or content_type.startswith("application/json"):
        assert content_type.startswith("application/json"), (code, content_type, raw[:200])
        return code, json.loads(raw)
    return code, raw


@pytest.mark.parametrize(("method", "path", "body", "least"), ROUTES)
def test_each_route_answers_each_caller_as_documented(worker, method, path, body, least):
    code, answer = call(worker, method, path, body)
    assert code == 401 and "bearer token" in answer["error"]
    code, answer = call(worker, method, path, body, token="kpay_not-a-token")
    assert code == 401 and answer["error"] == "unknown token"
    for role in ROLES:
        code, answer = call(worker, method, path, body, token=worker.cluster.tokens[role])
        if ROLES.index(role) < ROLES.index(least):
            assert code == 403 and f"needs the {least} role" in answer["error"], (role, answer)
        else:
            assert code not in (401, 403) and code < 500, (role, code, answer)


def test_health_is_open(worker):
    assert call(worker, "GET", "/health", b"")[0] == 200


def test_worker_routes_open_only_to_the_cluster_secret(worker):
    operator = worker.cluster.tokens["operator"]
    assert call(worker, "GET", "/internal/pipeline", b"", token=operator)[0] == 401
    secret = json.loads(worker.env_tokens_file().read_text())["cluster_secret"]
    assert (
        call(worker, "GET", "/internal/pipeline", b"", **{"X-KPay-Cluster-Secret": "x"})[0] == 401
    )
    code, answer = call(
        worker, "GET", "/internal/pipeline", b"", **{"X-KPay-Cluster-Secret": secret}
    )
    assert code == 200 and "partitions" in answer
