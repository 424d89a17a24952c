"""``make bench``: KPay's sustained rate, latency and CPU per payment (per stage) at stepped
offered rates and worker counts, next to the ceiling of a bare aiokafka relay with the same four
hops and a bare Faust relay, on the same broker and machine.

Each step gets fresh topics and fresh workers (the settings we ship, RocksDB tables), opens
and funds accounts, offers payments at a fixed rate for warm-up plus a measured period, and
reads every outcome from ``payments.confirmed``. Latency is submit (``created_at``) to the
outcome event's arrival, as a client sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from kpay_faust import loadgen
from kpay_faust.ports import free_port
from kpay_faust.web.tokens import Role, create_token

REPO = Path(__file__).resolve().parents[1]
FAUST = str(Path(sys.executable).parent / "faust")
PARTITIONS = 8
HOPS = 4
ACCOUNTS = 1000


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_mb(pid: int, field: str) -> float:
    """A memory field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mb(pid: int) -> float:
    return status_mb(pid, "VmHWM")


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(int(q * len(sorted_values)), len(sorted_values) - 1)], 1)


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except Exception:
        return 0, {}


def metric_samples(ports: list[int], token: str, family_name: str) -> list[tuple[dict, float]]:
    """(labels, value) of each sample of one metric family, from the workers on ``ports``."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: list[tuple[dict, float]] = []
    for port in ports:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
        request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            continue
        for family in text_string_to_metric_families(text):
            if family.name == family_name:
                samples.extend((sample.labels, sample.value) for sample in family.samples)
    return samples


def stage_cpu_seconds(ports: list[int], token: str) -> dict[str, float]:
    """``kpay_stage_cpu_seconds_total`` per stage, summed over the workers on ``ports``."""
    seconds: dict[str, float] = {}
    for labels, value in metric_samples(ports, token, "kpay_stage_cpu_seconds"):
        seconds[labels["stage"]] = seconds.get(labels["stage"], 0.0) + value
    return seconds


class Workers:
    """KPay workers for one step: own app id, topics, ports and data dirs."""

    def __init__(self, broker: str, count: int, tmp: Path, tag: str, tree: Path = REPO) -> None:
        self.tree = tree  # the checkout the workers run from
        self.env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "KPAY_BROKER": f"kafka://{broker}",
            "KPAY_APP_ID": tag,
            "KPAY_TOPIC_PREFIX": tag,
            "KPAY_PARTITIONS": str(PARTITIONS),
            "KPAY_STORE": "rocksdb://",
        }
        self.tag, self.tmp, self.count = tag, tmp, count
        tokens = tmp / f"{tag}-tokens.json"
        self.token = create_token(tokens, Role.viewer, "bench")
        self.env["KPAY_TOKENS_FILE"] = str(tokens)
        self.processes: list[subprocess.Popen] = []
        self.ports: list[int] = []

    def start(self) -> None:
        for index in range(self.count):
            port = free_port()
            self.processes.append(self.launch(index, port))
            self.ports.append(port)
            self.wait(lambda p=port: _get(f"http://127.0.0.1:{p}/health")[0] == 200)
        pipeline = f"http://127.0.0.1:{self.ports[0]}/pipeline"
        self.wait(lambda: _get(pipeline, self.token)[0] == 200)

    def launch(self, index: int, port: int) -> subprocess.Popen:
        """Start worker ``index`` on ``port`` (its data dir kept across restarts); no wait."""
        env = {
            **self.env,
            "KPAY_WEB_PORT": str(port),
            "KPAY_DATA_DIR": str(self.tmp / f"{self.tag}-{index}"),
        }
        log = (self.tmp / f"{self.tag}-{index}.log").open("ab")
        return subprocess.Popen(
            [FAUST, "-A", "kpay", "worker", "-l", "warn"],
            cwd=self.tree,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait(self, check, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers of {self.tag} not ready in {timeout}s")
            time.sleep(0.5)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def kpay_step(
    broker: str,
    rate: float,
    warmup: float,
    duration: float,
    workers: int,
    tmp: Path,
    broker_pid: int | None,
) -> dict:
    async with funded_workers(broker, workers, tmp, "bench") as (cluster, producer, reader, names):
        make = loadgen.PaymentMaker(names, "50.00", prefix="b-", rng=random.Random(1))
        return await measured_step(
            loadgen.sender(producer),
            f"{cluster.tag}.payments.incoming",
            make,
            reader,
            Load(rate, warmup, duration),
            [p.pid for p in cluster.processes],
            broker_pid,
            lambda: stage_cpu_seconds(cluster.ports, cluster.token),
        )


@dataclasses.dataclass(frozen=True)
class Load:
    """Payments offered ``rate`` a second for ``warmup`` plus ``duration`` seconds; only the
    last ``duration`` seconds are measured."""

    rate: float
    warmup: float
    duration: float


async def measured_step(
    send: loadgen.Send,
    topic: str,
    make: loadgen.PaymentMaker,
    reader: loadgen.OutcomeReader,
    load: Load,
    pids: list[int],
    broker_pid: int | None,
    stage_cpu: Callable[[], dict[str, float]] | None = None,
) -> dict:
    """Offer ``load`` onto ``topic`` and measure the pipeline run by the processes ``pids``
    (KPay's workers or another system's): rate finished, latency, CPU, memory."""
    rate, warmup, duration = load.rate, load.warmup, load.duration
    t0 = time.monotonic()
    offering = asyncio.create_task(
        loadgen.offer_at_rate(send, topic, make, rate, warmup + duration, reader.watch)
    )
    await asyncio.sleep(warmup)
    me = os.getpid()  # the load generator: it offers every payment and reads every outcome
    cpu0 = {pid: _cpu_seconds(pid) for pid in [*pids, me] + ([broker_pid] if broker_pid else [])}
    stages0 = stage_cpu() if stage_cpu else {}
    done0, m0 = len(reader.latencies_ms), time.monotonic()
    offered = await offering
    await asyncio.sleep(max(0.0, t0 + warmup + duration - time.monotonic()))
    done1, m1 = len(reader.latencies_ms), time.monotonic()
    cpu = {pid: _cpu_seconds(pid) - c for pid, c in cpu0.items()}
    stages1 = stage_cpu() if stage_cpu else {}
    await reader.wait(max(duration, 10))
    warm = int(rate * warmup)  # payments offered during the warm-up are not measured
    latencies = reader.latencies_ms
    measured_ids = [p for p in list(reader.submitted)[warm:] if p in latencies]
    measured = sorted(latencies[p] for p in measured_ids)
    admitted = sorted(reader.admitted_ms[p] for p in measured_ids if p in reader.admitted_ms)
    window = m1 - m0
    return {
        "offered_per_second": rate,
        "offered": offered,
        "finished": len(latencies),
        "confirmed": sum(1 for s in reader.outcomes.values() if s == "confirmed"),
        "sustained_per_second": round((done1 - done0) / window, 1),
        "latency_ms": {
            "p50": _percentile(measured, 0.50),
            "p95": _percentile(measured, 0.95),
            "p99": _percentile(measured, 0.99),
            "mean": round(statistics.fmean(measured), 1) if measured else None,
        },
        # from the gateway's admission to the outcome: the pipeline's own latency, which
        # under overload stays bounded while the backlog waits in Kafka
        "admitted_latency_ms": {
            "p50": _percentile(admitted, 0.50),
            "p99": _percentile(admitted, 0.99),
        },
        "cpu_percent_workers": round(100 * sum(cpu[p] for p in pids) / window, 1),
        "cpu_percent_broker": round(100 * cpu[broker_pid] / window, 1) if broker_pid else None,
        "cpu_percent_load_generator": round(100 * cpu[me] / window, 1),
        "worker_peak_rss_mb": round(max(_peak_rss_mb(p) for p in pids), 1),
        "workers": len(pids),
        "cpu_ms_per_payment": cost_per_payment(
            sum(cpu[p] for p in pids),
            cpu.get(broker_pid) if broker_pid else None,
            {stage: stages1.get(stage, 0.0) - stages0.get(stage, 0.0) for stage in stages1},
            done1 - done0,
        ),
    }


def cost_per_payment(
    workers: float, broker: float | None, stages: dict[str, float], finished: int
) -> dict | None:
    """Milliseconds of CPU per finished payment: all workers, the broker, each stage's own
    work, and what the workers spent outside the stages (Faust, aiokafka, the web server)."""
    if finished <= 0:
        return None

    def ms(seconds: float) -> float:
        return round(1000 * seconds / finished, 3)

    return {
        "workers": ms(workers),
        "broker": ms(broker) if broker is not None else None,
        "stages": {stage: ms(seconds) for stage, seconds in sorted(stages.items())},
        "outside_stages": ms(workers - sum(stages.values())),
    }


@contextlib.asynccontextmanager
async def funded_workers(
    broker: str, count: int, tmp: Path, prefix: str, tree: Path = REPO
) -> AsyncIterator[tuple[Workers, Any, loadgen.OutcomeReader, list[str]]]:
    """``count`` workers on fresh topics with ``ACCOUNTS`` funded accounts, a started producer
    and a reader of outcomes; all stopped and the topics deleted afterwards."""
    tag = f"{prefix}{uuid.uuid4().hex[:6]}"
    cluster = Workers(broker, count, tmp, tag, tree)
    cluster.start()
    producer = loadgen.producer(broker)
    reader = loadgen.OutcomeReader(broker, f"{tag}.payments.confirmed", PARTITIONS)
    await producer.start()
    await reader.start(from_end=False)
    try:
        names = [f"acct-{n}" for n in range(ACCOUNTS)]
        opens = loadgen.open_account_docs(names, "1000000.00", ref="open")
        await loadgen.send_all(loadgen.sender(producer), f"{tag}.accounts", opens, "account")
        await producer.flush()
        url = f"http://127.0.0.1:{cluster.ports[0]}/accounts?limit={ACCOUNTS}"
        cluster.wait(lambda: _get(url, cluster.token)[1].get("count") == ACCOUNTS)
        yield cluster, producer, reader, names
    finally:
        await reader.stop()
        await producer.stop()
        cluster.stop()
        await delete_topics(broker, tag)


async def _relay_topics(broker: str, tag: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    names = [f"{tag}.{n}" for n in range(HOPS + 1)]
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    await admin.close()
    return names


async def delete_topics(broker: str, tag: str) -> int:
    """Delete the topics a step made (named after its tag); returns how many. Each step uses
    fresh topics, and a broker that kept them all ran out of file handles after a few hundred
    steps. A failure is reported, not raised: the measurement stands either way."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    try:
        await admin.start()
        names = [name for name in await admin.list_topics() if name.startswith(tag)]
        if names:
            await admin.delete_topics(names)
        return len(names)
    except Exception as exc:
        print(f"bench: could not delete the topics of {tag}: {exc!r}", file=sys.stderr)
        return 0
    finally:
        await admin.close()


