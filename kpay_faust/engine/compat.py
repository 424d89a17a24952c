"""Every private part of faust-streaming, aiokafka, mode and asyncio that KPay touches, named in
one place, and the version guard.

KPay fixes Faust and aiokafka where they lose records, stall or waste CPU (see
docs/architecture.md, "The engine"). Those fixes lean on internals no release promises to keep.
So:

* the engine reaches another library's private attribute only through the accessors below
  (ruff's SLF rule enforces it everywhere else);
* ``RELIED_ON`` names every private attribute, method and signature the engine depends on,
  including those its subclasses use on ``self``;
* ``FORKED`` records a hash of every upstream function KPay re-implements, wraps or bypasses,
  with the KPay code that must be re-read when it changes;
* ``tests/unit/test_library_contract.py`` checks all three against the installed libraries, so an
  upgrade that moves any of them fails there, naming what changed, instead of at run time.

To upgrade a library: change its version in ``constraints.txt`` (and its range in
``pyproject.toml`` if needed), ``make install``, ``pytest tests/unit/test_library_contract.py``;
re-read each KPay function the test names against the new upstream source, then record the new
hashes it prints and the new version in ``TESTED``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from faust import streams as faust_streams
from faust.stores import rocksdb as faust_rocksdb
from faust.types.models import ModelT
from packaging.specifiers import SpecifierSet
from packaging.version import Version

log = logging.getLogger(__name__)

# ---- versions ------------------------------------------------------------------------------

#: The exact versions the contract below was checked against (also in constraints.txt).
TESTED = {
    "faust-streaming": "0.15.3",
    "aiokafka": "0.14.0",
    "mode-streaming": "0.7.1",
    "aiohttp": "3.14.5",
}
#: The ranges pyproject.toml allows: within them an untested version is warned about; outside
#: them the worker refuses to start.
COMPATIBLE = {
    "faust-streaming": "~=0.15.3",
    "aiokafka": "~=0.14.0",
    "mode-streaming": "~=0.7.1",
    "aiohttp": "~=3.14.5",
}


def installed_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in TESTED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def check_versions() -> list[str]:
    """Raise if a library is outside its compatible range; return warnings for versions in the
    range that the contract was not checked against."""
    warnings = []
    for name, found in installed_versions().items():
        if found is None or Version(found) not in SpecifierSet(COMPATIBLE[name]):
            raise RuntimeError(
                f"kpay: {name} {found} is outside {COMPATIBLE[name]}, the range whose internals "
                "the engine was checked against (see kpay_faust/engine/compat.py)"
            )
        if found != TESTED[name]:
            warnings.append(
                f"{name} {found} is not the tested {TESTED[name]}: run "
                "tests/unit/test_library_contract.py before trusting this worker with money"
            )
    return warnings


# ---- what the engine relies on ---------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    """A private name on ``owner`` ('module:Class') that KPay uses, and why. ``params``, when
    given, are the parameter names its signature must have."""

    owner: str
    name: str
    why: str
    params: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Fork:
    """An upstream function KPay re-implements, wraps or bypasses (``target``: 'module:qualname'),
    the sha256 of its source when KPay's code was last checked against it, and that code."""

    target: str
    sha256: str
    kpay: str


_CONSUMER = "faust.transport.consumer:Consumer"
_AIO_CONSUMER = "faust.transport.drivers.aiokafka:Consumer"
_AIO_THREAD = "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread"
_TABLE = "faust.tables.base:Collection"
_STORE = "faust.stores.base:SerializedStore"
_ROCKSDB = "faust.stores.rocksdb:Store"
_APP = "faust.app.base:App"
_FETCHER = "aiokafka.consumer.fetcher:Fetcher"
_AIOKAFKA = "aiokafka.consumer.consumer:AIOKafkaConsumer"
_PRODUCER = "aiokafka.producer.producer:AIOKafkaProducer"
_ACCUMULATOR = "aiokafka.producer.message_accumulator:MessageAccumulator"

