"""The worker class the CLI starts for KPay (``faust -A kpay worker``)."""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any

import faust
from aiokafka.client import AIOKafkaClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from kpay_faust.engine import compat, local_state
from kpay_faust.engine.producer import KPayProducer
from kpay_faust.engine.table import KPayTable

log = logging.getLogger(__name__)


def bootstrap_servers(urls: Any) -> list[str]:
    """``host:port`` of each broker URL (``kafka://a:9092,b:9092``), for aiokafka clients."""
    return [f"{url.host}:{url.port or 9092}" for url in urls]


class KPayWorker(faust.Worker):
    """A Faust worker that trusts its local table stores only after a clean stop
    (``kpay_faust.engine.local_state``) and keeps the root logger at the level asked for.

    Faust's progress spinner lowers the root logger to DEBUG whenever the level is WARN or
    above, so every debug call in aiokafka and Faust builds a log record that is then thrown
    away: about a tenth of a busy worker's CPU. The spinner is only for terminals.
    """

    def _setup_spinner_handler(self, logger: logging.Logger, level: int) -> None:
        if self.spinner is not None and self.spinner.file.isatty():
            super()._setup_spinner_handler(logger, level)
        else:
            self.spinner = None

    async def _log_in_to_kafka(self) -> None:
        """With broker credentials configured, log in once before anything starts: a wrong
        password or mechanism stops the worker with one line saying so, instead of Faust's
        clients retrying and logging tracebacks."""
        credentials = self.app.conf.broker_credentials
        if credentials is None:
            return
        servers = bootstrap_servers(self.app.conf.broker)
        client = AIOKafkaClient(
            bootstrap_servers=servers, **credentials_to_aiokafka_auth(credentials)
        )
        try:
            await client.bootstrap()
        except Exception as exc:
            print(
                f"kpay: cannot log in to Kafka at {','.join(servers)} as {credentials!r}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            os._exit(2)  # before any service started: nothing to flush or release
        finally:
            await client.close()

    def _local_tabledir(self) -> Path | None:
        """The table directory when tables are kept on disk (RocksDB), else None."""
        return None if self.app.conf.store.scheme == "memory" else Path(self.app.conf.tabledir)

    async def on_first_start(self) -> None:
        for warning in compat.check_versions():
            log.warning("kpay: %s", warning)
        await self._log_in_to_kafka()
        await super().on_first_start()  # before the app starts: no store is open yet
        tabledir = self._local_tabledir()
        if tabledir is not None:
            checkpointed = [
                table.name
                for table in self.app.tables.values()
                if isinstance(table, KPayTable) and table.checkpoints()
            ]
            local_state.claim(tabledir, checkpointed)

    async def on_startup_finished(self) -> None:
        """Leave what start-up made (modules, classes, functions: most of the heap's objects)
        out of the cyclic collector's full passes, which otherwise scan it all every few
        seconds under load and stall the stages 70-150 ms (docs/benchmarks.md). Objects that die
        are still freed by reference counting."""
        await super().on_startup_finished()
        gc.collect()
        gc.freeze()
        threshold = getattr(self.app, "gc_threshold", None)
        if threshold is not None:
            # A stage's events allocate many short-lived objects; the collector's youngest
            # generation at Python's 700 ran a pass every few hundred of them, about 5 % of a
            # saturated worker's CPU (docs/benchmarks.md, session 18).
            gc.set_threshold(*threshold)

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        tabledir = self._local_tabledir()
        producer = compat.started_producer(self.app)
        idle = not isinstance(producer, KPayProducer) or producer.batcher.idle()
        if tabledir is not None and idle:
            local_state.release(tabledir)
