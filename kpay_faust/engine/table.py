"""The Table class KPay uses: keys encoded exactly like topic keys, changelog writes batched,
and values of the worker's own partitions cached in memory."""

from __future__ import annotations

from typing import Any, cast

import faust
from cachetools import LRUCache
from faust.stores.base import SerializedStore
from faust.streams import current_event

from kpay_faust.engine import compat
from kpay_faust.engine.producer import KPayProducer

#: Decoded values kept per table: enough for every account and a minute of payments in flight.
CACHE_SIZE = 50_000

_ABSENT: Any = object()


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
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._values: LRUCache = LRUCache(maxsize=CACHE_SIZE)

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
            return super().__getitem__(key)
        self._sensor_on_get(self, key)
        slot = (event.message.partition, key)
        value = self._values.get(slot, _ABSENT)
        if value is _ABSENT:
            try:
                value = self.data[key]  # one lookup; Faust's own path makes two
            except KeyError:
                value = None
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
        if self._batching():
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

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        event = current_event()
        if event is not None:
            self._values.pop((event.message.partition, key), None)

    def encode(
        self, key: Any, value: Any, key_serializer: Any = None, value_serializer: Any = None
    ) -> tuple[bytes, bytes | None]:
        """Key and value as the changelog (and the RocksDB store) hold them."""
        topic = self.changelog_topic
        raw_key, _ = topic.prepare_key(key, key_serializer or self.key_serializer)
        raw_value, _ = topic.prepare_value(value, value_serializer or self.value_serializer)
        return raw_key, raw_value

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
            self.data.set_persisted_offset,
        )

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
