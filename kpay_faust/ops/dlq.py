"""Reading the dead-letter topic and replaying what it holds.

A dead letter keeps where its record came from (topic, partition, offset) and the record's bytes
up to 64 KiB. A replay sends the original record again to the topic it came from: its exact
bytes read back from there while Kafka still keeps them, else the dead letter's copy when it is
whole, or a value the operator corrected. It carries a ``kpay-replay-of`` header naming the dead
letter. Replaying is safe to repeat: payments are idempotent by id and steps by their record, and
an account command rejected before (say, a deposit to an account opened since) is tried again
only when it comes as a replay, after which its outcome is recorded like any other.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from kpay_faust import topics
from kpay_faust.engine.stages import has_header
from kpay_faust.ops.models import DeadLetter
from kpay_faust.ops.reading import Found, read_models

log = logging.getLogger(__name__)

REPLAY_HEADER = "kpay-replay-of"


def as_json(found: Found[DeadLetter]) -> dict[str, Any]:
    return {"dlq_partition": found.partition, "dlq_offset": found.offset, **found.item.model_dump()}


def is_replay(headers: Any) -> bool:
    """Whether a record's headers mark a replay."""
    return has_header(headers, REPLAY_HEADER)


async def read(
    client: AIOKafkaConsumer,
    *,
    stage: str | None = None,
    since: float | None = None,
    limit: int = 100,
    wanted: set[tuple[int, int]] | None = None,
) -> list[Found[DeadLetter]]:
    """Dead letters, oldest first (``reading.read``); only ``stage``'s when given."""
    return await read_models(
        client,
        topics.dlq,
        DeadLetter,
        lambda letter: stage is None or letter.stage == stage,
        since=since,
        limit=limit,
        wanted=wanted,
    )


def _copy(text: str | None, encoding: str) -> bytes | None:
    if text is None:
        return None
    if encoding == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8", "surrogatepass")


async def original(
    client: AIOKafkaConsumer, letter: DeadLetter
) -> tuple[bytes | None, bytes | None]:
    """The dead-lettered record's key and value: read back from its topic, else the dead
    letter's copy; ``LookupError`` when neither is whole."""
    if letter.topic is not None and letter.partition is not None and letter.offset is not None:
        tp = TopicPartition(letter.topic, letter.partition)
        client.assign([tp])
        begin = (await client.beginning_offsets([tp]))[tp]
        if letter.offset >= begin:
            client.seek(tp, letter.offset)
            fetched = await client.getmany(tp, timeout_ms=5000, max_records=1)
            for record in fetched.get(tp, []):
                if record.offset == letter.offset:
                    return record.key, record.value
    if letter.truncated:
        raise LookupError("the original is gone from its topic and the dead letter kept only part")
    try:
        return _copy(letter.key, letter.key_encoding), _copy(letter.value, letter.value_encoding)
    except (binascii.Error, ValueError) as exc:
        raise LookupError(f"the dead letter's copy cannot be read: {exc}") from None


async def replay(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer | None,
    found: list[Found],
    dlq_topic: str,
    value: bytes | None = None,
) -> list[dict[str, Any]]:
    """Send each dead letter's record back to its topic (``producer`` None: a dry run) with the
    ``kpay-replay-of`` header; ``value`` replaces the record's value (a corrected one). Returns
    what was done with each."""
    done = []
    for item in found:
        letter = item.item
        entry: dict[str, Any] = {"dead_letter": item.where(), "stage": letter.stage}
        if letter.topic is None:
            done.append({**entry, "replayed": False, "why": "its origin is not known"})
            continue
        try:
            key, raw = await original(consumer, letter)
        except LookupError as exc:
            done.append({**entry, "replayed": False, "why": str(exc)})
            continue
        if value is not None:
            raw = value
        entry.update(topic=letter.topic, key=None if key is None else key.decode(errors="replace"))
        if producer is None:
            done.append({**entry, "replayed": False, "why": "dry run"})
            continue
        header = (REPLAY_HEADER, f"{dlq_topic}[{item.partition}]@{item.offset}".encode())
        sent = await producer.send_and_wait(letter.topic, raw, key=key, headers=[header])
        log.warning(
            "dead letter %s of %s replayed to %s[%s]@%s",
            item.where(),
            letter.stage,
            sent.topic,
            sent.partition,
            sent.offset,
        )
        done.append({**entry, "replayed": True, "partition": sent.partition, "offset": sent.offset})
    return done
