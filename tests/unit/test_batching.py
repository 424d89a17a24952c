"""RecordBatcher: one batch per changelog partition, offsets reported, failures not lost."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from kpay_faust.engine.producer import RecordBatcher


class Broker:
    """Stands in for aiokafka's producer: records batches and answers with a base offset."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.batches: list[tuple[str, int, list]] = []

    def create_batch(self):
        records: list = []
        return SimpleNamespace(records=records, append=lambda **kw: records.append(kw) or True)

    async def send_batch(self, batch, topic: str, *, partition: int) -> asyncio.Future:
        self.batches.append((topic, partition, batch.records))
        future = asyncio.get_running_loop().create_future()
        if self.error is not None:
            future.set_exception(self.error)
        else:
            future.set_result(SimpleNamespace(offset=100))
        return future


async def test_writes_of_one_turn_go_as_one_batch_per_partition():
    broker, batcher, sent = Broker(), RecordBatcher(), []
    on_sent = lambda tp, offset, records: sent.append((tp.partition, offset, records))  # noqa: E731
    for n in range(3):
        batcher.add(broker, "t-changelog", 0, b"k%d" % n, b"v", on_sent)
    batcher.add(broker, "t-changelog", 1, b"x", b"v", on_sent)
    await batcher.drain()
    assert [(p, len(records)) for _, p, records in broker.batches] == [(0, 3), (1, 1)]
    # the offset of each batch's last record, and the batch's records
    assert sorted(sent) == [
        (0, 102, [(b"k0", b"v"), (b"k1", b"v"), (b"k2", b"v")]),
        (1, 100, [(b"x", b"v")]),
    ]


async def test_a_failed_batch_fails_the_drain_and_reports_no_offset():
    broker, batcher, sent = Broker(error=OSError("broker gone")), RecordBatcher(), []
    batcher.add(broker, "t-changelog", 0, b"k", b"v", lambda tp, last, _: sent.append(last))
    with pytest.raises(RuntimeError, match=r"records were not stored.*broker gone"):
        await batcher.drain()
    assert sent == []
