"""The stage runner: how an agent applies its step to each event, alone or in batches, without
letting one bad event stop the stage or commit past work not done.

Faust acks the message and restarts the actor when an agent raises, so the error and the bytes
would be lost: the runner catches per event and hands the event to the stage's failure handler
(the dead-letter topic, in KPay), and the stage goes on.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from faust import EventT, StreamT
from faust.events import Event

from kpay_faust.engine import compat
from kpay_faust.engine.consumer import KPayConsumer

log = logging.getLogger(__name__)

#: What a stage does with an event its step failed on: (stage, error, event).
OnFailure = Callable[[str, BaseException, EventT], Awaitable[None]]

#: What a batched stage does once per batch with each processed event and its step's result.
Finish = Callable[[list[tuple[EventT, Any]]], None]

#: What a batched step returns for an event it left for redelivery (its partition moved to
#: another worker while it waited): the event is not done, so its offset must not count as done.
NOT_DONE: Any = object()

BATCH_MAX = 500

#: The stage whose work the current task does (set once per stage's task): log records and
#: other observers can say which stage they come from.
CURRENT_STAGE: ContextVar[str | None] = ContextVar("kpay_stage", default=None)

#: CPU seconds each stage spent in its own work (steps, batch finishes, failure handling), by
#: stage name: the event loop's thread time while a stage ran, so time spent in another task
#: while a step awaited counts too (steps await only under back-pressure). What a worker spends
#: outside them is the framework's: fetching, delivery, acknowledgements, producing.
CPU_SECONDS: defaultdict[str, float] = defaultdict(float)


@contextmanager
def cpu_of(stage: str) -> Iterator[None]:
    """Count the thread's CPU time inside the block as ``stage``'s."""
    started = time.thread_time()
    try:
        yield
    finally:
        CPU_SECONDS[stage] += time.thread_time() - started


async def run_stage(
    stream: StreamT, stage: str, step: Callable[[EventT], Awaitable[None]], failed: OnFailure
) -> AsyncIterator[int]:
    """Apply ``step`` to each event and yield its offset; a failure goes to ``failed``.

    An event of a partition this worker lost in a rebalance since it was fetched is skipped:
    its new owner processes it, and a write here would land in a changelog partition another
    worker now owns. Yielding once per event lets ``agent.test_context().put()`` wait for the
    processing.
    """
    owns = ownership(stream)
    CURRENT_STAGE.set(stage)
    async for event in stream.events():
        if not owns(event.message.tp):
            yield event.message.offset
            continue
        started = time.thread_time()  # as ``cpu_of``, inline: this runs once per event
        try:
            await step(event)
        except Exception as exc:
            log.exception("%s failed on %s", stage, origin(event))
            await failed(stage, exc, event)
        CPU_SECONDS[stage] += time.thread_time() - started
        yield event.message.offset


async def ready_batches(stream: StreamT, max_: int) -> AsyncIterator[list[EventT]]:
    """The stream's events in batches of what has arrived: a batch ends when the stream's
    buffer is empty or it holds ``max_`` events, so it waits for nothing. Under load a fetch
    delivers many records at once and the batches grow; an idle stage handles each event as
    it comes. (Faust's ``take_events`` waits out a timer each round, which added its
    ``within`` to every payment's latency at each batched stage.)

    Nothing is acknowledged here: the caller acknowledges each event it has finished
    (``stream.ack``), after the batch's effects were made, and leaves unacknowledged an event it
    did not finish, so no offset is committed past it.
    """
    queue = cast(Any, stream.channel).queue  # the stream's buffer (a Faust Channel's)
    stream.enable_acks = False
    batch: list[EventT] = []
    try:
        async for event in stream.events():
            batch.append(event)
            if len(batch) < max_ and not queue.empty():
                continue
            yield batch
            batch = []
    finally:
        stream.enable_acks = True


async def run_batched_stage(
    stream: StreamT,
    stage: str,
    step: Callable[[EventT], Awaitable[Any]],
    finish: Finish,
    failed: OnFailure,
) -> AsyncIterator[int]:
    """``run_stage`` over batches: ``step`` per event, then ``finish`` once per batch with each
    processed event and what its step returned (for writes that are cheaper once per batch);
    events whose step returned ``NOT_DONE`` are left out.

    Table writes go to the changelog partition of the current event, so each event is made
    current (``make_current``) while its step runs. A batch's events are acknowledged after
    ``finish``, and those left ``NOT_DONE`` never: the consumer redelivers them (to whichever
    worker owns their partition), and no commit passes them meanwhile.
    """
    owns = ownership(stream)
    CURRENT_STAGE.set(stage)
    async for events in ready_batches(stream, BATCH_MAX):
        with cpu_of(stage):
            answered, _ = await apply_batch(stage, events, owns, step, finish, failed)
        for event in answered:
            await stream.ack(event)
        yield len(events)


async def apply_batch(
    stage: str,
    events: Iterable[EventT],
    owns: Callable[[Any], bool],
    step: Callable[[EventT], Awaitable[Any]],
    finish: Finish | None,
    failed: OnFailure,
    stop_at_not_done: bool = False,
) -> tuple[list[EventT], EventT | None]:
    """Apply ``step`` to each event of a partition this worker owns, each made current for its
    table writes, then ``finish`` to the processed ones. Returns the events answered (processed
    or handed to ``failed``), which may be acknowledged, and, if ``stop_at_not_done``, the
    first event a step left ``NOT_DONE``: the events from it on are left for later, in order."""
    done: list[tuple[EventT, Any]] = []
    answered: list[EventT] = []
    left: EventT | None = None
    for event in events:
        if not owns(event.message.tp):
            continue  # lost in a rebalance since it was fetched, as in ``run_stage``
        make_current(event)
        try:
            result = await step(event)
            if result is not NOT_DONE:
                done.append((event, result))
                answered.append(event)
            elif stop_at_not_done:
                left = event
                break
        except Exception as exc:
            log.exception("%s failed on %s", stage, origin(event))
            await failed(stage, exc, event)
            answered.append(event)
    if finish is not None:
        finish(done)
    return answered, left


def called_by_fetch_loop() -> bool:
    """Whether the current step was called by the fetch loop (``Stage.deliver``): it must then
    not wait, and returns ``NOT_DONE`` for an event it cannot take now instead; the partition
    is fetched again from that event."""
    return _DIRECT.get()


_DIRECT: ContextVar[bool] = ContextVar("kpay_direct", default=False)


@dataclass(frozen=True)
class Stage:
    """A stage's work: its ``step`` per event, an optional ``finish`` per batch, and where a
    failed event goes. ``KPayApp.stage`` makes it an agent and, on a KPay consumer, lets the
    fetch loop hand it each partition's fetched records directly (``deliver``).

    Faust delivers a record through the conductor, the topic's channel, a queue and the agent's
    stream, in a task of the agent's own that the event loop switches to for each record, and
    acknowledges it through the stream: at saturation that path cost about a third of a worker's
    CPU per payment (docs/benchmarks.md, session 16). Called from the fetch loop, a stage runs
    the records of a partition in one go with none of it. A step must then never wait for
    long: the fetch loop, and every other stage of the worker, waits with it.
    """

    name: str
    step: Callable[[EventT], Awaitable[Any]]
    failed: OnFailure
    finish: Finish | None = None

    def run(self, stream: StreamT) -> AsyncIterator[int]:
        """The agent's body: events from its stream (tests, other consumers)."""
        if self.finish is None:
            return run_stage(stream, self.name, self.step, self.failed)
        return run_batched_stage(stream, self.name, self.step, self.finish, self.failed)

    async def deliver(self, consumer: KPayConsumer, messages: list[Any]) -> Any | None:
        """Apply the stage to fetched ``messages`` of one partition, in order, and acknowledge
        each it answered. Returns the first message a step left ``NOT_DONE`` (it and those
        after it are not applied: the caller fetches them again), else None. A message of a
        partition a rebalance took meanwhile is neither applied nor acknowledged: its new
        owner fetches it."""
        events = as_events(consumer, messages)
        stage, direct = CURRENT_STAGE.set(self.name), _DIRECT.set(True)
        try:
            with cpu_of(self.name):
                answered, left = await apply_batch(
                    self.name, events, consumer.owns, self.step, self.finish, self.failed, True
                )
        finally:
            CURRENT_STAGE.reset(stage)
            _DIRECT.reset(direct)
        for event in answered:
            consumer.ack(event.message)
        return None if left is None else left.message

    async def flush_due(self, consumer: KPayConsumer) -> None:
        """Nothing is kept between calls."""


def as_events(consumer: KPayConsumer, messages: list[Any]) -> list[EventT]:
    """Fetched messages as the events a step takes (its table writes go to the changelog
    partition of the current event)."""
    app = consumer.app
    return [Event(app, m.key, m.value, m.headers, m) for m in messages]


#: What a gathering stage does with a batch: (events of partitions this worker owns, ``owns``).
RunBatch = Callable[[list[EventT], Callable[[Any], bool]], Awaitable[None]]


class GatheringStage:
    """A stage whose work is cheaper once per batch however large (the metrics stage writes a
    window row per partition per batch): the fetch loop hands it records as for a ``Stage``,
    and it gathers them until the oldest has waited ``within`` seconds or ``max_`` have come,
    then runs ``run_batch`` over them and acknowledges them. Until then none is acknowledged,
    so no commit passes them; those of a partition this worker lost meanwhile are neither run
    nor acknowledged (their new owner fetches them). The fetch loop also asks it after every
    fetch, records or not (``flush_due``), so the last ones of a burst wait at most ``within``
    plus one fetch."""

    def __init__(
        self,
        name: str,
        run_batch: RunBatch,
        within: float,
        max_: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.run_batch, self.within, self.max_ = name, run_batch, within, max_
        self._clock = clock
        self._gathered: list[EventT] = []
        self._since = 0.0

    async def deliver(self, consumer: KPayConsumer, messages: list[Any]) -> Any | None:
        if not self._gathered:
            self._since = self._clock()
        self._gathered.extend(as_events(consumer, messages))
        if len(self._gathered) >= self.max_:
            await self._flush(consumer)
        return None

    async def flush_due(self, consumer: KPayConsumer) -> None:
        if self._gathered and self._clock() - self._since >= self.within:
            await self._flush(consumer)

    async def _flush(self, consumer: KPayConsumer) -> None:
        gathered, self._gathered = self._gathered, []
        events = [event for event in gathered if consumer.owns(event.message.tp)]
        stage = CURRENT_STAGE.set(self.name)
        try:
            with cpu_of(self.name):
                await self.run_batch(events, consumer.owns)
        finally:
            CURRENT_STAGE.reset(stage)
        for event in events:
            consumer.ack(event.message)


def ownership(stream: StreamT) -> Callable[[Any], bool]:
    """``tp -> bool``: whether this worker still owns a partition (``KPayConsumer.owns``), for
    stages that finish events fetched before a rebalance."""
    consumer = stream.app.consumer
    if isinstance(consumer, KPayConsumer):
        return consumer.owns
    return lambda tp: True


def make_current(event: EventT) -> None:
    """Make ``event`` the one table writes in this task belong to (their changelog partition and
    window). Only this task's context changes: ``stream._set_current_event`` would also change
    the stream's ``current_event``, which ``take_events`` reads to pair each buffered value with
    its event, and the next batch would hold a stale event in place of a new one.
    """
    compat.set_current_event(event)


def key_text(event: EventT) -> str | None:
    """The event's key as text; None for no key, and for a key that is not UTF-8, which no
    KPay writer sends: a stage treats such a record as keyless and keys it by its content."""
    raw = event.message.key
    if raw is None or isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def origin(event: EventT) -> str:
    """Where an event came from: ``topic[partition]@offset``."""
    message = event.message
    return f"{message.topic}[{message.partition}]@{message.offset}"


def has_header(headers: Any, name: str) -> bool:
    """Whether a record's headers (aiokafka's pairs or a mapping, as Faust hands them on) hold
    ``name``."""
    return header(headers, name) is not None


def header(headers: Any, name: str) -> bytes | None:
    """The value of header ``name`` of a record's headers (pairs or a mapping), if any."""
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for key, value in items:
        if key == name:
            return value if value is not None else b""
    return None
