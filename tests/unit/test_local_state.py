"""Local table stores survive a clean stop and are discarded after an unclean one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kpay_faust.engine import local_state


def stores(tabledir):
    for name in ("ledger-0.db", "payment-status-3.db"):
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


def test_stores_are_discarded_after_an_unclean_stop(tmp_path):
    stores(tmp_path)
    (tmp_path / local_state.RUNNING).write_text(str(dead_pid()))  # a worker killed
    discarded = local_state.claim(tmp_path)
    assert [p.name for p in discarded] == ["ledger-0.db", "payment-status-3.db"]
    assert not list(tmp_path.glob("*.db"))
    assert (tmp_path / local_state.RUNNING).exists()  # claimed by this process now


def test_a_directory_in_use_by_a_live_worker_is_left_alone(tmp_path):
    stores(tmp_path)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as other:
        try:
            (tmp_path / local_state.RUNNING).write_text(str(other.pid))
            with pytest.raises(RuntimeError, match="in use by process"):
                local_state.claim(tmp_path)
        finally:
            other.kill()
    assert len(list(tmp_path.glob("*.db"))) == 2
