"""Fuzz on the real broker with two real workers: thousands of random records (keys, values,
headers, sizes) on every topic KPay reads, interleaved with valid payments, and random HTTP
requests to every route. Afterwards every record is answered (an outcome or a dead letter with
its origin), no request got a 5xx, no agent crashed, money is conserved, nothing is in flight
and the control state is as it was."""

from __future__ import annotations

import asyncio
import json
import random
import re
import urllib.error
from decimal import Decimal

import orjson
import pytest

from kpay_faust import loadgen
from tests.integration.conftest import two_workers_on_rocksdb
from tests.integration.test_http_edges import request
from tests.integration.test_payments import open_accounts, pipeline, read_topic, uid
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

GARBAGE = 2000
VALID = 300
TOPICS = ("payments.incoming", "payments.inflight", "payments.complete", "payments.confirmed",
          "accounts", "control")  # fmt: skip
ROUTES = ["/pipeline", "/metrics", "/metrics/throughput", "/control/status", "/accounts",
          "/accounts/{a}", "/payments/{a}", "/payments/{a}/trace", "/payments",
          "/accounts/{a}/deposits", "/health",
          "/control/pause", "/control/rate", "/internal/pipeline", "/reconcile",
          "/internal/reconcile", "/dlq", "/audit", "/logs", "/no/such/thing", "/whoami",
          "/console/state", "/internal/console", "/load", "/dlq/replay", "/openapi.json",
          "/docs", "/docs/{a}", "/", "/assets/{a}"]  # fmt: skip


def garbage_key(rng: random.Random) -> bytes | None:
    kind = rng.random()
    if kind < 0.15:
        return None
    if kind < 0.2:
        return rng.randbytes(rng.randint(1000, 20_000))
    return rng.randbytes(rng.randint(0, 40))


def garbage_value(rng: random.Random) -> bytes | None:
    kind = rng.random()
    if kind < 0.05:
        return None
    if kind < 0.08:
        return rng.randbytes(rng.randint(200_000, 800_000))
    if kind < 0.5:
        return rng.randbytes(rng.randint(0, 300))
    doc = {rng.choice(["id", "x", "from", "amount", "state", "v", "command"]): rng.choice(
        [None, True, -1, 1e308, "NaN", "9" * 50, rng.randbytes(8).hex(), [1, {}], {"a": []}]
    ) for _ in range(rng.randint(0, 4))}  # fmt: skip
    if "id" in doc and isinstance(doc["id"], str):
        doc.pop("id")  # an id would make a payment of it: the valid ones are made below
    return json.dumps(doc).encode() if rng.random() < 0.9 else b"[" + json.dumps(doc).encode()


def headers(rng: random.Random) -> list[tuple[str, bytes]]:
    count = rng.randint(0, 3)
    return [(rng.randbytes(4).hex(), rng.randbytes(rng.randint(0, 64))) for _ in range(count)]


