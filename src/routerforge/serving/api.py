"""What the proxy and the ExtProc server answer alike, so one request gets the same status from either:
OpenAI-style errors, the body's parsing and validation, the bearer check and request ids.

>>> payload = parse_json(raw)                    # ApiError 400 for anything but a UTF-8 JSON value
>>> chat = validated(CHAT, payload)              # ApiError 400 naming the field, never quoting the input
>>> raise blocked(decision)                      # 403, or 503 for a fail-closed classification failure

Each server turns an :class:`ApiError` into its own reply: a JSON response (proxy) or an Envoy
``immediate_response`` (ExtProc). Header names are lowercase, as Envoy's header mutations want them.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import RouterforgeError
from ..runtime.batcher import QueueFull, TooManyTexts, TooMuchWork
from .config import AUTO
from .inspect import MAX_DEPTH, Refused, json_depth
from .policy import Decision

M = TypeVar("M", bound=BaseModel)

CHAT_PATH = "/v1/chat/completions"
ROUTE_HEADER = "x-routerforge-backend"  # names the backend that answered; Envoy's routes match it
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a client's x-request-id; anything else stays out of logs
RETRY = {"retry-after": "1"}
#: OpenAI paths the router does not serve: refused with a clear error, never forwarded unchecked
UNSUPPORTED_PATHS = ("/v1/completions", "/v1/responses", "/v1/messages", "/v1/embeddings", "/v1/audio", "/v1/files")


class ApiError(Exception):
    """An OpenAI-style error: ``{"error": {"message", "type", "code"}}`` with an HTTP status and headers."""

    def __init__(self, status: int, message: str, type: str, code: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.headers = status, message, type, code, headers or {}

    def body(self) -> dict:
        """The OpenAI-style error JSON."""
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


# -- request bodies (validated; the original dict is what the policy reads and forwards) ------------------------


class Message(BaseModel):
    """One chat message, validated only as far as routing needs."""

    model_config = ConfigDict(extra="allow", strict=True)
    role: str
    content: str | list[dict] | None = None


class ChatRequest(BaseModel):
    """The chat fields the router reads; everything else is checked by serving.inspect."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str = AUTO
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    tools: list[dict] | None = None


CHAT = TypeAdapter(ChatRequest)


def too_large(limit: int) -> ApiError:
    """413: the request is larger than the server accepts."""
    return ApiError(413, f"request body exceeds the {limit}-byte limit", "invalid_request_error", "request_too_large")


def parse_json(raw: bytes) -> object:
    """The body as JSON: 400 for invalid UTF-8 (lone surrogates included), invalid JSON, NaN/Infinity."""
    try:
        payload = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        if json_depth(payload) > MAX_DEPTH:
            raise ApiError(
                400, f"request body nests deeper than {MAX_DEPTH} levels", "invalid_request_error", "too_deep"
            )
        # a \ud800 escape parses into a lone surrogate, which no tokenizer (and no upstream) accepts; only a
        # body holding such an escape needs the (whole-body) check
        if _SURROGATE_ESCAPE.search(raw):
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeError:
        raise ApiError(
            400,
            "request body is not valid UTF-8 (lone surrogates included)",
            "invalid_request_error",
            "invalid_encoding",
        ) from None
    except (ValueError, RecursionError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise ApiError(400, f"request body is not valid JSON{where}", "invalid_request_error", "invalid_json") from None
    return payload


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def validated(adapter: TypeAdapter[M], payload: object) -> M:
    """``payload`` as the adapter's model; 400 naming the first bad field (never echoing the input: prompt text)."""
    if not isinstance(payload, dict):
        raise ApiError(400, "request body must be a JSON object", "invalid_request_error", "invalid_request")
    try:
        return adapter.validate_python(payload)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ApiError(
            400, f"{where}: {message}" if where else message, "invalid_request_error", "invalid_request"
        ) from None


# -- answers ---------------------------------------------------------------------------------------------------


def bearer_matches(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>`` (scheme in any case), compared in constant time."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())


def unauthorised() -> ApiError:
    """401: no or a wrong bearer token."""
    return ApiError(
        401,
        "missing or invalid bearer token",
        "authentication_error",
        "invalid_api_key",
        {"www-authenticate": "Bearer"},
    )


def unknown_model(model: str, headers: dict[str, str] | None = None) -> ApiError:
    """404: the model is not served by any backend."""
    return ApiError(
        404, f"model {model[:64]!r} is not served by this router", "invalid_request_error", "model_not_found", headers
    )


def refused(err: Refused) -> ApiError:
    """What :mod:`.inspect` would not forward: 400 (the field is named), 413 (too many texts)."""
    kind = "request_too_large" if err.status == 413 else err.code
    return ApiError(err.status, err.message, "invalid_request_error", kind)


def unsupported(path: str) -> ApiError:
    """404: an endpoint the router does not serve."""
    return ApiError(
        404,
        f"{path[:64]} is not served by this router (it checks chat completions only); use {CHAT_PATH}",
        "invalid_request_error",
        "unsupported_endpoint",
    )


def overloaded(err: QueueFull | TooManyTexts | TooMuchWork) -> ApiError:
    """A full queue (or too much work ahead) is worth a retry (429); a request that could never be checked in
    time, or holds more texts than the whole queue, never is (413)."""
    if isinstance(err, (TooManyTexts, TooMuchWork)):
        return ApiError(413, str(err), "invalid_request_error", "request_too_large")
    return ApiError(
        429,
        "the router is overloaded (classification queue full); retry shortly",
        "rate_limit_error",
        "queue_full",
        dict(RETRY),
    )


def blocked(decision: Decision, expose_reasons: bool = False, status: int = 403) -> ApiError:
    """403 with the block reason as ``code`` (``status`` 400: OpenAI's and LiteLLM's content-policy error, code
    ``content_policy_violation``, which SDKs raise as BadRequestError); a fail-closed classification failure is
    the router's fault: 503; a text too long to read whole: 413."""
    headers = decision.headers(expose_reasons)
    if decision.block_reason == "text_too_long":
        return ApiError(
            413,
            "a text of this request is too long for the router to check whole; split it or send less",
            "invalid_request_error",
            "text_too_long",
            headers,
        )
    if decision.block_reason == "classification_failed":
        return ApiError(
            503,
            "the router could not classify this request and fails closed; try again",
            "server_error",
            "classification_failed",
            headers | RETRY,
        )
    message = f"request blocked by the router policy: {decision.block_reason}"
    if status == 400:
        return ApiError(400, message, "invalid_request_error", "content_policy_violation", headers)
    return ApiError(403, message, "content_policy_violation", decision.block_reason or "blocked", headers)


def internal_error() -> ApiError:
    """500 with a request id to find in the logs (no details to the client)."""
    return ApiError(500, "internal error", "server_error", "internal_error")


def ensure_port_free(host: str, port: int) -> None:
    """Refuse, in one line, a port another process holds: checked before the bundle loads, instead of the
    server's own error after it."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise RouterforgeError(
                f"cannot listen on {host}:{port}: {err.strerror}", hint="is another server there? pick a free --port"
            ) from None
