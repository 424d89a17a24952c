"""The payments in flight on this worker's partitions, in memory, so reconciliation can name the
stuck ones without reading every payment status the retention horizon keeps (millions).

The gateway adds a payment when it admits it and the confirmed stage removes it when it
finishes; both run on the payment id's partition. A worker that takes partitions over (start,
restart, any rebalance) does not know what was in flight on them before: it forgets everything
and rebuilds each partition's entries from its payment statuses, a bounded number of rows per
``catch_up`` after a cursor; a partition is reported as not indexed until its rebuild is done.
An entry is checked against its status before it is reported stuck, so one left behind by a
race is dropped, not reported.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from kpay_faust.app import app
from kpay_faust.payments.models import PaymentStatus
from kpay_faust.payments.tables import payment_status

#: Status rows read per ``catch_up`` call while rebuilding.
log = logging.getLogger(__name__)

REBUILD_ROWS = 20_000
_INFLIGHT = re.compile(rb'"inflight":\s*true')


class InflightIndex:
    def __init__(self) -> None:
        #: partition -> payment id -> when it was admitted.
        self.entries: dict[int, dict[str, float]] = {}
        #: Partitions being rebuilt, with the last payment id read.
        self.rebuilding: dict[int, bytes] = {}
        self.indexed: set[int] = set()
        self.generation: int | None = None

    def admitted(self, partition: int, payment_id: str, started_at: float) -> None:
        self.entries.setdefault(partition, {})[payment_id] = started_at

    def finished(self, partition: int, payment_id: str) -> None:
        self.entries.get(partition, {}).pop(payment_id, None)

    def follow(self, owned: Iterable[int]) -> None:
        """Track exactly ``owned``; after a rebalance, start over on every partition."""
        owned = set(owned)
        generation = app.consumer_generation_id
        if generation != self.generation:
            self.generation = generation
            self.indexed.clear()
            self.rebuilding.clear()
        for partition in set(self.entries) - owned:
            del self.entries[partition]
        self.indexed &= owned
        for partition in set(self.rebuilding) - owned:
            del self.rebuilding[partition]
        for partition in owned - self.indexed:
            self.rebuilding.setdefault(partition, b"")

    def catch_up(self, rows: int | None = None) -> None:
        """Read up to ``rows`` (``REBUILD_ROWS``) statuses of the partitions being rebuilt."""
        rows = REBUILD_ROWS if rows is None else rows
        for partition in sorted(self.rebuilding):
            cursor = self.rebuilding[partition]
            done = True
            for raw_key, raw_value in payment_status.scan([partition], cursor):
                if raw_key == cursor and cursor:
                    continue
                if rows <= 0:
                    done = False
                    break
                rows -= 1
                self.rebuilding[partition] = raw_key
                if isinstance(raw_value, bytes) and not _INFLIGHT.search(raw_value):
                    continue  # judged on the bytes: decoding every finished payment is costly
                try:
                    status = payment_status.decode_value(raw_value)
                except Exception:  # bytes no stage wrote: not a payment this index can follow
                    log.warning("unreadable payment status %r skipped", raw_key)
                    continue
                if isinstance(status, PaymentStatus) and status.inflight:
                    self.admitted(partition, raw_key.decode(), status.started_at or 0.0)
            if not done:
                return
            del self.rebuilding[partition]
            self.indexed.add(partition)

    def stuck(self, started_before: float, now: float) -> list[dict[str, Any]]:
        """Payments in flight since before ``started_before``, oldest first."""
        found = []
        for entries in self.entries.values():
            for payment_id, started_at in list(entries.items()):
                if started_at >= started_before:
                    continue
                status = payment_status.get(payment_id)
                if not isinstance(status, PaymentStatus) or not status.inflight:
                    del entries[payment_id]  # finished meanwhile: the entry was left behind
                    continue
                found.append(
                    {
                        "id": payment_id,
                        "state": status.state,
                        "seconds_in_flight": round(now - started_at, 1),
                    }
                )
        return sorted(found, key=lambda s: -s["seconds_in_flight"])


index = InflightIndex()
