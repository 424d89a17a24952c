"""The warning trail's handler: a stage's warning carries the stage and the record it was on; a
full queue drops and counts instead of blocking; records below WARNING are not sent."""

from __future__ import annotations

import logging

from kpay_faust.instruments import REGISTRY
from kpay_faust.ops.logs import KafkaLogHandler
from kpay_faust.payments import agents


def dropped() -> float:
    return REGISTRY.get_sample_value("kpay_log_records_dropped_total") or 0.0


async def test_a_warning_in_a_stage_names_the_stage_and_its_record(producer):
    handler = KafkaLogHandler("worker-a")
    logging.getLogger().addHandler(handler)
    try:
        async with agents.inflight_gateway.test_context() as gateway:
            await gateway.put(b"\xff not json", key="p-bad", partition=3)
    finally:
        logging.getLogger().removeHandler(handler)
    entries = [handler.queue.get_nowait() for _ in range(handler.queue.qsize())]
    warning = next(e for e in entries if e.logger == "kpay_faust.ops.deadletter")
    assert warning.level == "WARNING" and warning.worker == "worker-a"
    assert warning.stage == "inflight_gateway"
    assert (warning.topic, warning.partition, warning.key) == ("kpay.payments.incoming", 3, "p-bad")
    assert "not JSON" in warning.message


def test_a_full_queue_drops_and_counts_and_info_is_not_kept():
    handler = KafkaLogHandler("worker-a", size=2)
    log = logging.getLogger("kpay_faust.test_logs")
    log.addHandler(handler)
    before = dropped()
    try:
        log.info("not kept")
        for n in range(5):
            log.warning("warning %d", n)  # returns at once however full the queue is
    finally:
        log.removeHandler(handler)
    assert [handler.queue.get_nowait().message for _ in range(2)] == ["warning 0", "warning 1"]
    assert dropped() - before == 3
