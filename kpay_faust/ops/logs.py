"""The error and warning trail: every WARNING and above a worker logs goes to ``kpay.logs`` as
structured JSON, with the stage and the record it was on when a stage logged it.

A log call must never wait for Kafka: the handler puts each record in a bounded queue and a
task of the worker sends them; when the queue is full (the broker gone, a storm of warnings)
records are dropped and counted (``kpay_log_records_dropped_total``), never blocking a stage.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from typing import Any

from faust.streams import current_event

from kpay_faust import topics
from kpay_faust.app import app
from kpay_faust.engine.stages import CURRENT_STAGE, key_text
from kpay_faust.instruments import LOG_RECORDS_DROPPED
from kpay_faust.ops.models import MESSAGE_CHARS, LogRecord

QUEUE_SIZE = 10_000
DRAIN_PAUSE = 0.1  # seconds the sending task rests when nothing is queued


class KafkaLogHandler(logging.Handler):
    """Queues WARNING and above for ``kpay.logs``; drops (counted) when the queue is full."""

    def __init__(self, worker: str, size: int = QUEUE_SIZE) -> None:
        super().__init__(level=logging.WARNING)
        self.worker = worker
        # Thread-safe: Faust's consumer thread and aiokafka log too.
        self.queue: queue.Queue[LogRecord] = queue.Queue(maxsize=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = self.entry(record)
        except Exception:  # a log call never fails because of this handler
            self.handleError(record)
            return
        try:
            self.queue.put_nowait(entry)
        except queue.Full:
            LOG_RECORDS_DROPPED.inc()

    def entry(self, record: logging.LogRecord) -> LogRecord:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        where: dict[str, Any] = {}
        event = current_event()
        if event is not None:
            msg = event.message
            where = {
                "topic": msg.topic,
                "partition": msg.partition,
                "offset": msg.offset,
                "key": key_text(event),
            }
        return LogRecord(
            at=record.created,
            level=record.levelname,
            logger=record.name,
            message=message[:MESSAGE_CHARS],
            worker=self.worker,
            stage=CURRENT_STAGE.get(),
            **where,
        )

    async def drain(self) -> None:
        """Send queued records to ``kpay.logs`` for as long as the worker runs."""
        while True:
            try:
                entry = self.queue.get_nowait()
            except queue.Empty:
                await asyncio.sleep(DRAIN_PAUSE)
                continue
            try:
                await topics.logs.send(key=entry.worker, value=entry.model_dump_json().encode())
            except Exception:  # the broker is gone: this record is lost, and counted
                LOG_RECORDS_DROPPED.inc()


@app.task
async def publish_warnings() -> None:
    """On a worker (not the CLI): hand every WARNING and above to ``kpay.logs``."""
    handler = KafkaLogHandler(str(app.conf.canonical_url))
    logging.getLogger().addHandler(handler)
    try:
        await handler.drain()
    finally:
        logging.getLogger().removeHandler(handler)
