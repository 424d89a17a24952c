"""Service-level endpoints: whether this worker is ready, and who is asking."""

from __future__ import annotations

from faust.web import Request, Response

from kpay_faust.app import app
from kpay_faust.ops import deadletter
from kpay_faust.payments.tables import ledger, payment_status
from kpay_faust.web.api import HealthAnswer, WhoAmIAnswer
from kpay_faust.web.auth import principal_of
from kpay_faust.web.cluster import owner_of
from kpay_faust.web.contract import operation
from kpay_faust.web.errors import KPayView, Unavailable

#: Tables whose keys the views route to their owner.
ROUTED_TABLES = (ledger, payment_status)


READY = "ready"


def local_health() -> str:
    """This worker's own state: a stage waiting for a dead letter that cannot be written,
    recovering (joining the group or reading back its tables), or ready."""
    if deadletter.stalled_since is not None:
        return "dead letters cannot be written: a stage waits, retrying"
    if app.rebalancing or app.tables.recovery.in_recovery:
        return "recovering"
    return READY


async def _routes_keys() -> bool:
    try:
        for table in ROUTED_TABLES:
            await owner_of(table, "health")
    except Unavailable:
        return False
    return True


@app.page("/health")
class HealthView(KPayView):
    @operation(
        "service",
        HealthAnswer,
        errors={503: "recovering, starting, or a stage waits for a dead letter"},
        error_answers={503: HealthAnswer},
    )
    async def get(self, request: Request) -> Response:
        """200 once this worker has joined the group, recovered its tables and can route keys
        to their owners, else 503; also 503 while a stage waits for a dead letter that cannot
        be written. Open to anyone: load balancers probe it."""
        status = local_health()
        if status == READY and not await _routes_keys():
            status = "starting"
        ready = status == READY
        body = {
            "status": status,
            "worker": str(app.conf.canonical_url),
            "assigned": len(app.assignor.assigned_actives()),
            "dead_letters_stalled_since": deadletter.stalled_since,
        }
        return self.reply(HealthAnswer, body, status=200 if ready else 503)


@app.page("/whoami")
class WhoAmIView(KPayView):
    @operation("service", WhoAmIAnswer)
    async def get(self, request: Request) -> Response:
        """The caller's token name and role."""
        caller = principal_of(request)
        assert caller is not None  # the policy let only a known caller in
        return self.reply(WhoAmIAnswer, {"name": caller.name, "role": caller.role.name})
