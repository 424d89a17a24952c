"""Dead-letter tools on real workers: ``GET /dlq`` and ``faust -A kpay dlq list`` show what was
dead-lettered and why; ``faust -A kpay dlq replay`` sends it back once the cause is fixed (a
deposit to an account opened since, a payment whose bytes the operator corrected), it reaches
its outcome once, and a second replay changes nothing. Each replay is audited, and the stage's
warning about the bad record is on ``kpay.logs`` (``GET /logs``, ``faust -A kpay logs``)."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.test_payments import balance, outcome, pipeline, uid
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def listed(cluster, *args: str) -> list[dict]:
    result = cluster.faust("dlq", "list", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def replay(cluster, *args: str) -> list[dict]:
    result = cluster.faust("dlq", "replay", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


async def test_dead_letters_are_listed_and_replayed_once_their_cause_is_fixed(
    cluster, bootstrap, tmp_path
):
    worker = cluster.worker(KPAY_RECONCILE_SECONDS="1").start().wait_ready()
    eventually(lambda: worker.get("/pipeline")[0], lambda s: s == 200)
    ghost, payer, payee, bad = uid("ghost"), uid("payer"), uid("payee"), uid("bad")
    status, _ = worker.post("/accounts", {"id": payer, "balance": "50.00"})
    assert status == 202
    status, _ = worker.post("/accounts", {"id": payee, "balance": "0"})
    assert status == 202
    eventually(lambda: worker.get(f"/accounts/{payee}")[0], lambda s: s == 200)
    deposit = {"ref": uid("ref"), "action": "deposit", "account": ghost, "amount": "7.00"}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:  # a deposit to an account that does not exist yet, and bytes that are not a payment
        await producer.send_and_wait(
            cluster.topic("accounts"), json.dumps(deposit).encode(), key=ghost.encode()
        )
        await producer.send_and_wait(
            cluster.topic("payments.incoming"), b"\xff not json", key=bad.encode()
        )
    finally:
        await producer.stop()

    def answer():
        return worker.get("/dlq")

    _, body = eventually(answer, lambda r: r[0] == 200 and r[1]["count"] >= 2)
    by_stage = {d["stage"]: d for d in body["dead_letters"]}
    assert by_stage["accounts_ledger"]["error"] == f"account {ghost!r} does not exist"
    assert by_stage["inflight_gateway"]["error"].startswith("not JSON")
    assert by_stage["inflight_gateway"]["key"] == bad
    status, only = worker.get("/dlq?stage=accounts_ledger&limit=5")
    assert status == 200 and [d["stage"] for d in only["dead_letters"]] == ["accounts_ledger"]
    assert worker.get("/dlq", role="viewer")[0] == 403
    assert worker.get("/dlq?limit=0")[0] == 400
    assert [d["key"] for d in listed(cluster, "--stage", "accounts_ledger")] == [ghost]
    assert eventually(lambda: worker.metric("kpay_dead_letter_depth"), lambda d: d == 2)
    assert worker.metric("kpay_dead_letters") == 2

    # A dry run sends nothing.
    dry = replay(cluster, "--stage", "accounts_ledger", "--dry-run")
    assert [d["replayed"] for d in dry] == [False] and dry[0]["why"] == "dry run"

    # Fix the cause (open the account), replay: the deposit applies, once.
    status, _ = worker.post("/accounts", {"id": ghost, "balance": "1.00"})
    assert status == 202
    eventually(lambda: worker.get(f"/accounts/{ghost}")[0], lambda s: s == 200)
    done = replay(cluster, "--stage", "accounts_ledger")
    assert [d["replayed"] for d in done] == [True] and done[0]["topic"] == cluster.topic("accounts")
    eventually(lambda: balance(cluster, ghost), lambda b: str(b) == "8.00")
    assert replay(cluster, "--stage", "accounts_ledger")[0]["replayed"]  # again: sent, not applied
    status, _ = worker.post(f"/accounts/{ghost}/deposits", {"amount": "0.50"})
    assert status == 202  # after the second replay on the same partition: it is processed first
    eventually(lambda: balance(cluster, ghost), lambda b: str(b) == "8.50")

    # A payment whose bytes the operator corrected reaches its outcome once, however often.
    letter = by_stage["inflight_gateway"]
    where = f"{letter['dlq_partition']}@{letter['dlq_offset']}"
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({"id": bad, "from": payer, "to": payee, "amount": "5.00"}))
    before = pipeline(cluster)
    for _ in range(2):
        done = replay(cluster, "--offset", where, "--value-file", str(fixed))
        assert [d["replayed"] for d in done] == [True]
    assert outcome(cluster, bad)["state"] == "confirmed"
    after = eventually(lambda: pipeline(cluster), lambda p: p["inflight"]["count"] == 0)
    assert after["confirmed"]["count"] == before["confirmed"]["count"] + 1
    assert balance(cluster, payee) == 5 and balance(cluster, payer) == 45
    _, books = worker.get("/reconcile")
    assert books["passed"], books

    # Each replay (not the dry run) is in the audit trail, with the operator and the new event.
    def replays():
        _, body = worker.get("/audit?limit=200")
        return [r for r in body["records"] if r["action"] == "dlq replay"]

    audited = eventually(replays, lambda found: len(found) == 4)
    assert {r["event"]["topic"] for r in audited} == {
        cluster.topic("accounts"),
        cluster.topic("payments.incoming"),
    }
    assert all(r["outcome"] == "accepted" and "@" in r["principal"] for r in audited)

    # The gateway's warning about the bad bytes is on kpay.logs, with its stage and record.
    def warnings():
        return worker.get("/logs?limit=500")

    def mentions_bad(answer) -> bool:
        return answer[0] == 200 and any(
            r.get("key") == bad and r.get("stage") == "inflight_gateway"
            for r in answer[1]["records"]
        )

    _, trail = eventually(warnings, mentions_bad)
    logged = next(r for r in trail["records"] if r.get("key") == bad)
    assert logged["level"] == "WARNING" and logged["topic"] == cluster.topic("payments.incoming")
    assert logged["worker"].endswith(str(worker.port))
    assert worker.get("/logs?level=DEBUG")[0] == 400
    assert worker.get("/logs", role="viewer")[0] == 403
    cli = cluster.faust("logs", "--level", "WARNING", "--limit", "500")
    assert cli.returncode == 0 and bad in cli.stdout, cli.stderr


async def test_an_operator_replays_a_dead_letter_over_http_once_its_cause_is_fixed(
    cluster, bootstrap
):
    """``POST /dlq/replay`` (the console's Replay button) does what the CLI does: the record
    goes back to its topic and applies once, however often it is replayed."""
    worker = cluster.worker().start().wait_ready()
    eventually(lambda: worker.get("/pipeline")[0], lambda s: s == 200)
    ghost = uid("ghost")
    deposit = {"ref": uid("ref"), "action": "deposit", "account": ghost, "amount": "3.00"}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            cluster.topic("accounts"), json.dumps(deposit).encode(), key=ghost.encode()
        )
    finally:
        await producer.stop()
    _, body = eventually(lambda: worker.get("/dlq"), lambda r: r[0] == 200 and r[1]["count"])
    letter = body["dead_letters"][0]
    where = f"{letter['dlq_partition']}@{letter['dlq_offset']}"
    asked = {"dead_letters": [where, "7@999999"]}
    assert worker.post("/dlq/replay", asked, role="client")[0] == 403  # operators only

    status, _ = worker.post("/accounts", {"id": ghost, "balance": "1.00"})
    assert status == 202
    eventually(lambda: worker.get(f"/accounts/{ghost}")[0], lambda s: s == 200)
    for _ in range(2):
        status, done = worker.post("/dlq/replay", asked)
        assert status == 200, done
        assert done["replayed"] == 1 and done["not_found"] == ["7@999999"]
        [result] = done["results"]
        assert result["replayed"] and result["topic"] == cluster.topic("accounts")
        assert result["dead_letter"] == where and result["key"] == ghost
    eventually(lambda: balance(cluster, ghost), lambda b: str(b) == "4.00")  # applied once
    status, _ = worker.post(f"/accounts/{ghost}/deposits", {"amount": "0.50"})
    assert status == 202  # processed after both replays on the same partition
    eventually(lambda: balance(cluster, ghost), lambda b: str(b) == "4.50")
    assert worker.post("/dlq/replay", {"dead_letters": ["not a place"]})[0] == 400

    def audited():
        return worker.get("/audit")[1]["records"]

    found = eventually(audited, lambda rs: sum(r["action"] == "POST /dlq/replay" for r in rs) >= 4)
    outcomes = [r["outcome"] for r in found if r["action"] == "POST /dlq/replay"]
    assert outcomes.count("accepted") == 2 and "refused" in outcomes
