"""KPay's own aiokafka clients (bulk restore, dead-letter tools, load generator)."""

from __future__ import annotations

import asyncio
from typing import Any


async def stop(client: Any) -> None:
    """Stop an aiokafka client. aiokafka 0.14 can let the cancellation of one of its own
    internal tasks (a fetch waiting to be retried, the committed-offsets refresher) out of
    ``stop()``; that one is swallowed, a cancellation of the caller's task is not. An aiohttp
    handler that let it out closed the connection without an answer."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
