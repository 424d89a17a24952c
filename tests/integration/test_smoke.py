"""A real worker starts, consumes what ``faust -A kpay send`` produces, and serves HTTP."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.integration.conftest import new_cluster, throwaway_broker
from tests.support.workers import FAUST, REPO

pytestmark = pytest.mark.integration


def test_worker_consumes_a_sent_message_and_answers_http(cluster):
    worker = cluster.worker().start().wait_ready()
    status, health = worker.get("/health")
    assert status == 200 and health["status"] == "ready"

    sent = cluster.faust(
        "send",
        cluster.topic("accounts"),
        '{"ref": "smoke", "action": "open", "account": "smoke", "amount": "12.34"}',
    )
    assert sent.returncode == 0, sent.stderr

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, account = worker.get("/accounts/smoke")
        if status == 200:
            break
        time.sleep(0.3)
    assert status == 200, account
    assert account["balance"] == "12.34"
    # a new deployment's first start logs no error about its topics (aiokafka logged one for
    # each metadata refresh that found a table's changelog not created yet)
    log = worker.log_path.read_text().splitlines()
    assert [line for line in log if "[ERROR]" in line and cluster.name in line] == []


def test_the_first_worker_on_a_brand_new_broker_logs_no_error(tmp_path):
    # A new broker creates its offsets topic on the first group-coordinator lookup and refuses
    # that lookup; the worker's consumer logged it as an ERROR on every first `make run`.
    with throwaway_broker() as port:
        cluster = new_cluster(f"kafka://127.0.0.1:{port}", tmp_path)
        try:
            worker = cluster.worker().start().wait_ready()
            log = worker.log_path.read_text().splitlines()
            assert any("Discovered coordinator" in line for line in log)
            assert [line for line in log if "[ERROR]" in line] == []
        finally:
            cluster.stop()


def test_a_new_app_routes_requests_as_soon_as_its_worker_is_ready(cluster):
    # A brand-new app's changelog topics are created while its group forms: /health waits
    # until the worker can tell which worker owns a key, so the first requests are not 503s.
    worker = cluster.worker().start().wait_ready()
    status, opened = worker.post("/accounts", {"id": "first", "balance": "1.00"})
    assert status == 202, opened
    status, missing = worker.get("/payments/never-sent")
    assert status == 404, missing


def test_bad_setting_stops_start_up_with_one_line(cluster):
    result = subprocess.run(
        [FAUST, "-A", "kpay", "worker"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **cluster.env, "KPAY_WEB_PORT": "abc"},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "kpay: invalid setting KPAY_WEB_PORT='abc': "
        "Input should be a valid integer, unable to parse string as an integer"
    ]