RELIED_ON: tuple[Contact, ...] = (
    # Faust's consumer: KPayConsumer forks its fetch loop and uses its bookkeeping.
    Contact(_CONSUMER, "_drain_messages", "replaced by KPayConsumer's fetch loop", ("fetcher",)),
    Contact(_CONSUMER, "_wait_next_records", "KPayConsumer notes seeks when a fetch begins"),
    Contact(_CONSUMER, "_read_offset", "the fetch loop records what it delivered"),
    Contact(
        _CONSUMER,
        "_add_gap",
        "the fetch loop notes skipped offsets",
        ("tp", "offset_from", "offset_to"),
    ),
    Contact(_CONSUMER, "_commit_every", "the fetch loop commits every N records"),
    Contact(_CONSUMER, "_n_acked", "the fetch loop commits every N records"),
    Contact(_AIO_CONSUMER, "_new_consumer_thread", "KPayConsumer installs KPayConsumerThread"),
    Contact(_AIO_CONSUMER, "_thread", "the aiokafka client lives in Faust's consumer thread"),
    Contact(_AIO_THREAD, "_ensure_consumer", "the aiokafka client of the consumer thread"),
    Contact(
        _AIO_THREAD,
        "_create_worker_consumer",
        "fetch settings on the aiokafka client",
        ("transport",),
    ),
    Contact(_AIO_THREAD, "_consumer", "the aiokafka client, once started"),
    Contact("mode.services:Service", "_stopped", "the fetch loop ends when its fetcher stops"),
    # aiokafka's client: fetch settings and the fetcher's plan.
    Contact(_AIOKAFKA, "_fetch_max_wait_ms", "set from KPAY_FETCH_MAX_WAIT_MS"),
    Contact(_AIOKAFKA, "_fetch_min_bytes", "set from KPAY_FETCH_MIN_BYTES"),
    Contact(_AIOKAFKA, "_fetcher", "pace_fetches wraps its plan"),
    Contact(_PRODUCER, "_message_accumulator", "Pacing sets the linger of new batches"),
    Contact(_ACCUMULATOR, "_linger_time", "Pacing sets the linger of new batches"),
    Contact(_FETCHER, "_get_actions_per_node", "pace_fetches holds fetches back", ("assignment",)),
    Contact(_FETCHER, "_subscriptions", "whether a partition's fetch position is known"),
    # The producers.
    Contact(
        _PRODUCER,
        "_partition",
        "stage outputs keep the partition a plain send gives their key",
        ("topic", "partition", "key", "value", "serialized_key", "serialized_value"),
    ),
    Contact("faust.transport.drivers.aiokafka:Producer", "_producer", "batches go to aiokafka"),
    Contact(_APP, "_producer", "the worker's producer, None until started"),
    Contact(_APP, "_new_consumer", "KPayApp builds KPayConsumer"),
    Contact(_APP, "_new_producer", "KPayApp builds KPayProducer"),
    Contact(_APP, "_on_partitions_revoked", "passed to KPayConsumer as Faust does"),
    Contact(_APP, "_on_partitions_assigned", "passed to KPayConsumer as Faust does"),
    # Tables and stores.
    Contact(_TABLE, "_serializer_from_type", "str keys are raw UTF-8", ("typ",)),
    Contact(_TABLE, "_sensor_on_get", "KPayTable's cached reads keep Faust's sensors"),
    Contact(_TABLE, "_sensor_on_set", "KPayTable's batched writes keep Faust's sensors"),
    Contact(_TABLE, "_new_store_by_url", "KPayTable's stores share the worker's RocksDB memory"),
    Contact(_ROCKSDB, "rocksdb_options", "a store opens its databases with these options"),
    Contact(_ROCKSDB, "_dbs", "RocksDB memory is reported over the open databases"),
    Contact(_STORE, "_set", "KPayTable writes the changelog's bytes once", ("key", "value")),
    Contact(
        _ROCKSDB, "_db_for_partition", "KPayTable.page seeks in a partition's store", ("partition",)
    ),
    Contact("faust.models.record:Record", "_options", "KPayTable encodes a Record as it says"),
    Contact(_STORE, "_encode_key", "tests compare KPayTable's bytes with the store's"),
    Contact(_STORE, "_encode_value", "tests compare KPayTable's bytes with the store's"),
    # Recovery: KPayRecovery restores changelogs in bulk before Faust reads the stores' offsets.
    Contact("faust.tables.manager:TableManager", "_recovery", "KPayTableManager's recovery"),
    Contact(
        "faust.tables.recovery:Recovery",
        "_build_offsets",
        "KPayRecovery restores in bulk first",
        ("consumer", "tps", "destination", "title"),
    ),
    # Streams and the worker.
    Contact("faust.streams", "_current_event", "make_current sets this task's event only"),
    Contact("faust.worker:Worker", "_setup_spinner_handler", "no spinner off a terminal"),
    Contact("asyncio.futures:Future", "_asyncio_future_blocking", "deliver drives a coroutine"),
)

