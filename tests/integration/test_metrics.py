"""The instrumentation plane on the real broker: windowed metrics from two real workers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import two_workers_on_rocksdb
from tests.integration.test_payments import open_accounts, outcome, pay, pipeline, uid
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

AMOUNTS = [f"{n}.{n:02d}" for n in range(1, 31)]  # 1.01 … 30.30, all distinct


@pytest.fixture(scope="module")
def metered(broker, tmp_path_factory):
    """Two workers on RocksDB (the shipped store); 30 known payments, 5 of them rejected."""
    with two_workers_on_rocksdb(broker, tmp_path_factory.mktemp("metrics"), "/pipeline") as cluster:
        payer, payee = uid("payer"), uid("payee")
        total = sum(Decimal(a) for a in AMOUNTS[:25])
        open_accounts(cluster, {payer: str(total), payee: "0.00"})
        ids = [pay(cluster, payer, payee, amount) for amount in AMOUNTS]
        outcomes = [outcome(cluster, pid) for pid in ids]
        yield cluster, outcomes


def series(cluster, window: str, worker: int = 0) -> list[dict]:
    def probe():
        return cluster.workers[worker].get(f"/metrics/throughput?window={window}&limit=1000")

    _, body = eventually(probe, lambda r: r[0] == 200 and _count(r[1]["windows"]) >= 30)
    return body["windows"]


def _count(windows: list[dict]) -> int:
    return sum(w["count"] for w in windows)


def test_windows_count_every_payment_and_amount_exactly(metered):
    cluster, outcomes = metered
    confirmed = [o for o in outcomes if o["state"] == "confirmed"]
    assert len(confirmed) + sum(o["state"] == "rejected" for o in outcomes) == 30
    expected_amount = sum(Decimal(o["amount"]) for o in confirmed)
    for window in ("1s", "1m"):
        for worker in (0, 1):  # each worker merges its own partitions with the other's
            windows = series(cluster, window, worker)
            assert _count(windows) == 30
            assert sum(w["confirmed"] for w in windows) == len(confirmed)
            assert sum(w["rejected"] for w in windows) == 30 - len(confirmed)
            assert sum(Decimal(w["amount"]) for w in windows) == expected_amount
            assert max(Decimal(w["largest_payment"] or 0) for w in windows) == max(
                Decimal(o["amount"]) for o in confirmed
            )
            starts = [w["start"] for w in windows]
            assert starts == sorted(starts, reverse=True)
            for w in windows:
                ms = w["latency_ms"]
                assert 0 <= ms["min"] <= ms["p50"] <= ms["p95"] <= ms["p99"] <= ms["max"]
                assert ms["min"] <= ms["mean"] <= ms["max"]


def test_prometheus_metrics_parse_and_sum_to_the_pipeline(metered):
    cluster, _ = metered
    totals = pipeline(cluster)
    summed: dict[str, float] = {}
    for worker in cluster.workers:
        status, text = http_text(worker.url + "/metrics", cluster.tokens["viewer"])
        assert status == 200
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                label = labels.get("outcome") or labels.get("stage") or labels.get("kind") or ""
                key = f"{sample.name}{{{label}}}"
                summed[key] = summed.get(key, 0) + sample.value
    assert summed["kpay_payments_total{confirmed}"] == totals["confirmed"]["count"]
    assert summed["kpay_payments_total{rejected}"] == totals["rejected"]["count"]
    assert summed["kpay_inflight_payments{}"] == 0
    assert summed["kpay_payment_latency_seconds_count{}"] == 30
    assert summed["kpay_stage_events_total{confirmed_stage}"] >= 30
    for stage in ("inflight_gateway", "account_stage", "confirmed_stage", "payment_metrics"):
        assert summed[f"kpay_stage_cpu_seconds_total{{{stage}}}"] > 0, stage
    assert "kpay_consumer_lag{}" in summed
    # The stores' memtables hold the tables' writes, in the one budget each worker has.
    assert summed["kpay_rocksdb_memory_bytes{memtables}"] > 0
    assert "kpay_rocksdb_memory_bytes{block_cache}" in summed
    assert summed["kpay_paced{}"] == 0  # 30 payments are no load: fetched and sent at once
    # Idle, nothing waits to be read; the changelogs the workers write are not a backlog.
    eventually(lambda: lag_of(cluster), lambda lag: lag == {}, timeout=30)
    assert Decimal(str(summed["kpay_payment_amount_total{confirmed}"])).quantize(
        Decimal("0.01")
    ) == Decimal(totals["confirmed"]["amount"])


def lag_of(cluster) -> dict[str, float]:
    """Topics with records not yet read, over every worker (``kpay_consumer_lag``)."""
    behind: dict[str, float] = {}
    for worker in cluster.workers:
        _, text = http_text(worker.url + "/metrics", cluster.tokens["viewer"])
        for family in text_string_to_metric_families(text):
            if family.name == "kpay_consumer_lag":
                for sample in family.samples:
                    if sample.value:
                        behind[sample.labels["topic"]] = sample.value
    return behind


def test_windows_survive_a_restart_of_both_workers(metered):
    cluster, _ = metered
    before = series(cluster, "1m")
    for worker in cluster.workers:
        worker.stop()
    for worker in cluster.workers:
        worker.start()
    for worker in cluster.workers:
        worker.wait_ready()
    after = series(cluster, "1m", worker=1)
    assert [(w["start"], w["count"], w["amount"]) for w in after] == [
        (w["start"], w["count"], w["amount"]) for w in before
    ]
    assert after[0]["latency_ms"] == before[0]["latency_ms"]


def test_unknown_window_is_a_400(metered):
    cluster, _ = metered
    status, body = cluster.workers[0].get("/metrics/throughput?window=5h")
    assert status == 400 and "window" in body["error"]


def http_text(url: str, token: str) -> tuple[int, str]:
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()
