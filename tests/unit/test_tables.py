"""KPayTable: one encoding for changelog and store, and a cache that follows the partitions."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest
from faust.types import TP
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kpay_faust.app import app, settings
from kpay_faust.engine import compat
from kpay_faust.engine.stores import SharedMemoryOptions, memory_bytes
from kpay_faust.engine.table import UnreadableRow
from kpay_faust.payments import agents
from kpay_faust.payments.models import Account, PaymentStatus, PipelineTotals, State
from kpay_faust.payments.tables import STEP, StepOutcome, ledger, payment_status, pipeline_totals

settings_for_properties = hypothesis_settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_changelog_bytes_are_what_the_rocksdb_store_would_write(producer):
    """Writes hand the changelog's bytes to RocksDB, so both must encode alike."""
    store = payment_status._new_store_by_url("rocksdb://")
    status = PaymentStatus(id="p1", state=State.DEBIT, amount=Decimal("1.50"), started_at=1.0)
    raw_key, raw_value = payment_status.encode("p1", status)
    assert raw_key == store._encode_key("p1") == b"p1"
    assert raw_value == store._encode_value(status)
    assert store._decode_value(raw_value) == status


def _faust_encoding(table, key, value):
    topic = table.changelog_topic
    raw_key, _ = topic.prepare_key(key, table.key_serializer)
    raw_value, _ = topic.prepare_value(value, table.value_serializer)
    return raw_key, raw_value


@settings_for_properties
@given(
    key=st.text(min_size=1, max_size=40),
    balance=st.decimals(min_value=0, max_value=10**9, places=2),
    step=st.text(max_size=60),
)
def test_table_bytes_are_what_faust_s_own_encoding_makes(key, balance, step) -> None:
    """``KPayTable.encode`` skips Faust's serializer chain; it must end in the same bytes."""
    account = Account(balance=balance, opened_at=1.5, last_step=step, recent=[step])
    status = PaymentStatus(id=key, state=State.DEBIT, amount=balance, hops=[["gateway", step]])
    totals = PipelineTotals.fresh().moved({"confirmed": (1, balance)}, complete_offset=3)
    for table, value in (
        (ledger, account),
        (ledger, StepOutcome("rejected: " + step, 17.25)),
        (payment_status, status),
        (pipeline_totals, totals),
    ):
        assert table.encode(key, value) == _faust_encoding(table, key, value)
        assert table.encode_key(key) == _faust_encoding(table, key, None)[0]


async def test_values_are_cached_per_partition_until_a_rebalance(producer):
    ledger.data["neil"] = Account(balance=Decimal("100.00"), opened_at=0.0)
    ledger.data["john"] = Account(balance=Decimal("0.00"), opened_at=0.0)
    debit = b'{"v":1,"id":"p1","payer":"neil","payee":"john","amount":"10.00","state":"debit"}'
    async with agents.account_stage.test_context() as agent:
        await agent.put(debit, key="neil", partition=1)
        assert ledger.data["neil"].balance == Decimal("90.00")  # written through
        # Change the store behind the cache: reads in a stream keep the cached value ...
        ledger.data["neil"] = Account(balance=Decimal("5.00"), opened_at=0.0)
        again = debit.replace(b'"p1"', b'"p2"')
        await agent.put(again, key="neil", partition=1)
        assert ledger.data["neil"].balance == Decimal("80.00")
        # ... until the partitions change, when they read the store again.
        ledger.data["neil"] = Account(balance=Decimal("5.00"), opened_at=0.0)
        await ledger.on_rebalance(set(), set(), set())
        await agent.put(debit.replace(b'"p1"', b'"p3"'), key="neil", partition=1)
    assert ledger.data["neil"].balance == Decimal("5.00")  # insufficient: nothing moved
    assert [s.key for s in producer.to("payments.complete")] == ["p3"]  # rejected
    assert ledger["neil"].balance == Decimal("5.00")  # outside a stream: the store


