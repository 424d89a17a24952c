"""Service-level endpoints: what this worker is and whether it is ready."""

from __future__ import annotations

from faust.web import Request, Response

from kpay_faust.app import app
from kpay_faust.web.errors import KPayView


@app.page("/health")
class HealthView(KPayView):
    async def get(self, request: Request) -> Response:
        """200 once this worker has joined the group and recovered its tables, else 503."""
        ready = not (app.rebalancing or app.tables.recovery.in_recovery)
        body = {
            "status": "ready" if ready else "recovering",
            "worker": str(app.conf.canonical_url),
            "assigned": len(app.assignor.assigned_actives()),
        }
        return self.json(body, status=200 if ready else 503)
