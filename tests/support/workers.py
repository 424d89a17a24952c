"""Real KPay workers (``faust -A kpay worker`` subprocesses) for integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kpay_faust.ports import free_port
from kpay_faust.web.client import request_json
from kpay_faust.web.tokens import CALLER_ROLES, Role, create_token

REPO = Path(__file__).resolve().parents[2]
FAUST = str(Path(sys.executable).parent / "faust")


def http(
    method: str,
    url: str,
    body: Any = None,
    timeout: float = 10,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """(status, decoded JSON body) of one request; error statuses are returned, not raised."""
    return request_json(method, url, body, token=token, headers=headers, timeout=timeout)


class Cluster:
    """Settings shared by the workers of one test cluster: its own app id and topics."""

    def __init__(self, broker: str, name: str, tmp: Path, **env: str) -> None:
        self.broker = broker
        self.name = name
        self.tmp = tmp
        tokens_file = tmp / f"{name}-tokens.json"
        #: A token of each role, recorded in the cluster's tokens file.
        self.tokens = {
            role: create_token(tokens_file, Role[role], f"test {role}") for role in CALLER_ROLES
        }
        self.env = {
            "KPAY_BROKER": broker,
            "KPAY_APP_ID": name,
            "KPAY_TOPIC_PREFIX": name,
            "KPAY_PARTITIONS": "8",
            "KPAY_TOKENS_FILE": str(tokens_file),
            **env,
        }
        self.workers: list[Worker] = []

    def topic(self, suffix: str) -> str:
        return f"{self.name}.{suffix}"

    def worker(self, **env: str) -> Worker:
        worker = Worker(self, len(self.workers), env)
        self.workers.append(worker)
        return worker

    def faust(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a ``faust -A kpay`` command (send, generate, ...) with this cluster's settings."""
        return subprocess.run(
            [FAUST, "-A", "kpay", *args],
            cwd=REPO,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


class Worker:
    def __init__(self, cluster: Cluster, index: int, env: dict[str, str]) -> None:
        self.cluster = cluster
        self.port = free_port()
        self.data_dir = cluster.tmp / f"worker-{index}"
        self.log_path = cluster.tmp / f"worker-{index}.log"
        self.env = {
            **cluster.env,
            "KPAY_WEB_PORT": str(self.port),
            "KPAY_DATA_DIR": str(self.data_dir),
            **env,
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Worker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [FAUST, "-A", "kpay", "worker", "-l", "info"],
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def get(self, path: str, role: str | None = "operator") -> tuple[int, Any]:
        """GET ``path`` with a token of ``role`` (None: no token); ``/internal/...`` paths
        with the cluster secret instead, as another worker asks."""
        if path.startswith("/internal/"):
            secret = json.loads(self.env_tokens_file().read_text())["cluster_secret"]
            return http("GET", self.url + path, headers={"X-KPay-Cluster-Secret": secret})
        return http("GET", self.url + path, token=self.cluster.tokens.get(role or ""))

    def pages(self, limit: int = 1000) -> Iterator[dict]:
        """Each page of ``GET /accounts``, following ``next``."""
        query = f"/accounts?limit={limit}"
        while True:
            status, page = self.get(query)
            assert status == 200, page
            yield page
            if page["next"] is None:
                return
            query = f"/accounts?limit={limit}&after={urllib.parse.quote(page['next'])}"

    def accounts(self, limit: int = 1000) -> list[dict]:
        """Every account, page by page."""
        return [account for page in self.pages(limit) for account in page["accounts"]]

    def metric(self, family: str) -> float:
        """The sum of a Prometheus family's samples on ``/metrics`` (``kpay_..._total``
        counters by their name without ``_total``)."""
        from prometheus_client.parser import text_string_to_metric_families

        request = urllib.request.Request(self.url + "/metrics")
        request.add_header("Authorization", f"Bearer {self.cluster.tokens['operator']}")
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        for found in text_string_to_metric_families(text):
            if found.name == family:
                return sum(sample.value for sample in found.samples)
        raise AssertionError(f"no {family} in /metrics")

    def post(self, path: str, body: Any, role: str | None = "operator") -> tuple[int, Any]:
        return http("POST", self.url + path, body, token=self.cluster.tokens.get(role or ""))

    def wait_ready(self, timeout: float = 90) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                status, _ = self.get("/health")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"worker on {self.url} not ready in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def env_tokens_file(self) -> Path:
        return Path(self.env["KPAY_TOKENS_FILE"])

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is flushed, committed or handed over."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
