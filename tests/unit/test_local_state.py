"""Local table stores survive a clean stop; after an unclean one only checkpointed tables'
stores do, and none left by a worker that did not checkpoint."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kpay_faust.engine import local_state


def stores(tabledir):
    for name in ("ledger-0.db", "payment-status-3.db", "metrics-1s-key_index-2.db"):
        (tabledir / name).mkdir(parents=True)
        (tabledir / name / "CURRENT").write_text("x")


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stores_are_kept_after_a_clean_stop(tmp_path):
    stores(tmp_path)
    assert local_state.claim(tmp_path) == []
    local_state.release(tmp_path)
    assert local_state.claim(tmp_path) == []  # the next start
    assert (tmp_path / "ledger-0.db" / "CURRENT").exists()


def test_only_checkpointed_stores_are_kept_after_an_unclean_stop(tmp_path):
    stores(tmp_path)
    assert local_state.claim(tmp_path) == []
    marker = (tmp_path / local_state.RUNNING).read_text()
    (tmp_path / local_state.RUNNING).write_text(marker.replace(marker.split()[0], str(dead_pid())))
    discarded = local_state.claim(tmp_path, ["ledger", "payment-status"])  # a worker killed
    assert [p.name for p in discarded] == ["metrics-1s-key_index-2.db"]
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["ledger-0.db", "payment-status-3.db"]
    assert (tmp_path / local_state.RUNNING).exists()  # claimed by this process now


def test_every_store_is_discarded_after_a_worker_that_did_not_checkpoint(tmp_path):
    stores(tmp_path)
    (tmp_path / local_state.RUNNING).write_text(str(dead_pid()))  # an older version's mark
    discarded = local_state.claim(tmp_path, ["ledger", "payment-status"])
    assert len(discarded) == 3 and not list(tmp_path.glob("*.db"))


def test_a_directory_in_use_by_a_live_worker_is_left_alone(tmp_path):
    stores(tmp_path)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as other:
        try:
            (tmp_path / local_state.RUNNING).write_text(str(other.pid))
            with pytest.raises(RuntimeError, match="in use by process"):
                local_state.claim(tmp_path)
        finally:
            other.kill()
    assert len(list(tmp_path.glob("*.db"))) == 3
