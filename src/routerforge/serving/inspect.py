"""What a backend reads in a chat completions request: the one definition the proxy and the ExtProc server share.

Every text a chat template renders (or a backend otherwise hands the model) is returned here to be checked, or
the request is refused: nothing reaches a backend unread. ``texts_to_check`` in :mod:`.policy` reads its
texts from :func:`inspect_chat`.

>>> found = inspect_chat({"messages": [{"role": "user", "content": "hi"}]}, RouterConfig(...).checks)
>>> found[(0, None)]
Text(text='hi', role='user', path=('messages', 0, 'content'))
>>> inspect_chat({"messages": [{"role": "human", "content": "hi"}]}, checks)     # Refused (400): unknown role

What is read (docs/router-config.md, "What the router reads"):

- ``messages``: every message of a known role (system, developer, user, assistant, tool, function); another
  role (``"User"``, ``"human"``) is refused. ``content`` is a string, null, or a list of parts: text-carrying
  parts (``text``, ``input_text``, ``output_text``: ``text``; ``refusal``: ``refusal``; ``thinking``:
  ``thinking``) are read, and consecutive ``text``/``input_text``/``output_text`` parts are first merged into
  one, joined by a newline (a template may glue parts together: they are read, and forwarded, as one text);
  ``checks.skip_part_types`` (default ``image_url``, ``input_audio``) go through unread, an ``image_url`` only
  with an ``http(s)`` or ``data:image/`` URL; any other part type is refused. A part's other keys may hold
  identifiers, numbers and booleans only (``cache_control``), never text. ``refusal``, ``reasoning_content``,
  ``reasoning`` and ``tool_calls[].function.arguments`` (and the legacy ``function_call.arguments``) are read as
  the message's texts; arguments that are JSON are read, and forwarded, in one canonical form (``\u0040``
  escapes decoded, as the backend decodes them).
- Identifiers (``name``, ``tool_call_id``, tool call ids, function and tool names, JSON-schema keys and the
  values of ``type``/``format``/``required``/``$ref``) must match ``IDENTIFIER``, and are read too: each
  message's, each tool's and the response schema's identifiers (and the schema's numbers) make one more text,
  separators turned into spaces, which cannot be redacted (PII there blocks). Any other message field, or other
  key of a tool call, tool or ``tool_choice``, is refused.
- ``tools[].function``: ``description`` and every string of ``parameters`` (a JSON schema) are read, as
  ``system`` texts (chat templates render tool definitions into the system prompt); ``strict`` is a boolean.
- ``response_format``: every string of its ``json_schema`` is read, as a ``system`` text.
- ``chat_template_kwargs``: an object whose keys are in ``checks.template_kwargs`` (default
  ``enable_thinking``), each a boolean, number or null (a string there would be rendered unread).
- Other top-level fields: ``checks.allowed_fields`` (sampling parameters and the like, which no model
  reads as text) are forwarded; any other is refused (``checks.unknown_fields: refuse``) or removed
  (``strip``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RouterforgeError

if TYPE_CHECKING:
    from .config import ChecksConfig

#: Where a text sits. Message texts: ``(message index, None)`` for a string content, ``(message index, part
#: index)`` for a content part, ``(message index, field, ...)`` for its other fields; texts outside the messages
#: start with the top-level field's name (``("tools", 0, "description")``).
TextKey = tuple

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
#: content part type -> the field holding its text
TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal", "thinking": "thinking"}
#: message fields read as the message's own texts
TEXT_FIELDS = ("refusal", "reasoning_content", "reasoning")
MESSAGE_FIELDS = {"role", "content", "name", "tool_calls", "tool_call_id", "function_call", *TEXT_FIELDS}
#: top-level fields the router itself reads or rewrites (always allowed; ``checks.allowed_fields`` adds the rest)
READ_FIELDS = {"model", "messages", "tools", "tool_choice", "response_format", "chat_template_kwargs"}
#: JSON-schema keys whose values name things (identifiers), never prose
_NAMING_KEYS = {"type", "format", "required", "$ref", "$schema"}
IDENTIFIER = re.compile(r"[A-Za-z0-9_.:$/#-]{1,128}")  # fullmatch: no "$" that lets a final newline in
_SEPARATORS = re.compile(r"(?<![0-9])[_.:$/#-]+|[_.:$/#-]+(?![0-9])")  # not between digits: 4111-1111 stays
_SURROGATE = re.compile("[\ud800-\udfff]")
#: content part types merged when consecutive (their text field is ``text``)
MERGED_PARTS = ("text", "input_text", "output_text")
MAX_TEXTS = 4096  # texts one request may hold (beyond: 413)


class Refused(RouterforgeError):
    """A request the router will not forward, with the HTTP status, message and OpenAI-style code to answer
    (the message names the field, never quotes its text)."""

    def __init__(self, message: str, code: str = "invalid_request", status: int = 400):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@dataclass(frozen=True)
class Text:
    """One text a backend will read, with where it sits in the request (for checks and redaction)."""

    text: str
    role: str  # the message's role; ``system`` for tool definitions and response schemas
    path: tuple  # where the text sits in the body (for redaction; for identifiers, the first one's place)
    redactable: bool = True  # False for identifiers gathered from several places: PII there blocks


def _refuse(where: str, what: str, hint: str) -> Refused:
    return Refused(f"{where}: {what}; {hint}")


def _identifier(value: object, where: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise _refuse(where, "must be an identifier (letters, digits, _ . : - at most 128)", "not free text")
    return value


def _words(identifiers: list[str]) -> str:
    """Identifiers as the words they spell (``Ignore_all-rules`` -> ``Ignore all rules``): what a template renders,
    read by the classifier as text."""
    return " ".join(_SEPARATORS.sub(" ", name).strip() for name in identifiers)


def _identifier_only(value: object, where: str) -> None:
    """A part's other keys (``cache_control``): identifiers, numbers, booleans and null, nested; never text."""
    if isinstance(value, dict):
        for name, item in value.items():
            _identifier(name, f"{where} (a key)")
            _identifier_only(item, f"{where}.{name}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _identifier_only(item, f"{where}[{n}]")
    elif isinstance(value, str):
        _identifier(value, where)
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise Refused(f"{where}: must hold identifiers, numbers or booleans only")


def _only_keys(value: dict, allowed: set, where: str) -> None:
    extra = sorted(str(name)[:64] for name in value if name not in allowed)
    if extra:
        raise _refuse(f"{where}.{extra[0]}", "not forwarded by the router", "remove it")


def inspect_chat(request: dict, checks: ChecksConfig) -> dict[TextKey, Text]:
    """Every non-blank text a backend would read in ``request``; Refused for anything it cannot account for.

    Strips the top-level fields ``checks.unknown_fields: strip`` removes (``request`` is changed in place).
    """
    if not isinstance(request, dict):
        raise Refused("request body must be a JSON object")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise Refused("messages: must be a non-empty list of message objects")
    _top_level(request, checks)
    found: dict[TextKey, Text] = {}
    for i, message in enumerate(messages):
        names: list[str] = []
        for key, path, text in _message_texts(i, message, checks, names):
            if text.strip():
                found[key] = Text(text, message["role"], path)
        if names:
            found[(i, "identifiers")] = Text(_words(names), message["role"], ("messages", i), redactable=False)
    for key, path, text in _definition_texts(request):
        if text.strip():
            found[key] = Text(text, "system", path, redactable=key[-1] != "identifiers")
    if len(found) > MAX_TEXTS:
        raise Refused(
            f"the request holds {len(found)} texts to check, more than {MAX_TEXTS}; send fewer messages or parts",
            "too_many_texts",
            413,
        )
    return found


def _top_level(request: dict, checks: ChecksConfig) -> None:
    allowed = READ_FIELDS | set(checks.allowed_fields)
    unknown = [name for name in request if name not in allowed]
    if unknown and checks.unknown_fields == "strip":
        for name in unknown:
            del request[name]
    elif unknown:
        raise _refuse(
            str(unknown[0])[:64],
            "this field is not forwarded by the router",
            "remove it, or list it in checks.allowed_fields if no model reads it as text",
        )
    kwargs = request.get("chat_template_kwargs")
    if kwargs is not None:
        if not isinstance(kwargs, dict):
            raise Refused("chat_template_kwargs: must be an object")
        for name, value in kwargs.items():
            if name not in checks.template_kwargs:
                raise _refuse(f"chat_template_kwargs.{str(name)[:64]}", "not allowed", "see checks.template_kwargs")
            if value is not None and not isinstance(value, (bool, int, float)):
                raise Refused(f"chat_template_kwargs.{name}: must be a boolean, a number or null")
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        _only_keys(choice, {"type", "function"}, "tool_choice")
        if choice.get("type") not in (None, "function"):
            raise Refused("tool_choice.type: must be 'function'")
        function = choice.get("function")
        if not isinstance(function, dict):
            raise Refused("tool_choice.function: must be an object with a name")
        _only_keys(function, {"name"}, "tool_choice.function")
        _identifier(function.get("name"), "tool_choice.function.name")  # a tool's name: read with the tool's
    elif choice is not None and choice not in ("auto", "none", "required"):
        raise Refused("tool_choice: must be 'auto', 'none', 'required' or a function object")


def _message_texts(
    i: int, message: dict, checks: ChecksConfig, names: list[str]
) -> Iterator[tuple[TextKey, tuple, str]]:
    """The message's texts; its identifiers are appended to ``names``."""
    where = f"messages[{i}]"
    role = message.get("role")
    if role not in ROLES:
        raise _refuse(f"{where}.role", "unknown role", f"use one of {', '.join(ROLES)} (lowercase)")
    extra = sorted(str(name)[:64] for name in message if name not in MESSAGE_FIELDS)
    if extra:
        raise _refuse(f"{where}.{extra[0]}", "this message field is not forwarded by the router", "remove it")
    for name in ("name", "tool_call_id"):
        if message.get(name) is not None:
            names.append(_identifier(message[name], f"{where}.{name}"))
    content = message.get("content")
    if isinstance(content, str):
        yield (i, None), ("messages", i, "content"), content
    elif isinstance(content, list):
        content = message["content"] = _merged_parts(content, where, checks)
        for p, part in enumerate(content):
            kind = part["type"]
            if kind in checks.skip_part_types:
                continue
            field = TEXT_PARTS[kind]
            yield (i, p), ("messages", i, "content", p, field), part[field]
    elif content is not None:
        raise Refused(f"{where}.content: must be a string, a list of parts or null")
    for name in TEXT_FIELDS:
        value = message.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Refused(f"{where}.{name}: must be a string")
        yield (i, name), ("messages", i, name), value
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise Refused(f"{where}.tool_calls: must be a list")
        for c, call in enumerate(calls):
            if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                raise Refused(f"{where}.tool_calls[{c}]: must be an object with a function")
            _only_keys(call, {"id", "type", "function", "index"}, f"{where}.tool_calls[{c}]")
            if call.get("type") not in (None, "function"):
                raise Refused(f"{where}.tool_calls[{c}].type: must be 'function'")
            if call.get("index") is not None and (type(call["index"]) is not int):
                raise Refused(f"{where}.tool_calls[{c}].index: must be an integer")
            if call.get("id") is not None:
                names.append(_identifier(call["id"], f"{where}.tool_calls[{c}].id"))
            path: tuple = ("messages", i, "tool_calls", c, "function", "arguments")
            call_where = f"{where}.tool_calls[{c}].function"
            yield from _call_texts(call["function"], call_where, (i, "tool_calls", c), path, names)
    legacy = message.get("function_call")
    if legacy is not None:
        if not isinstance(legacy, dict):
            raise Refused(f"{where}.function_call: must be an object")
        path = ("messages", i, "function_call", "arguments")
        yield from _call_texts(legacy, f"{where}.function_call", (i, "function_call"), path, names)


def _merged_parts(content: list, where: str, checks: ChecksConfig) -> list[dict]:
    """The parts, checked, with each run of consecutive ``MERGED_PARTS`` made one part (newline-joined; the run's
    other keys kept, later ones winning): what is checked is then exactly what the backend renders."""
    out: list[dict] = []
    for p, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        skipped = kind in checks.skip_part_types
        field = TEXT_PARTS.get(kind) if isinstance(kind, str) else None
        if field is None and not skipped:
            raise _refuse(
                f"{where}.content[{p}].type",
                "unknown content part type",
                f"use {', '.join(TEXT_PARTS)}, or list it in checks.skip_part_types to forward it unread",
            )
        payload = kind if skipped else field
        for name, value in part.items():
            if name not in ("type", payload):
                _identifier_only(value, f"{where}.content[{p}].{str(name)[:64]}")
        if skipped:
            if kind == "image_url":
                _image_url(part.get("image_url"), f"{where}.content[{p}].image_url")
            out.append(part)
            continue
        if not isinstance(part.get(field), str):
            raise Refused(f"{where}.content[{p}].{field}: must be a string")
        previous = out[-1] if out else None
        if kind in MERGED_PARTS and previous is not None and previous["type"] in MERGED_PARTS:
            out[-1] = {**previous, **part, "type": previous["type"], "text": previous["text"] + "\n" + part["text"]}
        else:
            out.append(part)
    return out


def _image_url(image: object, where: str) -> None:
    """An image part goes through unread: its URL must point at an image (a ``data:`` URL of another type, a
    text or a PDF, is a document some backends read)."""
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:image/")):
        raise Refused(f"{where}: must be an http(s) URL or a data:image/ URL")
    if isinstance(image, dict):
        _only_keys(image, {"url", "detail"}, where)
        if image.get("detail") is not None:
            _identifier(image["detail"], f"{where}.detail")


def _call_texts(
    function: dict, where: str, key: tuple, path: tuple, names: list[str]
) -> Iterator[tuple[TextKey, tuple, str]]:
    _only_keys(function, {"name", "arguments"}, where)
    names.append(_identifier(function.get("name"), f"{where}.name"))
    arguments = function.get("arguments")
    if arguments is None:
        return
    if not isinstance(arguments, str):
        raise Refused(f"{where}.arguments: must be a string (JSON)")
    function["arguments"] = arguments = _canonical_json(arguments, f"{where}.arguments")
    yield key, path, arguments


def _canonical_json(arguments: str, where: str) -> str:
    """JSON arguments as the backend reads them (it decodes them: ``\\u0040`` is ``@``), written back so that
    what is checked is what is forwarded; text that is not JSON is read and forwarded as it is."""
    try:
        canonical = json.dumps(json.loads(arguments), ensure_ascii=False)
    except (ValueError, RecursionError):
        return arguments
    if _SURROGATE.search(canonical):
        raise Refused(f"{where}: holds a lone surrogate escape")
    return canonical


def _definition_texts(request: dict) -> Iterator[tuple[TextKey, tuple, str]]:
    tools = request.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise Refused("tools: must be a list")
        for t, tool in enumerate(tools):
            where = f"tools[{t}]"
            if not isinstance(tool, dict) or tool.get("type") != "function" or set(tool) - {"type", "function"}:
                raise Refused(f"{where}: must be {{'type': 'function', 'function': {{...}}}}")
            function = tool.get("function")
            if not isinstance(function, dict):
                raise Refused(f"{where}.function: must be an object")
            _only_keys(function, {"name", "description", "parameters", "strict"}, f"{where}.function")
            if function.get("strict") is not None and not isinstance(function["strict"], bool):
                raise Refused(f"{where}.function.strict: must be a boolean")
            names = [_identifier(function.get("name"), f"{where}.function.name")]
            description = function.get("description")
            if description is not None:
                if not isinstance(description, str):
                    raise Refused(f"{where}.function.description: must be a string")
                yield ("tools", t, "description"), ("tools", t, "function", "description"), description
            if function.get("parameters") is not None:
                yield from _schema_texts(function["parameters"], ("tools", t, "function", "parameters"), names)
            yield ("tools", t, "identifiers"), ("tools", t, "function", "name"), _words(names)
    response_format = request.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, dict):
            raise Refused("response_format: must be an object")
        names = []
        yield from _schema_texts(response_format, ("response_format",), names)
        yield ("response_format", "identifiers"), ("response_format",), _words(names)


def _schema_texts(
    value: object, path: tuple, names: list[str], naming: bool = False
) -> Iterator[tuple[TextKey, tuple, str]]:
    """Every string of a JSON value (a schema) is read; keys and naming values must be identifiers and, with its
    numbers (a ``default`` card number), are appended to ``names``."""
    where = ".".join(str(p) for p in path)
    if isinstance(value, str):
        if naming:
            names.append(_identifier(value, where))
        else:
            yield path, path, value
    elif isinstance(value, dict):
        for name, item in value.items():
            names.append(_identifier(name, f"{where} (a key)"))
            yield from _schema_texts(item, (*path, name), names, name in _NAMING_KEYS)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _schema_texts(item, (*path, n), names, naming)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        names.append(str(value))
