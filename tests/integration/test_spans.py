"""Spans for an OpenTelemetry backend: a worker with ``KPAY_OTEL_ENDPOINT`` sends one span per
payment step over OTLP/HTTP, each the child of the one before, the first the child of the
caller's span. A receiver in the test stands in for the collector (none is needed to run)."""

from __future__ import annotations

import http.server
import threading

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from kpay_faust.ports import free_port
from tests.integration.test_payments import open_accounts, outcome, uid
from tests.support.waiting import eventually
from tests.support.workers import http as call

pytestmark = pytest.mark.integration

TRACE = "5b8efff798038103d269b633813fc60c"
CALLER_SPAN = "eee19b7ec3c1b174"


class Collector(http.server.BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP trace exports and keeps their spans."""

    spans: list = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                Collector.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def collector():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Collector.spans = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    server.shutdown()


def test_each_step_of_a_payment_is_a_span_of_the_caller_s_trace(cluster, collector):
    worker = cluster.worker(KPAY_OTEL_ENDPOINT=collector, OTEL_BSP_SCHEDULE_DELAY="200")
    worker.start().wait_ready()
    eventually(lambda: worker.get("/pipeline")[0], lambda s: s == 200)
    neil, john, pid = uid("neil"), uid("john"), uid("spanned")
    open_accounts(cluster, {neil: "100.00", john: "0.00"})
    status, _ = call(
        "POST",
        worker.url + "/payments",
        {"id": pid, "from": neil, "to": john, "amount": "10.00"},
        token=cluster.tokens["client"],
        headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"},
    )
    assert status == 202
    assert outcome(cluster, pid)["state"] == "confirmed"

    def mine() -> list:
        return [s for s in Collector.spans if s.trace_id.hex() == TRACE]

    spans = eventually(mine, lambda found: len(found) >= 5, timeout=30)
    by_parent = {s.parent_span_id.hex(): s for s in spans}
    chain, parent = [], CALLER_SPAN
    while parent in by_parent:
        span = by_parent[parent]
        chain.append(span.name)
        parent = span.span_id.hex()
    assert chain == ["kpay submit", "kpay gateway", "kpay debit", "kpay credit", "kpay confirmed"]
    assert all(s.end_time_unix_nano >= s.start_time_unix_nano for s in spans)
    attributes = {a.key: a.value.string_value for a in by_parent[CALLER_SPAN].attributes}
    assert attributes["kpay.payment_id"] == pid
