"""Interactive queries across workers: route a key to its owner, or gather from every worker.

Faust's ``table_route`` forwards no request body, answers 500 when the owner is unreachable and
cannot tell "owned here but still recovering" from "owned here"; KPay needs all three right.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import aiohttp
from faust import TopicT
from faust.web import Request, Response, View
from yarl import URL

from kpay_faust.app import app, tokens
from kpay_faust.web.auth import CLUSTER_HEADER
from kpay_faust.web.errors import Unavailable

log = logging.getLogger(__name__)

ROUTED_HEADER = "X-KPay-Routed"
_TIMEOUT = aiohttp.ClientTimeout(total=5)


def _ident(url: Any) -> tuple[str, int]:
    url = URL(str(url))
    return (url.host or "", int(url.port or 80))


def is_self(url: Any) -> bool:
    return _ident(url) == _ident(app.conf.canonical_url)


def partition_of(topic: TopicT, key: str) -> int:
    """The partition Kafka's default partitioner picks for ``key`` on ``topic``."""
    return app.producer.key_partition(topic.get_topic_name(), key.encode()).partition


def active_partitions(table: Any) -> set[int]:
    """Partitions of ``table`` this worker serves: actively assigned and recovered.

    Judged on the changelog, the same map ``app.router`` uses to find a key's owner.
    """
    if app.rebalancing or app.tables.recovery.in_recovery:
        return set()
    name = table.changelog_topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name}


async def owner_of(table: Any, key: str) -> Any:
    """The URL of the worker that owns ``key`` of ``table``; ``Unavailable`` while this worker
    cannot tell yet."""
    if not await app.producer.knows_topic(table.changelog_topic.get_topic_name()):
        raise Unavailable("this worker does not know the key's partitions yet (starting)")
    try:
        return app.router.key_store(table.name, key)
    except KeyError:  # a topic created while the group formed can miss its first assignment
        raise Unavailable("no worker owns this key yet (rebalancing)") from None


async def route_to_owner(view: View, request: Request, table: Any, key: str) -> Response | None:
    """The owner's response when another worker owns ``key``; None when this worker does."""
    owner = await owner_of(table, key)
    if is_self(owner):
        if partition_of(table.changelog_topic, key) not in active_partitions(table):
            raise Unavailable("this worker is taking over the key's partition")
        return None
    if request.headers.get(ROUTED_HEADER):
        raise Unavailable("the key's owner is changing (rebalancing)")
    body = await request.read() if request.method in ("POST", "PUT", "PATCH") else None
    url = URL(str(owner)).with_path(request.path).with_query(request.query)
    headers = {ROUTED_HEADER: "1", "Content-Type": request.content_type or "application/json"}
    if "Authorization" in request.headers:  # the owner authorizes the caller by the same rules
        headers["Authorization"] = request.headers["Authorization"]
    try:
        async with app.http_client.request(
            request.method, url, data=body, headers=headers, timeout=_TIMEOUT
        ) as response:
            payload = await response.read()
            extra = {k: v for k, v in response.headers.items() if k == "Retry-After"}
            return view.bytes(
                payload,
                content_type=response.content_type,
                status=response.status,
                headers=extra,
            )
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("routing %s %s to %s failed: %s", request.method, request.path, owner, exc)
        raise Unavailable(f"the worker that owns this key did not answer ({owner})") from None


def worker_urls() -> list[str]:
    """Every worker's web address, from the partition assignment."""
    urls = {str(url) for url in app.router.tables_metadata()}
    urls.add(str(app.conf.canonical_url))
    return sorted(urls)


async def gather(path: str, local: Any, query: dict[str, str] | None = None) -> list[Any]:
    """``local()`` here and GET ``path`` (with ``query``) on every other worker; all must
    answer."""

    async def ask(url: str) -> Any:
        if is_self(url):
            return local()
        target = URL(url).with_path(path).with_query(query or {})
        try:
            headers = {ROUTED_HEADER: "1", CLUSTER_HEADER: tokens.cluster_secret or ""}
            async with app.http_client.get(target, headers=headers, timeout=_TIMEOUT) as response:
                if response.status != 200:
                    raise Unavailable(f"worker {url} answered {response.status}")
                return await response.json()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unavailable(f"worker {url} did not answer: {exc}") from None

    return list(await asyncio.gather(*(ask(url) for url in worker_urls())))


def require_all_partitions(reported: Iterable[int], partitions: int) -> None:
    missing = set(range(partitions)) - set(reported)
    if missing:
        raise Unavailable(f"partitions {sorted(missing)} are being reassigned; try again shortly")
