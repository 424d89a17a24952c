"""A demo load the console can start and stop: ``faust -A kpay generate`` run by this worker as
a managed subprocess (its own process, so offering payments takes no time from the stages).

The generator runs for a bounded time, is stopped when the worker stops, and is told by the
kernel to stop if the worker dies (SIGKILL included), so no load outlives its worker. Each
worker runs at most one; the status is this worker's."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import sys
import time
from typing import Any

from faust.web import Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kpay_faust.app import app
from kpay_faust.web.contract import operation
from kpay_faust.web.errors import KPayView

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


class LoadRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"per_second": 200, "seconds": 300}]}
    )

    per_second: float = Field(gt=0, le=20_000, description="Payments offered a second.")
    accounts: int = Field(100, ge=2, le=100_000, description="Demo accounts paying each other.")
    seconds: float = Field(600, gt=0, le=86_400, description="How long it runs.")


class LoadAnswer(BaseModel):
    running: bool
    per_second: float | None
    accounts: int | None
    seconds: float | None
    started_at: float | None
    ended_at: float | None = Field(description="When the last run ended; null while running.")
    exit_code: int | None = Field(description="The last run's exit code (0: it ran its time).")
    worker: str


def _die_with_parent() -> None:  # pragma: no cover (runs in the child, before exec)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LoadRunner:
    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.asked: LoadRequest | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.exit_code: int | None = None
        self._watch: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, asked: LoadRequest) -> None:
        await self.stop()
        command = [
            *(sys.executable, "-m", "faust", "-A", "kpay", "generate", "--quiet"),
            *("--rate", f"{asked.per_second:g}", "--accounts", str(asked.accounts)),
            *("--duration", f"{asked.seconds:g}"),
        ]
        self.process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.asked, self.started_at, self.ended_at, self.exit_code = asked, time.time(), None, None
        self._watch = asyncio.create_task(self._wait(self.process))
        log.info("demo load started: %s", asked.model_dump())

    async def _wait(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if process is self.process:
            self.ended_at, self.exit_code = time.time(), code

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._watch is not None:
            await self._watch
        log.info("demo load stopped")

    def describe(self) -> dict[str, Any]:
        asked = self.asked
        return {
            "running": self.running,
            "per_second": asked.per_second if asked else None,
            "accounts": asked.accounts if asked else None,
            "seconds": asked.seconds if asked else None,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "exit_code": self.exit_code,
            "worker": str(app.conf.canonical_url),
        }


runner = LoadRunner()


@app.on_before_shutdown.connect
async def _stop_load(app: Any, **_: Any) -> None:
    await runner.stop()


@app.page("/load")
class LoadView(KPayView):
    @operation("load", LoadAnswer)
    async def get(self, request: Request) -> Response:
        """The demo load this worker runs, or ran last."""
        return self.reply(LoadAnswer, runner.describe())

    @operation("load", LoadAnswer, status=202, body=LoadRequest)
    async def post(self, request: Request) -> Response:
        """Start a demo load: accounts opened and funded, then random payments between them at
        ``per_second`` for ``seconds`` (a run already going is replaced)."""
        asked = await self.read_model(request, LoadRequest)
        await runner.start(asked)
        return self.reply(LoadAnswer, runner.describe(), status=202)

    @operation("load", LoadAnswer)
    async def delete(self, request: Request) -> Response:
        """Stop the demo load (nothing happens when none runs)."""
        await runner.stop()
        return self.reply(LoadAnswer, runner.describe())