FORKED: tuple[Fork, ...] = (
    Fork(  # the options of a store's databases, with a block cache and memtables shared
        "faust.stores.rocksdb:RocksDBOptions.as_options",
        "844b0de36bc6019822f73ae5871efc0aeeb7ccef8d2461075eae5cae9bea6b04",
        "kpay_faust.engine.stores:SharedMemoryOptions.as_options",
    ),
    Fork(  # the offset's format in the store, which recovery reads back (persisted_offset)
        "faust.stores.rocksdb:Store.set_persisted_offset",
        "6fd1e96c0809530bd87de18c3e36f2e10eeb1d08bd9c4e72573aa1518f603a82",
        "kpay_faust.engine.compat:write_checkpoint",
    ),
    Fork(
        "faust.stores.rocksdb:Store.persisted_offset",
        "6b4b2940005c3736356c1b99e73a53230b09a6dc01a8a083baee5a86ec6338c8",
        "kpay_faust.engine.compat:write_checkpoint",
    ),
    Fork(
        "faust.transport.consumer:Consumer._drain_messages",
        "8f35dd7a11144daa6ec9a3739a497b03a9dd6b57cca18aa861bb4a549400fc68",
        "kpay_faust.engine.consumer:KPayConsumer._drain_messages",
    ),
    Fork(
        "faust.transport.consumer:Consumer.on_partitions_revoked",
        "652177e770ee66d66ae271d4b52195b8f13586357254dfd10aca8d7b2ea36298",
        "kpay_faust.engine.consumer:KPayConsumer.on_partitions_revoked",
    ),
    Fork(
        "faust.transport.consumer:Consumer.force_commit",
        "464b62ae917215ab2115101ee4c738ef29c5fe1341aaed6b32e7d7453e742c36",
        "kpay_faust.engine.consumer:KPayConsumer.force_commit",
    ),
    Fork(
        "faust.transport.consumer:Consumer.perform_seek",
        "2b4ceebd23deb7ee43ff9bb6894715c3ff49da43160fc37b0351a7db7ea07e3e",
        "kpay_faust.engine.consumer:KPayConsumer.perform_seek",
    ),
    Fork(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.seek_to_committed",
        "43907fc1163624bd01465d4f99e52f77f3e6180c423f94e4fd00c388d0bff801",
        "kpay_faust.engine.consumer:KPayConsumer.seek_to_committed",
    ),
    Fork(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.verify_event_path",
        "3f5576be114149b0fd0d20d7aa5478d807177aad9e1cef05b9b12baf58913a87",
        "kpay_faust.engine.consumer:KPayConsumer.verify_event_path",
    ),
    Fork(
        "aiokafka.consumer.fetcher:Fetcher._get_actions_per_node",
        "fd175a69d8d4f9b95e709c32f358281632a730a5cc24b32578b0c57a315903bc",
        "kpay_faust.engine.fetching:pace_fetches",
    ),
    Fork(
        "aiokafka.consumer.fetcher:Fetcher._fetch_requests_routine",
        "12dc901a1e4a19f43d6561d4619d28376254eac2f291ce1d26d0a63fa85029af",
        "kpay_faust.engine.fetching:pace_fetches",
    ),
    Fork(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer",
        "c179c0bdb9755c3ace11c2b9f55d53576d55026dea7eb678f348c08292dfda9e",
        "kpay_faust.engine.fetching:KPayConsumerThread._create_worker_consumer",
    ),
    Fork(
        "faust.tables.table:Table.on_key_set",
        "9ff71a01455e760075183ceaa3b041a64efdb347e3fc51e9579cd0dad62cc7bb",
        "kpay_faust.engine.table:KPayTable.__setitem__ (with KPayProducer.send_changelog_soon)",
    ),
    Fork(
        "mode.utils.collections:ManagedUserDict.__getitem__",
        "07025fdbf2caf1c3152ea22c462e1983dacb7e865dc97b896f44b2c430271749",
        "kpay_faust.engine.table:KPayTable.__getitem__",
    ),
    Fork(
        "faust.stores.base:SerializedStore.__setitem__",
        "08ca7ab84be3b1f1638aed379405727869e6883391446e5b5b35099ba65a9c8a",
        "kpay_faust.engine.table:KPayTable.__setitem__",
    ),
    Fork(
        "faust.serializers.registry:Registry.dumps_value",
        "d5936567b252cd01b5d10bc83a7116bfc85eba50e858a40f872c674ab21e8849",
        "kpay_faust.engine.table:KPayTable.encode",
    ),
    Fork(
        "faust.tables.base:Collection.send_changelog",
        "78a5e11370efe43a778ec66489b1066392d5fc2c8349faf6861fe475c608075f",
        "kpay_faust.engine.table:KPayTable.send_changelog",
    ),
    Fork(
        "faust.streams:Stream.take_events",
        "3eabc46f38f44665f843071595cf07667c92fcd275278163976595710f32c429",
        "kpay_faust.engine.stages:ready_batches",
    ),
    Fork(
        "faust.streams:Stream._set_current_event",
        "943456784807465159d37bdd70a8dfb946d25b204b552ff003650060922de069",
        "kpay_faust.engine.stages:make_current",
    ),
    Fork(  # the order of a recovery's steps, their timeouts, and a new round on the signal
        "faust.tables.recovery:Recovery._restart_recovery",
        "f93138b040ef1bc2419e521ecb9836023c7b66138759951fc0cbb29916b1cc06",
        "kpay_faust.engine.restore:KPayRecovery._build_offsets",
    ),
    Fork(
        "faust.tables.recovery:Recovery._build_offsets",
        "0f5a7d62fb7d4a1f8f6b206894e23b2897778dd6e1b00edae583bbf4f864e2e1",
        "kpay_faust.engine.restore:KPayRecovery._build_offsets",
    ),
    Fork(
        "faust.tables.manager:TableManager.recovery",
        "9e5e10447444e1dfc5682dde497b598ebf565708ff09cdfca408e1369280dd3e",
        "kpay_faust.engine.restore:KPayTableManager.recovery",
    ),
    Fork(
        "aiohttp.web_protocol:RequestHandler.handle_error",
        "9f172560bd847f0a241526f6ffb8ce2b866933054c4431ec887c29dfdfcd1e2f",
        "kpay_faust.engine.compat:json_protocol_errors",
    ),
    Fork(
        "faust.worker:Worker._setup_spinner_handler",
        "f3c8eed262a5565d14ce501a84e3b28ce24019e3e35c4801e317c423a5ed7210",
        "kpay_faust.engine.worker:KPayWorker._setup_spinner_handler",
    ),
)


