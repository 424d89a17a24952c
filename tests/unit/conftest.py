"""Unit-test fixture for ``agent.test_context()``: the Faust app on this test's event loop,
in-memory tables, and a recording producer in place of the Kafka one."""

from __future__ import annotations

import asyncio

import pytest

from kpay_faust.app import app
from kpay_faust.control.models import ControlState
from kpay_faust.control.state import control
from tests.support.recording import RecordingProducer


@pytest.fixture()
async def producer() -> RecordingProducer:
    app.loop = asyncio.get_running_loop()
    app.finalize()
    assert app.conf.store.scheme == "memory"  # set through KPAY_STORE in tests/conftest.py
    app.flow_control.resume()
    app.discover()
    recording = RecordingProducer(app.transport)
    app.producer = recording
    for table in app.tables.values():
        table.data.clear()
        table.forget_cached()
    control.state, control.caught_up = ControlState(), True  # running, control topic read
    return recording
