"""Envoy external processing (ExtProc): Envoy streams each request's headers and buffered body to this gRPC
server, which answers with the routing decision as header and body mutations, or with an immediate reply.

>>> server, port = await start_extproc(service.decide, 50051)          # any async decide(body) -> Decision
>>> await serve_extproc(RouterService.load(bundle, "router.yaml"), 50051) # what `routerforge extproc` runs

Envoy's filter runs ``request_header_mode: SEND`` and ``request_body_mode: BUFFERED`` (docs/envoy.md):

1. ``request_headers`` -> CONTINUE, after the bearer check when ``server.auth_token_env`` is set (else 401)
   and the Origin check (a browser Origin not in ``server.allowed_origins``: 403). Every client-sent
   ``x-routerforge-*`` header and the routing header are removed, so clients cannot pick a backend or fake a
   decision. Nothing but ``POST /v1/chat/completions`` goes on: ``GET /v1/models`` is answered here (the
   router's models), anything else (``/v1/completions``, ``/v1/responses``, a percent-encoded chat path, ...)
   gets an immediate 404, so no body reaches a backend unchecked.
2. ``request_body`` (the whole body, one message) -> ``decide(body)``. Routed: a body mutation with the new
   body; headers ``x-routerforge-*``, the routing header (the backend's name, which Envoy's routes match),
   ``authorization`` (the backend's key; the client's is never forwarded) and ``content-length`` (in BUFFERED
   + SEND Envoy rejects a new body whose length disagrees with it); and ``clear_route_cache`` so Envoy picks
   the route again on the new header. Otherwise an ``immediate_response`` with the proxy's OpenAI-style errors
   (:mod:`.api`): 400 bad body, 403 blocked, 404 unknown model, 413 too large (the body, or a text too long to
   check whole), 429 overloaded, 500 internal error, 503 fail-closed. A large body is parsed off the event loop.

The gRPC message limit is above Envoy's buffer (``ENVOY_BUFFER_BYTES``; keep ``per_connection_buffer_limit_bytes``
at or below it), so an over-limit body gets this server's 413, never a broken stream. ``serve_extproc`` can
serve Prometheus ``/metrics`` on ``metrics_port``.

Any failure answers a JSON error and the stream stays usable; prompt text never reaches a log, not even through
an exception's message.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.type.v3 import http_status_pb2

from ..errors import RouterforgeError
from ..runtime.batcher import QueueFull, TooManyTexts, TooMuchWork
from .api import (
    CHAT,
    CHAT_PATH,
    REQUEST_ID,
    ROUTE_HEADER,
    ApiError,
    bearer_matches,
    blocked,
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
from .config import ServerConfig
from .inspect import Refused

if TYPE_CHECKING:
    from .policy import Decision
    from .service import RouterService

log = logging.getLogger(__name__)

PORT = 50051
MAX_BODY_BYTES = 1_000_000
GRPC_HEADROOM = 64 * 1024  # the headers and framing around a maximal body in one gRPC message
ENVOY_BUFFER_BYTES = 4 * 1024 * 1024  # the largest body Envoy may buffer and send (configs/envoy.yaml stays below)
OFFLOAD_BYTES = 64 * 1024  # bodies above this are parsed off the event loop

Decide = Callable[..., Awaitable["Decision"]]  # decide(body) or decide(body, offload=...)

# Messages Envoy sends only when its filter asks for more than routing needs: acknowledged, nothing changed.
_UNTOUCHED = {
    "response_headers": pb.HeadersResponse,
    "response_body": pb.BodyResponse,
    "request_trailers": pb.TrailersResponse,
    "response_trailers": pb.TrailersResponse,
}
_PREFIX = "x-routerforge-"


def _immediate(err: ApiError) -> pb.ProcessingResponse:
    """The error as a reply Envoy sends itself: the request never reaches a backend."""
    return _reply(err.status, err.body(), err.headers, f"routerforge_{err.code}")


def _reply(status: int, body: dict, headers: dict[str, str], details: str) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(
        immediate_response=pb.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=pb.HeaderMutation(set_headers=_set({"content-type": "application/json"} | headers)),
            body=json.dumps(body).encode("utf-8"),
            details=details,
        )
    )


@dataclass
class _Stream:
    """What one HTTP request's headers said, kept until its body arrives."""

    request_id: str = "-"
    routed: bool = False  # POST /v1/chat/completions: its body goes through decide


