"""Forward what a stage cannot process to the dead-letter topic, with its origin."""

from __future__ import annotations

import logging
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from faust import EventT, StreamT
from faust.streams import _current_event

from kpay_faust import topics
from kpay_faust.ops.models import DeadLetter

log = logging.getLogger(__name__)

#: Dead letters sent by this worker, by stage (for metrics and tests).
dead_letters_sent: Counter[str] = Counter()


def _key_text(key: Any) -> str | None:
    if key is None or isinstance(key, str):
        return key
    text, _ = DeadLetter.text_of(key)
    return text


async def dead_letter(stage: str, error: str | BaseException, event: EventT) -> None:
    """Send ``event`` to the dead-letter topic with the error and its topic/partition/offset."""
    message = event.message
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    value, encoding = DeadLetter.text_of(message.value)
    record = DeadLetter(
        stage=stage,
        error=reason[:2000],
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=_key_text(message.key),
        value=value,
        value_encoding=encoding,
        at=time.time(),
    )
    log.warning(
        "dead letter from %s at %s[%s]@%s: %s",
        stage,
        message.topic,
        message.partition,
        message.offset,
        reason,
    )
    dead_letters_sent[stage] += 1
    await topics.dlq.send(key=record.key, value=record.model_dump_json().encode())


async def run_stage(
    stream: StreamT, stage: str, step: Callable[[EventT], Awaitable[None]]
) -> AsyncIterator[int]:
    """Apply ``step`` to each event and yield its offset; a failure is dead-lettered, not fatal.

    Faust acks the message and restarts the actor when an agent raises, so the error and the
    bytes would be lost: catching per event keeps both and keeps the stage running. Yielding
    once per processed event lets ``agent.test_context().put()`` wait for the processing.
    """
    async for event in stream.events():
        try:
            await step(event)
        except Exception as exc:
            log.exception("%s failed on %s", stage, _origin(event))
            await dead_letter(stage, exc, event)
        yield event.message.offset


#: What a batched step returns for an event it left for redelivery (its partition moved to
#: another worker while it waited): the event is not done, so its offset must not count as done.
NOT_DONE: Any = object()

BATCH_MAX = 500


async def ready_batches(stream: StreamT, max_: int) -> AsyncIterator[list[EventT]]:
    """The stream's events in batches of what has arrived: a batch ends when the stream's
    buffer is empty or it holds ``max_`` events, so it waits for nothing. Under load a fetch
    delivers many records at once and the batches grow; an idle stage handles each event as
    it comes. (Faust's ``take_events`` waits out a timer each round, which added its
    ``within`` to every payment's latency at each batched stage.)

    A batch's events are acknowledged only once the stage is done with it, so an offset is
    never committed before the batch's effects were made.
    """
    queue = stream.channel.queue
    stream.enable_acks = False
    batch: list[EventT] = []
    try:
        async for event in stream.events():
            batch.append(event)
            if len(batch) < max_ and not queue.empty():
                continue
            yield batch  # not acknowledged if the stage stops while it holds the batch
            done, batch = batch, []
            for finished in done:
                await stream.ack(finished)
    finally:
        stream.enable_acks = True


async def run_batched_stage(
    stream: StreamT,
    stage: str,
    step: Callable[[EventT], Awaitable[Any]],
    finish: Callable[[list[tuple[EventT, Any]]], None],
) -> AsyncIterator[int]:
    """``run_stage`` over batches: ``step`` per event, then ``finish`` once per batch with each
    processed event and what its step returned (for writes that are cheaper once per batch);
    events whose step returned ``NOT_DONE`` are left out.

    Table writes go to the changelog partition of the current event, so each event is made
    current (``make_current``) while its step runs. A batch's events are acknowledged only after
    this yields.
    """
    async for events in ready_batches(stream, BATCH_MAX):
        done: list[tuple[EventT, Any]] = []
        for event in events:
            make_current(event)
            try:
                result = await step(event)
                if result is not NOT_DONE:
                    done.append((event, result))
            except Exception as exc:
                log.exception("%s failed on %s", stage, _origin(event))
                await dead_letter(stage, exc, event)
        finish(done)
        yield len(events)


def make_current(event: EventT) -> None:
    """Make ``event`` the one table writes in this task belong to (their changelog partition and
    window). Only this task's context changes: ``stream._set_current_event`` would also change
    the stream's ``current_event``, which ``take_events`` reads to pair each buffered value with
    its event, and the next batch would hold a stale event in place of a new one.
    """
    _current_event.set(weakref.ref(event))


def _origin(event: EventT) -> str:
    message = event.message
    return f"{message.topic}[{message.partition}]@{message.offset}"
