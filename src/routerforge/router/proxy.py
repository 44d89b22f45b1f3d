"""The OpenAI-compatible router proxy: classify each chat request once, decide, then forward, redact or refuse.

>>> app = create_app(RouterService.load("runs/local-data/bundle", "router.yaml"))
>>> serve("runs/local-data/bundle", "router.yaml", "127.0.0.1", 8080)      # what `routerforge serve` runs

Endpoints: ``POST /v1/chat/completions`` (model ``auto`` is routed; an explicit model passes through under the
PII / jailbreak policy; ``stream: true`` is relayed chunk by chunk), ``GET /v1/models``, ``POST /v1/classify``
(``{"text": ...}`` -> Signals, ``{"texts": [...]}`` -> ``{"results": [Signals, ...]}``), ``GET /healthz``,
``GET /readyz``, ``GET /metrics`` (Prometheus), ``POST /admin/reload`` (same as SIGHUP).

Choices worth knowing:

- Errors are OpenAI-style ``{"error": {"message", "type", "code"}}``: 400 bad request, 401 bad token, 403
  blocked (``code`` is the block reason), 404 unknown model or path, 413 body over ``server.max_body_bytes``,
  429 queue full (``Retry-After``), 502 every backend failed, 503 fail-closed classification failure
  (``Retry-After``), 504 backend timeout.
- Upstream: ``POST {base_url}/chat/completions`` with the backend's key as ``Authorization: Bearer`` (the
  client's Authorization header is never forwarded). On a connection error or a 5xx the backend's fallback
  chain is tried in order (:meth:`RouterConfig.targets`): a fallback that does not serve the model gets its
  first listed model, and the decision is re-made for that model, so its PII policy and reasoning style apply
  (a fallback whose policy would block the request is skipped). ``x-routerforge-model`` and
  ``x-routerforge-backend`` name what answered. A timeout answers 504 at once: a slow backend is not retried.
  ``timeout_s`` bounds connecting and each read (so a stream may run longer, as long as chunks keep coming).
- Auth (``server.auth_token_env``): ``/v1/*`` and ``/admin/reload`` need the bearer token; ``/healthz``,
  ``/readyz`` and ``/metrics`` stay open (probes and Prometheus scrapers carry no token; metrics hold no
  prompt text; keep the port internal).
- Logs: one line per request (request id, endpoint, status, latency, and the decision's model, action,
  category and reasons). Prompt text and PII never reach a log: exceptions are logged by type only.
- ``/readyz`` answers 200 while the batcher runs; ``serve`` loads the bundle before it binds the port, and a
  reload keeps serving the old bundle until the new one is loaded.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import signal
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import RouterforgeError
from ..runtime.batcher import QueueFull, TooManyTexts
from .config import AUTO
from .policy import Decision
from .service import Checked, RouterService

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
# One shared upstream client; connections are pooled per backend. The limit is far above what one router
# process sends, so the pool never becomes the bottleneck the load benchmark measures.
UPSTREAM_LIMITS = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ApiError(Exception):
    """An OpenAI-style error response."""

    def __init__(self, status: int, message: str, type: str, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.headers = status, message, type, code, headers

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.type, "code": self.code}},
                            status_code=self.status, headers=self.headers)


# -- request bodies (validated, then the original dict is what the policy reads and forwards) ----------------

class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: str
    content: str | list[dict] | None = None


class _ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    model: str = AUTO
    messages: list[_Message] = Field(min_length=1)
    stream: bool = False
    tools: list[dict] | None = None


class _ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: str | None = None
    texts: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> "_ClassifyRequest":
        if (self.text is None) == (self.texts is None):
            raise ValueError("send exactly one of 'text' (a string) or 'texts' (a list of strings)")
        return self


_CHAT = TypeAdapter(_ChatRequest)
_CLASSIFY = TypeAdapter(_ClassifyRequest)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


async def _read_json(request: Request, limit: int) -> object:
    """The body as JSON: 413 past ``limit`` (declared or actually sent), 400 for anything but UTF-8 JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes exceeds the {limit}-byte limit",
                       "invalid_request_error", "request_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body exceeds the {limit}-byte limit", "invalid_request_error",
                           "request_too_large")
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        # a \ud800 escape parses into a lone surrogate, which no tokenizer (and no upstream) accepts
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeError:
        raise ApiError(400, "request body is not valid UTF-8 (lone surrogates included)",
                       "invalid_request_error", "invalid_encoding") from None
    except (ValueError, RecursionError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise ApiError(400, f"request body is not valid JSON{where}", "invalid_request_error",
                       "invalid_json") from None
    return payload


def _validated(adapter: TypeAdapter, payload: object) -> BaseModel:
    try:
        return adapter.validate_python(payload)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]  # never echo the input (prompt text)
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ApiError(400, f"{where}: {message}" if where else message, "invalid_request_error",
                       "invalid_request") from None