class ExtProcServicer(pb_grpc.ExternalProcessorServicer):
    """``envoy.service.ext_proc.v3.ExternalProcessor`` over any async ``decide(body) -> Decision``.

    ``backend_key(name)``: the API key sent to that backend (None: no Authorization header);
    ``forwards_client_auth(name)``: leave the client's Authorization to that backend instead (LiteLLM);
    ``auth_token()``: the bearer token clients must send (None: no check); ``server()``: the
    :class:`ServerConfig` (allowed origins, expose_reasons); ``models()``: what ``GET /v1/models`` lists.
    All are read per request, so a reload takes effect at once.
    """

    def __init__(
        self,
        decide: Decide,
        *,
        route_header: str = ROUTE_HEADER,
        max_body_bytes: int = MAX_BODY_BYTES,
        backend_key: Callable[[str], str | None] = lambda name: None,
        auth_token: Callable[[], str | None] = lambda: None,
        server: Callable[[], ServerConfig] = lambda: ServerConfig.model_validate({}),
        models: Callable[[], list[str]] = lambda: [],
        forwards_client_auth: Callable[[str], bool] = lambda name: False,
    ):
        self.decide, self.route_header, self.max_body_bytes = decide, route_header.lower(), max_body_bytes
        self.forwards_client_auth = forwards_client_auth
        # a decide that takes offload= (RouterService.decide) checks large bodies in a thread
        self._offloadable = "offload" in inspect.signature(decide).parameters
        self.backend_key, self.auth_token, self.server, self.models = backend_key, auth_token, server, models

    async def Process(self, request_iterator, context):
        stream = _Stream()
        async for request in request_iterator:
            kind = request.WhichOneof("request")
            try:
                if kind == "request_headers":
                    answer = self._on_headers(request.request_headers, stream)
                elif kind == "request_body":
                    answer = await self._on_body(request.request_body, stream)
                else:
                    answer = pb.ProcessingResponse(**{kind: _UNTOUCHED[kind]()})
            except ApiError as err:
                answer = _immediate(err)
            except Exception as err:  # noqa: BLE001 - a JSON 500, not a broken stream; its message may quote the body
                log.error("request %s: unhandled %s", stream.request_id, type(err).__name__)
                answer = _immediate(internal_error())
            yield answer

    def _on_headers(self, message: pb.HttpHeaders, stream: _Stream) -> pb.ProcessingResponse:
        # Envoy >= 1.27 sends values in raw_value, older ones in value
        headers = {h.key: h.raw_value.decode("latin-1") if h.raw_value else h.value for h in message.headers.headers}
        given = headers.get("x-request-id", "")
        stream.request_id = given if REQUEST_ID.match(given) else "-"
        token = self.auth_token()
        origin = headers.get("origin")
        if origin is not None and origin not in self.server().allowed_origins:
            raise ApiError(
                403,
                "cross-origin requests are refused; list the origin in server.allowed_origins",
                "invalid_request_error",
                "origin_not_allowed",
            )
        if token is not None and not bearer_matches(headers.get("authorization"), token):
            raise unauthorised()
        method, path = headers.get(":method"), headers.get(":path", "").split("?")[0]
        if method == "GET" and path == "/v1/models":
            data = [
                {"id": model, "object": "model", "created": 0, "owned_by": "routerforge"} for model in self.models()
            ]
            return _reply(200, {"object": "list", "data": data}, {}, "routerforge_models")
        stream.routed = method == "POST" and path == CHAT_PATH
        if not stream.routed:  # nothing else may pass: its body would reach a backend unchecked
            raise unsupported(path)
        if message.end_of_stream:
            raise ApiError(
                400,
                "request body is missing; send a chat completions JSON body",
                "invalid_request_error",
                "invalid_json",
            )
        removed = [self.route_header, *(name for name in headers if name.lower().startswith(_PREFIX))]
        removed = list(dict.fromkeys(removed + (["authorization"] if token is not None else [])))
        return pb.ProcessingResponse(
            request_headers=pb.HeadersResponse(
                response=pb.CommonResponse(
                    header_mutation=pb.HeaderMutation(remove_headers=removed), clear_route_cache=True
                )
            )
        )

    async def _on_body(self, message: pb.HttpBody, stream: _Stream) -> pb.ProcessingResponse:
        if not stream.routed:  # Envoy sent the body anyway (allow_mode_override: false)
            return pb.ProcessingResponse(request_body=pb.BodyResponse())
        if not message.end_of_stream:  # a STREAMED or BUFFERED_PARTIAL filter: the rest would go unread
            log.error("request %s: a partial body (request_body_mode must be BUFFERED)", stream.request_id)
            raise internal_error()
        raw = message.body
        if len(raw) > self.max_body_bytes:
            raise too_large(self.max_body_bytes)
        payload = await asyncio.to_thread(parse_json, raw) if len(raw) > OFFLOAD_BYTES else parse_json(raw)
        validated(CHAT, payload)
        decision = await self._decide(cast(dict, payload), stream.request_id, len(raw) > OFFLOAD_BYTES)
        body = json.dumps(decision.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        expose = self.server().expose_reasons
        backend = decision.backend or ""  # a routed decision always names one (policy.decide)
        headers = decision.headers(expose) | {self.route_header: backend, "content-length": str(len(body))}
        removed = []
        if self.forwards_client_auth(backend):
            pass  # the backend checks the client's own key (no router token: config validation)
        elif key := self.backend_key(backend):
            headers["authorization"] = f"Bearer {key}"
        else:
            removed.append("authorization")
        return pb.ProcessingResponse(
            request_body=pb.BodyResponse(
                response=pb.CommonResponse(
                    header_mutation=pb.HeaderMutation(set_headers=_set(headers), remove_headers=removed),
                    body_mutation=pb.BodyMutation(body=body),
                    clear_route_cache=True,
                )
            )
        )

    async def _decide(self, body: dict, request_id: str, large: bool = False) -> Decision:
        """The routed decision, or the ApiError the proxy would answer (a block, an unknown model, overload)."""
        try:
            decision = await (self.decide(body, offload=True) if large and self._offloadable else self.decide(body))
        except (QueueFull, TooManyTexts, TooMuchWork) as err:
            raise overloaded(err) from None
        except Refused as err:
            raise refused(err) from None
        expose = self.server().expose_reasons
        if decision.backend is None:  # an explicit model no backend serves; the client's string stays out of logs
            log.info("request %s: unknown model", request_id)
            raise unknown_model(decision.model, decision.headers(expose))
        log.info(
            "request %s: model=%s backend=%s action=%s category=%s reasons=%r",
            request_id,
            decision.model,
            decision.backend,
            decision.action,
            decision.category,
            "; ".join(decision.reasons),
        )
        if decision.action == "block":
            raise blocked(decision, expose, self.server().block_status)
        return decision


def _set(headers: dict[str, str]) -> list[base_pb2.HeaderValueOption]:
    """Header writes in ``raw_value``, the field Envoy reads since it started sending it."""
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=k, raw_value=v.encode("utf-8")), append_action=overwrite
        )
        for k, v in headers.items()
    ]


