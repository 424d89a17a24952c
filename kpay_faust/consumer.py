"""The consumer KPay uses: it commits finished work before a rebalance takes partitions away,
and rewinds a partition with no commit to its beginning when Faust seeks back."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP

log = logging.getLogger(__name__)


class KPayConsumer(Consumer):
    """Faust's aiokafka consumer, committing what is acknowledged when partitions are revoked,
    and seeking back for real on partitions that have no committed offset yet.

    Faust drops the acknowledged offsets of revoked partitions without committing them, then
    seeks every assigned partition back to its last commit. Each rebalance (a worker joining or
    leaving) made the stages redo the work of the last commit interval and publish those
    outcomes again, which the metrics windows counted twice. Effects stay idempotent either
    way; committing first keeps the replay to events that were not finished.

    Faust drops records it fetched but had not delivered when a rebalance starts, relying on
    that seek to fetch them again; aiokafka's ``seek_to_committed`` does not move a partition
    that has no committed offset (or offset 0). Records fetched in the first seconds of a
    partition's life, before its first commit, were skipped for good: payments stayed in
    flight, and totals counted releases of admissions they never saw.
    """

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        if not self.in_transaction and self.assignment():
            await self.commit()
        await super().on_partitions_revoked(revoked)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        if any(not offset for offset in committed.values()):
            client = self._thread._ensure_consumer()  # lives in Faust's consumer thread
            await self._thread.call_thread(rewind_uncommitted, client, committed)
        return committed


async def rewind_uncommitted(client: Any, committed: Mapping[Any, int | None]) -> list[Any]:
    """Seek the assigned partitions that have no committed offset (None, or 0) to their
    beginning; returns them. Every KPay topic is read with ``auto_offset_reset=earliest``, so
    "no commit" means "from the beginning"."""
    assigned = client.assignment()
    rewind = [tp for tp, offset in committed.items() if not offset and tp in assigned]
    if rewind:  # with no arguments aiokafka would rewind every assigned partition
        log.info("no committed offset: reading %s from the beginning", rewind)
        await client.seek_to_beginning(*rewind)
    return rewind
