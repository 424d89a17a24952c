"""A Kafka broker lost under load: on a three-node cluster (``scripts/cluster.sh``: replication
3, min in-sync replicas 2) one node is SIGKILLed while payments are at every stage. Nothing is
lost, every payment ends once, money is conserved, and the pipeline goes on on two nodes."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from kpay_faust.ports import free_ports_at
from tests.integration.test_payments import (
    assert_money_kept,
    assert_one_outcome_each,
    offer,
    open_accounts,
    pipeline,
    random_payments,
    settle,
    uid,
)
from tests.support.waiting import eventually
from tests.support.workers import REPO, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.crash]

CLUSTER_SCRIPT = str(REPO / "scripts" / "cluster.sh")


class ThreeNodes:
    """A three-node cluster of its own (ports from ``base``, data in a temporary directory)."""

    def __init__(self) -> None:
        self.base = str(free_ports_at((0, 1, 10, 11, 20, 21)))
        self.data = tempfile.mkdtemp(prefix="kpay-test-cluster.")
        self.env = {**os.environ, "KPAY_CLUSTER_DIR": self.data}

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [CLUSTER_SCRIPT, *args], env=self.env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[ThreeNodes]:
    nodes = ThreeNodes()
    nodes.run("start", nodes.base)
    try:
        yield nodes
    finally:
        subprocess.run([CLUSTER_SCRIPT, "stop", nodes.base], env=nodes.env, check=False)
        shutil.rmtree(nodes.data, ignore_errors=True)


async def test_a_broker_killed_under_load_loses_nothing(three_nodes, tmp_path):
    bootstrap = three_nodes.run("bootstrap", three_nodes.base)
    cluster = Cluster(
        f"kafka://{bootstrap}",
        f"b{uid('loss').replace('-', '')}",
        tmp_path,
        KPAY_STORE="rocksdb://",
        KPAY_REPLICATION_FACTOR="3",
        KPAY_MIN_INSYNC_REPLICAS="2",
    )
    try:
        for _ in range(2):
            cluster.worker().start().wait_ready(timeout=120)
        accounts = [uid("n") for _ in range(40)]
        open_accounts(cluster, dict.fromkeys(accounts, "100.00"))
        before = pipeline(cluster)
        docs = random_payments(random.Random(31), accounts, 3000)
        await offer(bootstrap, cluster.topic("payments.incoming"), docs)

        def finished(p: dict) -> int:
            return p["confirmed"]["count"] + p["rejected"]["count"]

        started = finished(before)
        eventually(lambda: finished(pipeline(cluster)), lambda n: n >= started + 300, timeout=120)
        three_nodes.run("kill", "2", three_nodes.base)
        assert finished(pipeline(cluster)) < started + len(docs), "all done before the kill"

        after = settle(cluster, before, len(docs), timeout=300, worker=0)
        assert after["inflight"] == {"count": 0, "amount": "0.00"}
        assert_money_kept(cluster, accounts, "4000.00", worker=0)
        await assert_one_outcome_each(bootstrap, cluster, docs)
    finally:
        cluster.stop()