# -- app -------------------------------------------------------------------------------------------------------

def create_app(service: RouterService) -> FastAPI:
    """The proxy over ``service``; its lifespan starts the batcher and the shared upstream client."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with service, httpx.AsyncClient(limits=UPSTREAM_LIMITS) as client:
            app.state.client = client
            yield

    app = FastAPI(title="routerforge", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_RequestContext, service=service)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return err.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        kind = "not_found" if err.status_code == 404 else "invalid_request"
        return ApiError(err.status_code, str(err.detail), "invalid_request_error", kind, err.headers).response()

    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        token = service.auth_token
        if token is None:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise ApiError(401, "missing or invalid bearer token", "authentication_error", "invalid_api_key",
                           {"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorised)]

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        if not service.ready:
            raise ApiError(503, "not ready", "server_error", "not_ready")
        router = service.router
        return {"status": "ready", "heads": sorted(router.heads), "backend": getattr(router, "backend_name", None)}

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=guarded)
    async def models():
        config = service.config
        data = [{"id": AUTO, "object": "model", "created": 0, "owned_by": "routerforge"}]
        data += [{"id": model, "object": "model", "created": 0, "owned_by": config.backend_for(model).name}
                 for model in config.served_models()]
        return {"object": "list", "data": data}

    @app.post("/v1/classify", dependencies=guarded)
    async def classify(request: Request):
        body = _validated(_CLASSIFY, await _read_json(request, service.config.server.max_body_bytes))
        texts = [body.text] if body.text is not None else body.texts
        try:
            signals = await service.classify(texts)
        except (QueueFull, TooManyTexts) as err:
            raise _overloaded(err) from None
        except Exception as err:  # noqa: BLE001
            log.warning("classification failed (%s)", type(err).__name__)
            raise ApiError(503, "classification failed; try again", "server_error", "classification_failed",
                           {"Retry-After": "1"}) from None
        if body.text is not None:
            return signals[0].to_dict()
        return {"results": [s.to_dict() for s in signals]}

    @app.post(CHAT_PATH, dependencies=guarded)
    async def chat_completions(request: Request):
        config = service.config
        payload = await _read_json(request, config.server.max_body_bytes)
        chat = _validated(_CHAT, payload)
        if chat.model != AUTO and config.backend_for(chat.model) is None:
            raise ApiError(404, f"model {chat.model!r} is not served by this router (GET /v1/models lists them)",
                           "invalid_request_error", "model_not_found")
        try:
            checked = await service.check(payload)
        except (QueueFull, TooManyTexts) as err:
            raise _overloaded(err) from None
        decision = checked.decide()
        service.metrics.record(decision)
        request.state.decision = decision
        if decision.action == "block":
            raise _blocked(decision)
        return await _forward(request, service, checked, decision, chat.stream)

    @app.post("/admin/reload", dependencies=guarded)
    async def admin_reload():
        await _reload(service)
        router = service.router
        return {"status": "reloaded", "bundle": str(service.bundle_path), "config": str(service.config_path),
                "backend": getattr(router, "backend_name", None)}

    return app


def _overloaded(err: Exception) -> ApiError:
    if isinstance(err, TooManyTexts):
        return ApiError(400, str(err), "invalid_request_error", "too_many_texts")
    return ApiError(429, "the router is overloaded (classification queue full); retry shortly",
                    "rate_limit_error", "queue_full", {"Retry-After": "1"})


def _blocked(decision: Decision) -> ApiError:
    headers = decision.headers()
    if decision.block_reason == "classification_failed":  # fail-closed: the router's fault, worth a retry
        return ApiError(503, "the router could not classify this request and fails closed; try again",
                        "server_error", "classification_failed", headers | {"Retry-After": "1"})
    return ApiError(403, f"request blocked by the router policy: {decision.block_reason}",
                    "content_policy_violation", decision.block_reason, headers)


async def _reload(service: RouterService) -> None:
    """Reload off the event loop; on failure the previous bundle and config keep serving."""
    try:
        await asyncio.to_thread(service.reload)
    except Exception as err:  # noqa: BLE001 - a bad file must not take the server down
        why = str(err) if isinstance(err, RouterforgeError) else type(err).__name__
        log.error("reload failed, still serving the previous bundle and config: %s", why)
        raise ApiError(500, f"reload failed: {why}", "server_error", "reload_failed") from None


# -- upstream --------------------------------------------------------------------------------------------------

async def _forward(request: Request, service: RouterService, checked: Checked, decision: Decision,
                   stream: bool) -> Response:
    """Send the decided body to the model's backend, then along its fallback chain on failure."""
    client: httpx.AsyncClient = request.app.state.client
    metrics, request_id = service.metrics, request.state.request_id
    failures = []
    for backend, model in checked.config.targets(decision.model):
        attempt = decision if model == decision.model else checked.decide(target=model)
        if attempt.action == "block":
            failures.append(f"{backend.name} skipped ({attempt.block_reason} under the policy for {model})")
            continue
        headers = {"x-request-id": request_id}
        if key := backend.api_key():
            headers["Authorization"] = f"Bearer {key}"
        upstream = client.build_request("POST", f"{backend.base_url.rstrip('/')}/chat/completions",
                                        json=attempt.body, headers=headers, timeout=backend.timeout_s)
        started = time.perf_counter()
        try:
            response = await client.send(upstream, stream=True)
            if response.status_code < 500 and not stream:
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except httpx.TimeoutException:
            metrics.upstream_errors.labels(backend.name, "timeout").inc()
            raise ApiError(504, f"backend {backend.name} did not answer within {backend.timeout_s:g} s",
                           "server_error", "upstream_timeout", attempt.headers()) from None
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
        headers = attempt.headers() | {"x-routerforge-backend": backend.name}
        media_type = response.headers.get("content-type")
        if stream:
            return StreamingResponse(_relay(response, request_id), status_code=response.status_code,
                                     media_type=media_type, headers=headers)
        return Response(response.content, status_code=response.status_code, media_type=media_type,
                        headers=headers)
    why = "; ".join(failures) or f"no backend serves {decision.model} since the last reload"
    raise ApiError(502, f"no backend could answer: {why}", "server_error", "upstream_unavailable",
                   decision.headers())


