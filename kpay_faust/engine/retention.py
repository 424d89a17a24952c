"""Deleting what a table need not keep forever, a few rows at a time, from inside a stage.

Table writes (deletes too) are only legal while a stage processes an event: the write goes to
the changelog partition of that event, which is the partition of the rows it may touch. So a
stage calls ``Sweeper.sweep`` for the partition of the event it is on; the sweeper reads the
next rows after its cursor in that partition (``KPayTable.page``: a seek on RocksDB) and
deletes those that have expired. A delete writes a tombstone to the changelog, and compaction
then removes the key's records from it, so neither the stores nor the changelogs grow with
history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kpay_faust.engine.table import KPayTable

log = logging.getLogger(__name__)

#: ``(value, now) -> bool``: whether a row has expired. On RocksDB the value comes as the
#: store's bytes (decoding every row scanned would cost more than the rest of the sweep).
Expired = Callable[[Any, float], bool]


class Sweeper:
    """Walks each partition of ``table`` (keys from ``start`` to ``stop``) at most once per
    ``every`` seconds, reading ``batch`` rows a round plus twice what was written meanwhile
    (``sweep(written=...)``), so a round trip over a partition takes well under the time rows
    take to expire however fast they are written."""

    def __init__(
        self,
        table: KPayTable,
        expired: Expired,
        *,
        start: str | None = None,
        stop: str | None = None,
        batch: int = 200,
        every: float = 1.0,
        on_deleted: Callable[[int], None] | None = None,
    ) -> None:
        self.table, self.expired = table, expired
        self.start, self.stop, self.batch, self.every = start, stop, batch, every
        self.on_deleted = on_deleted
        self._cursor: dict[int, str | None] = {}
        self._last: dict[int, float] = {}
        self._owed: dict[int, int] = {}

    def sweep(self, partition: int, written: int = 0, now: float | None = None) -> int:
        """One round on ``partition`` if one is due; returns the rows deleted. Call it while
        processing an event of ``partition`` (its deletes go to that changelog partition),
        with the number of rows the stage has just written there."""
        self._owed[partition] = self._owed.get(partition, 0) + 2 * written
        clock = time.monotonic()
        if clock - self._last.get(partition, float("-inf")) < self.every:
            return 0
        self._last[partition] = clock
        budget = self.batch + self._owed.pop(partition, 0)
        now = time.time() if now is None else now
        try:
            if self.table.is_partitioned():
                expired = self._next_rows(partition, budget, now)
            else:
                expired = self._in_memory(partition, now)
            for key in expired:
                del self.table[key]
        except Exception:  # the stage's own event must not fail for it: try again next round
            log.exception("retention: sweeping %s[%s] failed", self.table.name, partition)
            self._cursor.pop(partition, None)
            return 0
        if expired and self.on_deleted is not None:
            self.on_deleted(len(expired))
        return len(expired)

    def _next_rows(self, partition: int, budget: int, now: float) -> list[str]:
        after = self._cursor.get(partition) or self.start
        rows, more = self.table.page((partition,), after, budget, below=self.stop, raw=True)
        self._cursor[partition] = rows[-1][0] if more and rows else None  # else start over
        return [key for key, value in rows if self.expired(value, now)]

    def _in_memory(self, partition: int, now: float) -> list[str]:
        """The memory store (tests) holds every partition in one dict: look at all of it, and
        take the expired keys of ``partition``."""
        keys = [
            key
            for key, value in list(self.table.data.items())
            if isinstance(key, str)
            and (self.start is None or key > self.start)
            and (self.stop is None or key < self.stop)
            and self.expired(value, now)
        ]
        return [key for key in keys if self.table.partition_of(key) == partition]

    def forget(self) -> None:
        """Start every partition over (its rows may have changed hands in a rebalance)."""
        self._cursor.clear()
        self._last.clear()
        self._owed.clear()
