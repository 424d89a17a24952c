"""A bare Faust relay for ``make bench``: four agents forward records through five topics, no
state, one ``Topic.send`` per record as a plain Faust agent sends. What Faust alone costs per
hop on this machine: a pipeline of KPay's hops on Faust cannot go faster than this."""

from __future__ import annotations

import os

import faust

from kpay_faust.engine.worker import KPayWorker

TAG = os.environ["RELAY_TAG"]
HOPS = int(os.environ.get("RELAY_HOPS", "4"))

app = faust.App(
    f"{TAG}-faust",
    broker=f"kafka://{os.environ['RELAY_BROKER']}",
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    # KPay's producer and consumer settings, and its worker class (which keeps the log level
    # asked for): the floor is Faust's own cost, not that of its defaults.
    broker_max_poll_records=200,
    producer_linger_ms=2,
    Worker=KPayWorker,
    # The topics are new: fresh metadata lets the group notice one its first assignment missed.
    consumer_metadata_max_age_ms=5000,
)
topics = [app.topic(f"{TAG}.{n}", key_type=bytes, value_type=bytes) for n in range(HOPS + 1)]


def _relay(index: int) -> None:
    target = topics[index + 1]

    async def hop(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await target.send(key=event.key, value=event.value)

    app.agent(topics[index], name=f"hop{index}")(hop)


for _index in range(HOPS):
    _relay(_index)
