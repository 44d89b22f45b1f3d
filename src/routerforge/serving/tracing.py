"""OpenTelemetry spans for the proxy (optional: ``pip install 'routerforge[otel]'``), joined to the client's
trace (W3C ``traceparent``) and passed on to the backend.

>>> configure_from_env()          # what `routerforge serve` does: OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set
>>> with span("routerforge.classify", {"routerforge.texts": 3}):
...     ...

Spans, per chat request: ``routerforge.chat`` (server span, child of the client's ``traceparent``), with
children ``routerforge.classify``, ``routerforge.decide`` and one ``routerforge.upstream`` per backend tried
(to the response headers when streaming); the upstream request carries that span's ``traceparent``, so the
backend's own spans (vLLM, LiteLLM) nest under it. Attributes are counts, names and outcomes only (model,
backend, action, category, block reason, status code, number of texts); never prompt text, tool arguments or
PII, and exceptions are recorded by type only (their messages may quote a request).

Without ``opentelemetry-api``, or with the API but no tracer provider set (no SDK configured), every function
here is a no-op (the proxy still passes the client's ``traceparent`` on).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

log = logging.getLogger("routerforge.tracing")

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the base install may lack it: tracing is then off
    trace = None  # type: ignore[assignment]

Attributes = Mapping[str, str | int | float | bool]


class _NoSpan:
    def set_attribute(self, key: str, value) -> None:
        pass

    def set_attributes(self, attributes: Attributes) -> None:
        pass


def _tracer():
    """The tracer, or None while no tracer provider is set (the API alone): its spans would be no-ops, and
    building them cost ~0.1 ms per chat request (benchmarks/README.md)."""
    if trace is None or isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return trace.get_tracer("routerforge")


@contextmanager
def span(name: str, attributes: Attributes | None = None, *, headers: Mapping[str, str] | None = None) -> Iterator:
    """A span as the current one; ``headers``: start a server span under the trace context they carry."""
    tracer = _tracer()
    if tracer is None:
        yield _NoSpan()
        return
    kind, context = SpanKind.INTERNAL, None
    if headers is not None:
        kind, context = SpanKind.SERVER, propagate.extract({k.lower(): v for k, v in headers.items()})
    with tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=dict(attributes or {}), record_exception=False,
        set_status_on_exception=False,
    ) as current:  # fmt: skip
        try:
            yield current
        except BaseException as err:
            current.set_status(Status(StatusCode.ERROR, type(err).__name__))  # the type, never the message
            raise


def inject(headers: MutableMapping[str, str]) -> None:
    """Write the current span's ``traceparent``/``tracestate`` into outgoing ``headers`` (no-op when off)."""
    if _tracer() is not None and trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)


def configure_from_env() -> bool:
    """Install an SDK tracer provider with the OTLP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
    ``..._TRACES_ENDPOINT``) is set; the exporter reads the other standard ``OTEL_*`` variables itself. Returns
    whether tracing is on."""
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the exporter is missing: pip install 'routerforge[otel]'")
        return False
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "routerforge")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("OpenTelemetry tracing on (OTLP)")
    return True
