"""Forward what a stage cannot process to the dead-letter topic, with its origin.

``dead_letter`` is also every stage's failure handler (``engine.stages.OnFailure``). It returns
only once the broker has the dead letter: if the topic cannot be written it retries with
backoff, says so in the log, in ``/health`` and in Prometheus, and the stage waits, so the
record is never acknowledged without a trace.
"""

from __future__ import annotations

import asyncio
import logging
import time

from faust import EventT

from kpay_faust import topics
from kpay_faust.instruments import DEAD_LETTER_STALLED, DEAD_LETTERS
from kpay_faust.ops.models import DeadLetter

log = logging.getLogger(__name__)

RETRY_FIRST = 0.1  # seconds before the first retry; doubled up to RETRY_MAX
RETRY_MAX = 5.0

#: Since when this worker has been unable to write a dead letter (None: it can).
stalled_since: float | None = None


async def dead_letter(stage: str, error: str | BaseException, event: EventT) -> None:
    """Send ``event`` to the dead-letter topic with the error and its topic/partition/offset;
    return once the broker has it."""
    message = event.message
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    record = DeadLetter.of(
        stage,
        reason,
        key=message.key,
        value=message.value,
        at=time.time(),
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
    )
    log.warning(
        "dead letter from %s at %s[%s]@%s: %s",
        stage,
        message.topic,
        message.partition,
        message.offset,
        record.error[:300],
    )
    await deliver(record)
    DEAD_LETTERS.labels(stage).inc()


async def deliver(record: DeadLetter) -> None:
    """Write ``record`` to the dead-letter topic, retrying with backoff until the broker has
    it."""
    global stalled_since
    key, value = record.record_key(), record.model_dump_json().encode()
    delay = RETRY_FIRST
    while True:
        try:
            await (await topics.dlq.send(key=key, value=value))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if stalled_since is None:
                stalled_since = time.time()
            DEAD_LETTER_STALLED.set(1)
            log.error("dead letter not stored (%r); the stage waits, retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
            continue
        if stalled_since is not None:
            log.warning("dead letters are stored again")
            stalled_since = None
            DEAD_LETTER_STALLED.set(0)
        return