# ---- accessors: the only places outside a subclass that touch another library's privates ----


def set_current_event(event: Any) -> None:
    """Make ``event`` current in this task's context only (see ``stages.make_current``)."""
    import weakref

    faust_streams._current_event.set(weakref.ref(event))


def consumer_thread(consumer: Any) -> Any:
    """Faust's consumer thread, where the aiokafka client lives."""
    return consumer._thread


def aiokafka_consumer(thread: Any) -> Any:
    """The aiokafka client of Faust's consumer thread (call inside that thread)."""
    return thread._ensure_consumer()


def started_aiokafka_consumer(thread: Any) -> Any | None:
    """The aiokafka client of Faust's consumer thread once it started, else None."""
    return thread._consumer


def set_fetch_tuning(client: Any, max_wait_ms: int, min_bytes: int) -> None:
    """The broker's fetch wait and fetch size on an aiokafka client not yet started (both are
    read when it starts its fetcher); Faust fixes 1,500 ms and one byte."""
    client._fetch_max_wait_ms = max_wait_ms
    client._fetch_min_bytes = min_bytes


def fetch_tuning(client: Any) -> tuple[int, int]:
    return client._fetch_max_wait_ms, client._fetch_min_bytes


def set_linger(producer: Any, seconds: float) -> None:
    """How long a started aiokafka producer's new batches wait for more records (``linger_ms``,
    which aiokafka reads only when it starts)."""
    producer._message_accumulator._linger_time = seconds


def fetcher_of(client: Any) -> Any:
    return client._fetcher


def fetch_plan(fetcher: Any) -> Any:
    """The fetcher's planning step: ``assignment -> (fetches, resets, timeout, invalid_metadata,
    resume_futures)``, asked each time the fetch routine wakes."""
    return fetcher._get_actions_per_node


def replace_fetch_plan(fetcher: Any, plan: Any) -> None:
    fetcher._get_actions_per_node = plan


