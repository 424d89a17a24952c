"""Table recovery that reads changelogs in bulk.

Faust's recovery hands every changelog record through the consumer's delivery path as a decoded
event, with a task and a scan of every partition's progress per record: 7,000-10,000 records/s
here, so a worker without local state (a new machine, a lost disk, a store discarded after a
crash) took minutes per million records before it served again. Its RocksDB store only ever
writes the record's raw bytes.

So before Faust's recovery reads where each store stands, ``KPayRecovery`` reads each active
changelog partition of a RocksDB store from there to its end with a plain aiokafka consumer, and
writes each fetched run of raw records and its last offset in one RocksDB write batch (the same
checkpoint ``KPayTable`` writes). Faust's own recovery then finds nothing, or the few records
written since, left to replay; stores of any other kind (memory) keep Faust's path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types import TP

from kpay_faust.engine import clients, compat

log = logging.getLogger(__name__)

#: Records per fetch of the restoring consumer, and bytes per partition per fetch.
FETCH_RECORDS = 20_000
PARTITION_FETCH_BYTES = 8 * 1024 * 1024

#: Changelog records restored in bulk since the worker started, and the seconds it took.
RESTORED = {"records": 0, "seconds": 0.0}


class KPayTableManager(TableManager):
    """Faust's table manager with ``KPayRecovery`` as its recovery service."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = KPayRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class KPayRecovery(Recovery):
    """Faust's recovery, with the active changelog partitions restored in bulk first.

    Faust runs each step of a recovery under ``broker_request_timeout`` and stops its recovery
    service for good when one times out. A bulk restore longer than a third of it returns
    where it got to and starts another recovery round, as a new rebalance would; each round
    goes on from the offsets its stores recorded.
    """

    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        if title == "active" and tps:
            deadline = time.monotonic() + self.app.conf.broker_request_timeout / 3
            targets = {tp: self.tp_to_table[tp] for tp in tps if tp in self.tp_to_table}
            try:
                finished = await restore(
                    self.app,
                    targets,
                    self.active_highwaters,
                    lambda: (
                        self.should_stop
                        or self.signal_recovery_start.is_set()
                        or time.monotonic() > deadline
                    ),
                )
            except Exception as exc:  # e.g. the broker went away: Faust's path does the rest
                log.warning("bulk restore failed, recovering record by record: %r", exc)
                finished = True
            for tp, table in targets.items():
                persisted = table.persisted_offset(tp)
                if persisted is not None:
                    destination[tp] = persisted
            if not finished and not self.should_stop:
                self.signal_recovery_start.set()  # another round, from where this one stopped
        await super()._build_offsets(consumer, tps, destination, title)


async def restore(
    app: Any,
    tables: Mapping[TP, Any],
    highwaters: Mapping[TP, int | None],
    interrupted: Callable[[], bool],
) -> bool:
    """Bring the RocksDB store of each changelog partition in ``tables`` (tp -> table) up to the
    partition's ``highwaters`` (its last offset, as Faust's recovery counts) from the offset it
    recorded. Stops early when ``interrupted()``; returns whether every store is up to date.
    What it wrote stays: each write batch records its own offset."""
    # partition -> (its RocksDB database, the key of its offset there, the next offset to read)
    behind: dict[TopicPartition, tuple[Any, bytes, int]] = {}
    touched: set[Any] = set()  # tables with a partition behind
    for tp, table in tables.items():
        highwater = highwaters.get(tp)
        persisted = table.persisted_offset(tp)
        start = 0 if persisted is None else persisted + 1
        if highwater is None or highwater < start:
            continue
        db = compat.partition_db(table.data, tp.partition)
        if db is None:
            continue  # not RocksDB: Faust's recovery applies it
        offset_key = compat.store_offset_key(table.data)
        behind[TopicPartition(tp.topic, tp.partition)] = (db, offset_key, start)
        touched.add(table)
    if not behind:
        return True
    started, restored = time.monotonic(), 0
    client = AIOKafkaConsumer(
        bootstrap_servers=app.bootstrap_servers,
        client_id=f"{app.conf.id}-restore",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=(
            "read_committed"
            if app.conf.processing_guarantee == "exactly_once"
            else "read_uncommitted"
        ),
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        **credentials_to_aiokafka_auth(app.conf.broker_credentials),
    )
    await client.start()
    try:
        client.assign(list(behind))
        ends = await client.end_offsets(list(behind))
        for partition, (_, _, start) in behind.items():
            client.seek(partition, start)
        pending = {p for p in behind if ends[p] > behind[p][2]}
        while pending and not interrupted():
            fetched = await client.getmany(*pending, timeout_ms=500, max_records=FETCH_RECORDS)
            for partition, records in fetched.items():
                db, offset_key, _ = behind[partition]
                batch = [(record.key, record.value) for record in records]
                compat.write_checkpoint(db, batch, offset_key, records[-1].offset)
                restored += len(records)
            for partition in list(pending):
                if await client.position(partition) >= ends[partition]:
                    pending.discard(partition)
                    # Up to the end: transaction markers or compaction may leave no record there.
                    db, offset_key, _ = behind[partition]
                    compat.write_checkpoint(db, [], offset_key, ends[partition] - 1)
    finally:
        await clients.stop(client)
    for table in touched:
        forget = getattr(table, "forget_cached", None)
        if forget is not None:
            forget()  # values cached before the restore may be older than the store's
    seconds = time.monotonic() - started
    RESTORED["records"] += restored
    RESTORED["seconds"] += seconds
    log.info(
        "restored %d changelog records into %d table partitions in %.1f s (%.0f/s)%s",
        restored,
        len(behind),
        seconds,
        restored / seconds if seconds else 0.0,
        "; more to do" if pending else "",
    )
    return not pending
