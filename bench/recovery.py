"""``python -m bench.recovery``: how long a worker killed with SIGKILL takes to serve again,
against the history its tables hold.

One worker (the shipped settings, RocksDB) on fresh topics runs ``--payments`` payments to
their outcomes, is killed, and is started again on the same data directory; the time from the
restart to ``/health`` answering 200 is its recovery. Each history is measured twice: keeping
the local stores (what a worker does now: its checkpointed stores are a prefix of their
changelogs) and with them deleted first (what a worker did before: replay whole changelogs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.run import PARTITIONS, _get, funded_workers, metric_samples
from kpay_faust import loadgen


async def changelog_records(broker: str, tag: str) -> int:
    """Records in the step's changelog topics (what a replay from the beginning reads)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if t.startswith(tag) and "changelog" in t]
        partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()


def restore_figures(port: int, token: str) -> dict:
    """What the restarted worker restored in bulk (``kpay_restored_records_total``) and how fast."""
    records = sum(v for _, v in metric_samples([port], token, "kpay_restored_records"))
    seconds = sum(v for _, v in metric_samples([port], token, "kpay_restore_seconds"))
    return {
        "restored_records": int(records),
        "restore_seconds": round(seconds, 2),
        "restored_per_second": round(records / seconds) if seconds else None,
    }


async def history(broker: str, payments: int, tmp: Path) -> dict:
    async with funded_workers(broker, 1, tmp, "recov") as (workers, producer, reader, names):
        tag = workers.tag
        make = loadgen.PaymentMaker(names, "5.00", prefix="h-", rng=random.Random(7))
        docs = loadgen.random_payments(make, payments)
        for doc in docs:
            reader.watch(doc)
        await loadgen.send_all(loadgen.sender(producer), f"{tag}.payments.incoming", docs, "id")
        await producer.flush()
        if not await reader.wait(max(600.0, payments / 50)):
            raise RuntimeError(f"only {len(reader.outcomes)} of {payments} payments finished")
        await asyncio.sleep(5)  # a commit interval: what a live worker has acknowledged
        result: dict = {
            "payments": payments,
            "changelog_records": await changelog_records(broker, tag),
        }
        print(json.dumps(result), flush=True)
        process, port = workers.processes[0], workers.ports[0]
        tabledir = tmp / f"{tag}-0" / "v1" / "tables"
        for mode in ("kept", "discarded"):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if mode == "discarded":
                for store in tabledir.glob("*.db"):
                    shutil.rmtree(store)
            process = workers.processes[0] = workers.launch(0, port)
            restarted = time.monotonic()
            workers.wait(lambda: _get(f"http://127.0.0.1:{port}/health")[0] == 200, timeout=1800)
            result[mode] = {
                "ready_seconds": round(time.monotonic() - restarted, 1),
                **restore_figures(port, workers.token),
            }
            print(json.dumps({"payments": payments, mode: result[mode]}), flush=True)
        return result


async def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get("KPAY_BENCH_BROKER", "127.0.0.1:9092"))
    parser.add_argument("--payments", default="10000,50000")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="kpay-recovery-") as tmp:
        for count in (int(n) for n in args.payments.split(",")):
            results.append(await history(args.broker, count, Path(tmp)))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results), flush=True)
    return results


if __name__ == "__main__":
    asyncio.run(main())
