"""Which local table stores a worker keeps across a restart.

A store written at once, with its changelog a moment later (Faust's path, which KPay's
windowed metrics tables take), is left ahead of the changelog by a worker killed in between,
and recovery, which replays the changelog from the offset the store last saw acknowledged,
rewrites some keys with older values and leaves others ahead: an account could lose a debit
whose outcome record survived, which creates money. A checkpointed store
(``KPayTable.checkpoints``) is never ahead: it takes a write only with the acknowledged
changelog offset it came with, so recovery replays just the changelog after that offset.

So a worker marks its table directory while it runs (with ``checkpointed``: this version's
mark) and unmarks it once it stopped with every changelog write acknowledged. A worker that
finds the mark left by a dead one keeps the checkpointed stores and discards the others,
which are recovered from the changelogs alone; after a worker that did not checkpoint (an
older version's mark), it discards them all.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger(__name__)

RUNNING = "kpay-running"
CHECKPOINTED = "checkpointed"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(tabledir: Path, kept: Collection[str] = ()) -> list[Path]:
    """Mark ``tabledir`` as in use by this process. If the last worker that used it did not
    stop cleanly, discard its stores except those of the checkpointed tables named in
    ``kept`` (``<table>-<partition>.db``). Returns the stores discarded."""
    marker = tabledir / RUNNING
    discarded: list[Path] = []
    if marker.exists():
        lines = marker.read_text().split()
        owner = int(lines[0]) if lines and lines[0].isdigit() else None
        if owner is not None and owner != os.getpid() and _alive(owner):
            raise RuntimeError(f"{tabledir} is in use by process {owner}: give each worker its own")
        keep = set(kept) if CHECKPOINTED in lines[1:] else set()
        stores = sorted(p for p in tabledir.glob("*.db") if p.is_dir())
        discarded = [store for store in stores if _table_of(store) not in keep]
        for store in discarded:
            shutil.rmtree(store)
        log.warning(
            "the last worker on %s did not stop cleanly: kept %d checkpointed table stores, "
            "discarded %d; recovering them from the changelogs",
            tabledir,
            len(stores) - len(discarded),
            len(discarded),
        )
    tabledir.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{os.getpid()}\n{CHECKPOINTED}\n")
    return discarded


def _table_of(store: Path) -> str:
    """The table a store directory belongs to: ``ledger-3.db`` -> ``ledger``."""
    name, _, partition = store.name.removesuffix(".db").rpartition("-")
    return name if partition.isdigit() else store.name


def release(tabledir: Path) -> None:
    """Unmark ``tabledir``: its stores hold nothing the changelogs lack."""
    (tabledir / RUNNING).unlink(missing_ok=True)
