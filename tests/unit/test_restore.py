"""The bulk restore's hand-over to Faust's recovery (the restore itself runs against the real
broker in ``tests/integration/test_restore.py`` and in the crash test)."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.tables.recovery import Recovery
from faust.types import TP

from kpay_faust.app import app
from kpay_faust.engine import restore as restore_module
from kpay_faust.engine.restore import KPayRecovery


class StoreAt:
    """A table whose store recorded ``offset`` for every partition."""

    def __init__(self, offset: int | None) -> None:
        self.offset = offset

    def persisted_offset(self, tp: Any) -> int | None:
        return self.offset


async def build_offsets(monkeypatch, finished: bool) -> tuple[KPayRecovery, dict, list]:
    app.loop = asyncio.get_running_loop()
    app.finalize()
    read_by_faust: list[dict] = []

    async def restore(app: Any, tables: Any, highwaters: Any, interrupted: Any) -> bool:
        return finished

    async def faust_build_offsets(
        self: Any, consumer: Any, tps: Any, destination: Any, title: str
    ) -> None:
        read_by_faust.append(dict(destination))

    monkeypatch.setattr(restore_module, "restore", restore)
    monkeypatch.setattr(Recovery, "_build_offsets", faust_build_offsets)
    recovery = KPayRecovery(app, app.tables)
    tp = TP("kpay-ledger-changelog", 3)
    recovery.tp_to_table[tp] = StoreAt(41)
    destination: dict = {tp: 7}
    await recovery._build_offsets(None, {tp}, destination, "active")  # noqa: SLF001
    return recovery, destination, read_by_faust


async def test_faust_reads_on_from_the_offset_the_bulk_restore_reached(monkeypatch):
    recovery, _, read_by_faust = await build_offsets(monkeypatch, finished=True)
    assert read_by_faust == [{TP("kpay-ledger-changelog", 3): 41}]
    assert not recovery.signal_recovery_start.is_set()


async def test_a_bulk_restore_cut_short_starts_another_recovery_round(monkeypatch):
    recovery, destination, _ = await build_offsets(monkeypatch, finished=False)
    assert destination == {TP("kpay-ledger-changelog", 3): 41}
    # Faust's recovery sees the signal at the end of this step and starts again from the top,
    # as after a rebalance, instead of reading the rest record by record.
    assert recovery.signal_recovery_start.is_set()
