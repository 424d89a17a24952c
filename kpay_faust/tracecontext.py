"""W3C Trace Context for payments: each record of a payment carries a ``traceparent`` header,
from the HTTP submission (the caller's own, continued, or a new trace) through every step to
the outcome, each step a new span of the same trace, so an OpenTelemetry backend that reads
those headers can join KPay's steps to the caller's trace. KPay exports no spans itself."""

from __future__ import annotations

import random
import re

HEADER = "traceparent"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_SAMPLED = "01"
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16  # invalid ids (the standard's)


def parse(value: bytes | str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid version-00 ``traceparent``, else None."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    found = _TRACEPARENT.match(value) if value and len(value) == 55 else None
    if found is None or found[1] == _ZERO_TRACE or found[2] == _ZERO_SPAN:
        return None
    return found[1], found[2], found[3]


def child(parent: bytes | str | None) -> str:
    """A ``traceparent`` for the next span: of ``parent``'s trace when it is valid, else of a
    new trace."""
    parsed = parse(parent)
    trace, flags = (parsed[0], parsed[2]) if parsed else (_random_hex(128), _SAMPLED)
    return f"00-{trace}-{_random_hex(64)}-{flags}"


def continuing(trace: str) -> str:
    """A ``traceparent`` for a new span of trace ``trace``."""
    return f"00-{trace}-{_random_hex(64)}-{_SAMPLED}"


def _random_hex(bits: int) -> str:
    """Random ids, not secrets: Python's generator, not a system call per span (the profile of a
    busy worker found ``os.urandom`` there). Never all zeros, which the standard forbids."""
    return f"{random.getrandbits(bits) or 1:0{bits // 4}x}"


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


def headers(traceparent: str) -> list[tuple[str, bytes]]:
    return [(HEADER, traceparent.encode())]