async def _relay(response: httpx.Response, request_id: str):
    """Upstream bytes as they arrive (SSE stays unbuffered); the upstream response is closed however it ends."""
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.HTTPError as err:  # headers are sent: all we can do is end the stream
        log.warning("request %s: upstream stream broke (%s)", request_id, type(err).__name__)
    finally:
        await response.aclose()


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
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status: int | None = None

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as err:  # noqa: BLE001 - its message may quote the request: log the type only
            log.error("request %s: unhandled %s", request_id, type(err).__name__)
            if status is None:
                await ApiError(500, "internal error", "server_error", "internal_error").response()(
                    scope, receive, send_with_id)
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
                outcome = (f" model={decision.model} action={decision.action} category={decision.category} "
                           f"reasons={'; '.join(decision.reasons)!r}")
            log.info("request %s %s %s status=%s latency_ms=%.1f%s", request_id, scope["method"], endpoint, status,
                     elapsed * 1000, outcome)


# -- serve -------------------------------------------------------------------------------------------------------

def serve(bundle: str | Path | None, config_path: str | Path, host: str | None = None, port: int | None = None,
          *, backend: str | None = None, threads: int | None = None,
          log_level: Literal["debug", "info", "warning"] = "info") -> None:
    """Load, then serve until SIGINT/SIGTERM (graceful: in-flight requests finish); SIGHUP reloads."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    service = RouterService.load(bundle, config_path, backend=backend, threads=threads)
    logging_config = json.loads(json.dumps(LOGGING_CONFIG))
    logging_config["loggers"]["routerforge"] = {"handlers": ["default"], "level": log_level.upper(),
                                                "propagate": False}
    server = uvicorn.Server(uvicorn.Config(create_app(service), host=host or service.config.server.host,
                                           port=port or service.config.server.port, log_config=logging_config,
                                           log_level=log_level, access_log=False))

    async def reload_on_sighup() -> None:
        try:
            await _reload(service)
        except ApiError:
            pass  # _reload logged why; the previous generation keeps serving

    async def main() -> None:
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGHUP, lambda: asyncio.ensure_future(reload_on_sighup()))
        await server.serve()

    asyncio.run(main())
