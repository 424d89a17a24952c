"""A few seconds of the benchmark code on the test broker: it runs, measures and reports."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from bench import run

pytestmark = pytest.mark.integration


async def test_bench_smoke_run_reports_every_figure(bootstrap, tmp_path):
    out = tmp_path / "result.json"
    docs = tmp_path / "benchmarks.md"
    argv = ["--broker", bootstrap, "--rates", "40", "--warmup", "1", "--duration", "3"]
    argv += ["--workers", "2"]
    argv += ["--relay-seconds", "2", "--faust-relay-rates", "100"]
    argv += ["--out", str(out), "--docs", str(docs)]
    await run.main(argv)
    result = json.loads(out.read_text())
    [step] = result["steps"]
    assert step["offered"] >= 100 and step["finished"] == step["offered"]
    assert step["confirmed"] == step["offered"]  # funded accounts: every payment confirms
    latency = step["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert step["sustained_per_second"] > 0 and step["worker_peak_rss_mb"] > 0
    assert step["cpu_percent_load_generator"] > 0  # the bench process shares the cores
    admitted = step["admitted_latency_ms"]
    assert 0 < admitted["p50"] <= admitted["p99"] and admitted["p50"] <= latency["p50"]
    cost = step["cpu_ms_per_payment"]  # what each payment cost, where
    assert cost["workers"] > 0 and cost["outside_stages"] > 0
    paying = ("inflight_gateway", "account_stage", "confirmed_stage", "payment_metrics")
    assert all(cost["stages"][stage] > 0 for stage in paying), cost
    assert result["ceiling"]["sustained_per_second"] > 0
    assert result["summary"]["ceiling_per_second"] == result["ceiling"]["sustained_per_second"]
    assert result["faust_relay"]["sustained_per_second"] > 0
    [relay_step] = result["faust_relay"]["steps"]
    assert relay_step["offered"] == 100 and relay_step["cpu_percent"] > 0
    assert "| 2 | 40 |" in docs.read_text()
    assert await _topics_left(bootstrap, ("bench", "relay", "frelay")) == []


async def _topics_left(bootstrap: str, prefixes: tuple[str, ...]) -> list[str]:
    """The topics named with one of ``prefixes``, once the broker's metadata has caught up with
    the deletions (it lags them by a moment)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for _ in range(50):
            left = [name for name in await admin.list_topics() if name.startswith(prefixes)]
            if not left:
                break
            await asyncio.sleep(0.2)
        return sorted(left)
    finally:
        await admin.close()
