"""The runbooks of docs/operations.md, run under load against real workers: a rolling restart
(no pause) and a drain-and-upgrade (``faust -A kpay drain``, stop, start, ``faust -A kpay
resume``). Either way money is conserved, every payment has exactly one outcome and the books
reconcile."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.integration.conftest import two_workers_on_rocksdb
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

pytestmark = [pytest.mark.integration, pytest.mark.crash]

PAYMENTS = 3000


def serving(worker) -> bool:
    """Every partition is served: the gathering endpoints answer."""
    return worker.get("/pipeline")[0] == 200


def control(cluster, command: str, worker: int = 0):
    """``faust -A kpay <command>`` (drain, resume, ready) against worker ``worker``."""
    url, token = cluster.workers[worker].url, cluster.tokens["operator"]
    return cluster.faust(command, "--url", url, "--token", token, "--timeout", "120", timeout=180)


async def ready(cluster, worker: int) -> None:
    result = await asyncio.to_thread(control, cluster, "ready", worker)
    assert result.returncode == 0, result.stdout + result.stderr


def reconciled(cluster) -> dict:
    _, report = eventually(
        lambda: cluster.workers[0].get("/reconcile"), lambda r: r[0] == 200, timeout=60
    )
    return report


async def test_a_rolling_restart_under_load_loses_nothing(broker, bootstrap, tmp_path):
    with two_workers_on_rocksdb(broker, tmp_path, "/pipeline") as cluster:
        accounts = [uid("roll") for _ in range(40)]
        open_accounts(cluster, dict.fromkeys(accounts, "100.00"))
        before = pipeline(cluster)
        docs = random_payments(random.Random(31), accounts, PAYMENTS)
        sending = asyncio.create_task(offer(bootstrap, cluster.topic("payments.incoming"), docs))
        for index, worker in enumerate(cluster.workers):  # the runbook, step by step
            await asyncio.to_thread(worker.stop)  # SIGTERM: commits and hands its partitions over
            await ready(cluster, 1 - index)  # the other serves every partition
            worker.start()
            await ready(cluster, index)
        await sending
        settle(cluster, before, len(docs), timeout=300)
        assert_money_kept(cluster, accounts, "4000.00")
        await assert_one_outcome_each(bootstrap, cluster, docs)
        report = reconciled(cluster)
        assert report["passed"] and report["conservation"] == "pass", report


async def test_drain_and_upgrade_under_load_loses_nothing(broker, bootstrap, tmp_path):
    with two_workers_on_rocksdb(broker, tmp_path, "/pipeline") as cluster:
        accounts = [uid("drain") for _ in range(40)]
        open_accounts(cluster, dict.fromkeys(accounts, "100.00"))
        before = pipeline(cluster)
        docs = random_payments(random.Random(37), accounts, PAYMENTS)
        await offer(bootstrap, cluster.topic("payments.incoming"), docs)
        eventually(lambda: pipeline(cluster), lambda p: p["inflight"]["count"] > 0)

        drained = await asyncio.to_thread(control, cluster, "drain")
        assert drained.returncode == 0, drained.stdout + drained.stderr
        at_pause = pipeline(cluster)
        assert at_pause["inflight"]["count"] == 0
        finished_at_pause = at_pause["confirmed"]["count"] + at_pause["rejected"]["count"]
        assert finished_at_pause - before["confirmed"]["count"] - before["rejected"]["count"] < (
            len(docs)
        )  # paused with payments still waiting in Kafka

        # The upgrade: every worker stopped, then started again (with a changed setting).
        for worker in cluster.workers:
            worker.stop()
        for worker in cluster.workers:
            worker.env["KPAY_FETCH_INTERVAL_MS"] = "10"
            worker.start().wait_ready()
        eventually(lambda: serving(cluster.workers[0]), bool, 120)
        # Still paused after the restart (the control topic says so): nothing is admitted.
        eventually(
            lambda: cluster.workers[1].get("/control/status"),
            lambda r: r[0] == 200 and r[1]["state"] == "paused",
        )
        assert pipeline(cluster)["confirmed"] == at_pause["confirmed"]

        resumed = await asyncio.to_thread(control, cluster, "resume", 1)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        settle(cluster, before, len(docs), timeout=300)
        assert_money_kept(cluster, accounts, "4000.00")
        await assert_one_outcome_each(bootstrap, cluster, docs)
        report = reconciled(cluster)
        assert report["passed"] and report["conservation"] == "pass", report
