"""A worker that lost its local stores (a new machine, a lost disk) restores every table from
its changelogs in bulk (``kpay_faust.engine.restore``) and serves what it served before: the
same balances, totals and payment statuses, and a payment id used before is still refused."""

from __future__ import annotations

import random
import shutil

import pytest

from tests.integration.conftest import new_cluster
from tests.integration.test_payments import (
    offer,
    open_accounts,
    pipeline,
    random_payments,
    settle,
    uid,
)

pytestmark = pytest.mark.integration


def statuses(worker, docs: list[dict]) -> dict[str, tuple]:
    found = {}
    for doc in docs:
        status, body = worker.get(f"/payments/{doc['id']}")
        assert status == 200, body
        found[doc["id"]] = (body["state"], body.get("reason"), body["amount"])
    return found


async def test_a_worker_without_local_stores_restores_them_in_bulk(broker, bootstrap, tmp_path):
    cluster = new_cluster(broker, tmp_path, KPAY_STORE="rocksdb://")
    try:
        worker = cluster.worker().start().wait_ready()
        accounts = [uid("rs") for _ in range(30)]
        open_accounts(cluster, dict.fromkeys(accounts, "100.00"))
        before = pipeline(cluster)
        docs = random_payments(random.Random(5), accounts, 800)
        await offer(bootstrap, cluster.topic("payments.incoming"), docs)
        served = settle(cluster, before, len(docs), worker=0)
        balances = {a["id"]: a["balance"] for a in worker.accounts()}
        sample = docs[::40]
        states = statuses(worker, sample)

        worker.stop()
        shutil.rmtree(worker.data_dir)  # every local store gone
        worker.start().wait_ready()

        # Each payment wrote several changelog records (status, ledger steps, balances,
        # totals); the bulk path restored at least one per payment and account.
        assert worker.metric("kpay_restored_records") >= len(docs) + len(accounts)
        assert {a["id"]: a["balance"] for a in worker.accounts()} == balances
        assert pipeline(cluster) == served
        assert statuses(worker, sample) == states

        # The payment statuses came back too: an id used before is not applied again.
        again = sample[0]
        await offer(bootstrap, cluster.topic("payments.incoming"), [again])
        fresh = random_payments(random.Random(6), accounts, 1)
        await offer(bootstrap, cluster.topic("payments.incoming"), fresh)
        after = settle(cluster, served, 1, worker=0)
        assert after["confirmed"]["count"] + after["rejected"]["count"] == (
            served["confirmed"]["count"] + served["rejected"]["count"] + 1
        )
    finally:
        cluster.stop()
