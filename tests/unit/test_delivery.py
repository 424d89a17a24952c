"""``deliver``: inline when a delivery need not wait, a task raced against the interrupt when
it must."""

from __future__ import annotations

import asyncio

import pytest

from kpay_faust.engine.delivery import deliver


async def _noting_cancellation(waits_on, cancelled: list[bool]) -> None:
    """Await ``waits_on``, noting in ``cancelled`` if that was cancelled."""
    try:
        await waits_on
    except asyncio.CancelledError:
        cancelled.append(True)
        raise


async def test_a_delivery_that_does_not_wait_finishes_inline() -> None:
    done: list[str] = []

    async def put() -> None:
        done.append("put")

    tasks_before = len(asyncio.all_tasks())
    assert await deliver(put(), asyncio.Event()) is True
    assert done == ["put"]
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_delivery_that_waits_finishes_once_what_it_waits_for_is_done() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    queue.put_nowait(1)  # full: the put below must wait

    async def drain_later() -> None:
        await asyncio.sleep(0.05)
        assert queue.get_nowait() == 1

    drainer = asyncio.ensure_future(drain_later())
    assert await deliver(queue.put(2), asyncio.Event()) is True
    await drainer
    assert queue.get_nowait() == 2


async def test_a_bare_yield_inside_a_delivery_is_resumed() -> None:
    steps: list[int] = []

    async def put() -> None:
        for step in range(3):
            steps.append(step)
            await asyncio.sleep(0)

    assert await deliver(put(), asyncio.Event()) is True
    assert steps == [0, 1, 2]


async def test_an_interrupt_cancels_a_waiting_delivery_and_says_so() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    queue.put_nowait(1)
    interrupt = asyncio.Event()
    cancelled: list[bool] = []
    put = _noting_cancellation(queue.put(2), cancelled)

    asyncio.get_running_loop().call_later(0.05, interrupt.set)
    assert await asyncio.wait_for(deliver(put, interrupt), 2) is False
    assert cancelled == [True]
    assert queue.qsize() == 1 and queue.get_nowait() == 1  # the record was not put


async def test_errors_of_a_delivery_propagate_before_and_after_it_waits() -> None:
    async def fails_at_once() -> None:
        raise ValueError("at once")

    async def fails_after_waiting() -> None:
        await asyncio.sleep(0.01)
        raise KeyError("later")

    with pytest.raises(ValueError, match="at once"):
        await deliver(fails_at_once(), asyncio.Event())
    with pytest.raises(KeyError, match="later"):
        await deliver(fails_after_waiting(), asyncio.Event())


async def test_cancelling_the_caller_cancels_the_waiting_delivery() -> None:
    cancelled: list[bool] = []
    put = _noting_cancellation(asyncio.sleep(10), cancelled)

    caller = asyncio.ensure_future(deliver(put, asyncio.Event()))
    await asyncio.sleep(0.02)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert cancelled == [True]
