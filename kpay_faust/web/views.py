"""Service-level endpoints: what this worker is and whether it is ready."""

from __future__ import annotations

from faust.web import Request, Response

from kpay_faust.app import app
from kpay_faust.payments.tables import ledger, payment_status
from kpay_faust.web.cluster import owner_of
from kpay_faust.web.errors import KPayView, Unavailable

#: Tables whose keys the views route to their owner.
ROUTED_TABLES = (ledger, payment_status)


async def _routes_keys() -> bool:
    try:
        for table in ROUTED_TABLES:
            await owner_of(table, "health")
    except Unavailable:
        return False
    return True


@app.page("/health")
class HealthView(KPayView):
    async def get(self, request: Request) -> Response:
        """200 once this worker has joined the group, recovered its tables and can route keys
        to their owners, else 503."""
        recovering = app.rebalancing or app.tables.recovery.in_recovery
        ready = not recovering and await _routes_keys()
        body = {
            "status": "ready" if ready else "recovering" if recovering else "starting",
            "worker": str(app.conf.canonical_url),
            "assigned": len(app.assignor.assigned_actives()),
        }
        return self.json(body, status=200 if ready else 503)
