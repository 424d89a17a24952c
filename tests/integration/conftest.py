"""The real broker for integration tests: the one ``KPAY_TEST_BROKER`` names (``make test``
starts a throwaway one), or one this session starts on a free port and stops at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kpay_faust.ports import free_port_pair
from tests.support.waiting import eventually
from tests.support.workers import REPO, Cluster

BROKER_SCRIPT = str(REPO / "scripts" / "broker.sh")


@contextmanager
def throwaway_broker(port: int | None = None, env: dict[str, str] | None = None) -> Iterator[int]:
    """A new single-node broker with data of its own on ``port`` (a free pair if None), stopped
    and deleted afterwards; yields its port."""
    port = free_port_pair() if port is None else port
    data = tempfile.mkdtemp(prefix="kpay-test-broker.")
    subprocess.run([BROKER_SCRIPT, "start", str(port), data], check=True, env=env)
    try:
        yield port
    finally:
        subprocess.run([BROKER_SCRIPT, "stop", str(port), data], check=False)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    url = os.environ.get("KPAY_TEST_BROKER")
    if url:
        yield url
        return
    with throwaway_broker() as port:
        yield f"kafka://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def bootstrap(broker: str) -> str:
    return broker.removeprefix("kafka://")


def new_cluster(broker: str, tmp: Path, **env: str) -> Cluster:
    return Cluster(broker, f"t{uuid.uuid4().hex[:10]}", tmp, **env)


@pytest.fixture()
def cluster(broker: str, tmp_path: Path) -> Iterator[Cluster]:
    """A fresh app id and topic prefix; workers started on it are stopped afterwards."""
    created = new_cluster(broker, tmp_path)
    try:
        yield created
    finally:
        created.stop()


@contextmanager
def two_workers_on_rocksdb(broker: str, tmp: Path, answering: str) -> Iterator[Cluster]:
    """Two workers on the shipped store, each answering ``answering`` with 200. They start one
    after the other: two workers starting at once on topics that do not exist yet can leave a
    partition unserved (see the note on issue #3)."""
    cluster = new_cluster(broker, tmp, KPAY_STORE="rocksdb://")
    try:
        for _ in range(2):
            worker = cluster.worker().start().wait_ready()
            eventually(lambda w=worker: w.get(answering)[0], lambda s: s == 200)
        for worker in cluster.workers:
            eventually(lambda w=worker: w.get(answering)[0], lambda s: s == 200)
        yield cluster
    finally:
        cluster.stop()
