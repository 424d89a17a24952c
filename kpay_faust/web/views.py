"""Service-level endpoints: what this worker is and whether it is ready."""

from __future__ import annotations

from faust.web import Request, Response

from kpay_faust.app import app
from kpay_faust.payments.tables import ledger, payment_status
from kpay_faust.web.errors import KPayView

#: Tables whose keys the views route to their owner: routing needs their partitions known.
ROUTED_TABLES = (ledger, payment_status)


async def _knows_routed_partitions() -> bool:
    if app.producer._producer is None:  # the producer has not started yet
        return False
    for table in ROUTED_TABLES:
        if not await app.producer.knows_topic(table.changelog_topic.get_topic_name()):
            return False
        try:  # the group's assignment covers the table (a new topic can miss the first one)
            app.router.key_store(table.name, "health")
        except KeyError:
            return False
    return True


@app.page("/health")
class HealthView(KPayView):
    async def get(self, request: Request) -> Response:
        """200 once this worker has joined the group, recovered its tables and can route keys
        to their owners, else 503."""
        recovering = app.rebalancing or app.tables.recovery.in_recovery
        ready = not recovering and await _knows_routed_partitions()
        body = {
            "status": "ready" if ready else "recovering" if recovering else "starting",
            "worker": str(app.conf.canonical_url),
            "assigned": len(app.assignor.assigned_actives()),
        }
        return self.json(body, status=200 if ready else 503)
