"""Forward what a stage cannot process to the dead-letter topic, with its origin.

``dead_letter`` is also every stage's failure handler (``engine.stages.OnFailure``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from faust import EventT

from kpay_faust import topics
from kpay_faust.instruments import DEAD_LETTERS
from kpay_faust.ops.models import DeadLetter

log = logging.getLogger(__name__)


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
    DEAD_LETTERS.labels(stage).inc()
    await topics.dlq.send(key=record.key, value=record.model_dump_json().encode())