def _relay_payload() -> bytes:
    return orjson.dumps(
        {
            "id": "b-000000",
            "from": "acct-1",
            "to": "acct-2",
            "amount": "12.34",
            "state": "debit",
            "created_at": time.time(),
            "started_at": time.time(),
            "v": 1,
        }
    )


#: What each of KPay's four hops writes besides its output, per payment: the gateway a payment
#: status, the debit and the credit an account row and a step outcome each, the confirmed stage
#: a payment status (the totals rows, once per batch, are left out).
KPAY_WRITES = (1, 2, 2, 1)


async def _relay_rate(
    broker: str,
    names: list[str],
    seconds: float,
    forward_in_process: bool,
    offered: float | None = None,
    writes: tuple[int, ...] = (),
) -> float:
    """Feed ``names[0]`` (``offered`` records a second, or as fast as the producer goes) and
    count arrivals on ``names[-1]``; with ``forward_in_process`` this process also relays each
    hop (the aiokafka relay), hop ``i`` also writing ``writes[i]`` records to ``names[0]``'s
    ``.writes`` topic for each record it relays."""
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=5, max_batch_size=65536)
    await producer.start()
    arrived = 0
    stop = asyncio.Event()

    async def hop(source: str, target: str | None, extra: int = 0) -> None:
        nonlocal arrived
        consumer = AIOKafkaConsumer(
            source, bootstrap_servers=broker, group_id=f"{source}-g", auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=2000)
                for records in batch.values():
                    for record in records:
                        if target is None:
                            arrived += 1
                            continue
                        await producer.send(target, key=record.key, value=record.value)
                        for _ in range(extra):
                            await producer.send(
                                f"{names[0]}.writes", key=record.key, value=record.value
                            )
        finally:
            await consumer.stop()

    hops = [asyncio.create_task(hop(names[-1], None))]
    if forward_in_process:
        hops += [
            asyncio.create_task(hop(names[i], names[i + 1], writes[i] if writes else 0))
            for i in range(HOPS)
        ]
    await asyncio.sleep(3)  # group joins
    payload = _relay_payload()

    async def source() -> None:
        n, began = 0, time.monotonic()
        while not stop.is_set():
            await producer.send(names[0], key=f"k{n}".encode(), value=payload)
            n += 1
            if offered is not None and n % 20 == 0:
                await asyncio.sleep(max(0.0, began + n / offered - time.monotonic()))
            elif n % 500 == 0:
                await asyncio.sleep(0)

    feeder = asyncio.create_task(source())
    deadline = time.monotonic() + 90
    while arrived == 0:  # the relay is up
        if time.monotonic() > deadline:
            stop.set()
            raise RuntimeError(f"nothing arrived on {names[-1]} in 90 s")
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)
    start_count, started = arrived, time.monotonic()
    await asyncio.sleep(seconds)
    rate = (arrived - start_count) / (time.monotonic() - started)
    stop.set()
    feeder.cancel()
    await asyncio.gather(*hops, return_exceptions=True)
    await producer.stop()
    return rate


