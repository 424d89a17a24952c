"""Spans of each payment step for an OpenTelemetry backend, off unless ``KPAY_OTEL_ENDPOINT``
names an OTLP/HTTP traces endpoint.

When on, each step records one span, from when its input record was written to when it wrote
its output, as a child of the span its input's ``traceparent`` names, and puts that span in its
output's ``traceparent``: the backend sees the payment as one trace, the caller's when it sent
one. Spans leave in batches from the SDK's own thread; the stages never wait for the collector.
"""

from __future__ import annotations

import time
from typing import Any

from kpay_faust import tracecontext
from kpay_faust.app import settings

_tracer: Any = None


def enabled() -> bool:
    return settings.otel_endpoint is not None


def _tracer_for_worker() -> Any:
    global _tracer
    if _tracer is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create(
            {
                "service.name": "kpay",
                "service.instance.id": f"{settings.web_host}:{settings.web_port}",
            }
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otel_endpoint)))
        _tracer = provider.get_tracer("kpay_faust")
    return _tracer


def record(
    step: str,
    parent: bytes | str | None,
    trace: str | None,
    started: float,
    attributes: dict[str, Any],
) -> str:
    """Record ``step``'s span (child of ``parent``, else of trace ``trace``, else of a new
    trace) and return the ``traceparent`` that names it."""
    from opentelemetry import trace as otel
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

    parsed = tracecontext.parse(parent)
    if parsed is not None:
        trace_id, parent_id = parsed[0], parsed[1]
    else:  # no caller span: a remote parent of the payment's trace stands in for it
        trace_id = trace or tracecontext.trace_id(tracecontext.child(None))
        parent_id = tracecontext.child(None).split("-")[2]
    remote = SpanContext(
        int(trace_id, 16), int(parent_id, 16), is_remote=True, trace_flags=TraceFlags(1)
    )
    context = otel.set_span_in_context(NonRecordingSpan(remote))
    span = _tracer_for_worker().start_span(
        f"kpay {step}",
        context=context,
        kind=SpanKind.CONSUMER,
        start_time=int(min(started, time.time()) * 1e9),
        attributes=attributes,
    )
    span.end()
    own = span.get_span_context()
    return f"00-{own.trace_id:032x}-{own.span_id:016x}-01"
