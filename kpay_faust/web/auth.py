"""Who may call what: bearer tokens with roles for callers, a shared secret between workers.

Every route has a policy here; a route without one is refused, so a new view is closed until
someone decides who may use it. ``/health`` is open (load balancers and orchestrators probe it).
``/internal/...`` answers only the workers of the cluster (``X-KPay-Cluster-Secret``); no
caller's token opens it. A request a worker forwards to a key's owner carries the caller's own
``Authorization``, so the owner decides by the same rules. Every command (any request that is
not a read) is logged with its principal, accepted or refused; see docs/security.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from kpay_faust.web.middleware import json_error
from kpay_faust.web.tokens import Principal, Role, TokenFile

log = logging.getLogger(__name__)

CLUSTER_HEADER = "X-KPay-Cluster-Secret"
INTERNAL = "/internal/"
#: (method, route) -> the least role that may call it.
POLICY: dict[tuple[str, str], Role] = {
    ("GET", "/health"): Role.anyone,
    ("GET", "/"): Role.anyone,  # the console's page and files: no data in them
    ("GET", "/assets/{name}"): Role.anyone,
    ("GET", "/openapi.json"): Role.anyone,  # the API contract, and Swagger UI showing it
    ("GET", "/docs"): Role.anyone,
    ("GET", "/docs/{name}"): Role.anyone,
    ("GET", "/whoami"): Role.viewer,
    ("GET", "/console/state"): Role.viewer,
    ("GET", "/load"): Role.viewer,
    ("POST", "/load"): Role.operator,
    ("DELETE", "/load"): Role.operator,
    ("GET", "/pipeline"): Role.viewer,
    ("GET", "/reconcile"): Role.viewer,
    ("GET", "/dlq"): Role.operator,
    ("POST", "/dlq/replay"): Role.operator,
    ("GET", "/audit"): Role.operator,
    ("GET", "/logs"): Role.operator,
    ("GET", "/metrics"): Role.viewer,
    ("GET", "/metrics/throughput"): Role.viewer,
    ("GET", "/control/status"): Role.viewer,
    ("GET", "/accounts"): Role.viewer,
    ("GET", "/accounts/{account_id}"): Role.viewer,
    ("GET", "/payments/{payment_id}"): Role.viewer,
    ("GET", "/payments/{payment_id}/trace"): Role.viewer,
    ("POST", "/payments"): Role.client,
    ("POST", "/accounts"): Role.operator,
    ("POST", "/accounts/{account_id}/deposits"): Role.operator,
    ("POST", "/control/pause"): Role.operator,
    ("POST", "/control/resume"): Role.operator,
    ("POST", "/control/rate"): Role.operator,
}

PRINCIPAL = "kpay.principal"  # request key of the authenticated caller
WORKER = Principal("cluster worker", Role.operator)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


def authentication(
    tokens: TokenFile,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The middleware that applies ``POLICY`` with the tokens of ``tokens``."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        if match.http_exception is not None:  # no such route or method: 404 / 405 as it is
            return await handler(request)
        route = match.route.resource.canonical if match.route.resource else request.path
        method = "GET" if request.method == hdrs.METH_HEAD else request.method
        if route.startswith(INTERNAL):
            offered = request.headers.get(CLUSTER_HEADER, "")
            if not tokens.is_cluster_secret(offered):
                return _refused(
                    request, None, 401, "worker-to-worker endpoint: cluster secret required"
                )
            request[PRINCIPAL] = WORKER
            return await handler(request)
        needed = POLICY.get((method, route))
        if needed is None:
            return _refused(request, None, 403, "no access policy covers this request")
        if needed is Role.anyone:
            return await handler(request)
        token = bearer(request)
        if token is None:
            return _refused(request, None, 401, "missing bearer token (Authorization: Bearer ...)")
        caller = tokens.principal(token)
        if caller is None:
            return _refused(request, None, 401, "unknown token")
        if caller.role < needed:
            message = f"{caller.role.name} may not do this: it needs the {needed.name} role"
            return _refused(request, caller, 403, message)
        request[PRINCIPAL] = caller
        response = await handler(request)
        if method != "GET":
            log.info(
                "command %s %s by %s (%s): %s",
                request.method,
                request.path,
                caller.name,
                caller.role.name,
                response.status,
            )
        return response

    return authenticate


def _refused(
    request: web.Request, caller: Principal | None, status: int, message: str
) -> web.Response:
    who = f"{caller.name} ({caller.role.name})" if caller else "anonymous"
    if caller is not None:
        request[PRINCIPAL] = caller  # known, refused: the audit trail names it
    log.warning(
        "refused %s %s from %s by %s: %s",
        request.method,
        request.path,
        request.remote,
        who,
        message,
    )
    headers = {hdrs.WWW_AUTHENTICATE: 'Bearer realm="kpay"'} if status == 401 else None
    return json_error(status, message, headers)