async def relay_ceiling(broker: str, seconds: float) -> dict:
    """A bare aiokafka relay: source -> 4 consume/produce hops -> sink, no state, batching on,
    in one process as KPay's worker is. Offered as fast as the producer goes."""
    tag = f"relay{uuid.uuid4().hex[:6]}"
    names = await _relay_topics(broker, tag)
    try:
        rate = await _relay_rate(broker, names, seconds, forward_in_process=True)
    finally:
        await delete_topics(broker, tag)
    return {"hops": HOPS, "sustained_per_second": round(rate, 1)}


async def kpay_shaped_relay(broker: str, seconds: float) -> dict:
    """The aiokafka relay with KPay's records: each hop also writes what the stage it stands
    for writes to its tables' changelogs (``KPAY_WRITES``), and the sink stands for the metrics
    stage. No state and no checks: what moving a payment's records alone costs in one process
    (its CPU per payment, measured here, against a KPay worker's)."""
    tag = f"shaped{uuid.uuid4().hex[:6]}"
    names = await _relay_topics(broker, tag)
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    await admin.create_topics([NewTopic(f"{names[0]}.writes", PARTITIONS, 1)])
    await admin.close()
    try:
        before, started = time.process_time(), time.monotonic()
        rate = await _relay_rate(broker, names, seconds, True, writes=KPAY_WRITES)
        cpu = (time.process_time() - before) / (time.monotonic() - started)
    finally:
        await delete_topics(broker, tag)
    return {
        "hops": HOPS,
        "writes_per_payment": sum(KPAY_WRITES),
        "sustained_per_second": round(rate, 1),
        "cpu_percent": round(cpu * 100, 1),
    }


