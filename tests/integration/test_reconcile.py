"""Live reconciliation on real workers: the books reconcile while payments flow and once they
settle, and a balance changed behind the stages' back (a record written into the ledger's
changelog) is found and named, by ``GET /reconcile`` and by ``faust -A kpay reconcile``."""

from __future__ import annotations

import asyncio
import json
import random
import time
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import two_workers_on_rocksdb
from tests.integration.test_payments import (
    offer,
    open_accounts,
    pipeline,
    random_payments,
    settle,
    uid,
)
from tests.integration.test_retention import changelog
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def reconcile(cluster, worker: int = 0) -> dict:
    _, body = eventually(
        lambda: cluster.workers[worker].get("/reconcile"), lambda r: r[0] == 200, timeout=60
    )
    return body


async def test_the_books_reconcile_under_load_and_a_changed_balance_is_named(
    broker, bootstrap, tmp_path
):
    with two_workers_on_rocksdb(broker, tmp_path, "/reconcile") as cluster:
        accounts = [uid("rc") for _ in range(30)]
        open_accounts(cluster, dict.fromkeys(accounts, "100.00"))
        before = pipeline(cluster)
        docs = random_payments(random.Random(11), accounts, 3000)
        sending = asyncio.create_task(offer(bootstrap, cluster.topic("payments.incoming"), docs))
        during: list[dict] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # read the books until every payment has finished
            status, body = await asyncio.to_thread(cluster.workers[0].get, "/reconcile")
            if status == 200:
                during.append(body)
                payments = body["payments"]
                if sending.done() and payments["released"]["count"] == len(docs):
                    break
        await sending
        settle(cluster, before, len(docs))

        # While payments flowed, every read passed; some saw payments in flight.
        assert all(r["passed"] for r in during), [r["failures"] for r in during]
        assert {r["conservation"] for r in during} <= {"pass", "settling"}
        assert any(r["payments"]["inflight"]["count"] > 0 for r in during)
        after = reconcile(cluster)
        assert after["passed"] and after["conservation"] == "pass", after
        assert after["money"]["balances"] == after["money"]["funded"] == "3000.00"
        assert after["payments"]["admitted"]["count"] == after["payments"]["released"]["count"]

        # Change one balance in the ledger's changelog, as a tampered or corrupted log would;
        # the owner reads it back when it restarts.
        victim = accounts[0]
        rows = await changelog(bootstrap, f"{cluster.name}-ledger-changelog", 8)
        row = json.loads(rows[victim])
        changed = Decimal(str(row["balance"])) + 1000
        row["balance"] = str(changed) if isinstance(row["balance"], str) else float(changed)
        mangled = accounts[1]  # and one row no stage could have written
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                f"{cluster.name}-ledger-changelog", json.dumps(row).encode(), key=victim.encode()
            )
            await producer.send_and_wait(
                f"{cluster.name}-ledger-changelog", b"\x00 not a row", key=mangled.encode()
            )
        finally:
            await producer.stop()
        for worker in cluster.workers:
            worker.stop()
        for worker in cluster.workers:
            worker.start().wait_ready()

        broken = reconcile(cluster)
        assert not broken["passed"]
        assert [m["account"] for m in broken["balance_mismatches"]] == [victim]
        assert any(victim in failure for failure in broken["failures"])
        assert [r["account"] for r in broken["unreadable_rows"]] == [mangled]

        # Reads of the unreadable row answer with what is wrong, not a 500.
        for worker in cluster.workers:  # one owns it, the other routes the request there
            status, body = worker.get(f"/accounts/{mangled}")
            assert status == 409 and mangled in body["error"], (status, body)
        status, body = cluster.workers[0].get("/accounts?limit=1000")
        assert status == 200 and body["unreadable"] == [mangled], body
        listed = {a["id"] for a in body["accounts"]}
        assert mangled not in listed and set(accounts) - {mangled} <= listed

        cli = cluster.faust(
            "reconcile", "--url", cluster.workers[1].url, "--token", cluster.tokens["viewer"]
        )
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert victim in cli.stdout and "failed" in cli.stdout
