"""Every topic and changelog KPay creates gets the configured replication and min ISR, and
every changelog the configured segment size."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kpay_faust import topics
from kpay_faust.app import app, settings
from kpay_faust.settings import Settings


def test_every_owned_topic_and_changelog_carries_the_min_isr() -> None:
    app.discover()
    wanted = {"min.insync.replicas": str(settings.min_insync_replicas)}
    assert app.conf.topic_replication_factor == settings.replication_factor
    for flow in topics.DATAFLOW:
        assert dict(flow.topic.config or {}) == wanted, flow.topic
    changelogs = [table.changelog_topic for table in app.tables.values()]
    assert len(changelogs) >= 5
    segments = {"segment.bytes": str(settings.changelog_segment_mb * 2**20)}
    for changelog in changelogs:
        assert dict(changelog.config or {}).items() >= (wanted | segments).items(), changelog


def test_min_isr_above_replication_is_refused() -> None:
    with pytest.raises(ValidationError, match="must not exceed"):
        Settings(replication_factor=1, min_insync_replicas=2)
    assert Settings(replication_factor=3, min_insync_replicas=2).min_insync_replicas == 2