@pytest.fixture()
def rocksdb_ledger(producer, monkeypatch):
    """The ledger on a fresh RocksDB store (partitions 0 and 1), closed afterwards."""
    store = ledger._new_store_by_url("rocksdb://")
    for partition in (0, 1):  # what an earlier run left under the data dir
        shutil.rmtree(store.partition_path(partition), ignore_errors=True)
    monkeypatch.setattr(ledger, "_data", store)
    yield store
    ledger._unacked.clear()  # writes the test left waiting for a changelog acknowledgement
    for db in store._dbs.values():
        db.close()
    for partition in (0, 1):  # nothing left for a worker started later on this data dir
        shutil.rmtree(store.partition_path(partition), ignore_errors=True)


def test_a_page_on_rocksdb_seeks_past_its_cursor_in_key_order(rocksdb_ledger):
    """Accounts of two partitions' stores come merged in id order, a page at a time; the step
    outcomes kept under ``~`` and the store's offset key are never part of a page."""
    store = rocksdb_ledger
    row = Account(balance=Decimal("1.00"), opened_at=0.0)
    for partition, prefix in ((0, "a"), (1, "b")):
        db = compat.partition_db(store, partition)
        for n in range(10):
            db.put(*ledger.encode(f"{prefix}{n}", row))
        db.put(*ledger.encode(f"~p{partition}:debit", "ok"))
        db.put(store.offset_key, b"42")

    def ids(after, limit, partitions=(0, 1)):
        rows, more = ledger.page(partitions, after, limit, below=STEP)
        return [key for key, _ in rows], more

    assert ids(None, 5) == (["a0", "a1", "a2", "a3", "a4"], True)
    assert ids("a8", 5) == (["a9", "b0", "b1", "b2", "b3"], True)
    assert ids("b5", 4) == (["b6", "b7", "b8", "b9"], False)
    assert ids("b9", 4) == ([], False)
    assert ids("a", 3, partitions=(1,)) == (["b0", "b1", "b2"], True)
    rows, _ = ledger.page((0,), "a8", 1, below=STEP)
    assert rows == [("a9", row)]
    assert compat.partition_db(ledger._new_store_by_url("memory://"), 0) is None

    def found(prefix, after=None, limit=20):  # the console's search: ids that start with prefix
        rows, more = ledger.page((0, 1), after, limit, below=STEP, prefix=prefix)
        return [key for key, _ in rows], more

    assert found("b") == ([f"b{n}" for n in range(10)], False)
    assert found("a1") == (["a1"], False)
    assert found("b", after="b7") == (["b8", "b9"], False)
    assert found("b", after="a3", limit=2) == (["b0", "b1"], True)  # the prefix is the floor
    assert found("a", after="a9") == ([], False)
    assert found("~") == ([], False)  # step outcomes stay out of every page
    assert found("c") == ([], False)


def test_an_account_keeps_its_last_five_payments_newest_last() -> None:
    account = Account(balance=Decimal("1.00"), opened_at=0.0)
    for n in range(7):
        account = account.derive(recent=account.recent_after(f"p{n}"))
    assert account.recent == ["p2", "p3", "p4", "p5", "p6"]
    assert account.recent_after("p4") == ["p2", "p3", "p5", "p6", "p4"]  # a refund: moved again


def test_a_checkpointed_write_reaches_rocksdb_only_with_its_acknowledged_offset(
    producer, rocksdb_ledger, monkeypatch
):
    """Until its changelog batch is acknowledged a write is read from memory; then it reaches
    the store in one write with the batch's last offset, which recovery starts after."""
    store = rocksdb_ledger
    sent: list = []
    monkeypatch.setattr(producer, "send_changelog_soon", lambda *args: sent.append(args))
    tp = TP(ledger.changelog_topic.get_topic_name(), 0)
    db = compat.partition_db(store, 0)
    row = Account(balance=Decimal("7.00"), opened_at=0.0)
    raw_key, raw_value = ledger.encode("neil", row)

    ledger._write_checkpointed(0, raw_key, raw_value)
    assert db.get(raw_key) is None  # not in the store before the broker has it
    assert ledger._read_through(0, "neil") == row
    acked = sent[-1][-1]
    acked(tp, 41, [(raw_key, raw_value)])
    assert db.get(raw_key) == raw_value and store.persisted_offset(tp) == 41
    assert ledger._unacked[0] == {}
    assert ledger._read_through(0, "neil") == row  # now from the store

    ledger._write_checkpointed(0, raw_key, None)  # a delete
    assert ledger._read_through(0, "neil") is None and db.get(raw_key) == raw_value
    acked(tp, 42, [(raw_key, None)])
    assert db.get(raw_key) is None and store.persisted_offset(tp) == 42


