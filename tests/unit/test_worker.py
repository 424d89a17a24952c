"""The worker's start-up: what it does once the app is ready."""

from __future__ import annotations

import gc

from kpay_faust.app import app
from kpay_faust.engine.worker import KPayWorker


async def test_a_started_worker_leaves_its_start_up_objects_out_of_collections(producer) -> None:
    """Full collections scanned every module, class and function on each pass (70-150 ms every
    few seconds under load, docs/benchmarks.md); frozen, they are skipped."""
    worker = KPayWorker(app, quiet=True, loglevel="warn")
    worker.spinner = None
    gc.unfreeze()
    before = gc.get_threshold()
    try:
        await worker.on_startup_finished()
        assert gc.get_freeze_count() > 10_000
        # and collects its young objects as settings say (KPAY_GC_THRESHOLD)
        assert gc.get_threshold() == app.gc_threshold == (20_000, 20, 50)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
