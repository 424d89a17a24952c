"""The Faust application: one app, configured from settings, that discovers every pillar."""

from __future__ import annotations

from kpay_faust.engine import compat
from kpay_faust.engine.app import KPayApp
from kpay_faust.engine.fetching import FetchTuning
from kpay_faust.engine.stores import StoreMemory
from kpay_faust.kafka_security import credentials
from kpay_faust.settings import get_settings
from kpay_faust.web.audit import auditing
from kpay_faust.web.auth import authentication
from kpay_faust.web.middleware import error_body, json_errors
from kpay_faust.web.tokens import TokenFile

settings = get_settings()
compat.json_protocol_errors(error_body)  # aiohttp's own parse errors in the JSON error shape
secret = settings.cluster_secret
tokens = TokenFile(settings.tokens_file, secret.get_secret_value() if secret else None)

PILLARS = [
    "kpay_faust.payments",
    "kpay_faust.metrics",
    "kpay_faust.control",
    "kpay_faust.ops",
    "kpay_faust.web",
]

app = KPayApp(
    settings.app_id,
    broker=settings.broker,
    broker_credentials=credentials(settings),
    store=settings.store,
    datadir=str(settings.data_dir),
    autodiscover=PILLARS,
    origin="kpay_faust",
    # One key encoding for topics and tables alike: raw UTF-8 strings (see KPayTable).
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    topic_config={"min.insync.replicas": str(settings.min_insync_replicas)},
    changelog_config={"segment.bytes": str(settings.changelog_segment_mb * 2**20)},
    store_options={
        "write_buffer_size": settings.rocksdb_write_buffer_mb * 2**20,
        "max_write_buffer_number": 2,
    },
    store_memory=StoreMemory(
        block_cache_bytes=settings.rocksdb_block_cache_mb * 2**20,
        memtable_bytes=settings.rocksdb_memtables_mb * 2**20,
    ),
    direct_delivery=settings.direct_delivery,
    topic_allow_declare=True,
    consumer_auto_offset_reset="earliest",
    processing_guarantee=settings.processing_guarantee,
    table_standby_replicas=settings.standby_replicas,
    web_host=settings.web_host,
    web_bind=settings.web_bind,
    web_port=settings.web_port,
    web_tables_enabled=False,
    web_application_options={
        "middlewares": [json_errors, auditing, authentication(tokens)],
        "client_max_size": settings.max_body_bytes,
    },
    stream_wait_empty=False,
    producer_linger_ms=settings.producer_linger_ms,
    broker_max_poll_records=settings.max_poll_records,
    broker_commit_interval=settings.commit_interval,
    # A topic created while the group forms (first start of several workers) can miss the
    # first assignment; fresh metadata makes the leader notice it and rebalance within seconds.
    consumer_metadata_max_age_ms=5000,
    broker_session_timeout=10,
    broker_heartbeat_interval=2,
    gc_threshold=settings.gc_threshold,
    fetch_tuning=FetchTuning(
        max_wait_ms=settings.fetch_max_wait_ms,
        min_bytes=settings.fetch_min_bytes,
        interval_ms=settings.fetch_interval_ms,
        linger_ms=settings.producer_linger_ms,
        follows_load=settings.pacing_follows_load,
        busy_records_per_second=settings.paced_above,
        light_interval_ms=settings.light_fetch_interval_ms,
        light_linger_ms=settings.light_linger_ms,
    ),
)
