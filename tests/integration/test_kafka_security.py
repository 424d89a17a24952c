"""KPay against a broker that wants SASL: PLAIN and SCRAM-SHA-256 logins work end to end
(stages, control follower, HTTP), and a wrong password stops the worker at start with one
line."""

from __future__ import annotations

import os
import time

import pytest

from kpay_faust.ports import free_port_run
from tests.integration.conftest import new_cluster, throwaway_broker
from tests.integration.test_payments import open_accounts, outcome, pay, uid
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sasl_broker():
    env = {**os.environ, "KPAY_BROKER_SASL": "1"}
    with throwaway_broker(free_port_run(3), env) as port:
        yield f"kafka://127.0.0.1:{port + 2}"


def sasl_env(mechanism: str, password: str = "kpay-secret") -> dict[str, str]:
    return {
        "KPAY_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KPAY_KAFKA_SASL_MECHANISM": mechanism,
        "KPAY_KAFKA_SASL_USERNAME": "kpay",
        "KPAY_KAFKA_SASL_PASSWORD": password,
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_a_worker_logs_in_and_moves_money(sasl_broker, tmp_path, mechanism):
    cluster = new_cluster(sasl_broker, tmp_path, **sasl_env(mechanism))
    try:
        worker = cluster.worker().start().wait_ready()
        eventually(lambda: worker.get("/pipeline")[0], lambda s: s == 200)
        payer, payee = uid("s"), uid("s")
        open_accounts(cluster, {payer: "10.00", payee: "0"})
        assert outcome(cluster, pay(cluster, payer, payee, "4.00"))["state"] == "confirmed"
        _, status = worker.get("/control/status")
        assert status["workers"][0]["caught_up"]  # the control follower logged in too
    finally:
        cluster.stop()


def test_a_wrong_password_stops_the_worker_with_one_line(sasl_broker, tmp_path):
    cluster = new_cluster(sasl_broker, tmp_path, **sasl_env("SCRAM-SHA-256", "wrong"))
    worker = cluster.worker().start()
    try:
        deadline = time.monotonic() + 60
        while worker.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
        assert worker.process.returncode == 2, worker.log_tail()
        lines = worker.log_path.read_text().strip().splitlines()
        assert lines[-1].startswith("kpay: cannot log in to Kafka at 127.0.0.1:"), lines[-5:]
        assert "wrong" not in lines[-1]  # the password is never printed
    finally:
        cluster.stop()
