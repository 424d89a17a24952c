"""The consumer KPay uses: it commits finished work before a rebalance takes partitions away."""

from __future__ import annotations

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP


class KPayConsumer(Consumer):
    """Faust's aiokafka consumer, committing what is acknowledged when partitions are revoked.

    Faust drops the acknowledged offsets of revoked partitions without committing them, then
    seeks every assigned partition back to its last commit. Each rebalance (a worker joining or
    leaving) made the stages redo the work of the last commit interval and publish those
    outcomes again, which the metrics windows counted twice. Effects stay idempotent either
    way; committing first keeps the replay to events that were not finished.
    """

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        if not self.in_transaction and self.assignment():
            await self.commit()
        await super().on_partitions_revoked(revoked)
