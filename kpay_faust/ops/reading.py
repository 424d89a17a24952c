"""Reading a window of an append-only KPay topic (dead letters, the audit trail) with a plain
aiokafka consumer of no group: the newest records, or those since a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel, ValidationError

from kpay_faust.app import app, settings
from kpay_faust.engine import clients
from kpay_faust.kafka_security import client_options

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: Most records read back per partition when no ``since`` bounds the read.
SCAN_MAX = 100_000

#: The latest ``since`` that makes sense (the year 3000); Kafka's timestamps are 64-bit ms.
SINCE_MAX = 32_503_680_000


@dataclass(frozen=True)
class Found(Generic[T]):
    """A record, parsed, and where it sits on its topic."""

    partition: int
    offset: int
    item: T

    def where(self) -> str:
        return f"{self.partition}@{self.offset}"


async def read(
    client: AIOKafkaConsumer,
    topic: str,
    count: int,
    parse: Callable[[bytes | None], T | None],
    at: Callable[[T], float],
    *,
    keep: Callable[[T], bool] = lambda item: True,
    since: float | None = None,
    limit: int = 100,
    wanted: set[tuple[int, int]] | None = None,
) -> list[Found[T]]:
    """Records of ``topic`` (``count`` partitions) that ``parse`` makes something of and ``keep``
    keeps, in the order of their time (``at``): from ``since`` (epoch seconds) on, the first
    ``limit``; without it, the newest ``limit`` (of the last ``SCAN_MAX`` per partition); only
    the (partition, offset) pairs in ``wanted`` when given. ``client`` is started, no group."""
    partitions = [TopicPartition(topic, p) for p in range(count)]
    ends = await client.end_offsets(partitions)
    begins = await client.beginning_offsets(partitions)
    starts = {tp: max(begins[tp], ends[tp] - SCAN_MAX) for tp in partitions}
    if since is not None:
        times = await client.offsets_for_times({tp: int(since * 1000) for tp in partitions})
        starts = {tp: (hit.offset if hit else ends[tp]) for tp, hit in times.items()}
    if wanted is not None:
        starts = {
            tp: min((o for p, o in wanted if p == tp.partition), default=ends[tp])
            for tp in partitions
        }
    client.assign(partitions)
    pending = set()
    for tp in partitions:
        if starts[tp] < ends[tp]:
            client.seek(tp, max(starts[tp], begins[tp]))
            pending.add(tp)
    found: list[Found[T]] = []
    while pending:
        fetched = await client.getmany(*pending, timeout_ms=1000, max_records=10_000)
        for tp, records in fetched.items():
            for record in records:
                if record.offset >= ends[tp]:
                    break
                if wanted is not None and (tp.partition, record.offset) not in wanted:
                    continue
                item = parse(record.value)
                if item is None or not keep(item) or (since is not None and at(item) < since):
                    continue
                found.append(Found(tp.partition, record.offset, item))
        for tp in list(pending):
            if await client.position(tp) >= ends[tp]:
                pending.discard(tp)
    found.sort(key=lambda f: (at(f.item), f.partition, f.offset))
    return found[:limit] if since is not None or wanted is not None else found[-limit:]


async def read_models(
    client: AIOKafkaConsumer,
    topic: Any,
    model: type[M],
    keep: Callable[[M], bool],
    *,
    since: float | None = None,
    limit: int = 100,
    wanted: set[tuple[int, int]] | None = None,
) -> list[Found[M]]:
    """``read`` of one of KPay's own topics (a Faust topic) whose records are ``model``s with
    an ``at`` time; records that are not (someone else wrote them) are passed over."""

    def parse(raw: bytes | None) -> M | None:
        if raw is None:
            return None
        try:
            return model.model_validate_json(raw)
        except ValidationError:
            return None

    return await read(
        client,
        topic.get_topic_name(),
        topic.partitions or settings.partitions,
        parse,
        lambda item: item.at,  # type: ignore[attr-defined]
        keep=keep,
        since=since,
        limit=limit,
        wanted=wanted,
    )


@asynccontextmanager
async def reader() -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer of no group, with this process's Kafka settings."""
    client = AIOKafkaConsumer(
        bootstrap_servers=app.bootstrap_servers,
        enable_auto_commit=False,
        **client_options(settings),
    )
    await client.start()
    try:
        yield client
    finally:
        await clients.stop(client)


@asynccontextmanager
async def writer() -> AsyncIterator[AIOKafkaProducer]:
    """A started producer that waits for every in-sync replica, with this process's settings."""
    client = AIOKafkaProducer(
        bootstrap_servers=app.bootstrap_servers, acks="all", **client_options(settings)
    )
    await client.start()
    try:
        yield client
    finally:
        await clients.stop(client)