def position_known(client: Any, tp: Any) -> bool:
    """Whether the aiokafka client knows where it reads ``tp`` next. ``position`` asserts it,
    and that assert vanishes under ``python -O``, so callers ask first."""
    from aiokafka import TopicPartition

    assignment = client._fetcher._subscriptions.subscription.assignment
    if assignment is None:
        return False
    state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
    return state is not None and state.has_valid_position


def key_partition(producer: Any, topic: str, raw_key: bytes, value: bytes | None) -> int:
    """The partition aiokafka's partitioner gives ``raw_key`` on ``topic`` (its metadata must
    be known), exactly as a plain ``send`` would."""
    return producer._partition(topic, None, raw_key, value, raw_key, value)


def model_serializer(value: Any) -> Any | None:
    """The serializer a Faust model instance names for itself (``serializer=`` in its class),
    which Faust's registry uses for it whatever the topic's; None for anything else."""
    if isinstance(value, ModelT):
        return value._options.serializer
    return None


def started_producer(app: Any) -> Any | None:
    """The app's producer if one was made (``app.producer`` would make one)."""
    return app._producer


def stopped_event(service: Any) -> asyncio.Event:
    """A mode service's stopped event."""
    return service._stopped


def store_set_raw(store: Any, raw_key: bytes, raw_value: bytes | None) -> None:
    """Write already-encoded bytes to a serialized store (RocksDB), skipping its encoding."""
    store._set(raw_key, raw_value)


def keeps_partitions(store: Any) -> bool:
    """Whether ``store`` keeps a database per partition (Faust's RocksDB store)."""
    return isinstance(store, faust_rocksdb.Store)


def partition_db(store: Any, partition: int) -> Any | None:
    """The RocksDB database (rocksdict, raw mode) of one partition of a RocksDB store, opened
    if need be; None for any other store."""
    if not keeps_partitions(store):
        return None
    return store._db_for_partition(partition)


def use_store_options(store: Any, adapt: Callable[[Any], Any]) -> None:
    """Give a RocksDB store, before it opens a database, the options ``adapt`` makes of its
    own (``RocksDBOptions``); other stores are left alone."""
    if keeps_partitions(store):
        store.rocksdb_options = adapt(store.rocksdb_options)


def open_partition_dbs(store: Any) -> list[Any]:
    """The partition databases a RocksDB store has open now (none for any other store)."""
    return list(store._dbs.values()) if keeps_partitions(store) else []


def store_offset_key(store: Any) -> bytes:
    """The key under which Faust's RocksDB store keeps a partition's changelog offset."""
    return store.offset_key


def write_checkpoint(
    db: Any, records: list[tuple[bytes | None, bytes | None]], offset_key: bytes, offset: int
) -> None:
    """Write changelog records (a None value deletes) and their last offset to one RocksDB
    partition database in one atomic write, the way Faust's store records the offset it
    recovered to (``set_persisted_offset``: the offset as decimal text)."""
    from rocksdict import WriteBatch

    batch = WriteBatch(raw_mode=True)
    for raw_key, raw_value in records:
        if raw_key is None:
            continue
        if raw_value is None:
            batch.delete(raw_key)
        else:
            batch.put(raw_key, raw_value)
    batch.put(offset_key, str(offset).encode())
    db.write(batch)


def json_protocol_errors(render: Callable[[int, str], bytes]) -> None:
    """Make aiohttp answer the errors it finds before any middleware runs (a request line or
    header it cannot parse, a bad method) with ``render(status, message)`` as JSON instead of
    plain text. aiohttp's own ``handle_error`` still runs first: it logs, and refuses a second
    response on a connection that already sent one."""
    from aiohttp import web, web_protocol

    original = web_protocol.RequestHandler.handle_error
    if getattr(original, "kpay_json", False):
        return

    def handle_error(
        self: Any, request: Any, status: int = 500, exc: Any = None, message: Any = None
    ) -> Any:
        plain = original(self, request, status, exc, message)
        response = web.Response(
            status=plain.status,
            body=render(plain.status, str(message or plain.reason)),
            content_type="application/json",
        )
        response.force_close()
        return response

    handle_error.kpay_json = True  # type: ignore[attr-defined]
    handle_error.kpay_original = original  # type: ignore[attr-defined]  # for the contract test
    web_protocol.RequestHandler.handle_error = handle_error  # type: ignore[method-assign]


def unblock(future: Any) -> None:
    """Mark a future a hand-driven coroutine yielded as taken over, as a Task does before it
    waits on it."""
    future._asyncio_future_blocking = False
