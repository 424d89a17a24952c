"""The audit trail on a real worker: a scripted series of calls, accepted and refused, over HTTP
and straight to the control and accounts topics, comes back from ``GET /audit`` and
``faust -A kpay audit`` as what was done, by whom, with what answer and where its event was
written."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.test_payments import uid
from tests.support.waiting import eventually
from tests.support.workers import http

pytestmark = pytest.mark.integration


async def test_every_command_is_audited_with_its_caller_and_outcome(cluster, bootstrap):
    worker = cluster.worker().start().wait_ready()
    eventually(lambda: worker.get("/pipeline")[0], lambda s: s == 200)
    account = uid("audited")
    calls = [
        ("operator", "/accounts", {"id": account, "balance": "10.00"}, 202),
        ("operator", "/accounts", {"id": account, "balance": "10.00"}, 202),  # may still be 202
        (
            "client",
            "/payments",
            {"id": uid("p"), "from": account, "to": "x", "amount": "1"},
            202,
        ),
        ("viewer", "/payments", {"from": account, "to": "x", "amount": "1"}, 403),
        (None, "/accounts", {"id": uid("x"), "balance": "1"}, 401),
        ("operator", "/control/rate", {"per_second": 500}, 202),
        ("operator", "/control/rate", {"per_second": None}, 202),
    ]
    answered = []
    for role, path, body, _ in calls[:1]:
        answered.append(worker.post(path, body, role=role))
    eventually(lambda: worker.get(f"/accounts/{account}")[0], lambda s: s == 200)
    for role, path, body, _ in calls[1:]:
        answered.append(worker.post(path, body, role=role))
    statuses = [status for status, _ in answered]
    assert statuses == [202, 409, 202, 403, 401, 202, 202], answered
    # A request id sent by the caller is kept; the answer says it.
    status, _ = http(
        "POST",
        worker.url + "/payments",
        {"from": account},
        token=cluster.tokens["client"],
        headers={"X-Request-Id": "req-42"},
    )
    assert status == 400
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:  # commands from a Kafka client, not over HTTP
        await producer.send_and_wait(
            cluster.topic("control"), json.dumps({"command": "resume", "by": "ops-script"}).encode()
        )
        for target in (account, "nobody-here"):
            deposit = {"ref": uid("ref"), "action": "deposit", "account": target, "amount": "2.00"}
            await producer.send_and_wait(
                cluster.topic("accounts"), json.dumps(deposit).encode(), key=target.encode()
            )
    finally:
        await producer.stop()

    expected = [
        ("test operator", "POST /accounts", "accepted", 202),
        ("test operator", "POST /accounts", "refused", 409),
        ("test client", "POST /payments", "accepted", 202),
        ("test viewer", "POST /payments", "refused", 403),
        ("anonymous", "POST /accounts", "refused", 401),
        ("test operator", "POST /control/rate", "accepted", 202),
        ("test operator", "POST /control/rate", "accepted", 202),
        ("test client", "POST /payments", "refused", 400),
    ]
    from_kafka = [  # straight to the topics, in whichever order their stages get to them
        ("kafka client", "account deposit", "accepted", None),
        ("kafka client", "account deposit", "refused", None),
        ("ops-script", "control resume", "accepted", None),
    ]

    def trail():
        return worker.get("/audit?limit=50")

    everything = len(expected) + len(from_kafka)
    _, body = eventually(trail, lambda r: r[0] == 200 and r[1]["count"] >= everything)
    records = body["records"]
    seen = [(r["principal"], r["action"], r["outcome"], r.get("status")) for r in records]
    assert seen[: len(expected)] == expected
    assert sorted(seen[len(expected) :]) == sorted(from_kafka)
    by_kafka = {r["action"] + r["outcome"]: r for r in records[len(expected) :]}
    assert by_kafka["account depositrefused"]["reason"] == "account 'nobody-here' does not exist"
    assert by_kafka["account depositaccepted"]["event"]["topic"] == cluster.topic("accounts")
    opened, refused_twice, paid, forbidden, anonymous = records[:5]
    assert opened["event"]["topic"] == cluster.topic("accounts") and opened["source"]
    assert json.loads(opened["asked"]) == {"id": account, "balance": "10.00"}
    assert refused_twice["reason"] == f"account {account!r} already exists"
    assert paid["event"]["topic"] == cluster.topic("payments.incoming")
    assert forbidden["role"] == "viewer" and "client role" in forbidden["reason"]
    assert anonymous.get("role") is None and "bearer token" in anonymous["reason"]
    assert records[5]["event"]["topic"] == cluster.topic("control")
    assert records[7]["request_id"] == "req-42"
    assert by_kafka["control resumeaccepted"]["source"].startswith(cluster.topic("control"))

    # Only the operator reads it; by principal too; and from the CLI.
    assert worker.get("/audit", role="viewer")[0] == 403
    _, mine = worker.get("/audit?principal=test%20viewer")
    assert [r["action"] for r in mine["records"]] == ["POST /payments"]
    cli = cluster.faust("audit", "--principal", "anonymous")
    assert cli.returncode == 0, cli.stderr
    lines = [json.loads(line) for line in cli.stdout.splitlines() if line.startswith("{")]
    assert [r["status"] for r in lines] == [401]
