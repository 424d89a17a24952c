"""Settings from ``KPAY_*`` environment variables, validated once at start-up."""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KPAY_", extra="ignore", frozen=True)

    app_id: str = Field("kpay", pattern=r"^[A-Za-z0-9_.\-]+$")
    broker: str = Field("kafka://127.0.0.1:9092", pattern=r"^kafka://\S+$")
    topic_prefix: str = Field("kpay", pattern=r"^[A-Za-z0-9_\-]+$")
    partitions: int = Field(8, ge=1, le=1024)
    # Copies of every KPay topic and changelog, and how many must have a write before it counts
    # (the producer waits for all in-sync replicas): 1 / 1 on one broker, 3 / 2 on a cluster.
    replication_factor: int = Field(1, ge=1, le=7)
    min_insync_replicas: int = Field(1, ge=1, le=7)
    store: Literal["rocksdb://", "memory://"] = "rocksdb://"
    data_dir: Path = Path("kpay-data")
    web_host: str = "127.0.0.1"
    web_bind: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    standby_replicas: int = Field(0, ge=0, le=3)
    # How long a finished payment's status and the record of each step that moved money are kept:
    # within it a payment id is idempotent; after it the rows are deleted (docs/http-api.md).
    retention_seconds: float = Field(7 * 86400, ge=1, le=10 * 365 * 86400)
    # Segment size of the tables' changelogs: the log cleaner compacts only closed segments, so
    # this bounds the deleted and overwritten rows a changelog keeps, and a restore replays
    # (a broker's default is 1 GiB a partition).
    changelog_segment_mb: int = Field(64, ge=1, le=1024)
    max_amount: Decimal = Field(Decimal("1000000.00"), gt=0)
    # Throughput/latency trade-offs, measured in docs/benchmarks.md.
    producer_linger_ms: int = Field(2, ge=0, le=1000)
    max_poll_records: int | None = Field(200, ge=1, le=100_000)
    fetch_max_wait_ms: int = Field(100, ge=0, le=60_000)  # longest a fetch waits at the broker
    fetch_min_bytes: int = Field(1, ge=1, le=10_000_000)  # what a fetch waits to gather
    fetch_interval_ms: int = Field(15, ge=0, le=10_000)  # least time between two fetches
    # Pace fetches (fetch_interval_ms) and produced batches (producer_linger_ms) only while the
    # worker is busy; a light one paces with the light_* settings below (engine.fetching.Pacing).
    pacing_follows_load: bool = True
    # The fetch loop hands every stage its records itself (the metrics stage in gathered
    # batches) instead of through Faust's streams, which cost a third of a worker's CPU
    # (engine.stages.Stage, GatheringStage).
    direct_delivery: bool = True
    # Records a second handed to a worker's stages above which it counts as busy (about five
    # per payment); light again below half of it.
    paced_above: int = Field(1500, ge=1, le=10_000_000)
    # Pacing of a light worker: least time between two fetches (each costs Python work for every
    # partition the worker reads), and linger of produced batches.
    light_fetch_interval_ms: int = Field(4, ge=0, le=10_000)
    light_linger_ms: int = Field(0, ge=0, le=1000)
    # The cyclic garbage collector's thresholds in a started worker (``gc.set_threshold``; JSON
    # in the environment, e.g. ``[700, 10, 10]``, Python's own).
    gc_threshold: tuple[
        Annotated[int, Field(ge=1, le=10_000_000)],
        Annotated[int, Field(ge=1, le=1000)],
        Annotated[int, Field(ge=1, le=1000)],
    ] = (20_000, 20, 50)
    # Payments admitted and not yet finished per input partition at which the gateway's input
    # partition is paused in the Kafka client, until half of them finished: under overload the
    # backlog waits in Kafka and admitted payments keep their latency (docs/benchmarks.md).
    admission_limit: int = Field(100, ge=1, le=1_000_000)
    # RocksDB memory of a worker, shared by all its stores: the block cache (with index and
    # filter blocks) and all memtables together; and the size of one memtable.
    rocksdb_block_cache_mb: int = Field(32, ge=1, le=65536)
    rocksdb_memtables_mb: int = Field(64, ge=1, le=65536)
    rocksdb_write_buffer_mb: int = Field(4, ge=1, le=1024)
    # Live reconciliation (docs/operations.md): how often each worker checks its books, and how
    # long a payment may be in flight before it is reported stuck.
    reconcile_seconds: float = Field(30, ge=1, le=86400)
    stuck_seconds: float = Field(60, ge=1, le=86400)
    # OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces) that receives a span per
    # payment step; unset, no span is made (the traceparent headers are written either way).
    otel_endpoint: str | None = Field(None, pattern=r"^https?://\S+$")
    commit_interval: float = Field(2.8, gt=0, le=3600)  # seconds between offset commits
    max_body_bytes: int = Field(65536, ge=1024, le=16_777_216)  # largest HTTP request body
    # Kafka security: how every client of this process (workers, control follower, generate)
    # authenticates to the broker; see docs/security.md.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None  # CA that signed the broker's certificate
    kafka_ssl_certfile: Path | None = None  # client certificate (mutual TLS)
    kafka_ssl_keyfile: Path | None = None
    tokens_file: Path = Path("kpay-tokens.json")  # bearer tokens (hashes) and cluster secret
    cluster_secret: SecretStr | None = None  # else the tokens file's

    @model_validator(mode="after")
    def _replicas(self) -> Settings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError("min_insync_replicas must not exceed replication_factor")
        return self


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    name = "KPAY_" + str(err["loc"][0]).upper() if err["loc"] else "KPAY_*"
    return f"kpay: invalid setting {name}={os.environ.get(name)!r}: {err['msg']}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; a bad value stops start-up with one line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        print(_one_line(exc), file=sys.stderr)
        raise SystemExit(2) from None
