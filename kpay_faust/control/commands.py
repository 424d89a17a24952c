"""``faust -A kpay drain``, ``resume`` and ``ready``: the control plane from the command line,
each waiting for the state asked for, so runbooks (docs/operations.md) can chain them: drain,
stop, upgrade, start, resume; or stop one worker, ``ready`` on another, start it, ``ready``."""

from __future__ import annotations

import time

from faust.cli import AppCommand, option

from kpay_faust.app import app
from kpay_faust.web.client import TOKEN_OPTION, URL_OPTION, call, expect

POLL_SECONDS = 0.5

TIMEOUT_OPTION = option(
    "--timeout", type=float, default=300.0, help="Longest wait for the state (s); exits 1 then."
)


def wait_for_state(
    command: str, url: str | None, token: str | None, wanted: str, timeout: float
) -> dict:
    """Poll ``/control/status`` until the pipeline is ``wanted``; exit 1 at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = call(command, "GET", url, "/control/status", token)
        if status == 200 and body["state"] == wanted:
            return body
        if time.monotonic() > deadline:
            seen = body.get("state") if isinstance(body, dict) else body
            raise SystemExit(f"{command}: still {seen} after {timeout:g} s")
        time.sleep(POLL_SECONDS)


@app.command(URL_OPTION, TOKEN_OPTION, TIMEOUT_OPTION)
async def drain(self: AppCommand, url: str | None, token: str | None, timeout: float) -> None:
    """Pause admissions on every worker and wait until nothing is in flight (``paused``)."""
    expect("drain", call("drain", "POST", url, "/control/pause", token, {}), 202)
    state = wait_for_state("drain", url, token, "paused", timeout)
    self.say(f"paused since {state['since']}: nothing in flight; the workers can be stopped")


@app.command(URL_OPTION, TOKEN_OPTION, TIMEOUT_OPTION)
async def resume(self: AppCommand, url: str | None, token: str | None, timeout: float) -> None:
    """Resume admissions on every worker and wait until the pipeline is ``running``."""
    expect("resume", call("resume", "POST", url, "/control/resume", token, {}), 202)
    wait_for_state("resume", url, token, "running", timeout)
    self.say("running")


@app.command(URL_OPTION, TOKEN_OPTION, TIMEOUT_OPTION)
async def ready(self: AppCommand, url: str | None, token: str | None, timeout: float) -> None:
    """Wait until the worker answers ``/health`` and every partition is served again
    (``/pipeline`` answers): the step between two workers of a rolling restart."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            health = call("ready", "GET", url, "/health", token, timeout=5)[0]
            served = call("ready", "GET", url, "/pipeline", token, timeout=5)[0]
        except SystemExit:  # not listening yet: a worker starting
            health = served = 0
        if health == 200 and served == 200:
            self.say("ready: every partition is served")
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"ready: not ready after {timeout:g} s (health {health}, {served})")
        time.sleep(POLL_SECONDS)
