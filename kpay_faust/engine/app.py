"""The Faust app class KPay runs on: its consumer, producer and table classes, topics it owns
and creates before subscribing, and the one way stages send their outputs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust
from faust.types import AgentT, EventT, StreamT, TopicT

from kpay_faust.engine.consumer import KPayConsumer
from kpay_faust.engine.fetching import FetchTuning, Pacing
from kpay_faust.engine.producer import KPayProducer
from kpay_faust.engine.restore import KPayTableManager
from kpay_faust.engine.stages import Finish, GatheringStage, OnFailure, RunBatch, Stage
from kpay_faust.engine.stores import StoreMemory
from kpay_faust.engine.table import KPayTable
from kpay_faust.engine.worker import KPayWorker, bootstrap_servers


class KPayApp(faust.App):
    """A Faust app with KPay's consumer (``KPayConsumer``), producer (``KPayProducer``), table
    (``KPayTable``), recovery (``KPayTableManager``) and worker (``KPayWorker``) classes.

    Faust creates a topic only when it subscribes to it, and a group leader that assigns
    partitions before every new topic is in its metadata leaves that topic unassigned; so the
    topics made with ``owned_topic`` are all created when the app first starts, before its
    consumer subscribes.
    """

    def __init__(
        self,
        *args: Any,
        fetch_tuning: FetchTuning | None = None,
        topic_config: dict[str, str] | None = None,
        changelog_config: dict[str, str] | None = None,
        store_options: dict[str, int] | None = None,
        store_memory: StoreMemory | None = None,
        direct_delivery: bool = True,
        gc_threshold: tuple[int, int, int] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("Table", KPayTable)
        kwargs.setdefault("Worker", KPayWorker)
        kwargs.setdefault("TableManager", KPayTableManager)
        super().__init__(*args, **kwargs)
        self.fetch_tuning = fetch_tuning or FetchTuning()
        #: ``gc.set_threshold`` of a started worker (None: Python's).
        self.gc_threshold = gc_threshold
        #: How long fetches and produced batches wait, following the load.
        self.pacing = Pacing(self.fetch_tuning)
        #: Broker configs of every topic and changelog the app creates (min.insync.replicas).
        self.topic_config = topic_config or {}
        #: Broker configs of every table's changelog: ``topic_config`` and these.
        self.changelog_config = {**self.topic_config, **(changelog_config or {})}
        #: RocksDB options of every table's stores (``faust.stores.rocksdb.RocksDBOptions``):
        #: Faust's defaults let each partition's store keep up to three 64 MB of memtables and a
        #: 2 GB block cache, so a worker's memory grew with every payment it stored.
        self.store_options = store_options or {}
        #: The block cache and memtable budget every RocksDB store of this worker shares.
        self.store_memory = store_memory
        self.owned_topics: list[TopicT] = []
        #: Whether the fetch loop calls stages itself (``stage``) instead of Faust's delivery.
        self.direct_delivery = direct_delivery
        #: The stages the fetch loop calls itself, by the name of the topic they read.
        self.direct_stages: dict[str, Stage | GatheringStage] = {}

    @property
    def bootstrap_servers(self) -> list[str]:
        """``host:port`` of each broker URL (``kafka://a:9092,b:9092``), for KPay's own aiokafka
        clients (the control follower, the load generator, the login check)."""
        return bootstrap_servers(self.conf.broker)

    def owned_topic(self, name: str, partitions: int) -> TopicT:
        """A topic this app creates. Keys and values arrive as raw bytes, whatever they hold:
        Faust decodes a key by the topic's ``key_type`` before the agent sees the event, and a
        key that is not UTF-8 made that raise outside the stage, which restarted the agent and
        lost the record and its batch neighbours. Stages decode keys themselves
        (``stages.key_text``) and values by their model, inside their per-event handling."""
        topic = self.topic(
            name,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            # "internal" makes Faust create it with these partitions, not the broker's default.
            internal=True,
            config=self.topic_config,
        )
        self.owned_topics.append(topic)
        return topic

    def stage(
        self,
        topic: TopicT,
        name: str,
        step: Callable[[EventT], Awaitable[Any]],
        failed: OnFailure,
        finish: Finish | None = None,
    ) -> AgentT:
        """A stage reading ``topic``: an agent at concurrency 1 named ``name`` (it subscribes
        the topic, and ``agent.test_context()`` runs the stage on events put to it), whose
        records the fetch loop hands to the stage directly when ``direct_delivery`` is on
        (``kpay_faust.engine.stages.Stage``). Its help is ``step``'s docstring."""
        work = Stage(name, step, failed, finish)

        def run(stream: StreamT) -> AsyncIterator[int]:
            return work.run(stream)

        run.__doc__ = step.__doc__
        agent = self.agent(topic, name=name)(run)
        if self.direct_delivery:
            self.direct_stages[topic.get_topic_name()] = work
        return agent

    def gathering_stage(
        self, topic: TopicT, name: str, run_batch: RunBatch, within: float, max_: int
    ) -> None:
        """Let the fetch loop hand ``topic``'s records to ``run_batch`` in batches gathered
        for up to ``within`` seconds (``kpay_faust.engine.stages.GatheringStage``) when
        ``direct_delivery`` is on; the agent reading ``topic`` gets them otherwise."""
        if self.direct_delivery:
            self.direct_stages[topic.get_topic_name()] = GatheringStage(
                name, run_batch, within, max_
            )

    async def declare_topics(self) -> None:
        """Create every owned topic and table changelog that does not exist yet (idempotent).
        Before the consumer subscribes: Faust would create the changelogs as the tables start,
        after the subscription, and aiokafka logged an error for each metadata refresh that
        found a changelog missing (on a new deployment's first start). Then the group's
        coordinator is awaited (``KPayProducer.await_group_coordinator``)."""
        for topic in self.owned_topics:
            await topic.maybe_declare()
        for table in self.tables.values():
            await table.changelog_topic.maybe_declare()
        await self.kpay_producer.await_group_coordinator(self.conf.id)

    async def on_first_start(self) -> None:
        await super().on_first_start()
        await self.declare_topics()

    @property
    def kpay_producer(self) -> KPayProducer:
        """The producer, as the KPay producer it always is (unit tests put in a subclass)."""
        producer = self.producer
        if not isinstance(producer, KPayProducer):
            raise TypeError(f"{type(producer).__name__} is not a KPayProducer")
        return producer

    async def emit(
        self, topic: TopicT, key: str, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """Send a stage's output record (batched: ``KPayProducer.emit``)."""
        await self.kpay_producer.emit(topic, key, value, headers)

    def _new_consumer(self) -> KPayConsumer:
        return KPayConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.loop,
            pacing=self.pacing,
        )

    def _new_producer(self) -> KPayProducer:
        return KPayProducer(self.transport, loop=self.loop, beacon=self.beacon, pacing=self.pacing)
