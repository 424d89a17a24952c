"""The consumer KPay uses: it commits finished work before a rebalance takes partitions away,
rewinds a partition with no commit to its beginning when Faust seeks back, and delivers fetched
records without racing those seeks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, Protocol, cast

from aiokafka import TopicPartition
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP

from kpay_faust.engine import compat
from kpay_faust.engine.delivery import deliver
from kpay_faust.engine.fetching import FetchTuning, KPayConsumerThread, Pacing

log = logging.getLogger(__name__)

#: Records of one partition a stage called by the fetch loop gets in one call.
DIRECT_CHUNK = 500
#: Seconds before records a stage failed on as a whole are fetched again.
RETRY_AFTER = 1.0


class DirectStage(Protocol):
    """A stage the fetch loop calls itself with a partition's fetched records, in order
    (``kpay_faust.engine.stages.Stage``); it acknowledges those it finished, and returns the
    first it left for later (None if none)."""

    async def deliver(self, consumer: KPayConsumer, messages: list[Any]) -> Any | None: ...

    async def flush_due(self, consumer: KPayConsumer) -> None:
        """Finish what it gathered from earlier calls if it is due (asked after each fetch)."""


class KPayConsumer(Consumer):
    """Faust's aiokafka consumer, committing what is acknowledged when partitions are revoked,
    and seeking back for real on partitions that have no committed offset yet.

    Faust drops the acknowledged offsets of revoked partitions without committing them, then
    seeks every assigned partition back to its last commit. Each rebalance (a worker joining or
    leaving) made the stages redo the work of the last commit interval and publish those
    outcomes again, which the metrics windows counted twice. Effects stay idempotent either
    way; committing first keeps the replay to events that were not finished.

    Faust drops records it fetched but had not delivered when a rebalance starts, relying on
    that seek to fetch them again; aiokafka's ``seek_to_committed`` does not move a partition
    that has no committed offset (or offset 0). Records fetched in the first seconds of a
    partition's life, before its first commit, were skipped for good: payments stayed in
    flight, and totals counted releases of admissions they never saw.

    Its fetch loop replaces Faust's (``_drain_messages``): see ``kpay_faust.engine.delivery``.
    Its consumer thread fetches as ``pacing`` says (``kpay_faust.engine.fetching``), and its
    fetch loop tells ``pacing`` how many records each fetch handed over.

    It delivers no more records of a partition than the app's ``credit`` for it allows (a
    partition not in ``credit`` has no limit). Past the credit, the rest of the fetch's records
    of that partition are dropped, the partition is rewound to the first of them and paused in
    the Kafka client, and it is added to ``starved``: the app resumes it when it grants more.
    A pause alone stops new fetches, but a fetch already handed over can carry thousands of
    records, and an app that checks its load periodically would let them all through between
    two checks.
    """

    def __init__(self, *args: Any, pacing: Pacing | None = None, **kwargs: Any) -> None:
        self.pacing = pacing or Pacing(FetchTuning())
        #: Records each limited partition may still deliver; the app grants it anew.
        self.credit: dict[TP, int] = {}
        #: Partitions paused here for want of credit, until the app takes them over.
        self.starved: set[TP] = set()
        super().__init__(*args, **kwargs)  # makes the consumer thread

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return KPayConsumerThread(self, loop=self.loop, beacon=self.beacon, pacing=self.pacing)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        if not self.in_transaction and self.assignment():
            await self.commit(set(self.assignment()) | set(revoked))
        await super().on_partitions_revoked(revoked)

    def owns(self, tp: TP) -> bool:
        """Whether ``tp`` is assigned to this consumer now (True before the client started, as
        in unit tests). A stage finishing events fetched before a rebalance skips those of
        partitions it lost: their new owner processes them."""
        client = compat.started_aiokafka_consumer(self._thread)
        return client is None or tp in client.assignment()

    async def force_commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        """Commit only the partitions this consumer is assigned (unless ``topics`` names others).

        Faust commits every partition with acknowledged offsets, including one revoked since:
        an event fetched before a rebalance and finished after it was committed by its old
        owner, possibly before the new owner read the committed offset, and the new owner then
        started past events it never processed (a metrics window came up short).
        """
        if topics is None:
            topics = set(self.assignment())
        return await super().force_commit(topics, start_new_transaction=start_new_transaction)

    #: Bumped before and after every seek of the stream partitions to their commits.
    _seeks = 0
    #: The value of ``_seeks`` when the current fetch began.
    _fetch_seeks = 0

    async def perform_seek(self) -> None:
        self._seeks += 1
        try:
            await super().perform_seek()
        finally:
            self._seeks += 1

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop, delivering each record inline unless it must wait (see
        ``kpay_faust.engine.delivery``).

        A fetch is abandoned, undelivered records and all, when the flow is suspended (the
        rebalance then seeks back to the commits) or when a seek overlapped it: its records may
        come from before the seek or after it, and recording either as read would make the
        loop drop the other. The loop then seeks back to the commits itself, so what it dropped
        is fetched again; what was delivered twice, the stages apply once.
        """
        stopped, fetcher_stopped = self._stopped.is_set, compat.stopped_event(fetcher).is_set
        try:
            while not (stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                async with aclosing(cast(Any, self.getmany(timeout=1.0))) as fetched:
                    await asyncio.sleep(0)  # a fetch can return at once, again and again
                    overlapped = not self.should_stop and not await self._deliver(fetched)
                if overlapped and self.flow_active and not self.should_stop:
                    await self._seek_back()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
            self.log.info("Broker stopped consumer, shutting down...")
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        except Exception:
            log.exception("fetch loop failed")
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _wait_next_records(self, timeout: float) -> Any:
        if not self.flow_active:  # a rebalance seeks before it resumes the flow
            await self.wait(cast(Any, self.can_resume_flow))
        self._fetch_seeks = self._seeks
        return await super()._wait_next_records(timeout)

    async def _deliver(self, fetched: AsyncIterator[tuple[TP, Any]]) -> bool:
        """Deliver a fetch's records; False if a seek overlapped it (the rest is dropped). The
        pacing learns how many were handed over."""
        self.handed_over = 0
        try:
            return await self._deliver_records(fetched)
        finally:
            self.pacing.observe(self.handed_over)

    #: Records the fetch being delivered has handed to the stages so far.
    handed_over = 0

    async def _deliver_records(self, fetched: AsyncIterator[tuple[TP, Any]]) -> bool:
        """``_deliver``'s work. Before each delivery it does what Faust's loop does: note skipped
        offsets (compaction, transaction markers) as done so commits can pass them, and commit
        every ``broker_commit_every`` records; both are checked inline, as they are rarely due.
        """
        read_offset, acks_enabled_for = self._read_offset, self.app.topics.acks_enabled_for
        direct: Mapping[str, DirectStage] = getattr(self.app, "direct_stages", {})
        collected: dict[TP, list[Any]] = {}  # records for stages the loop calls itself
        rewound: set[TP] = set()
        async for tp, message in fetched:
            seeks = self._fetch_seeks  # set when the fetch began
            if seeks != self._seeks:
                return False
            if self.suspend_flow.is_set():
                return True
            offset, last_read = message.offset, read_offset[tp]
            if last_read is not None and offset < last_read:
                continue  # delivered before, and read again after a seek
            if tp in rewound:
                continue
            credit = self.credit.get(tp)
            if credit is not None:
                if credit <= 0:
                    rewound.add(tp)
                    await self._rewind(tp, offset)
                    continue
                self.credit[tp] = credit - 1
            if last_read and offset - last_read > 1 and acks_enabled_for(message.topic):
                await self._add_gap(tp, last_read + 1, offset)
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
            if message.topic in direct:
                collected.setdefault(tp, []).append(message)
            elif not await deliver(cast(Any, self.callback(message)), self.suspend_flow):
                return True
            if seeks != self._seeks:
                return False
            read_offset[tp] = offset
            self.handed_over += 1
            if self.handed_over % 100 == 0:
                await asyncio.sleep(0)  # let other tasks run during a long fetch
        return await self._deliver_directly(collected, direct)

    async def _deliver_directly(
        self, collected: dict[TP, list[Any]], direct: Mapping[str, DirectStage]
    ) -> bool:
        """Hand each partition's collected records to its stage, ``DIRECT_CHUNK`` at a time,
        letting other tasks run only after every ``DIRECT_CHUNK`` records: a turn of the event
        loop per partition let the producer send each stage's outputs in requests of a few
        records, which cost the worker and the broker more CPU and a payment 70 ms at 1,000/s
        (docs/benchmarks.md, session 16). A record the stage left for later (the gateway while
        admission is held) and the rest of its partition are fetched again from it, as for a
        partition out of credit: it is rewound, paused, and ``starved`` until the app resumes
        it. Stops (False: the loop seeks back to the commits, so what was not done is
        fetched again) if a seek or a rebalance began meanwhile, or if a stage failed outside
        its per-event handling; the stage then gets the records again after ``RETRY_AFTER``
        seconds, and applies again only what it had not applied."""
        since_turn = 0
        for tp, messages in collected.items():
            stage = direct[tp.topic]
            for start in range(0, len(messages), DIRECT_CHUNK):
                if since_turn >= DIRECT_CHUNK:
                    since_turn = 0
                    await asyncio.sleep(0)
                if self._fetch_seeks != self._seeks or self.suspend_flow.is_set():
                    return False
                chunk = messages[start : start + DIRECT_CHUNK]
                try:
                    left = await stage.deliver(self, chunk)
                except Exception:
                    return await self._failed_as_a_whole(tp.topic)
                if left is not None:
                    if self._fetch_seeks == self._seeks:  # else the seek fetches it again
                        self._read_offset[tp] = left.offset - 1 if left.offset else None
                        await self._rewind(tp, left.offset)
                    break
                since_turn += len(chunk)
        for topic, stage in direct.items():
            if self._fetch_seeks != self._seeks or self.suspend_flow.is_set():
                return False
            try:
                await stage.flush_due(self)
            except Exception:
                return await self._failed_as_a_whole(topic)
        return self._fetch_seeks == self._seeks

    async def _failed_as_a_whole(self, topic: str) -> bool:
        """A stage failed outside its per-record handling: False (the loop seeks back to the
        commits) after ``RETRY_AFTER`` seconds, so it gets the records again."""
        log.exception("the stage of %s failed on a batch: fetching it again", topic)
        await asyncio.sleep(RETRY_AFTER)
        return False

    def last_delivered(self, tp: TP) -> int | None:
        """The offset of the last record of ``tp`` handed to a stage, if any since assignment."""
        return self._read_offset.get(tp)

    async def _rewind(self, tp: TP, offset: int) -> None:
        """Pause ``tp`` and make its next fetch start at ``offset`` (its records after it in this
        fetch are dropped)."""
        thread = self._thread

        async def seek() -> None:
            client = compat.aiokafka_consumer(thread)
            partition = TopicPartition(tp.topic, tp.partition)
            if partition in client.assignment():
                client.pause(partition)
                client.seek(partition, offset)

        try:
            await thread.call_thread(seek)
        except Exception as exc:  # a rebalance under way seeks back to the commits itself
            log.warning("could not rewind %s to %s: %r", tp, offset, exc)
            return
        self.starved.add(tp)  # only once paused: the app's resume must come after the pause

    async def _seek_back(self) -> None:
        try:
            await self.perform_seek()
        except Exception as exc:  # a rebalance under way: it seeks back itself when it ends
            log.warning("could not seek back to the committed offsets: %r", exc)

    def verify_event_path(self, now: float, tp: TP) -> Any:
        """Faust's periodic check that partitions make progress reads each partition's fetch
        position; aiokafka asserts it is known, and it is not while a rewind to the beginning
        (``rewind_uncommitted``) is under way. The assertion crashed the consumer and stopped
        the worker: skip the partition until its position is known again. The position is
        asked for first (an assert is gone under ``python -O``); the assert is still caught, as
        it can also come from a position reset between the two looks."""
        client = compat.started_aiokafka_consumer(self._thread)
        if client is not None and not compat.position_known(client, tp):
            return None
        try:
            return super().verify_event_path(now, tp)
        except AssertionError:
            return None

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        if any(not offset for offset in committed.values()):
            thread = self._thread  # the aiokafka client lives in Faust's consumer thread
            client = compat.aiokafka_consumer(thread)
            await thread.call_thread(rewind_uncommitted, client, committed)
        return committed


async def rewind_uncommitted(client: Any, committed: Mapping[Any, int | None]) -> list[Any]:
    """Seek the assigned partitions that have no committed offset (None, or 0) to their
    beginning; returns them. Every KPay topic is read with ``auto_offset_reset=earliest``, so
    "no commit" means "from the beginning"."""
    assigned = client.assignment()
    rewind = [tp for tp, offset in committed.items() if not offset and tp in assigned]
    if rewind:  # with no arguments aiokafka would rewind every assigned partition
        log.info("no committed offset: reading %s from the beginning", rewind)
        await client.seek_to_beginning(*rewind)
    return rewind
