"""Polling helpers: integration tests wait for a condition, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], check: Callable[[T], bool], timeout: float = 60) -> T:
    """``probe()`` until ``check`` accepts its value; the last value is in the failure."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not check(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        time.sleep(0.25)
        value = probe()
    return value
