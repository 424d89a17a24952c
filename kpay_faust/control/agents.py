"""The control plane's agent: validates commands and keeps an audit trail of them.

The state itself is folded by every worker from the topic (see ``state``); this agent, which
runs on one worker, is where a malformed command is reported once and dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from faust import EventT, StreamT

from kpay_faust import topics
from kpay_faust.app import app
from kpay_faust.control.models import ControlCommand
from kpay_faust.engine.stages import has_header, run_stage
from kpay_faust.ops import audit
from kpay_faust.ops.deadletter import dead_letter

log = logging.getLogger(__name__)


@app.agent(topics.control, name="control_plane")
async def control_plane(stream: StreamT) -> AsyncIterator[int]:
    """Checks each control command; a malformed one goes to the dead-letter topic."""
    async for offset in run_stage(stream, "control_plane", audit_command, dead_letter):
        yield offset


async def audit_command(event: EventT) -> None:
    message = event.message
    where = (message.topic, message.partition, message.offset)
    from_http = has_header(message.headers, audit.REQUEST_HEADER)  # audited with its request
    try:
        command = ControlCommand.model_validate_json(message.value or b"")
    except ValueError as exc:
        if not from_http:
            await audit.write(audit.from_topic(None, "control", message.value, where, str(exc)))
        raise  # dead-lettered
    if not from_http:
        action = f"control {command.command}"
        await audit.write(audit.from_topic(command.by, action, message.value, where))
    log.warning(
        "control command %s%s at offset %s%s",
        command.command,
        f" per_second={command.per_second}" if command.command == "rate" else "",
        event.message.offset,
        f" by {command.by}" if command.by else "",
    )