def test_a_stored_row_that_cannot_be_decoded_is_named_when_read(producer, rocksdb_ledger):
    db = compat.partition_db(rocksdb_ledger, 1)
    row = Account(balance=Decimal("3.00"), opened_at=0.0)
    db.put(*ledger.encode("neil", row))
    db.put(b"mallory", b"\x00 not a row")
    assert ledger._read_through(1, "neil") == row
    assert ledger._read_through(1, "nobody") is None
    with pytest.raises(UnreadableRow, match="ledger row 'mallory'"):
        ledger._read_through(1, "mallory")
    with pytest.raises(UnreadableRow, match="ledger row 'mallory'"):  # outside a stage too
        ledger["mallory"]


def test_a_scan_sees_writes_not_yet_acknowledged(producer, rocksdb_ledger, monkeypatch):
    """Pages and scans read what the stages see: a write waiting for its changelog batch
    replaces the stored value, adds a key or hides a deleted one."""
    store = rocksdb_ledger
    monkeypatch.setattr(producer, "send_changelog_soon", lambda *args: None)
    db = compat.partition_db(store, 0)
    stored = Account(balance=Decimal("1.00"), opened_at=0.0)
    newer = Account(balance=Decimal("2.00"), opened_at=0.0)
    for name in ("a", "c", "e"):
        db.put(*ledger.encode(name, stored))
    for name, row in (("b", newer), ("c", newer), ("f", newer)):
        ledger._write_checkpointed(0, *ledger.encode(name, row))
    ledger._write_checkpointed(0, ledger.encode("e", None)[0], None)  # deleted, not acked yet

    rows, more = ledger.page((0,), None, 10, below=STEP)
    assert [(key, row.balance) for key, row in rows] == [
        ("a", Decimal("1.00")),
        ("b", Decimal("2.00")),
        ("c", Decimal("2.00")),
        ("f", Decimal("2.00")),
    ]
    assert not more
    assert [key for key, _ in ledger.scan((0,), b"b", b"f")] == [b"b", b"c"]


def test_a_write_on_faust_s_path_records_its_batch_offset_when_stored(
    producer, rocksdb_ledger, monkeypatch
):
    """Tables that write the store at once (windowed ones) learn their changelog offset from
    the same acknowledgement as checkpointed ones."""
    sent: list = []
    monkeypatch.setattr(producer, "send_changelog_soon", lambda *args: sent.append(args))
    ledger._send_batched(0, b"k", b"v")
    tp = TP(ledger.changelog_topic.get_topic_name(), 0)
    sent[-1][-1](tp, 7, [(b"k", b"v")])
    assert rocksdb_ledger.persisted_offset(tp) == 7


def test_every_rocksdb_store_of_a_worker_draws_on_one_bounded_memory(rocksdb_ledger):
    """Faust gives each partition's store its own block cache and memtables, outside any bound,
    so a worker's memory grew with its stores and its data; KPay's stores share one block cache
    (with index and filter blocks) and one memtable budget, both from the settings."""
    memory = app.store_memory
    assert memory.block_cache_bytes == settings.rocksdb_block_cache_mb * 2**20
    assert memory.memtable_bytes == settings.rocksdb_memtables_mb * 2**20
    options = rocksdb_ledger.rocksdb_options
    assert isinstance(options, SharedMemoryOptions) and options.memory is memory
    assert options.write_buffer_size == settings.rocksdb_write_buffer_mb * 2**20
    assert all(table.options == app.store_options for table in app.tables.values())
    before = memory.usage()
    for partition in (0, 1):
        db = compat.partition_db(rocksdb_ledger, partition)
        for n in range(200):
            db[f"k{n}".encode()] = bytes(1000)
    after = memory_bytes(memory, [ledger])
    assert after["memtables"] >= before["memtables"] + 2 * 200 * 1000  # one budget for both
    assert set(after) == {"block_cache", "memtables", "table_readers"}
