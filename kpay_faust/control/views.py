"""HTTP API of the control plane. Commands go to the control topic, the single source of truth;
the answer comes once the broker has the command and the answering worker has applied it (so a
status read right after sees it); every other worker applies it from the topic too."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response

from kpay_faust import topics
from kpay_faust.app import app, settings
from kpay_faust.control.api import CommandAccepted, Operator, RateLimit, StatusAnswer
from kpay_faust.control.models import ControlCommand
from kpay_faust.control.state import control
from kpay_faust.ops.audit import REQUEST_HEADER
from kpay_faust.payments.totals import local_pipeline, sum_pipeline
from kpay_faust.web.audit import produced, request_id
from kpay_faust.web.auth import principal_of
from kpay_faust.web.cluster import gather, require_all_partitions
from kpay_faust.web.contract import GATHERED, operation
from kpay_faust.web.errors import KPayView

ACCEPTED = 202
CONTROL_KEY = "pipeline"
APPLY_WAIT = 5.0  # seconds a command view waits for its own worker to fold the command


async def publish(command: ControlCommand, request: Request | None = None) -> dict[str, Any]:
    """Write ``command`` and wait until this worker applied it; a request's command carries its
    request id (so the control plane does not audit it twice) and notes its place."""
    ident = request_id(request) if request is not None else None
    headers = {REQUEST_HEADER: ident.encode()} if ident else None
    sent = await topics.control.send(key=CONTROL_KEY, value=command.encode(), headers=headers)
    metadata = await sent
    if request is not None:
        produced(request, metadata.topic, metadata.partition, metadata.offset)
    applied = await control.wait_applied(metadata.offset, APPLY_WAIT)
    return {
        "accepted": command.model_dump(exclude_none=True),
        "offset": metadata.offset,
        "applied": applied,
    }


class CommandView(KPayView):
    """POST a command: ``/control/pause``, ``/control/resume`` or ``/control/rate``."""

    command: str
    body_model: type[Operator] = Operator

    async def command_answer(self, request: Request) -> Response:
        body = await self.read_model(request, self.body_model, optional=True)
        caller = principal_of(request)
        by = caller.name if caller is not None else body.by
        command = ControlCommand(command=self.command, **{**body.model_dump(), "by": by})
        return self.reply(CommandAccepted, await publish(command, request), status=ACCEPTED)


COMMAND = {"status": ACCEPTED}


@app.page("/control/pause")
class PauseView(CommandView):
    command = "pause"

    @operation("control", CommandAccepted, body=Operator, body_optional=True, **COMMAND)
    async def post(self, request: Request) -> Response:
        """Pause the whole cluster: admit no new payment and let those in flight finish
        (``GET /control/status`` goes draining, then paused)."""
        return await self.command_answer(request)


@app.page("/control/resume")
class ResumeView(CommandView):
    command = "resume"

    @operation("control", CommandAccepted, body=Operator, body_optional=True, **COMMAND)
    async def post(self, request: Request) -> Response:
        """Resume admitting payments."""
        return await self.command_answer(request)


@app.page("/control/rate")
class RateView(CommandView):
    command = "rate"
    body_model = RateLimit

    @operation("control", CommandAccepted, body=RateLimit, **COMMAND)
    async def post(self, request: Request) -> Response:
        """Cap admissions over the whole cluster, or lift the cap with null."""
        return await self.command_answer(request)


@app.page("/control/status")
class StatusView(KPayView):
    @operation("control", StatusAnswer, errors=GATHERED)
    async def get(self, request: Request) -> Response:
        """running, draining or paused, the rate cap, and each worker's part in it."""
        workers = await gather("/internal/control", control.describe)
        pipelines = await gather("/internal/pipeline", local_pipeline)
        rows: dict[str, Any] = {}
        for answer in pipelines:
            rows.update(answer["partitions"])
        require_all_partitions((int(p) for p in rows), settings.partitions)
        inflight = sum_pipeline(rows.values())["inflight"]
        return self.reply(StatusAnswer, pipeline_state(workers, inflight))


def pipeline_state(workers: list[dict], inflight: dict) -> dict[str, Any]:
    """running; draining while paused with payments inflight (or a worker yet to obey);
    paused once inflight is zero everywhere. The state is the newest any worker has folded:
    a worker that has not yet read the latest command must not make the answer go back."""
    state = max((w["state"] for w in workers), key=lambda s: s["offset"])
    if not state["paused"]:
        name = "running"
    elif inflight["count"] or not all(w["holding"] for w in workers):
        name = "draining"
    else:
        name = "paused"
    return {
        "state": name,
        "inflight": inflight,
        "since": state["since"],
        "per_second": state["per_second"],
        "workers": workers,
    }


@app.page("/internal/control")
class LocalControlView(KPayView):
    async def get(self, request: Request) -> Response:
        return self.json(control.describe())
