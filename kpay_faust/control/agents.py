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
from kpay_faust.engine.stages import run_stage
from kpay_faust.ops.deadletter import dead_letter

log = logging.getLogger(__name__)


@app.agent(topics.control, name="control_plane")
async def control_plane(stream: StreamT) -> AsyncIterator[int]:
    """Checks each control command; a malformed one goes to the dead-letter topic."""
    async for offset in run_stage(stream, "control_plane", audit_command, dead_letter):
        yield offset


async def audit_command(event: EventT) -> None:
    command = ControlCommand.model_validate_json(event.message.value)  # invalid: dead-lettered
    log.warning(
        "control command %s%s at offset %s%s",
        command.command,
        f" per_second={command.per_second}" if command.command == "rate" else "",
        event.message.offset,
        f" by {command.by}" if command.by else "",
    )
