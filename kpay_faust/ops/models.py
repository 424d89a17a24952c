"""The dead-letter record: what failed, where it came from, and the bytes themselves, bounded.

A dead letter must always fit the dead-letter topic (the broker's 1 MB default), whatever the
record that caused it: it keeps at most ``KEEP_VALUE`` bytes of the value and ``KEEP_KEY`` of
the key, with their full sizes and the value's SHA-256, so an operator can tell what it was
and match it with the original still on its topic.
"""

from __future__ import annotations

import base64
import hashlib

from pydantic import BaseModel

KEEP_VALUE = 64 * 1024
KEEP_KEY = 1024
ERROR_CHARS = 2000


def text_of(raw: bytes | str | None, keep: int) -> tuple[str | None, str, bool]:
    """The first ``keep`` bytes as text when they are UTF-8 (a character cut at the end is
    left out), else as base64; and whether some bytes were left out."""
    if raw is None:
        return None, "utf-8", False
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    cut = len(raw) > keep
    kept = raw[:keep]
    for spare in range(4 if cut else 1):  # a UTF-8 character is at most four bytes
        try:
            return kept[: len(kept) - spare].decode("utf-8"), "utf-8", cut
        except UnicodeDecodeError:
            continue
    return base64.b64encode(kept).decode("ascii"), "base64", cut


class DeadLetter(BaseModel):
    v: int = 2
    stage: str
    error: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    key_encoding: str = "utf-8"
    key_size: int | None = None
    value: str | None = None
    value_encoding: str = "utf-8"
    value_size: int | None = None
    value_sha256: str | None = None
    truncated: bool = False  # key or value longer than what is kept
    at: float

    @classmethod
    def of(
        cls,
        stage: str,
        error: str,
        *,
        key: bytes | str | None,
        value: bytes | None,
        at: float,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DeadLetter:
        key_text, key_encoding, key_cut = text_of(key, KEEP_KEY)
        value_text, value_encoding, value_cut = text_of(value, KEEP_VALUE)
        return cls(
            stage=stage,
            error=error[:ERROR_CHARS],
            topic=topic,
            partition=partition,
            offset=offset,
            key=key_text,
            key_encoding=key_encoding,
            key_size=None if key is None else len(key),
            value=value_text,
            value_encoding=value_encoding,
            value_size=None if value is None else len(value),
            value_sha256=None if value is None else hashlib.sha256(value).hexdigest(),
            truncated=key_cut or value_cut,
            at=at,
        )

    def record_key(self) -> str | None:
        """The dead letter's own Kafka key: the origin's key when it is UTF-8 text kept whole,
        else the SHA-256 of what is kept of it."""
        if self.key is None:
            return None
        if self.key_encoding == "utf-8" and (self.key_size or 0) <= KEEP_KEY:
            return self.key
        return hashlib.sha256(self.key.encode()).hexdigest()


ASKED_CHARS = 2000


class EventPosition(BaseModel):
    """Where the event a command produced was written."""

    topic: str
    partition: int
    offset: int


class AuditRecord(BaseModel):
    """One command that changes money or the system, who asked for it, and what came of it:
    on ``kpay.audit``, keyed by principal."""

    v: int = 1
    at: float
    principal: str  # a token's name, "anonymous", or who a command on a topic says it is from
    role: str | None = None
    source: str | None = None  # the caller's address, a topic position, or a host
    request_id: str | None = None
    action: str  # "POST /payments", "control pause", "dlq replay"
    asked: str | None = None  # the request's body or the command, cut at ASKED_CHARS
    outcome: str  # "accepted" or "refused"
    status: int | None = None  # the HTTP status answered
    reason: str | None = None  # why it was refused
    event: EventPosition | None = None

    @classmethod
    def asked_text(cls, raw: bytes | str | None) -> str | None:
        text, _, _ = text_of(raw, ASKED_CHARS)
        return text


MESSAGE_CHARS = 4000


class LogRecord(BaseModel):
    """A warning or an error of a worker, on ``kpay.logs`` keyed by worker."""

    v: int = 1
    at: float
    level: str
    logger: str
    message: str
    worker: str
    stage: str | None = None  # the stage whose work logged it
    topic: str | None = None  # the record that stage was on
    partition: int | None = None
    offset: int | None = None
    key: str | None = None  # its key: a payment id, or an account id on payments.inflight