def http_fuzz(cluster, rng: random.Random, count: int) -> tuple[list[tuple], int]:
    """Random requests to every route; returns those answered 5xx or not in JSON, and how many
    payments were accepted (202)."""
    bad, accepted = [], 0
    tokens = [None, "kpay_nonsense", cluster.tokens["viewer"], cluster.tokens["client"]]
    for _ in range(count):
        worker = rng.choice(cluster.workers)
        path = rng.choice(ROUTES).format(
            a=rng.choice(["neil", "x" * 300, "%ff", "..", "a%20b", "%00"])
        )
        if rng.random() < 0.3:
            path += "?" + rng.choice(["window=1s", "window=zz", "limit=0", "limit=9999", "limit=x"])
        method = rng.choice(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"])
        body = rng.choice([b"", b"{}", b"null", b"[]", rng.randbytes(rng.randint(0, 2000)),
                           b'{"from": "neil", "to": "john", "amount": "0.01"}',
                           b'{"per_second": true}', b"x" * 70_000])  # fmt: skip
        extra = {"Content-Type": rng.choice(["application/json", "text/plain", "x/\x7f"])}
        if rng.random() < 0.2:
            extra["Content-Encoding"] = rng.choice(["gzip", "deflate", "br", "identity"])
        token = rng.choice(tokens)
        if token:
            extra["Authorization"] = f"Bearer {token}"
        try:
            code, content_type, _ = request(worker, method, path, body, **extra)
        except (OSError, urllib.error.URLError) as exc:
            bad.append((method, path, repr(exc)))
            continue
        accepted += method == "POST" and path.split("?")[0] == "/payments" and code == 202
        json_answer = (content_type or "").startswith("application/json")
        if (code >= 500 and code != 503) or (code >= 400 and method != "HEAD" and not json_answer):
            bad.append((method, path, code, content_type))
    return bad, accepted


async def test_random_records_and_requests_are_all_answered(broker, bootstrap, tmp_path):
    rng = random.Random(2026)
    with two_workers_on_rocksdb(broker, tmp_path, "/pipeline") as cluster:
        accounts = [uid("f") for _ in range(20)]
        open_accounts(cluster, dict.fromkeys(accounts, "100.00"))
        before = pipeline(cluster)
        status_before = cluster.workers[0].get("/control/status")[1]
        producer = loadgen.producer(bootstrap)
        await producer.start()
        sent: dict[tuple[str, int, int], bytes | None] = {}
        valid = loadgen.random_payments(
            loadgen.PaymentMaker(accounts, "40.00", prefix=f"{uid('v')}-", rng=rng), VALID
        )
        try:
            pending = []
            for n in range(GARBAGE):
                topic = cluster.topic(rng.choice(TOPICS))
                key, value = garbage_key(rng), garbage_value(rng)
                if key is None and value is None:
                    value = b""  # Kafka needs one of the two
                future = await producer.send(topic, key=key, value=value, headers=headers(rng))
                pending.append((topic, value, future))
                if n % (GARBAGE // VALID) == 0 and valid:
                    doc = valid.pop()
                    key = doc["id"].encode() if rng.random() < 0.5 else rng.randbytes(5)
                    await producer.send(
                        cluster.topic("payments.incoming"), key=key, value=orjson.dumps(doc)
                    )
            await producer.flush()
            for topic, value, future in pending:
                meta = await future
                sent[(topic, meta.partition, meta.offset)] = value
        finally:
            await producer.stop()
        bad_http, accepted = await asyncio.to_thread(http_fuzz, cluster, rng, 600)

        # Everything settles: no payment in flight, every garbage record dead-lettered.
        def dead_lettered() -> set[tuple[str, int, int]]:
            records = asyncio.run(read_topic(bootstrap, cluster.topic("dlq"), len(sent), 20))
            letters = [orjson.loads(record.value) for record in records]
            return {(d["topic"], d["partition"], d["offset"]) for d in letters}

        letters = await asyncio.to_thread(
            eventually, dead_lettered, lambda found: set(sent) <= found, 240
        )
        assert set(sent) <= letters
        after = eventually(lambda: pipeline(cluster), lambda p: p["inflight"]["count"] == 0, 240)
        finished = sum(after[k]["count"] - before[k]["count"] for k in ("confirmed", "rejected"))
        assert finished == VALID + accepted
        assert after["inflight"] == {"count": 0, "amount": "0.00"}
        balances = {
            a["id"]: Decimal(a["balance"])
            for a in cluster.workers[1].accounts()
            if a["id"] in accounts
        }
        assert sum(balances.values()) == Decimal("2000.00") and min(balances.values()) >= 0
        status_after = cluster.workers[0].get("/control/status")[1]
        assert (status_after["state"], status_after["per_second"]) == (
            status_before["state"],
            status_before["per_second"],
        )
        assert bad_http == []
        for worker in cluster.workers:
            log = worker.log_path.read_text(errors="replace")
            assert not re.search(r"Crashed reason|Agent .* crashed|Restarting", log), (
                worker.log_tail()
            )
