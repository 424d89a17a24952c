"""The business function on the real broker with two real workers."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from kpay_faust import loadgen, tracecontext
from tests.integration.conftest import two_workers_on_rocksdb
from tests.support.waiting import eventually
from tests.support.workers import http

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_workers(broker, tmp_path_factory):
    with two_workers_on_rocksdb(broker, tmp_path_factory.mktemp("payments"), "/pipeline") as c:
        yield c


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def open_accounts(cluster, balances: dict[str, str]) -> None:
    worker = cluster.workers[0]
    for account, balance in balances.items():
        status, body = worker.post("/accounts", {"id": account, "balance": balance})
        assert status == 202, body
    for account in balances:
        eventually(lambda a=account: worker.get(f"/accounts/{a}")[0], lambda s: s == 200)


def balance(cluster, account: str, worker: int = 0) -> Decimal:
    status, body = cluster.workers[worker].get(f"/accounts/{account}")
    assert status == 200, body
    return Decimal(body["balance"])


def outcome(cluster, payment_id: str, worker: int = 0) -> dict:
    def probe():
        return cluster.workers[worker].get(f"/payments/{payment_id}")

    _, body = eventually(
        probe, lambda r: r[0] == 200 and r[1]["finished_at"] and not r[1]["inflight"]
    )
    return body


def pipeline(cluster, worker: int = 0) -> dict:
    _, body = eventually(lambda: cluster.workers[worker].get("/pipeline"), lambda r: r[0] == 200)
    return body


def pay(cluster, payer: str, payee: str, amount: str, pid: str | None = None) -> str:
    body = {"from": payer, "to": payee, "amount": amount}
    if pid:
        body["id"] = pid
    status, answer = cluster.workers[0].post("/payments", body)
    assert status == 202, answer
    return answer["id"]


def test_one_payment_neil_to_john(two_workers):
    neil, john = uid("neil"), uid("john")
    open_accounts(two_workers, {neil: "100.00", john: "0.00"})
    before = pipeline(two_workers)
    pid = pay(two_workers, neil, john, "10.00")
    assert outcome(two_workers, pid)["state"] == "confirmed"
    for worker in (0, 1):  # every account readable from both workers
        assert balance(two_workers, neil, worker) == Decimal("90.00")
        assert balance(two_workers, john, worker) == Decimal("10.00")
    after = eventually(lambda: pipeline(two_workers, 1), lambda p: p["inflight"]["count"] == 0)
    assert after["confirmed"]["count"] == before["confirmed"]["count"] + 1
    assert Decimal(after["confirmed"]["amount"]) - Decimal(before["confirmed"]["amount"]) == 10
    assert after["inflight"]["amount"] == "0.00"


def test_ten_franks_pay_neil(two_workers):
    franks = [uid(f"frank-{i}") for i in range(10)]
    neil = uid("neil")
    open_accounts(two_workers, {**dict.fromkeys(franks, "100.00"), neil: "0"})
    before = pipeline(two_workers)
    ids = [pay(two_workers, frank, neil, "100.00") for frank in franks]
    assert {outcome(two_workers, pid)["state"] for pid in ids} == {"confirmed"}
    assert all(balance(two_workers, f, 1) == 0 for f in franks)
    assert balance(two_workers, neil, 1) == Decimal("1000.00")
    after = pipeline(two_workers)
    assert after["confirmed"]["count"] - before["confirmed"]["count"] == 10
    assert Decimal(after["confirmed"]["amount"]) - Decimal(before["confirmed"]["amount"]) == 1000


def test_rejections_move_no_money(two_workers):
    rich, poor, other = uid("rich"), uid("poor"), uid("other")
    open_accounts(two_workers, {rich: "50.00", poor: "1.00", other: "0.00"})
    cases = {
        pay(two_workers, poor, other, "5.00"): "insufficient funds",
        pay(two_workers, uid("ghost"), other, "5.00"): "unknown payer account",
        pay(two_workers, rich, uid("ghost"), "5.00"): "unknown payee account",
    }
    for pid, reason in cases.items():
        result = outcome(two_workers, pid, worker=1)
        assert (result["state"], result["reason"]) == ("rejected", reason)
    # The payee was unknown after the debit: the compensating refund restored the payer.
    assert balance(two_workers, rich) == Decimal("50.00")
    assert balance(two_workers, poor) == Decimal("1.00")
    assert balance(two_workers, other) == Decimal("0.00")


def test_duplicate_payment_id_moves_money_once(two_workers):
    payer, payee = uid("payer"), uid("payee")
    open_accounts(two_workers, {payer: "100.00", payee: "0.00"})
    pid = uid("dup")
    for _ in range(3):
        pay(two_workers, payer, payee, "10.00", pid)
    assert outcome(two_workers, pid)["state"] == "confirmed"
    later = pay(two_workers, payer, payee, "1.00")  # the payer's queue has moved past the dups
    outcome(two_workers, later)
    assert balance(two_workers, payer) == Decimal("89.00")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"from": "a", "to": "a", "amount": "1.00"}, "payer and payee must differ"),
        ({"from": "a", "to": "b", "amount": "0"}, "amount: must be greater than 0"),
        ({"from": "a", "to": "b", "amount": 1.5}, "amount: must be a decimal string"),
        ({"from": "a", "to": "b"}, "amount: Field required"),
        ({"from": "a", "to": "b", "amount": "1", "extra": 1}, "extra: Extra inputs"),
    ],
)
def test_http_rejects_invalid_payment_with_4xx(two_workers, body, message):
    status, answer = two_workers.workers[1].post("/payments", body)
    assert status == 400 and message in answer["error"]


def test_http_errors_are_4xx_with_a_message(two_workers):
    worker = two_workers.workers[0]
    from tests.support.workers import http

    operator = worker.cluster.tokens["operator"]
    assert http("POST", worker.url + "/payments", b"{not json", token=operator)[0] == 400
    assert http("POST", worker.url + "/accounts", b"[1,2]", token=operator)[0] == 400
    assert worker.get(f"/accounts/{uid('nobody')}")[0] == 404
    assert worker.get(f"/payments/{uid('nothing')}")[0] == 404
    account = uid("twice")
    open_accounts(two_workers, {account: "1.00"})
    status, answer = two_workers.workers[1].post("/accounts", {"id": account, "balance": "1"})
    assert status == 409 and "already exists" in answer["error"]


def test_faust_send_with_and_without_key(two_workers):
    payer, payee = uid("cli-payer"), uid("cli-payee")
    open_accounts(two_workers, {payer: "20.00", payee: "0.00"})
    keyed, keyless = uid("cli"), uid("cli")
    for pid, key in ((keyed, ["--key", keyed]), (keyless, [])):
        doc = json.dumps({"id": pid, "from": payer, "to": payee, "amount": "5.00"})
        sent = two_workers.faust("send", *key, two_workers.topic("payments.incoming"), doc)
        assert sent.returncode == 0, sent.stderr
    assert outcome(two_workers, keyed)["state"] == "confirmed"
    assert outcome(two_workers, keyless)["state"] == "confirmed"
    assert balance(two_workers, payee) == Decimal("10.00")


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records = []
    try:
        import asyncio

        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


async def test_undecodable_bytes_are_dead_lettered_and_agents_survive(two_workers, bootstrap):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    incoming = two_workers.topic("payments.incoming")
    marker = uid("garbage")
    try:
        await producer.send_and_wait(incoming, key=marker.encode(), value=b"\xff\xfe not json")
        await producer.send_and_wait(two_workers.topic("accounts"), value=b'{"what": 1}')
    finally:
        await producer.stop()
    letters = [
        json.loads(r.value) for r in await read_topic(bootstrap, two_workers.topic("dlq"), 2)
    ]
    mine = [letter for letter in letters if letter["key"] == marker]
    assert len(mine) == 1
    assert mine[0]["stage"] == "inflight_gateway" and mine[0]["error"].startswith("not JSON")
    assert mine[0]["topic"] == incoming and mine[0]["offset"] >= 0
    assert any(letter["stage"] == "accounts_ledger" for letter in letters)
    # The stages still run.
    payer, payee = uid("after"), uid("after")
    open_accounts(two_workers, {payer: "1.00", payee: "0"})
    assert outcome(two_workers, pay(two_workers, payer, payee, "1.00"))["state"] == "confirmed"


async def offer(bootstrap: str, topic: str, docs: list[dict]) -> None:
    """Send payments straight to the topic, as fast as the producer batches them."""
    producer = loadgen.producer(bootstrap)
    await producer.start()
    try:
        await loadgen.send_all(loadgen.sender(producer), topic, docs, "id")
        await producer.flush()
    finally:
        await producer.stop()


def random_payments(rng: random.Random, accounts: list[str], count: int) -> list[dict]:
    """``count`` payments between random accounts; amounts up to 60.00, so some overdraw."""
    maker = loadgen.PaymentMaker(accounts, "60.00", prefix=f"{uid('r')}-", rng=rng)
    return loadgen.random_payments(maker, count)


def settle(cluster, before: dict, count: int, timeout: float = 240, worker: int = 1) -> dict:
    """Wait until ``count`` more payments have finished and nothing is in flight."""

    def settled(p):
        done = p["confirmed"]["count"] + p["rejected"]["count"]
        finished = done - before["confirmed"]["count"] - before["rejected"]["count"] == count
        return finished and p["inflight"]["count"] == 0

    return eventually(lambda: pipeline(cluster, worker), settled, timeout=timeout)


def balances_of(cluster, accounts: list[str], worker: int = 1) -> dict[str, Decimal]:
    listing = cluster.workers[worker].accounts()
    return {a["id"]: Decimal(a["balance"]) for a in listing if a["id"] in accounts}


def assert_money_kept(cluster, accounts: list[str], total: str, worker: int = 1) -> None:
    """Every account still there, together holding ``total``, none below zero."""
    mine = balances_of(cluster, accounts, worker=worker)
    assert len(mine) == len(accounts)
    assert sum(mine.values()) == Decimal(total)
    assert all(b >= 0 for b in mine.values())


async def assert_one_outcome_each(bootstrap: str, cluster, docs: list[dict]) -> None:
    """``payments.confirmed`` of a fresh cluster holds an outcome of each payment of ``docs``
    and of nothing else; one published again after a crash is always the same outcome (state
    and completion)."""
    topic = cluster.topic("payments.confirmed")
    records = await read_topic(bootstrap, topic, len(docs), timeout=120)
    published: dict[str, set] = defaultdict(set)
    for record in records:
        doc = json.loads(record.value)
        completion = doc["completion"]
        published[doc["id"]].add((doc["state"], completion["partition"], completion["offset"]))
    assert set(published) == {doc["id"] for doc in docs}
    assert all(len(versions) == 1 for versions in published.values())


async def test_random_payments_conserve_money(two_workers, bootstrap):
    accounts = [uid("c") for _ in range(40)]
    open_accounts(two_workers, dict.fromkeys(accounts, "100.00"))
    before = pipeline(two_workers)
    docs = random_payments(random.Random(11), accounts, 2000)
    await offer(bootstrap, two_workers.topic("payments.incoming"), docs)

    after = settle(two_workers, before, len(docs))
    assert after["inflight"] == {"count": 0, "amount": "0.00"}
    mine = balances_of(two_workers, accounts)
    assert len(mine) == len(accounts)
    assert sum(mine.values()) == Decimal("4000.00")
    assert all(b >= 0 for b in mine.values())

    outcomes = await read_topic(
        bootstrap,
        two_workers.topic("payments.confirmed"),
        after["confirmed"]["count"] + after["rejected"]["count"],
    )
    ids = {doc["id"] for doc in docs}
    per_id = Counter(r.key.decode() for r in outcomes if r.key.decode() in ids)
    assert len(per_id) == len(docs) and set(per_id.values()) == {1}


def test_a_worker_just_started_answers_503_not_500(cluster):
    """Right after start-up the worker may not know a table changelog's partitions yet; a
    request routed by key must get a retryable 503 (it got a 500 before)."""
    worker = cluster.worker(KPAY_STORE="rocksdb://").start().wait_ready()
    status, body = worker.post("/accounts", {"id": uid("early"), "balance": "1.00"})
    assert status in (202, 503), body
    if status == 503:
        assert body["error"]


async def test_a_rebalance_does_not_publish_finished_outcomes_again(cluster, bootstrap):
    """Faust drops the acknowledged offsets of revoked partitions; without a commit first, the
    stages redo everything since the last commit after a worker joins, and publish it again.
    No periodic commit here, so only the commit before the rebalance can prevent that."""
    settings = {"KPAY_COMMIT_INTERVAL": "600", "KPAY_STORE": "rocksdb://"}
    first = cluster.worker(**settings).start().wait_ready()
    eventually(lambda: first.get("/pipeline")[0], lambda s: s == 200)
    payer, payee = uid("payer"), uid("payee")
    open_accounts(cluster, {payer: "100.00", payee: "0.00"})
    ids = [pay(cluster, payer, payee, "1.00") for _ in range(10)]
    for pid in ids:
        assert outcome(cluster, pid)["state"] == "confirmed"
    cluster.worker(**settings).start().wait_ready()  # joins: the first's partitions are revoked
    for worker in range(2):
        eventually(lambda w=worker: cluster.workers[w].get("/pipeline")[0], lambda s: s == 200)
    last = pay(cluster, payer, payee, "1.00")  # through the pipeline after the rebalance
    assert outcome(cluster, last)["state"] == "confirmed"
    # Wait for one record more than there are payments: a second outcome of any of them.
    topic = cluster.topic("payments.confirmed")
    records = await read_topic(bootstrap, topic, len(ids) + 2, timeout=10)
    per_id = Counter(r.key.decode() for r in records)
    assert {pid: per_id[pid] for pid in [*ids, last]} == dict.fromkeys([*ids, last], 1)
    assert balance(cluster, payer, 1) == Decimal("89.00")


def test_generate_opens_accounts_and_offers_payments(two_workers):
    before = pipeline(two_workers)
    result = two_workers.faust(
        "generate",
        "--rate",
        "100",
        "--accounts",
        "5",
        "--duration",
        "2",
        "--seed",
        "3",
        "--wait",
        timeout=150,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    sent = int(next(line for line in lines if line.startswith("done:")).split()[2])
    assert sent >= 150
    # --wait: every payment's outcome was read back, and its latency percentiles are ordered.
    summary = re.match(
        r"finished: (\d+) confirmed, (\d+) rejected, 0 without outcome; "
        r"latency ms p50 ([\d.]+) p95 ([\d.]+) p99 ([\d.]+) max ([\d.]+)$",
        lines[-1],
    )
    assert summary, lines[-1]
    confirmed, rejected = int(summary[1]), int(summary[2])
    assert confirmed + rejected == sent and confirmed > 0
    p50, p95, p99, most = (float(summary[n]) for n in range(3, 7))
    assert 0 < p50 <= p95 <= p99 <= most

    def done(p):
        finished = p["confirmed"]["count"] + p["rejected"]["count"]
        count = finished - before["confirmed"]["count"] - before["rejected"]["count"]
        return count == sent and p["inflight"]["count"] == 0

    after = eventually(lambda: pipeline(two_workers), done, timeout=120)
    assert after["inflight"]["count"] == 0
    assert after["confirmed"]["count"] - before["confirmed"]["count"] == confirmed
    listing = two_workers.workers[0].accounts()
    generated = [Decimal(a["balance"]) for a in listing if a["id"].startswith("gen-")]
    assert len(generated) == 5 and sum(generated) == Decimal("5000.00")


def pages(worker, limit: int) -> list[list[dict]]:
    """Every page of ``GET /accounts`` at ``limit`` accounts a page."""
    found = []
    for page in worker.pages(limit):
        assert page["count"] == len(page["accounts"]) <= limit
        if page["next"] is not None:
            assert page["next"] == page["accounts"][-1]["id"]
        found.append(page["accounts"])
    return found


def check_paging(cluster, accounts: list[str]) -> None:
    """Pages of 7 hold every account once, in id order, whichever worker answers."""
    for worker in cluster.workers:
        listed = [a["id"] for page in pages(worker, 7) for a in page]
        assert listed == sorted(listed) and len(listed) == len(set(listed))
        assert set(accounts) <= set(listed)
        assert listed == [a["id"] for a in worker.accounts()]
    first = cluster.workers[0]
    for query in ("limit=0", "limit=1001", "limit=x", "after=", "cursor=a", f"after={'a' * 300}"):
        status, body = first.get(f"/accounts?{query}")
        assert status == 400 and body["error"], (query, body)


def test_accounts_come_in_pages_in_id_order(two_workers):
    accounts = [uid("page") for _ in range(23)]
    open_accounts(two_workers, dict.fromkeys(accounts, "1.00"))
    check_paging(two_workers, accounts)


# ---- lineage: GET /payments/{id}/trace and the caller's traceparent ---------------------

TRACE = "0af7651916cd43dd8448eb211c80319c"


async def test_a_payment_s_trace_lists_its_hops_in_order(two_workers, bootstrap):
    neil, john, pid = uid("neil"), uid("john"), uid("traced")
    open_accounts(two_workers, {neil: "100.00", john: "0.00"})
    status, _ = http(
        "POST",
        two_workers.workers[0].url + "/payments",
        {"id": pid, "from": neil, "to": john, "amount": "10.00"},
        token=two_workers.tokens["client"],
        headers={"traceparent": f"00-{TRACE}-b7ad6b7169203331-01"},
    )
    assert status == 202
    assert outcome(two_workers, pid)["state"] == "confirmed"
    for worker in (0, 1):  # answered by the owner, whichever worker is asked
        status, trace = two_workers.workers[worker].get(f"/payments/{pid}/trace")
        assert status == 200, trace
        assert trace["trace_id"] == TRACE and trace["finished"]
        assert [h["step"] for h in trace["hops"]] == ["gateway", "debit", "credit", "confirmed"]
        assert {h["worker"] for h in trace["hops"]} <= {
            w.url.removeprefix("http://") for w in two_workers.workers
        }
        assert all(h["ms"] >= 0 for h in trace["hops"])
        assert abs(sum(h["ms"] for h in trace["hops"]) - trace["latency_ms"]) < 0.01
    assert two_workers.workers[0].get(f"/payments/{uid('none')}/trace")[0] == 404

    # The outcome record carries the caller's trace, a span of its own.
    records = await read_topic(bootstrap, two_workers.topic("payments.confirmed"), 10**6, 10)
    mine = [r for r in records if r.key == pid.encode()]
    assert mine
    parsed = tracecontext.parse(dict(mine[0].headers)[tracecontext.HEADER])
    assert parsed is not None and parsed[0] == TRACE and parsed[1] != "b7ad6b7169203331"
