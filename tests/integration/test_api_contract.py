"""The API against its own contract: schemathesis generates requests from ``/openapi.json``
(valid and invalid ones) and sends them to a real worker, which must answer every one as the
document says (a documented status, content type and schema) and never with a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import eventually
from tests.support.workers import Cluster

pytestmark = pytest.mark.integration

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)
SEED = "20261201"  # a fixed seed: a failure reproduces; change it to explore further


def fuzz(url: str, token: str | None, examples: int, cwd: Path) -> subprocess.CompletedProcess:
    command = [
        SCHEMATHESIS,
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(examples),
        "--seed",
        SEED,
        "--request-timeout",
        "30",
        # Starting the demo load spawns a generator at whatever rate was drawn: it is
        # exercised by the console's browser test instead.
        "--exclude-operation-id",
        "postLoad",
    ]
    if token is not None:
        command += ["-H", f"Authorization: Bearer {token}"]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def test_every_answer_conforms_to_the_document_and_none_is_a_5xx(
    cluster: Cluster, tmp_path: Path
) -> None:
    worker = cluster.worker().start().wait_ready()
    assert worker.post("/accounts", {"id": "neil", "balance": "100.00"})[0] == 202
    eventually(lambda: worker.get("/accounts/neil")[0], lambda s: s == 200)
    for role, examples in (("operator", 40), ("viewer", 5), (None, 3)):
        token = cluster.tokens[role] if role else None
        run = fuzz(worker.url, token, examples, tmp_path)
        tail = "\n".join((run.stdout + run.stderr).splitlines()[-80:])
        assert run.returncode == 0, f"as {role or 'anonymous'}:\n{tail}"
        assert "Tested:" in run.stdout, tail  # it did run the operations
    assert "Traceback" not in worker.log_tail(400)
