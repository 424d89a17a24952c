"""RocksDB memory bounded per worker, not per store.

Faust opens one RocksDB database per table partition, each with a block cache of its own and its
own memtables, and keeps the index and filter blocks of every file it has written outside any
cache. A worker holds dozens of such stores (every table times the partitions it serves), so
its memory grew with the number of stores and with every payment stored: per-store limits
multiply, and index and filter blocks grow with the data. Here every store of a worker shares
one block cache, which also holds the index and filter blocks, and one budget for all memtables
(RocksDB's write buffer manager flushes the largest when the sum passes it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import rocksdict
from faust.stores.rocksdb import RocksDBOptions

from kpay_faust.engine import compat


@dataclass
class StoreMemory:
    """The memory all RocksDB stores of a worker share: ``block_cache_bytes`` of cached blocks
    (data, index and filters) and ``memtable_bytes`` of memtables."""

    block_cache_bytes: int
    memtable_bytes: int
    cache: Any = field(init=False, repr=False)
    write_buffers: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cache = rocksdict.Cache(self.block_cache_bytes)
        self.write_buffers = rocksdict.WriteBufferManager(self.memtable_bytes, False)

    def usage(self) -> dict[str, int]:
        """Bytes held now: ``block_cache`` (with index and filter blocks) and ``memtables``."""
        return {
            "block_cache": int(self.cache.get_usage()),
            "memtables": int(self.write_buffers.get_usage()),
        }


class SharedMemoryOptions(RocksDBOptions):
    """Faust's RocksDB options for rocksdict, with the block cache and the memtable budget of a
    ``StoreMemory`` in place of a cache of each store's own."""

    def __init__(self, memory: StoreMemory, **options: Any) -> None:
        super().__init__(**options, use_rocksdict=True)
        self.memory = memory

    def as_options(self) -> Any:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(self.memory.write_buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(self.memory.cache)
        table.set_cache_index_and_filter_blocks(True)
        # the newest files' index and filters are read on every lookup: keep them cached
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


def share_memory(options: Any, memory: StoreMemory) -> Any:
    """``options`` (a store's ``RocksDBOptions``) drawing on ``memory``; options of another
    driver (python-rocksdb) are left as they are."""
    if not getattr(options, "use_rocksdict", False):
        return options
    settings = {
        "max_open_files": options.max_open_files,
        "write_buffer_size": options.write_buffer_size,
        "max_write_buffer_number": options.max_write_buffer_number,
        "target_file_size_base": options.target_file_size_base,
        "bloom_filter_size": options.bloom_filter_size,
        "ttl": options.ttl,
    }
    return SharedMemoryOptions(memory, **settings)


def _int_property(db: Any, name: str) -> int:
    try:
        return int(db.property_int_value(name) or 0)
    except Exception:  # a database closed meanwhile (a rebalance): it holds nothing
        return 0


def memory_bytes(memory: StoreMemory | None, tables: Iterable[Any]) -> dict[str, int]:
    """What the RocksDB stores of ``tables`` hold in memory, by kind: the shared block cache,
    the memtables and the table readers (``kpay_rocksdb_memory_bytes``)."""
    held = memory.usage() if memory is not None else {}
    # what the open databases hold to read their files outside the cache (little, with the
    # index and filter blocks in it)
    held["table_readers"] = sum(
        _int_property(db, "rocksdb.estimate-table-readers-mem")
        for table in tables
        for db in compat.open_partition_dbs(table.data)
    )
    return held
