"""The OpenAI-compatible router proxy: classify each chat request once, decide, then forward, redact or refuse.

>>> app = create_app(RouterService.load("runs/local-data/bundle", "router.yaml"))
>>> serve("runs/local-data/bundle", "router.yaml", "127.0.0.1", 8080)      # what `routerforge serve` runs

Endpoints: ``POST /v1/chat/completions`` (model ``auto`` is routed; an explicit model passes through under the
PII / jailbreak policy; ``stream: true`` is relayed chunk by chunk), ``GET /v1/models`` and ``GET /v1/models/{id}``,
``GET /openapi.json`` (FastAPI's schema), ``POST /v1/classify``
(``{"text": ...}`` -> Signals, ``{"texts": [...]}`` -> ``{"results": [Signals, ...]}``), ``GET /healthz``,
``GET /readyz``, ``GET /metrics`` (Prometheus), ``POST /admin/reload`` (same as SIGHUP).

Choices worth knowing:

- Errors are OpenAI-style ``{"error": {"message", "type", "code"}}`` (built in :mod:`.api`, as the ExtProc
  server's are): 400 bad request, 401 bad token, 403 blocked (``code`` is the block reason; with
  ``server.block_status: 400``, 400 ``content_policy_violation`` as OpenAI and LiteLLM answer), 404 unknown model
  or path, 413 body over ``server.max_body_bytes``, 429 queue full (``Retry-After``), 500 internal error or
  failed reload, 502 every backend failed, 503 fail-closed classification failure or not ready
  (``Retry-After``), 504 backend timeout. docs/serving.md has the table.
- Upstream: ``POST {base_url}/chat/completions`` with the backend's key as ``Authorization: Bearer`` (the
  client's Authorization header is forwarded only to a backend with ``forward_client_auth``, e.g. a LiteLLM
  that keeps per-user budgets), and the client's W3C ``traceparent``/``tracestate``. On a connection error or
  a 5xx the backend's fallback chain is tried in order (:meth:`RouterConfig.targets`): a fallback that does not
  serve the model gets its first listed model, and the decision is re-made for that model, so its PII policy
  and reasoning style apply (a fallback whose policy would block the request is skipped). ``x-routerforge-model`` and
  ``x-routerforge-backend`` name what answered. A timeout answers 504 at once: a slow backend is not retried.
  ``timeout_s`` bounds connecting and each read (so a stream may run longer, as long as chunks keep coming).
- Auth (``server.auth_token_env``): ``/v1/*`` and ``/admin/reload`` need the bearer token; ``/healthz``,
  ``/readyz`` and ``/metrics`` stay open (probes and Prometheus scrapers carry no token; metrics hold no
  prompt text; keep the port internal).
- Logs: one line per request (request id, endpoint, status, latency, and the decision's model, action,
  category and reasons). Prompt text and PII never reach a log: exceptions are logged by type only.
- ``/readyz`` answers 200 while the batcher runs; ``serve`` loads the bundle before it binds the port, and a
  reload keeps serving the old bundle until the new one is loaded.
- The guard (docs/serving.md, "The guard"): every text a backend reads is checked or the request refused
  (serving/inspect.py); classification failures fail closed (503) unless ``fail_mode`` says open; admission
  by work (429 / 413 up front); ``/v1/completions``, ``/v1/responses``, ``/v1/messages`` are refused (404).
  Browser and network hardening: the Host header must be allowed (``server.allowed_hosts``; loopback names
  by default without a token), a request carrying an ``Origin`` not in ``server.allowed_origins`` is refused
  (403), POST bodies must be ``application/json`` (415), headers must arrive within
  ``server.header_timeout_s`` (else the connection is closed) and bodies within ``server.body_timeout_s``
  (408); at most ``server.max_connections`` at once; the upstream client keeps no cookies; backend answers
  are capped (``server.max_upstream_bytes``); a stream cut mid-way ends with an SSE ``error`` event; bodies
  over 64 KiB are parsed and checked off the event loop; ``serve`` refuses a non-loopback address without
  ``server.auth_token_env`` unless ``insecure``.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ipaddress
import json
import logging
import logging.config
import re
import signal
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, cast

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import RouterforgeError
from ..runtime.batcher import QueueFull, TooManyTexts, TooMuchWork
from . import tracing, workers
from .api import (
    CHAT,
    CHAT_PATH,
    REQUEST_ID,
    RETRY,
    ROUTE_HEADER,
    UNSUPPORTED_PATHS,
    ApiError,
    bearer_matches,
    blocked,
    ensure_port_free,
    internal_error,
    overloaded,
    parse_json,
    refused,
    too_large,
    unauthorised,
    unknown_model,
    unsupported,
    validated,
)
from .config import AUTO, RouterConfig, load_router_config
from .inspect import Refused
from .policy import Decision, is_auto
from .service import Checked, RouterService, client_token

log = logging.getLogger(__name__)

# One shared upstream client; connections are pooled per backend. The limit is far above what one router
# process sends, so the pool never becomes the bottleneck the load benchmark measures.
UPSTREAM_LIMITS = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
OFFLOAD_BYTES = 64 * 1024  # bodies above this are parsed and checked in a thread, off the event loop
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_ADMITTED = (QueueFull, TooManyTexts, TooMuchWork)
_OPEN_PATHS = ("/healthz", "/readyz", "/metrics")  # no token, no Host check: probes and scrapers
_WORK_PATHS = ("/v1/chat/completions", "/v1/classify")  # what the admission check guards


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")  # W3C Trace Context


def trace_headers(headers) -> dict[str, str]:
    """W3C ``traceparent`` (and its ``tracestate``) to pass on to the backend, so its spans join the client's
    trace; a malformed traceparent is dropped, and tracestate with it (the spec's rule)."""
    parent = headers.get("traceparent", "").strip().lower()
    if not _TRACEPARENT.match(parent) or parent.startswith("ff"):
        return {}
    out = {"traceparent": parent}
    state = headers.get("tracestate", "").strip()
    if state and len(state) <= 512:
        out["tracestate"] = state
    return out


def tracing_attributes(decision: Decision) -> dict[str, str]:
    """A decision as span attributes: names and outcomes, never texts (reasons hold scores: left out)."""
    attributes = {
        "gen_ai.request.model": decision.model,
        "routerforge.action": decision.action,
        "routerforge.category": decision.category or "none",
    }
    if decision.backend is not None:
        attributes["routerforge.backend"] = decision.backend
    if decision.block_reason is not None:
        attributes["routerforge.block_reason"] = decision.block_reason
    return attributes


def _no_cookies() -> http.cookiejar.CookieJar:
    """A jar that stores nothing: one backend's Set-Cookie must never be replayed on another client's request.
    (A plain CookieJar: httpx uses it as it is, where an httpx.Cookies would be copied into a default jar.)"""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def _host_of(value: str) -> str:
    """The Host header without its port (``[::1]:8080`` -> ``::1``)."""
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def allowed_host(host: str, config: RouterConfig, token: str | None) -> bool:
    """Whether a Host header may be served: ``server.allowed_hosts``, or (null) loopback names without a token
    and any host with one (DNS rebinding cannot carry the token)."""
    allowed = config.server.allowed_hosts
    if allowed is None:
        allowed = ["*"] if token is not None else list(LOOPBACK_NAMES)
    return "*" in allowed or _host_of(host).lower() in {name.lower() for name in allowed}


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json_response(text: str) -> Response:
    return Response(text.encode(), media_type="application/json")


def _response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


class _ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: str | None = None
    texts: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> _ClassifyRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("send exactly one of 'text' (a string) or 'texts' (a list of strings)")
        return self


_CLASSIFY = TypeAdapter(_ClassifyRequest)


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The raw body: 415 unless JSON, 413 past ``limit`` (declared or actually sent), 408 if it does not
    arrive within ``timeout_s`` (a half-sent body must not hold a connection for long)."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(
            415,
            "send the body as Content-Type: application/json",
            "invalid_request_error",
            "unsupported_media_type",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise too_large(limit)
    except TimeoutError:
        raise ApiError(
            408, f"the request body did not arrive within {timeout_s:g} s", "invalid_request_error", "request_timeout"
        ) from None
    return bytes(body)


async def _read_json(request: Request, config: RouterConfig, admit=None) -> object:
    """The body as JSON (400 for anything but UTF-8 JSON); a large one is first offered to ``admit(raw)``
    (which may refuse it unparsed), then parsed in a thread."""
    server = config.server
    raw = await _read_body(request, server.max_body_bytes, server.body_timeout_s)
    if len(raw) <= OFFLOAD_BYTES:
        return parse_json(raw)
    if admit is not None:
        admit(raw)
    return await asyncio.to_thread(parse_json, raw)


# -- app -------------------------------------------------------------------------------------------------------


def create_app(service: RouterService) -> FastAPI:
    """The proxy over ``service``; its lifespan starts the batcher and the shared upstream client."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with service, httpx.AsyncClient(limits=UPSTREAM_LIMITS, cookies=_no_cookies()) as client:
            app.state.client = client
            yield

    # FastAPI's own schema at /openapi.json (no docs UI: it would load scripts from a CDN)
    app = FastAPI(title="routerforge", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.add_middleware(_RequestContext, service=service)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return _response(err)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        kind = "not_found" if err.status_code == 404 else "invalid_request"
        headers = dict(err.headers) if err.headers else None
        return _response(ApiError(err.status_code, str(err.detail), "invalid_request_error", kind, headers))

    async def authorised(request: Request) -> None:  # async: FastAPI runs a sync dependency in a thread
        token = service.auth_token
        origin = request.headers.get("origin")
        if origin is not None and origin not in service.config.server.allowed_origins:
            raise ApiError(
                403,
                "cross-origin requests are refused; list the origin in server.allowed_origins",
                "invalid_request_error",
                "origin_not_allowed",
            )
        if token is not None and not bearer_matches(request.headers.get("authorization"), token):
            raise unauthorised()

    guarded = [Depends(authorised)]

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        if not service.ready:
            raise ApiError(503, "not ready", "server_error", "not_ready", dict(RETRY))
        router = service.router
        return {"status": "ready", "heads": sorted(router.heads), "backend": getattr(router, "backend_name", None)}

    @app.get("/metrics")
    async def metrics():
        body = workers.collect_metrics() if workers.supervised() else generate_latest(service.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=guarded)
    async def models():
        config = service.config
        data = [{"id": AUTO, "object": "model", "created": 0, "owned_by": "routerforge"}]
        data += [
            {"id": model, "object": "model", "created": 0, "owned_by": config.backend_for(model).name}
            for model in config.served_models()
        ]
        return {"object": "list", "data": data}

    @app.get("/v1/models/{model_id:path}", dependencies=guarded)
    async def model(model_id: str):
        """One model, as OpenAI's ``models.retrieve`` reads it (ids may hold a slash: org/name)."""
        config = service.config
        if is_auto(model_id):
            return {"id": AUTO, "object": "model", "created": 0, "owned_by": "routerforge"}
        backend = config.backend_for(model_id)
        if backend is None:
            raise unknown_model(model_id)
        return {"id": model_id, "object": "model", "created": 0, "owned_by": backend.name}

    @app.post("/v1/classify", dependencies=guarded)
    async def classify(request: Request):
        body = validated(_CLASSIFY, await _read_json(request, service.config))
        texts = [body.text] if body.text is not None else list(body.texts or ())
        try:
            signals = await service.classify(texts)
        except _ADMITTED as err:
            raise overloaded(err) from None
        except Exception as err:  # noqa: BLE001
            log.warning("classification failed (%s)", type(err).__name__)
            raise ApiError(
                503, "classification failed; try again", "server_error", "classification_failed", dict(RETRY)
            ) from None
        # JSON bytes straight from the dataclasses: FastAPI's jsonable_encoder would walk every probability again
        if body.text is not None:
            return _json_response(signals[0].to_json())
        return _json_response('{"results": [' + ", ".join(s.to_json() for s in signals) + "]}")

    for path in UNSUPPORTED_PATHS:

        @app.api_route(path, methods=["GET", "POST"], include_in_schema=False)
        @app.api_route(path + "/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
        async def refuse_endpoint(request: Request):
            raise unsupported(request.url.path)

    @app.post(CHAT_PATH, dependencies=guarded)
    async def chat_completions(request: Request):
        with tracing.span("routerforge.chat", {"http.route": CHAT_PATH}, headers=request.headers) as root:
            try:
                return await routed_chat(request)
            finally:  # blocks and upstream failures too: what was decided
                decision = getattr(request.state, "decision", None)
                if decision is not None:
                    root.set_attributes(tracing_attributes(decision))

    async def routed_chat(request: Request):
        config = service.config
        try:
            payload = await _read_json(request, config, lambda raw: service.admit_body(raw, config))
        except TooMuchWork as err:
            raise overloaded(err) from None
        chat = validated(CHAT, payload)
        payload = cast(dict, payload)  # validated: a JSON object
        if not is_auto(chat.model) and config.backend_for(chat.model) is None:
            raise unknown_model(chat.model)
        offload = int(request.headers.get("content-length") or 0) > OFFLOAD_BYTES
        try:
            messages = len(payload.get("messages") or ()) if isinstance(payload, dict) else 0
            with tracing.span("routerforge.classify", {"routerforge.messages": messages}):
                checked = await service.check(payload, config, offload=offload)
        except _ADMITTED as err:
            raise overloaded(err) from None
        except Refused as err:
            raise refused(err) from None
        with tracing.span("routerforge.decide") as span:
            decision = await asyncio.to_thread(checked.decide) if offload else checked.decide()
            span.set_attributes(tracing_attributes(decision))
        service.metrics.record(decision)
        if decision.failed_open:
            log.warning(
                "request %s: forwarded with checks skipped (fail_mode open): %s",
                request.state.request_id,
                ", ".join(decision.failed_open),
            )
        request.state.decision = decision
        if decision.action == "block":
            raise blocked(decision, config.server.expose_reasons, config.server.block_status)
        return await _forward(request, service, checked, decision, chat.stream)

    @app.post("/admin/reload", dependencies=guarded)
    async def admin_reload():
        if workers.supervised():  # every worker reloads, each as on SIGHUP; failures are in the log
            workers.request_reload()
            return JSONResponse({"status": "reloading", "workers": "all"}, status_code=202)
        try:
            await service.reload_async()
        except RouterforgeError as err:  # config errors name fields, never values (a pasted secret stays out)
            raise ApiError(500, str(err), "server_error", "reload_failed") from None
        router = service.router
        return {
            "status": "reloaded",
            "bundle": str(service.bundle_path),
            "config": str(service.config_path),
            "backend": getattr(router, "backend_name", None),
        }

    return app


# -- upstream --------------------------------------------------------------------------------------------------


async def _forward(
    request: Request, service: RouterService, checked: Checked, decision: Decision, stream: bool
) -> Response:
    """Send the decided body to the model's backend, then along its fallback chain on failure."""
    client: httpx.AsyncClient = request.app.state.client
    metrics, request_id = service.metrics, request.state.request_id
    expose, cap = checked.config.server.expose_reasons, checked.config.server.max_upstream_bytes
    failures = []
    for backend, model in checked.config.targets(decision.model):
        attempt = decision if model == decision.model else checked.decide(target=model)
        if attempt.action == "block":
            failures.append(f"{backend.name} skipped ({attempt.block_reason} under the policy for {model})")
            continue
        headers = {"x-request-id": request_id} | trace_headers(request.headers)
        if backend.forward_client_auth:  # the backend (a LiteLLM) checks the client's own key
            if client_auth := request.headers.get("authorization"):
                headers["authorization"] = client_auth
        elif key := backend.api_key():
            headers["authorization"] = f"Bearer {key}"
        upstream = client.build_request(
            "POST",
            f"{backend.base_url.rstrip('/')}/chat/completions",
            json=attempt.body,
            headers=headers,
            timeout=backend.timeout_s,
        )
        started = time.perf_counter()
        content = b""
        try:
            attributes = {"routerforge.backend": backend.name, "gen_ai.request.model": model}
            with tracing.span("routerforge.upstream", attributes) as span:
                tracing.inject(upstream.headers)  # this span's traceparent: the backend's spans nest under it
                response = await client.send(upstream, stream=True)
                span.set_attribute("http.response.status_code", response.status_code)
                if response.status_code < 500 and not stream:
                    try:
                        content = await _read_capped(response, cap)
                    finally:
                        await response.aclose()
        except (_UpstreamTooLarge, httpx.DecodingError, httpx.TimeoutException) as err:
            label, status, message, code = _upstream_failure(err, backend, cap)
            metrics.upstream_errors.labels(backend.name, label).inc()
            raise ApiError(status, message, "server_error", code, attempt.headers(expose)) from None
        except httpx.TransportError as err:
            metrics.upstream_errors.labels(backend.name, "connect").inc()
            failures.append(f"{backend.name} unreachable")
            log.warning("request %s: backend %s unreachable (%s)", request_id, backend.name, type(err).__name__)
            continue
        if response.status_code >= 500:
            await response.aclose()
            metrics.upstream_errors.labels(backend.name, "status_5xx").inc()
            failures.append(f"{backend.name} answered {response.status_code}")
            log.warning("request %s: backend %s answered %d", request_id, backend.name, response.status_code)
            continue
        metrics.upstream_seconds.labels(backend.name).observe(time.perf_counter() - started)
        request.state.decision = attempt
        headers = attempt.headers(expose) | {ROUTE_HEADER: backend.name}
        if stream:
            return _Relay(response, request_id, headers)
        return Response(
            content,
            status_code=response.status_code,
            media_type=response.headers.get("content-type"),
            headers=headers,
        )
    raise ApiError(
        502,
        f"no backend could answer: {'; '.join(failures)}",
        "server_error",
        "upstream_unavailable",
        decision.headers(expose),
    )


class _UpstreamTooLarge(Exception):
    pass


def _upstream_failure(err: Exception, backend, cap: int) -> tuple[str, int, str, str]:
    """What a backend failure that ends the request is answered with: metric label, status, message, code."""
    if isinstance(err, _UpstreamTooLarge):
        return "too_large", 502, f"backend {backend.name} answered more than {cap} bytes", "upstream_too_large"
    if isinstance(err, httpx.DecodingError):
        return (
            "bad_encoding",
            502,
            f"backend {backend.name} sent a body that cannot be decoded",
            "upstream_bad_response",
        )
    return "timeout", 504, f"backend {backend.name} did not answer within {backend.timeout_s:g} s", "upstream_timeout"


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    """The (decoded) body, refusing past ``cap`` bytes instead of buffering whatever a backend sends."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > cap:
            raise _UpstreamTooLarge
    return bytes(body)


class _Relay(StreamingResponse):
    """The upstream stream, relayed as its bytes arrive (SSE stays unbuffered). The upstream response is closed
    however the relay ends, even when it never starts (the client left before the first byte): an unclosed
    response would hold one of the shared client's pooled connections for good."""

    def __init__(self, upstream: httpx.Response, request_id: str, headers: dict[str, str]):
        super().__init__(
            self._chunks(upstream, request_id),
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
            headers=headers,
        )
        self.upstream = upstream

    @staticmethod
    async def _chunks(upstream: httpx.Response, request_id: str):
        try:
            async for chunk in upstream.aiter_bytes():
                yield chunk
        except httpx.HTTPError as err:  # headers are sent: end the stream so clients can tell it was cut
            log.warning("request %s: upstream stream broke (%s)", request_id, type(err).__name__)
            error = {"error": {"message": "the backend stream broke", "type": "server_error", "code": "stream_cut"}}
            yield f"\n\nevent: error\ndata: {json.dumps(error)}\n\n".encode()

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.upstream.aclose()


# -- request context: id, metrics, one log line ------------------------------------------------------------------


class _RequestContext:
    """Pure ASGI middleware (streamed bodies pass through untouched): ``x-request-id`` on every response, the
    request counter and latency histogram, one log line per request, and a JSON 500 for unexpected errors."""

    def __init__(self, app, service: RouterService):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status: int | None = None

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            probe = scope["path"] in _OPEN_PATHS  # probes use the pod address; these hold no prompt text
            if not probe and not allowed_host(host, self.service.config, self.service.auth_token):
                # DNS rebinding: a page on evil.example resolving to 127.0.0.1 still sends its own Host
                err = ApiError(421, "this Host is not served; list it in server.allowed_hosts", "invalid_request_error",
                               "host_not_allowed")  # fmt: skip
                await _response(err)(scope, receive, send_with_id)
                return
            if scope["path"] in _WORK_PATHS and self.service.too_busy():  # refused before the body is read
                await _response(overloaded(QueueFull("queue ahead")))(scope, receive, send_with_id)
                return
            await self.app(scope, receive, send_with_id)
        except Exception as err:  # noqa: BLE001 - its message may quote the request: log the type only
            log.error("request %s: unhandled %s", request_id, type(err).__name__)
            if status is None:
                await _response(internal_error())(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "other")
            elapsed = time.perf_counter() - started
            metrics = self.service.metrics
            metrics.requests.labels(endpoint, str(status or 0)).inc()
            metrics.request_seconds.labels(endpoint).observe(elapsed)
            decision: Decision | None = scope["state"].get("decision")
            outcome = ""
            if decision is not None:
                outcome = (
                    f" model={decision.model} action={decision.action} category={decision.category} "
                    f"reasons={'; '.join(decision.reasons)!r}"
                )
            log.info(
                "request %s %s %s status=%s latency_ms=%.1f%s",
                request_id,
                scope["method"],
                endpoint,
                status,
                elapsed * 1000,
                outcome,
            )


# -- serve -------------------------------------------------------------------------------------------------------


def header_timeout_protocol(timeout_s: float) -> type:
    """uvicorn's HTTP protocol class with a header read timeout (uvicorn has none: a client sending half its
    headers would hold the connection for good): a connection whose first request has not started within
    ``timeout_s`` is closed. Later requests on a kept-alive connection are bounded by uvicorn's keep-alive
    timeout."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class HeaderTimeoutProtocol(Base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._header_deadline = self.loop.call_later(timeout_s, self._headers_late)

        def _headers_late(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc) -> None:
            self._header_deadline.cancel()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to listen beyond loopback without a token (``insecure``: a warning instead)."""
    if token is not None or is_loopback(host):
        return
    if not insecure:
        raise RouterforgeError(
            f"refusing to listen on {host} without a client token: anyone who can reach it could use the backends",
            hint="set server.auth_token_env, bind 127.0.0.1, or pass --insecure",
        )
    log.warning("listening on %s without a client token (--insecure)", host)


def serve(
    bundle: str | Path | None,
    config_path: str | Path,
    host: str | None = None,
    port: int | None = None,
    *,
    backend: str | None = None,
    threads: int | None = None,
    log_level: Literal["debug", "info", "warning"] = "info",
    insecure: bool = False,
    workers: int = 1,
) -> None:
    """Load, then serve until SIGINT/SIGTERM (graceful: in-flight requests finish); SIGHUP reloads.

    A non-loopback ``host`` without ``server.auth_token_env`` is refused unless ``insecure``: anyone on the
    network could use the backends' keys. ``workers`` > 1: that many processes on one socket (serving/workers.py),
    each with ``threads`` ONNX Runtime threads (default: the cores shared out)."""
    import functools

    import uvicorn

    from .workers import supervise, worker_threads

    config = load_router_config(config_path)
    host, port = host or config.server.host, port or config.server.port
    ensure_port_free(host, port)  # before the bundle loads
    threads = worker_threads(workers, threads)
    if workers == 1:
        service = _load(bundle, config_path, backend, threads, log_level)
        check_exposure(host, service.auth_token, insecure)
        _run(service, host, port, log_level)
        return
    check_exposure(host, client_token(config), insecure)
    sock = uvicorn.Config(create_app, host=host, port=port).bind_socket()
    try:
        worker = functools.partial(_worker, bundle, config_path, backend, threads, log_level, host, port)
        supervise(workers, sock, worker)
    finally:
        sock.close()


def _worker(bundle, config_path, backend, threads, log_level, host, port, sock, ready) -> None:
    """One process of ``serve --workers N``: load, then serve on the supervisor's socket."""
    _run(_load(bundle, config_path, backend, threads, log_level), host, port, log_level, sock, ready)


def _load(bundle, config_path, backend, threads, log_level: str) -> RouterService:
    """The service, with logging set up first (uvicorn's, and routerforge's loggers on its handler at
    ``log_level``): what loading warns about (an int8 file this CPU saturates, heads the policy cannot use) reaches
    the log in its format."""
    from uvicorn.config import LOGGING_CONFIG

    config = json.loads(json.dumps(LOGGING_CONFIG))
    config["loggers"]["routerforge"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    logging.config.dictConfig(config)
    return RouterService.load(bundle, config_path, backend=backend, threads=threads)


def _run(service: RouterService, host: str, port: int, log_level: str, sock=None, ready=None) -> None:
    """uvicorn over ``create_app(service)`` (loaded by :func:`_load`, which set up the logging) until
    SIGINT/SIGTERM, on ``host:port`` or an inherited socket; ``ready`` (a worker's) is set once SIGHUP reloads: the
    supervisor sends none before."""
    import uvicorn

    tracing.configure_from_env()  # OTLP spans when OTEL_EXPORTER_OTLP_ENDPOINT is set (the [otel] extra)
    settings = uvicorn.Config(
        create_app(service),
        host=host,
        port=port,
        log_config=None,  # _load configured it
        log_level=log_level,
        access_log=False,
        limit_concurrency=service.config.server.max_connections,
        timeout_keep_alive=5,
        http=header_timeout_protocol(service.config.server.header_timeout_s),
    )
    server = uvicorn.Server(settings)

    async def main() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, service.reload_on_signal)
        if ready is not None:
            ready.set()
        await server.serve(None if sock is None else [sock])

    # uvicorn's loop choice ("auto": uvloop where installed, as the base install has it on Linux and macOS)
    with asyncio.Runner(loop_factory=settings.get_loop_factory()) as runner:
        runner.run(main())