async def faust_relay_floor(broker: str, seconds: float, tmp: Path, rates: list[float]) -> dict:
    """The same four hops as Faust agents in one worker (``bench/faust_relay.py``), offered the
    given rates in turn (a fresh worker each): what a plain Faust pipeline sustains here, before
    any of KPay's state or checks. Offered without limit, a Faust worker starves its later hops
    behind the first one's backlog, so the rate is stepped as for KPay."""
    steps = []
    for offered in rates:
        tag = f"frelay{uuid.uuid4().hex[:6]}"
        names = await _relay_topics(broker, tag)
        env = {**os.environ, "RELAY_TAG": tag, "RELAY_BROKER": broker, "RELAY_HOPS": str(HOPS)}
        log = (tmp / f"{tag}.log").open("ab")
        worker = subprocess.Popen(
            [FAUST, "--datadir", str(tmp / tag), "-A", "bench.faust_relay", "worker", "-l", "warn"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            before, started = _cpu_seconds(worker.pid), time.monotonic()
            rate = await _relay_rate(broker, names, seconds, False, offered)
            cpu = (_cpu_seconds(worker.pid) - before) / (time.monotonic() - started) * 100
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
            await delete_topics(broker, tag)
        step = {"offered": offered, "sustained": round(rate, 1), "cpu_percent": round(cpu, 1)}
        steps.append(step)
        if rate < 0.9 * offered:
            break
    best = max(step["sustained"] for step in steps)
    return {"hops": HOPS, "steps": steps, "sustained_per_second": best}


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kafka": "3.9.1 (KRaft, single node)",
    }


def summarize(steps: list[dict], relay: dict, floor: dict, shaped: dict | None = None) -> dict:
    ok = [
        s
        for s in steps
        if s["latency_ms"]["p99"] is not None
        and s["latency_ms"]["p99"] < 200
        and s["sustained_per_second"] >= 0.95 * s["offered_per_second"]
    ]
    best = max(ok, key=lambda s: s["offered_per_second"], default=None)
    top = max((s["sustained_per_second"] for s in steps), default=0.0)
    return {
        "highest_rate_with_p99_under_200ms": best["offered_per_second"] if best else None,
        "highest_sustained_per_second": top,
        "ceiling_per_second": relay["sustained_per_second"],
        "faust_relay_per_second": floor["sustained_per_second"],
        "kpay_shaped_relay_per_second": shaped["sustained_per_second"] if shaped else None,
        "kpay_shaped_relay_cpu_ms_per_payment": round(
            10 * shaped["cpu_percent"] / shaped["sustained_per_second"], 3
        )
        if shaped and shaped["sustained_per_second"]
        else None,
        "ratio_to_ceiling": round(top / relay["sustained_per_second"], 3)
        if relay["sustained_per_second"]
        else None,
    }


def heading(result: dict, what: str) -> str:
    """A results section's heading: when, ``what``, and on which machine."""
    m = result["machine"]
    return (
        f"\n### {result['date']} — {what}, {m['cores']} cores, {m['cpu']}, "
        f"Python {m['python']}, Kafka {m['kafka']}\n"
    )


def markdown(result: dict) -> str:
    lines = [
        heading(result, f"{result['workers']} worker(s)"),
        "| workers | offered/s | sustained/s | p50 ms | p99 ms | admitted p50 / p99 ms "
        "| worker CPU % | broker CPU % | load generator CPU % | peak RSS MB "
        "| CPU ms per payment: workers (stages) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["steps"]:
        lat, admitted, cost = s["latency_ms"], s["admitted_latency_ms"], s["cpu_ms_per_payment"]
        stages = (
            f"{cost['workers']} ({', '.join(f'{k} {v}' for k, v in cost['stages'].items())})"
            if cost
            else "-"
        )
        lines.append(
            f"| {s['workers']} | {s['offered_per_second']:g} | {s['sustained_per_second']} "
            f"| {lat['p50']} | {lat['p99']} | {admitted['p50']} / {admitted['p99']} "
            f"| {s['cpu_percent_workers']} | {s['cpu_percent_broker']} "
            f"| {s['cpu_percent_load_generator']} | {s['worker_peak_rss_mb']} | {stages} |"
        )
    summary = result["summary"]
    lines.append(
        f"\nCeiling (bare aiokafka relay, {HOPS} hops): "
        f"{summary['ceiling_per_second']}/s. Highest offered rate KPay sustains with p99 "
        f"< 200 ms: {summary['highest_rate_with_p99_under_200ms']}/s; best sustained "
        f"{summary['highest_sustained_per_second']}/s, "
        f"{summary['ratio_to_ceiling']} of the ceiling. Bare Faust relay (4 agents, one "
        f"`Topic.send` per record): {summary['faust_relay_per_second']}/s."
    )
    if summary.get("kpay_shaped_relay_per_second"):
        lines.append(
            f"Relay with KPay's records (the aiokafka relay, each hop also writing its stage's "
            f"table rows, one process): {summary['kpay_shaped_relay_per_second']}/s at "
            f"{summary['kpay_shaped_relay_cpu_ms_per_payment']} ms CPU per payment."
        )
    lines.append("")
    return "\n".join(lines)


def _rates(text: str) -> list[float]:
    return [float(rate) for rate in text.split(",")]


async def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get("KPAY_BENCH_BROKER", "127.0.0.1:9092"))
    parser.add_argument("--broker-pid", type=int, default=None)
    # up to 4x what two workers sustain on this box: the overload steps (docs/benchmarks.md)
    parser.add_argument("--rates", default="250,500,1000,2000,4000")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--duration", type=float, default=20)
    # how throughput grows with workers (on two cores shared with the broker, two do best:
    # docs/benchmarks.md, session 10)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, e.g. 1,2,4")
    parser.add_argument("--relay-seconds", type=float, default=15)
    parser.add_argument("--faust-relay-rates", default="1000,2000,3000,4000")
    parser.add_argument("--out", default=None, help="JSON file (default bench/results/<date>.json)")
    parser.add_argument(
        "--docs",
        default=str(REPO / "docs" / "benchmarks.md"),
        help="Markdown file the table is appended to; '' for none",
    )
    args = parser.parse_args(argv)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(prefix="kpay-bench-") as tmp:
        relay = await relay_ceiling(args.broker, args.relay_seconds)
        print(f"ceiling: {relay['sustained_per_second']}/s", flush=True)
        shaped = await kpay_shaped_relay(args.broker, args.relay_seconds)
        print(f"relay with KPay's records: {shaped['sustained_per_second']}/s", flush=True)
        floor = await faust_relay_floor(
            args.broker, args.relay_seconds, Path(tmp), _rates(args.faust_relay_rates)
        )
        print(f"faust relay: {floor['sustained_per_second']}/s", flush=True)
        steps = []
        for workers in (int(n) for n in args.workers.split(",")):
            for rate in _rates(args.rates):
                step = await kpay_step(
                    args.broker,
                    rate,
                    args.warmup,
                    args.duration,
                    workers,
                    Path(tmp),
                    args.broker_pid,
                )
                print(json.dumps(step), flush=True)
                steps.append(step)
    result = {
        "date": date,
        "machine": machine(),
        "workers": args.workers,
        "steps": steps,
        "ceiling": relay,
        "kpay_shaped_relay": shaped,
        "faust_relay": floor,
        "summary": summarize(steps, relay, floor, shaped),
    }
    out = Path(args.out or REPO / "bench" / "results" / f"{date}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.docs:
        with open(args.docs, "a") as docs:
            docs.write(markdown(result))
    print(json.dumps(result["summary"]), flush=True)
    return result


if __name__ == "__main__":
    asyncio.run(main())