async def start_extproc(
    decide: Decide,
    port: int,
    *,
    host: str = "127.0.0.1",
    route_header: str = ROUTE_HEADER,
    max_body_bytes: int = MAX_BODY_BYTES,
    backend_key: Callable[[str], str | None] = lambda n: None,
    auth_token: Callable[[], str | None] = lambda: None,
    server_config: Callable[[], ServerConfig] = lambda: ServerConfig.model_validate({}),
    models: Callable[[], list[str]] = lambda: [],
    forwards_client_auth: Callable[[str], bool] = lambda name: False,
    reuse_port: bool = False,
) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server (``port=0``: any free port); returns it and the bound port. ``reuse_port``: share
    the port with the other workers of ``extproc --workers N`` (the kernel spreads connections over them)."""
    limit = max(max_body_bytes, ENVOY_BUFFER_BYTES) + GRPC_HEADROOM
    # so_reuseport off unless asked: a second server on a taken port fails instead of silently sharing it
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", int(reuse_port)),
        ]
    )
    pb_grpc.add_ExternalProcessorServicer_to_server(
        ExtProcServicer(
            decide,
            route_header=route_header,
            max_body_bytes=max_body_bytes,
            backend_key=backend_key,
            auth_token=auth_token,
            server=server_config,
            models=models,
            forwards_client_auth=forwards_client_auth,
        ),
        server,
    )
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        raise RouterforgeError(
            f"cannot listen on {host}:{port}", hint="is another server there? pick a free --port"
        ) from None
    await server.start()
    return server, bound


async def serve_extproc(
    service: RouterService,
    port: int = PORT,
    host: str | None = None,
    *,
    route_header: str = ROUTE_HEADER,
    grace_s: float = 5.0,
    metrics_port: int | None = None,
    insecure: bool = False,
    metrics_host: str | None = None,
    reuse_port: bool = False,
    ready=None,
) -> None:
    """Serve ``service`` until SIGINT/SIGTERM (open streams get ``grace_s``); SIGHUP reloads its bundle and
    config off the event loop, and a failed reload keeps the previous ones serving. ``metrics_port``: also
    serve Prometheus ``/metrics`` there, on ``metrics_host`` (default: ``host``; metrics hold no prompt text,
    so a loopback-only gRPC port can still be scraped). A non-loopback host without a client token needs
    ``insecure``. ``reuse_port`` and ``ready`` (set once signals are handled): a worker of :func:`run_extproc`."""
    from prometheus_client import start_http_server

    from .config import AUTO
    from .proxy import check_exposure

    def backend_key(name: str) -> str | None:
        backend = next((b for b in service.config.backends if b.name == name), None)
        return backend.api_key() if backend is not None else None

    def forwards_client_auth(name: str) -> bool:
        return any(b.name == name and b.forward_client_auth for b in service.config.backends)

    host = host or service.config.server.host
    check_exposure(host, service.auth_token, insecure)
    metrics_server = None
    if metrics_port is not None:
        metrics_server, _ = start_http_server(
            metrics_port, addr=metrics_host or host, registry=service.metrics.registry
        )
    async with service:
        server, bound = await start_extproc(
            service.decide,
            port,
            host=host,
            route_header=route_header,
            max_body_bytes=service.config.server.max_body_bytes,
            backend_key=backend_key,
            auth_token=lambda: service.auth_token,
            server_config=lambda: service.config.server,
            models=lambda: [AUTO, *service.config.served_models()],
            forwards_client_auth=forwards_client_auth,
            reuse_port=reuse_port,
        )
        loop, stop = asyncio.get_running_loop(), asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, service.reload_on_signal)
        log.info("ExtProc server on %s:%d", host, bound)  # after the handlers: a signal from now on is handled
        if ready is not None:
            ready.set()
        await stop.wait()
        await server.stop(grace_s)
        if metrics_server is not None:
            metrics_server.shutdown()


def run_extproc(
    bundle,
    config_path,
    host: str | None,
    port: int,
    *,
    route_header: str = ROUTE_HEADER,
    backend: str | None = None,
    threads: int | None = None,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
    insecure: bool = False,
    workers: int = 1,
) -> None:
    """What ``routerforge extproc`` runs: load, then serve until SIGINT/SIGTERM. ``workers`` > 1: that many
    processes (serving/workers.py: spawned, restarted, SIGHUP forwarded) whose gRPC servers share the port
    through SO_REUSEPORT, each with ``threads`` ONNX Runtime threads (default: the cores shared out); the
    supervisor reserves the port (bound, never listening) and serves the workers' summed ``/metrics``."""
    import functools
    import socket

    from .api import ensure_port_free
    from .config import load_router_config
    from .proxy import check_exposure
    from .service import RouterService, client_token
    from .workers import supervise, worker_threads

    config = load_router_config(config_path)
    host = host or config.server.host
    ensure_port_free(host, port)  # before the bundle loads
    _log_to_stderr()
    threads = worker_threads(workers, threads)
    if workers == 1:
        service = RouterService.load(bundle, config_path, backend=backend, threads=threads)
        serving = serve_extproc(
            service,
            port,
            host,
            route_header=route_header,
            insecure=insecure,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        )
        asyncio.run(serving)
        return
    check_exposure(host, client_token(config), insecure)
    reserved = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind((host, port))
        if metrics_port is not None:
            _serve_summed_metrics(metrics_port, metrics_host or host)
        worker = functools.partial(
            _extproc_worker, bundle, config_path, backend, threads, host, port, route_header, insecure
        )
        supervise(workers, reserved, worker)
    finally:
        reserved.close()


def _extproc_worker(bundle, config_path, backend, threads, host, port, route_header, insecure, sock, ready) -> None:
    """One process of ``extproc --workers N``: load, then serve on the shared port (``sock`` is the
    supervisor's reservation: gRPC binds its own socket beside it)."""
    from .service import RouterService

    _log_to_stderr()
    service = RouterService.load(bundle, config_path, backend=backend, threads=threads)
    serving = serve_extproc(
        service, port, host, route_header=route_header, insecure=insecure, reuse_port=True, ready=ready
    )
    asyncio.run(serving)


def _log_to_stderr() -> None:
    """INFO lines with time and logger name: the supervisor's and each worker's."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _serve_summed_metrics(port: int, host: str) -> None:
    """Prometheus ``/metrics`` in the supervisor: every worker's series summed, read at each scrape (the
    multiprocess directory exists only once :func:`~.workers.supervise` has started)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from .workers import summed_registry

    class Summed:
        def collect(self):
            return summed_registry().collect()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Summed())
    start_http_server(port, addr=host, registry=registry)
