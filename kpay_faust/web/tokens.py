"""Bearer tokens and the cluster secret, kept in one file every worker reads.

Only a token's SHA-256 is stored, with its role and name; the token itself is shown once, when
it is created (``faust -A kpay token create``). The file also holds the secret the workers of a
cluster use between themselves (``/internal/...``) unless ``KPAY_CLUSTER_SECRET`` sets it. It is
written with mode 0600 and re-read when it changes, so a new token works without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import orjson

TOKEN_PREFIX = "kpay_"
CALLER_ROLES = ("viewer", "client", "operator")


class Role(IntEnum):
    """What a caller may do; a higher role may do everything a lower one may."""

    anyone = 0  # no token needed (a route's policy only; no token has it)
    viewer = 1  # read-only queries and metrics
    client = 2  # submit and read payments
    operator = 3  # open and fund accounts, control commands, configuration, dead letters


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _read(path: Path) -> dict:
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {"tokens": []}
    if not isinstance(doc, dict) or not isinstance(doc.get("tokens"), list):
        raise ValueError(f"{path} is not a KPay tokens file")
    return doc


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    spare = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    os.replace(spare, path)


def create_token(path: Path, role: Role, name: str) -> str:
    """Record a new token of ``role`` under ``name`` in ``path``; returns the token, which is
    stored nowhere. Creates the file, with a new cluster secret, if there is none."""
    doc = _read(path)
    doc.setdefault("cluster_secret", secrets.token_hex(32))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    doc["tokens"].append(
        {"sha256": digest(token), "role": role.name, "name": name, "created_at": time.time()}
    )
    _write(path, doc)
    return token


class TokenFile:
    """The tokens of ``path`` as a worker sees them: re-read whenever the file changes."""

    def __init__(self, path: Path, cluster_secret: str | None = None) -> None:
        self.path = path
        self._fixed_secret = cluster_secret
        self._stamp: tuple[int, int] | None = None
        self._principals: dict[str, Principal] = {}
        self._secret: str | None = None

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._principals, self._secret = None, {}, None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        doc = _read(self.path)
        self._principals = {
            entry["sha256"]: Principal(str(entry["name"]), Role[entry["role"]])
            for entry in doc["tokens"]
            if isinstance(entry, dict) and entry.get("role") in CALLER_ROLES
        }
        secret = doc.get("cluster_secret")
        self._secret = secret if isinstance(secret, str) else None
        self._stamp = stamp

    def principal(self, token: str) -> Principal | None:
        self._refresh()
        return self._principals.get(digest(token))

    @property
    def cluster_secret(self) -> str | None:
        if self._fixed_secret:
            return self._fixed_secret
        self._refresh()
        return self._secret

    def is_cluster_secret(self, offered: str) -> bool:
        secret = self.cluster_secret
        return secret is not None and hmac.compare_digest(offered.encode(), secret.encode())
