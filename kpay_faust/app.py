"""The Faust application: one app, configured from settings, that discovers every pillar."""

from __future__ import annotations

import faust

from kpay_faust.batching import KPayProducer
from kpay_faust.consumer import KPayConsumer
from kpay_faust.keyed_table import KPayTable
from kpay_faust.settings import get_settings
from kpay_faust.worker import KPayWorker

settings = get_settings()

PILLARS = [
    "kpay_faust.payments",
    "kpay_faust.metrics",
    "kpay_faust.control",
    "kpay_faust.ops",
    "kpay_faust.web",
]


class KPayApp(faust.App):
    """The Faust app; it creates KPay's topics before its consumer first subscribes.

    Faust creates a topic only when it subscribes to it, and a group leader that assigns
    partitions before every new topic is in its metadata leaves that topic unassigned.
    """

    async def on_first_start(self) -> None:
        await super().on_first_start()
        from kpay_faust.topics import declare_all  # topics need the app: import when running

        await declare_all()

    def _new_consumer(self) -> KPayConsumer:
        return KPayConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.loop,
        )

    def _new_producer(self) -> KPayProducer:
        return KPayProducer(self.transport, loop=self.loop, beacon=self.beacon)


app = KPayApp(
    settings.app_id,
    broker=settings.broker,
    store=settings.store,
    datadir=str(settings.data_dir),
    autodiscover=PILLARS,
    origin="kpay_faust",
    Table=KPayTable,
    Worker=KPayWorker,
    # One key encoding for topics and tables alike: raw UTF-8 strings (see KPayTable).
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=settings.partitions,
    topic_replication_factor=1,
    topic_allow_declare=True,
    consumer_auto_offset_reset="earliest",
    processing_guarantee=settings.processing_guarantee,
    table_standby_replicas=settings.standby_replicas,
    web_host=settings.web_host,
    web_bind=settings.web_bind,
    web_port=settings.web_port,
    web_tables_enabled=False,
    stream_wait_empty=False,
    producer_linger_ms=settings.producer_linger_ms,
    broker_max_poll_records=settings.max_poll_records,
    broker_commit_interval=settings.commit_interval,
    # A topic created while the group forms (first start of several workers) can miss the
    # first assignment; fresh metadata makes the leader notice it and rebalance within seconds.
    consumer_metadata_max_age_ms=5000,
    broker_session_timeout=10,
    broker_heartbeat_interval=2,
)
