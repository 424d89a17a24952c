"""The Quix Streams side of ``make bench-quix`` on the test broker: the pipeline it measures
does the work it is compared on (money moved once, overdrafts and reused ids refused), and a
few seconds of the side-by-side run report both systems."""

from __future__ import annotations

import asyncio
import json
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from bench import quix
from kpay_faust import loadgen

pytestmark = pytest.mark.integration

PYTHON = str(quix.REPO / ".venv-quix" / "bin" / "python")


def _payment(payment_id: str, payer: str, payee: str, amount: str) -> dict:
    return {
        "id": payment_id,
        "from": payer,
        "to": payee,
        "amount": amount,
        "created_at": time.time(),
    }


async def test_quix_pipeline_moves_money_once_and_refuses_what_kpay_refuses(bootstrap, tmp_path):
    async with quix.quix_processes(bootstrap, 1, tmp_path, PYTHON) as (tag, _, names, send):
        reader = loadgen.OutcomeReader(bootstrap, f"{tag}.payments.confirmed", quix.PARTITIONS)
        await reader.start()
        try:
            payer, payee = names[2], names[3]
            docs = [
                _payment("t-ok", payer, payee, "10.00"),
                _payment("t-ok", payer, payee, "10.00"),  # the same id again
                _payment("t-over", payer, payee, "2000000.00"),  # more than the balance
                _payment("t-cents", payer, payee, "1.001"),
                _payment("t-self", payer, payer, "1.00"),
            ]
            for doc in docs:
                reader.watch(doc)
                await send(f"{tag}.payments.incoming", *loadgen.encoded(doc, "id"))
            assert await reader.wait(30)
            await asyncio.sleep(1)  # time for a second outcome of t-ok, which must not come
            published = await _outcomes_published(bootstrap, f"{tag}.payments.confirmed")
        finally:
            await reader.stop()
    assert published.count("t-ok") == 1
    assert reader.outcomes == {
        "t-ok": "confirmed",
        "t-over": "rejected",
        "t-cents": "rejected",
        "t-self": "rejected",
    }


async def _outcomes_published(bootstrap: str, topic: str) -> list[str]:
    """The payment ids of every outcome on ``topic`` so far."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        ids: list[str] = []
        while batches := await consumer.getmany(timeout_ms=1500):  # until nothing more comes
            ids += [orjson.loads(r.value)["id"] for records in batches.values() for r in records]
        return ids
    finally:
        await consumer.stop()


async def test_bench_quix_reports_both_systems(bootstrap, tmp_path):
    out, docs = tmp_path / "result.json", tmp_path / "benchmarks.md"
    argv = ["--broker", bootstrap, "--rates", "40", "--workers", "1", "--warmup", "1"]
    argv += ["--duration", "3", "--relay-seconds", "2", "--quix-python", PYTHON]
    argv += ["--out", str(out), "--docs", str(docs)]
    await quix.main(argv)
    result = json.loads(out.read_text())
    assert [step["system"] for step in result["steps"]] == ["KPay", "Quix Streams"]
    for step in result["steps"]:
        assert step["offered"] >= 100 and step["confirmed"] == step["offered"], step
        assert 0 < step["latency_ms"]["p50"] <= step["latency_ms"]["p99"]
        assert step["cpu_ms_per_payment"]["workers"] > 0
    pinned = (quix.REPO / "bench" / "quix-constraints.txt").read_text().splitlines()
    assert f"quixstreams=={result['quixstreams']}" in pinned  # the locked version ran
    assert result["ceiling"]["sustained_per_second"] > 0
    assert "| 1 | 40 | Quix Streams |" in docs.read_text()
