"""Forward what a stage cannot process to the dead-letter topic, with its origin."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from faust import EventT, StreamT

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
            log.exception(
                "%s failed on %s[%s]@%s",
                stage,
                event.message.topic,
                event.message.partition,
                event.message.offset,
            )
            await dead_letter(stage, exc, event)
        yield event.message.offset
