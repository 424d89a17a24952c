"""Local table stores are trusted across a restart only after a clean stop.

A table write reaches the local store (RocksDB) at once and its changelog a moment later. A
worker killed in between leaves the store ahead of the changelog, and recovery, which replays
the changelog from the offset the store last saw acknowledged, rewrites some keys with older
values and leaves others ahead: an account may lose a debit whose outcome record survived,
which creates money. So a worker marks its table directory while it runs and unmarks it once
it stopped with every changelog write acknowledged; a worker that finds the mark left by a
dead one discards the stores and recovers them from the changelogs alone.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

RUNNING = "kpay-running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(tabledir: Path) -> list[Path]:
    """Mark ``tabledir`` as in use by this process; discard its stores if the last worker that
    used it did not stop cleanly. Returns the stores discarded."""
    marker = tabledir / RUNNING
    discarded: list[Path] = []
    if marker.exists():
        text = marker.read_text().strip()
        owner = int(text) if text.isdigit() else None
        if owner is not None and owner != os.getpid() and _alive(owner):
            raise RuntimeError(f"{tabledir} is in use by process {owner}: give each worker its own")
        discarded = sorted(p for p in tabledir.glob("*.db") if p.is_dir())
        for store in discarded:
            shutil.rmtree(store)
        log.warning(
            "the last worker on %s did not stop cleanly: discarded %d local table stores; "
            "recovering them from the changelogs",
            tabledir,
            len(discarded),
        )
    tabledir.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))
    return discarded


def release(tabledir: Path) -> None:
    """Unmark ``tabledir``: its stores hold nothing the changelogs lack."""
    (tabledir / RUNNING).unlink(missing_ok=True)
