"""``python -m bench.soak``: a worker's memory over a long run, to show whether it stays flat.

Workers (the shipped settings, RocksDB) on fresh topics are offered ``--rate`` payments a second
until ``--payments`` were offered. Every ``--every`` seconds it records the payments finished,
each worker's resident memory (``VmRSS``) and what RocksDB says it holds
(``kpay_rocksdb_memory_bytes``, when the worker exports it), and the disk its stores and its
changelogs take (``--retention`` shortens the horizon, so that a soak shorter than seven days
sees rows expire and be deleted). ``--tree`` runs the workers from
another checkout (a frozen copy of an older commit), so two versions can be soaked side by side
on the same broker in the same hour (``--tree`` given twice: one set of workers each).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import tempfile
import time
from pathlib import Path

from bench.run import REPO, funded_workers, metric_samples, status_mb
from kpay_faust import loadgen


def disk_mb(paths: list[Path]) -> float:
    """Disk the files under ``paths`` take, in MB (blocks allocated: Kafka preallocates its
    index files sparse, at 10 MB each)."""
    total = 0
    for path in paths:
        for file in path.rglob("*"):
            with contextlib.suppress(OSError):
                if file.is_file():
                    total += file.stat().st_blocks * 512
    return round(total / 2**20, 1)


def rocksdb_mb(ports: list[int], token: str) -> dict[str, float]:
    """``kpay_rocksdb_memory_bytes`` by kind, summed over the workers, in MB."""
    kinds: dict[str, float] = {}
    for labels, value in metric_samples(ports, token, "kpay_rocksdb_memory_bytes"):
        kinds[labels["kind"]] = kinds.get(labels["kind"], 0.0) + value / 2**20
    return {kind: round(mb, 1) for kind, mb in sorted(kinds.items())}


async def soak(
    broker: str,
    tree: Path,
    payments: int,
    rate: float,
    workers: int,
    every: float,
    tmp: Path,
    broker_data: Path | None,
) -> dict:
    name = "head" if tree == REPO else tree.name
    async with funded_workers(broker, workers, tmp, "soak", tree) as (
        cluster,
        producer,
        reader,
        names,
    ):
        make = loadgen.PaymentMaker(names, "5.00", prefix="s-", rng=random.Random(11))
        send = loadgen.sender(producer)
        pids = [p.pid for p in cluster.processes]
        samples: list[dict] = []
        started = time.monotonic()

        def sample() -> None:
            entry = {
                "seconds": round(time.monotonic() - started),
                "finished": len(reader.outcomes),
                "rss_mb": [round(status_mb(pid, "VmRSS"), 1) for pid in pids],
                "rocksdb_mb": rocksdb_mb(cluster.ports, cluster.token),
                "stores_disk_mb": disk_mb([tmp / f"{cluster.tag}-{n}" for n in range(workers)]),
                "changelogs_disk_mb": disk_mb(
                    list(broker_data.glob(f"{cluster.tag}-*-changelog-*")) if broker_data else []
                ),
            }
            samples.append(entry)
            print(json.dumps({"tree": name, **entry}), flush=True)

        async def sampling() -> None:
            while True:
                await asyncio.sleep(every)
                sample()

        sampler = asyncio.create_task(sampling())
        try:
            offered = await loadgen.offer_at_rate(
                send, f"{cluster.tag}.payments.incoming", make, rate, payments / rate, reader.watch
            )
            await producer.flush()
            deadline = time.monotonic() + max(120.0, payments / rate)
            while len(reader.outcomes) < offered and time.monotonic() < deadline:
                await asyncio.sleep(1)
            sample()
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        return {
            "tree": name,
            "offered": offered,
            "rate": rate,
            "workers": workers,
            "samples": samples,
        }


async def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get("KPAY_BENCH_BROKER", "127.0.0.1:9092"))
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--every", type=float, default=30)
    parser.add_argument(
        "--tree", action="append", type=Path, help="checkout to run (default: this one)"
    )
    parser.add_argument(
        "--retention", type=int, default=None, help="KPAY_RETENTION_SECONDS of the workers"
    )
    parser.add_argument(
        "--broker-data",
        type=Path,
        default=REPO / ".kafka" / "run-9092" / "data",
        help="the broker's log directory, to measure the changelogs on disk",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.retention is not None:
        os.environ["KPAY_RETENTION_SECONDS"] = str(args.retention)
    broker_data = args.broker_data if args.broker_data.is_dir() else None
    trees = [tree.resolve() for tree in args.tree] if args.tree else [REPO]
    with tempfile.TemporaryDirectory(prefix="kpay-soak-") as tmp:
        results = await asyncio.gather(
            *(
                soak(
                    args.broker,
                    tree,
                    args.payments,
                    args.rate,
                    args.workers,
                    args.every,
                    Path(tmp),
                    broker_data,
                )
                for tree in trees
            )
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return list(results)


if __name__ == "__main__":
    asyncio.run(main())
