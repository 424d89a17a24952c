"""The Table class KPay uses: keys encoded exactly like topic keys, changelog writes batched,
values of the worker's own partitions cached in memory, and RocksDB stores that share the
worker's memory (``kpay_faust.engine.stores``)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import faust
from cachetools import LRUCache
from faust.exceptions import DecodeError
from faust.stores.base import SerializedStore
from faust.streams import current_event

from kpay_faust.engine import compat
from kpay_faust.engine.producer import KPayProducer
from kpay_faust.engine.stores import share_memory

#: Decoded values kept per table: enough for every account and a minute of payments in flight.
CACHE_SIZE = 50_000

_ABSENT: Any = object()

#: What decoding bytes that no writer of the table made raises (Faust's decode errors, bad
#: UTF-8, a field of the wrong type, a number that is not one).
UNDECODABLE = (DecodeError, ValueError, TypeError, ArithmeticError, AttributeError)


class UnreadableRow(ValueError):
    """A stored value of ``table`` that cannot be decoded: bytes written to its changelog by
    something other than KPay. A stage dead-letters the event that read it; an HTTP read
    answers 409 with this message (``web.middleware``); reconciliation lists such rows."""

    def __init__(self, table: str, key: Any, error: BaseException) -> None:
        self.table, self.key = table, key
        super().__init__(
            f"the stored {table} row {str(key)[:80]!r} cannot be read ({error!r:.120}): its "
            "changelog holds bytes KPay did not write"
        )


class KPayTable(faust.Table):
    """A Table whose ``str`` keys go to the changelog as raw UTF-8, like every KPay topic key,
    whose changelog writes go out in batches (``kpay_faust.engine.producer``), and which keeps the
    values it reads and writes while processing an event in memory.

    Faust serializes table keys as JSON by default while topic keys here are raw; the router
    hashes the changelog key to find a key's owner, so mixed encodings would route most
    interactive queries to the wrong worker.

    The cache: a Faust ``get`` on RocksDB is two lookups (``in``, then read) and a decode, and a
    write encodes the value twice (changelog, store). This worker is the only writer of its
    partitions, so a value it wrote or read is current until its partitions change: the cache
    is written through, keyed by (partition, key), and emptied on every rebalance and recovery.
    Reads outside a stream (HTTP queries) go to the store. Values are never changed in place
    (stages ``derive`` new ones), so a cached object stays equal to the stored one. Tables
    with a default or a window keep Faust's own paths.

    Checkpointed stores (``checkpoints``): on RocksDB a write reaches the store only once its
    changelog batch is acknowledged, in one RocksDB write batch with that batch's last offset.
    The store is then always a prefix of the changelog up to the offset it records, so a
    worker killed at any moment can keep it and replay only the changelog after that offset
    (``kpay_faust.engine.local_state``). Until acknowledged, a write is read from memory.
    """

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("options") is None and getattr(app, "store_options", None):
            kwargs["options"] = dict(app.store_options)  # RocksDB's memory, app-wide
        super().__init__(app, *args, **kwargs)
        self._values: LRUCache = LRUCache(maxsize=CACHE_SIZE)
        #: The memory store (tests) keeps no partitions apart: where each key was written.
        self._written_in: dict[Any, int] = {}
        #: Checkpointed writes not yet acknowledged, per partition: raw key -> raw value.
        self._unacked: dict[int, dict[bytes, bytes | None]] = {}
        self._checkpoints: bool | None = None

    def _new_store_by_url(self, url: Any) -> Any:
        store = super()._new_store_by_url(url)
        memory = getattr(self.app, "store_memory", None)
        if memory is not None:  # before the store opens a database
            compat.use_store_options(store, lambda options: share_memory(options, memory))
        return store

    def _serializer_from_type(self, typ: Any) -> Any:
        if typ is str:
            return "raw"
        return super()._serializer_from_type(typ)

    # ---- reads and writes inside a stream ------------------------------------------------

    def _cacheable(self) -> bool:
        return self.default is None and self.window is None

    def __getitem__(self, key: Any) -> Any:
        event = current_event()
        if event is None or not self._cacheable():
            with self._decoding(key):
                return super().__getitem__(key)
        self._sensor_on_get(self, key)
        slot = (event.message.partition, key)
        value = self._values.get(slot, _ABSENT)
        if value is _ABSENT:
            value = self._read_through(event.message.partition, key)
            self._values[slot] = value
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        event = current_event()
        if event is None or not self._cacheable():
            super().__setitem__(key, value)
            return
        partition = event.message.partition
        if self._batching() and self.checkpoints():
            raw_key, raw_value = self.encode(key, value)
            self._write_checkpointed(partition, raw_key, raw_value)
            self._sensor_on_set(self, key, value)
        elif self._batching():
            raw_key, raw_value = self.encode(key, value)
            self._send_batched(partition, raw_key, raw_value)
            if isinstance(self.data, SerializedStore):
                compat.store_set_raw(self.data, raw_key, raw_value)  # the changelog's bytes
            else:
                self.data[key] = value
            self._sensor_on_set(self, key, value)
        else:
            super().__setitem__(key, value)
        self._values[(partition, key)] = value
        if not self.is_partitioned():
            self._written_in[key] = partition

    def __delitem__(self, key: Any) -> None:
        event = current_event()
        if event is not None and self._cacheable() and self._batching() and self.checkpoints():
            raw_key = self.encode_key(key)
            self._write_checkpointed(event.message.partition, raw_key, None)
            self._sensor_on_del(self, key)
        else:
            super().__delitem__(key)
        if event is not None:
            self._values[(event.message.partition, key)] = None  # absent
        self._written_in.pop(key, None)

    # ---- checkpointed stores ---------------------------------------------------------------

    def checkpoints(self) -> bool:
        """Whether this table's stores hold only acknowledged changelog writes, with the
        offset of the last: RocksDB, KPay's own write path, and no transactions (under
        ``exactly_once`` writes take Faust's path, which writes the store at once)."""
        if self._checkpoints is None:  # settings only: decided once, off the write path
            conf = self.app.conf
            self._checkpoints = (
                self._cacheable()
                and conf.store.scheme == "rocksdb"
                and conf.processing_guarantee != "exactly_once"
            )
        return self._checkpoints

    def _write_checkpointed(self, partition: int, raw_key: bytes, raw_value: bytes | None) -> None:
        self._unacked.setdefault(partition, {})[raw_key] = raw_value
        cast(KPayProducer, self.app.producer).send_changelog_soon(
            self.changelog_topic.get_topic_name(), partition, raw_key, raw_value, self._acked
        )

    def _acked(
        self, tp: Any, offset: int, records: list[tuple[bytes | None, bytes | None]]
    ) -> None:
        """A changelog batch is stored: write its records and its last offset to the store in
        one RocksDB write, and stop reading them from memory."""
        db = compat.partition_db(self.data, tp.partition)
        if db is None:  # the store was not RocksDB after all: nothing is kept for it
            return
        compat.write_checkpoint(db, records, compat.store_offset_key(self.data), offset)
        unacked = self._unacked.get(tp.partition, {})
        for raw_key, raw_value in records:
            if raw_key is not None and unacked.get(raw_key, _ABSENT) is raw_value:
                del unacked[raw_key]  # not written again since

    def _read_through(self, partition: int, key: Any) -> Any:
        """The value of ``key`` in ``partition``, from the unacknowledged writes if it has one,
        else from the store (one lookup; Faust's own path makes two); None when absent."""
        unacked = self._unacked.get(partition)
        if unacked:
            raw_key = self.encode_key(key)
            raw_value = unacked.get(raw_key, _ABSENT)
            if raw_value is not _ABSENT:
                return None if raw_value is None else self.decode_value(raw_value, key)
        try:
            with self._decoding(key):
                return self.data[key]
        except KeyError:
            return None

    def encode(
        self, key: Any, value: Any, key_serializer: Any = None, value_serializer: Any = None
    ) -> tuple[bytes, bytes | None]:
        """Key and value as the changelog (and the RocksDB store) hold them.

        Faust's path (the changelog topic's ``prepare_key``/``prepare_value``, its schema, the
        serializer registry) cost about 7 % of a busy worker's CPU in table writes alone; with
        the table's own serializers, a ``str`` key is its UTF-8 bytes (``raw``) and a Record
        that names its serializer encodes itself, which is what that path ends in. Other
        values take it (``test_tables`` compares the two)."""
        topic = self.changelog_topic
        if key_serializer is None:
            raw_key = self.encode_key(key)
        else:
            raw_key, _ = topic.prepare_key(key, key_serializer)
        serializer = None if value_serializer else compat.model_serializer(value)
        if serializer is not None:
            return raw_key, value.dumps(serializer=serializer)
        raw_value, _ = topic.prepare_value(value, value_serializer or self.value_serializer)
        return raw_key, raw_value

    def encode_key(self, key: Any) -> bytes:
        """A key as the changelog and the store hold it: a ``str`` key's UTF-8 bytes."""
        if isinstance(key, str) and self.key_serializer == "raw":
            return key.encode()
        raw_key, _ = self.changelog_topic.prepare_key(key, self.key_serializer)
        return raw_key

    # ---- pages of keys in order, for queries that must not read everything -------------

    def page(
        self,
        partitions: Iterable[int],
        after: str | None,
        limit: int,
        below: str | None = None,
        *,
        prefix: str = "",
        raw: bool = False,
    ) -> tuple[list[tuple[str, Any]], bool]:
        """Up to ``limit`` (key, value) pairs of ``partitions`` whose keys sort after ``after``
        and before ``below``, in key order (of their UTF-8 bytes, which is code point order),
        and whether more follow. On RocksDB each partition's store seeks to ``after`` and reads
        on, so a page costs the same however many keys the table holds; the memory store
        (tests) sorts what it holds. ``raw``: values as RocksDB holds them, undecoded (the
        memory store's values are objects either way). ``prefix``: only keys that start
        with it."""
        start = max((after or "").encode(), prefix.encode())
        stop = below.encode() if below is not None else None
        if prefix:  # 0xff is in no UTF-8 string: every key with the prefix sorts below this
            stop = min(stop, prefix.encode() + b"\xff") if stop else prefix.encode() + b"\xff"
        items: list[tuple[str, Any]] = []
        for raw_key, raw_value in self.scan(partitions, start, stop):
            if after is not None and raw_key == after.encode():
                continue
            if len(items) == limit:
                return items, True
            key = raw_key.decode()
            items.append((key, raw_value if raw else self.decode_value(raw_value, key)))
        return items, False

    def scan(
        self, partitions: Iterable[int], start: bytes = b"", stop: bytes | None = None
    ) -> Iterator[tuple[bytes, Any]]:
        """(raw key, value) of ``partitions`` with ``start <= key < stop``, in key order, as
        this worker's stages see them: on RocksDB the stored bytes with the writes not yet
        acknowledged laid over them; the memory store's values are objects."""
        if not self.is_partitioned():
            yield from self._sorted_in_memory(set(partitions), start, stop)
            return
        yield from heapq.merge(
            *(self._partition_items(p, start, stop) for p in partitions), key=lambda i: i[0]
        )

    def _partition_items(
        self, partition: int, start: bytes, stop: bytes | None
    ) -> Iterator[tuple[bytes, Any]]:
        """One partition's stored items merged with its unacknowledged writes (which win)."""
        pending = sorted(
            (key, value)
            for key, value in self._unacked.get(partition, {}).items()
            if key >= start and (stop is None or key < stop)
        )
        at = 0
        for key, value in self._seek(compat.partition_db(self.data, partition), start):
            if stop is not None and key >= stop:
                break
            while at < len(pending) and pending[at][0] < key:
                if pending[at][1] is not None:
                    yield pending[at]
                at += 1
            if at < len(pending) and pending[at][0] == key:
                if pending[at][1] is not None:
                    yield pending[at]
                at += 1
                continue
            yield key, value
        yield from ((key, value) for key, value in pending[at:] if value is not None)

    def is_partitioned(self) -> bool:
        """Whether the store keeps each partition apart (RocksDB); the memory store does not."""
        return compat.keeps_partitions(self.data)

    def _seek(self, db: Any, start: bytes) -> Iterator[tuple[bytes, Any]]:
        offset_key = getattr(self.data, "offset_key", None)
        cursor = db.iter()
        cursor.seek(start)
        while cursor.valid():
            key = cursor.key()
            if key != offset_key:
                yield key, cursor.value()
            cursor.next()

    def _sorted_in_memory(
        self, partitions: set[int], start: bytes, stop: bytes | None
    ) -> list[tuple[bytes, Any]]:
        owned = []
        for key, value in self.data.items():
            raw = key.encode() if isinstance(key, str) else key
            if raw < start or (stop is not None and raw >= stop):
                continue
            if self.partition_of(key) in partitions:
                owned.append((raw, value))
        return sorted(owned, key=lambda item: item[0])

    def partition_of(self, key: str) -> int:
        """The changelog partition of ``key``: the one Kafka's default partitioner picks, or,
        on the memory store, the one a stage wrote it in (a stage writes a key in the partition
        of its event, which for some keys is another key's: a step's, its account's)."""
        written = self._written_in.get(key)
        if written is not None:
            return written
        name = self.changelog_topic.get_topic_name()
        return self.app.producer.key_partition(name, key.encode()).partition

    def decode_value(self, raw_value: Any, key: Any = None) -> Any:
        """A value as ``scan`` or the store gives it, decoded (the memory store's already is);
        ``UnreadableRow`` (naming ``key``) if it cannot be."""
        if not isinstance(raw_value, bytes):  # the memory store holds values decoded
            return raw_value
        with self._decoding(key):
            return self.app.serializers.loads_value(
                self.value_type, raw_value, serializer=self.value_serializer
            )

    @contextmanager
    def _decoding(self, key: Any) -> Iterator[None]:
        """Decoding errors of ``key``'s stored value as ``UnreadableRow``."""
        try:
            yield
        except UNDECODABLE as exc:
            raise UnreadableRow(self.name, key, exc) from exc

    # ---- the changelog -------------------------------------------------------------------

    def _batching(self) -> bool:
        producer = self.app.producer
        return isinstance(producer, KPayProducer) and producer.batches_changelogs()

    def _send_batched(self, partition: int, raw_key: bytes, raw_value: bytes | None) -> Any:
        producer = cast(KPayProducer, self.app.producer)  # as _batching found
        return producer.send_changelog_soon(
            self.changelog_topic.get_topic_name(),
            partition,
            raw_key,
            raw_value,
            self._persisted,
        )

    def _persisted(self, tp: Any, offset: int, records: list) -> None:
        """A batch written to the store at once (Faust's path) is stored: record its offset."""
        self.data.set_persisted_offset(tp, offset)

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        if partition is None or not self._batching():
            return super().send_changelog(partition, key, value, key_serializer, value_serializer)
        raw_key, raw_value = self.encode(key, value, key_serializer, value_serializer)
        return self._send_batched(partition, raw_key, raw_value)

    # ---- the cache follows the worker's partitions ---------------------------------------

    def forget_cached(self) -> None:
        """Drop every cached value: the next reads go to the store (as after a restart)."""
        self._values.clear()

    async def on_rebalance(self, *args: Any, **kwargs: Any) -> None:
        self._values.clear()
        await super().on_rebalance(*args, **kwargs)

    async def on_recovery_completed(self, *args: Any, **kwargs: Any) -> None:
        self._values.clear()
        await super().on_recovery_completed(*args, **kwargs)

    def apply_changelog_batch(self, batch: Any) -> None:
        self._values.clear()
        super().apply_changelog_batch(batch)
