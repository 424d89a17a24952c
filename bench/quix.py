"""``make bench-quix``: KPay and the same pipeline in Quix Streams, side by side.

Both run on the same broker in the same sitting, step by step interleaved (KPay, then Quix, at
each worker count and offered rate), offered the same payments by the same load generator and
measured the same way as ``make bench`` (``bench.run.measured_step``): rate finished, latency
from submit to the outcome, CPU and memory of the processes. The Quix pipeline is
``bench/quix_pipeline.py``, run with ``.venv-quix``'s Python; the aiokafka relay ceiling is
measured first as the sitting's reference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import random
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupCoordinatorNotAvailableError

from bench.run import (
    ACCOUNTS,
    PARTITIONS,
    REPO,
    Load,
    delete_topics,
    heading,
    kpay_step,
    machine,
    measured_step,
    relay_ceiling,
)
from kpay_faust import loadgen

PIPELINE = REPO / "bench" / "quix_pipeline.py"
TOPICS = ("payments.incoming", "steps", "settled", "payments.confirmed")


async def _group_stable(broker: str, group: str, members: int, timeout: float = 120) -> None:
    """Wait until the consumer group ``group`` has ``members`` members and is Stable."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        seen = "no coordinator yet"
        while True:
            try:  # a new broker makes its offsets topic, and so the coordinator, on demand
                (description,) = await admin.describe_consumer_groups([group])
            except GroupCoordinatorNotAvailableError:
                pass
            else:
                found = description.groups[0]
                if found[2] == "Stable" and len(found[5]) == members:
                    return
                seen = f"{found[2]}, {len(found[5])} members"
            if time.monotonic() > deadline:
                raise RuntimeError(f"group {group}: {seen}")
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def _answers_probes(broker: str, send: loadgen.Send, tag: str, names: list[str]) -> None:
    """Send small payments until three in a row finish within a second each: every stage is
    assigned and its state restored."""
    reader = loadgen.OutcomeReader(broker, f"{tag}.payments.confirmed", PARTITIONS)
    await reader.start()
    try:
        quick, n, deadline = 0, 0, time.monotonic() + 120
        while quick < 3:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Quix pipeline of {tag} does not answer")
            doc = {"id": f"probe-{n}", "from": names[0], "to": names[1], "amount": "0.01",
                   "created_at": time.time()}  # fmt: skip
            reader.watch(doc)
            await send(f"{tag}.payments.incoming", *loadgen.encoded(doc, "id"))
            quick = quick + 1 if await reader.wait(1.0) else 0
            n += 1
    finally:
        await reader.stop()


@contextlib.asynccontextmanager
async def quix_processes(
    broker: str, count: int, tmp: Path, python: str
) -> AsyncIterator[tuple[str, list[subprocess.Popen], list[str], loadgen.Send]]:
    """``count`` processes of the Quix pipeline on fresh topics, ``ACCOUNTS`` accounts opened
    and funded, and a started producer's ``send``; stopped and the topics deleted afterwards."""
    tag = f"quix{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    await admin.create_topics([NewTopic(f"{tag}.{name}", PARTITIONS, 1) for name in TOPICS])
    await admin.close()
    processes = []
    producer = loadgen.producer(broker)
    try:
        for index in range(count):
            log = (tmp / f"{tag}-{index}.log").open("ab")
            processes.append(
                subprocess.Popen(
                    [python, str(PIPELINE), broker, tag, str(tmp / f"{tag}-{index}")],
                    env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        await _group_stable(broker, tag, count)
        names = [f"acct-{n}" for n in range(ACCOUNTS)]
        await producer.start()
        send = loadgen.sender(producer)
        opens = [
            {"kind": "open", **doc}
            for doc in loadgen.open_account_docs(names, "1000000.00", "open")
        ]
        await loadgen.send_all(send, f"{tag}.steps", opens, "account")
        await _answers_probes(broker, send, tag, names)
        yield tag, processes, names, send
    finally:
        await producer.stop()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        await delete_topics(broker, tag)


async def quix_step(
    broker: str, load: Load, count: int, tmp: Path, broker_pid: int | None, python: str
) -> dict:
    async with quix_processes(broker, count, tmp, python) as (tag, processes, names, send):
        reader = loadgen.OutcomeReader(broker, f"{tag}.payments.confirmed", PARTITIONS)
        await reader.start()
        try:
            make = loadgen.PaymentMaker(names, "50.00", prefix="b-", rng=random.Random(1))
            pids = [p.pid for p in processes]
            topic = f"{tag}.payments.incoming"
            return await measured_step(send, topic, make, reader, load, pids, broker_pid)
        finally:
            await reader.stop()


def markdown(result: dict) -> str:
    lines = [
        heading(result, f"KPay and Quix Streams {result['quixstreams']}, side by side"),
        "| processes | offered/s | system | sustained/s | p50 ms | p99 ms | admitted p99 ms "
        "| CPU % (processes) | broker CPU % | CPU ms per payment | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["steps"]:
        lat, cost = s["latency_ms"], s["cpu_ms_per_payment"]
        lines.append(
            f"| {s['workers']} | {s['offered_per_second']:g} | {s['system']} "
            f"| {s['sustained_per_second']} | {lat['p50']} | {lat['p99']} "
            f"| {s['admitted_latency_ms']['p99']} | {s['cpu_percent_workers']} "
            f"| {s['cpu_percent_broker']} | {cost['workers'] if cost else '-'} "
            f"| {s['worker_peak_rss_mb']} |"
        )
    lines.append(
        f"\nCeiling (bare aiokafka relay, 4 hops) in the same sitting: "
        f"{result['ceiling']['sustained_per_second']}/s.\n"
    )
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="127.0.0.1:9092")
    parser.add_argument("--broker-pid", type=int, default=None)
    parser.add_argument("--quix-python", default=str(REPO / ".venv-quix" / "bin" / "python"))
    parser.add_argument("--rates", default="100,1000,2000,4000")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--relay-seconds", type=float, default=15)
    parser.add_argument("--out", default=None)
    parser.add_argument("--docs", default=str(REPO / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    version = subprocess.run(
        [args.quix_python, "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    relay = await relay_ceiling(args.broker, args.relay_seconds)
    print(f"ceiling: {relay['sustained_per_second']}/s", flush=True)
    steps = []
    with tempfile.TemporaryDirectory(prefix="kpay-bench-quix-") as tmp:
        for workers in (int(n) for n in args.workers.split(",")):
            for rate in (float(r) for r in args.rates.split(",")):
                load = Load(rate, args.warmup, args.duration)
                kpay = await kpay_step(
                    args.broker, rate, load.warmup, load.duration, workers, Path(tmp),
                    args.broker_pid,
                )  # fmt: skip
                quix = await quix_step(
                    args.broker, load, workers, Path(tmp), args.broker_pid, args.quix_python
                )
                for system, step in (("KPay", kpay), ("Quix Streams", quix)):
                    steps.append({**step, "system": system})
                    print(system, json.dumps(step), flush=True)
    result = {
        "date": date,
        "machine": machine(),
        "quixstreams": version,
        "ceiling": relay,
        "steps": steps,
    }
    out = Path(args.out or REPO / "bench" / "results" / f"{date}-quix.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.docs:
        with open(args.docs, "a") as docs:
            docs.write(markdown(result))
    return result


if __name__ == "__main__":
    asyncio.run(main())
