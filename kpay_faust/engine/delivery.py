"""Handing fetched records to the agents: inline when a delivery need not wait, and never
recording a record as read once a seek has moved the partition back.

Faust's fetch loop runs every delivery as a task raced against the flow's suspension
(``Service.wait_first``): two tasks and a wait per record, about a tenth of a busy worker's
CPU, although almost every delivery finishes without waiting. After the race it records the
record's offset as read even when the race cancelled the delivery, and even when a seek back to
the committed offsets (at the end of a rebalance) happened meanwhile; the records the seek
fetches again are then dropped as already read, and a payment stays in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any

from kpay_faust.engine import compat


async def deliver(delivery: Coroutine[Any, Any, Any], interrupt: asyncio.Event) -> bool:
    """Run ``delivery``; True once it has finished, False if ``interrupt`` was set first (the
    delivery is then cancelled). Its errors propagate.

    The coroutine runs inline up to its first wait; only a delivery that waits (a full stream
    buffer, suspended flow) becomes a task, raced against ``interrupt``.
    """
    try:
        waiting = delivery.send(None)
    except StopIteration:
        return True
    except BaseException:
        delivery.close()
        raise
    rest = asyncio.ensure_future(_resume(delivery, waiting))
    stop = asyncio.ensure_future(interrupt.wait())
    try:
        await asyncio.wait((rest, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not rest.done():
            rest.cancel()
            with suppress(asyncio.CancelledError):
                await rest
        stop.cancel()
    if rest.cancelled():
        return False
    rest.result()  # its error, if it failed
    return True


async def _resume(delivery: Coroutine[Any, Any, Any], waiting: Any) -> None:
    """Drive a coroutine that was started by hand and is waiting on ``waiting`` (a future, or
    None for a bare yield), as a task would: resume it once what it waits on is done, and pass
    a cancellation into it."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                compat.unblock(waiting)
                await asyncio.wait((waiting,))
        except asyncio.CancelledError as exc:
            try:
                waiting = delivery.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting = delivery.send(None)
        except StopIteration:
            return
