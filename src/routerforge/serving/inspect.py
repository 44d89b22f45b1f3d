"""What a backend reads in a chat completions request: the one definition the proxy and the ExtProc server share.

Every text a chat template renders (or a backend otherwise hands the model) is returned here to be checked, or
the request is refused: nothing reaches a backend unread. ``texts_to_check`` in :mod:`.policy` reads its
texts from :func:`inspect_chat`.

>>> found = inspect_chat({"messages": [{"role": "user", "content": "hi"}]}, RouterConfig(...).checks)
>>> found[(0, None)]
Text(text='hi', role='user', path=('messages', 0, 'content'), redactable=True, pii=True)
>>> inspect_chat({"messages": [{"role": "human", "content": "hi"}]}, checks)     # Refused (400): unknown role

What is read (docs/router-config.md, "What the router reads"):

- ``messages``: every message of a known role (system, developer, user, assistant, tool, function); another
  role (``"User"``, ``"human"``) is refused. ``content`` is a string, null, or a list of parts: text-carrying
  parts (``text``, ``input_text``, ``output_text``: ``text``; ``refusal``: ``refusal``; ``thinking``:
  ``thinking``) are read; ``checks.skip_part_types`` (default ``image_url``, ``input_audio``) go through
  unread (an ``image_url`` holding ``data:`` must be ``data:image/``); any other part type is refused. A
  message with several text-carrying parts also has them read joined by newlines, glued, and glued trimmed
  (templates do each): validated PII across a cut there blocks. A part may carry ``PART_EXTRAS`` keys, whose
  strings are read; any other key is refused. ``refusal``, ``reasoning_content``, ``reasoning`` and
  ``tool_calls[].function.arguments`` (and the legacy ``function_call.arguments``) are read as the message's
  texts. JSON arguments are forwarded in one canonical form, read whole (jailbreaks) and string by string
  decoded, as the backend decodes them (PII redacted inside the JSON); other arguments are read as they are,
  unless they hold a backslash (refused).
- Identifiers (``name``, ``tool_call_id``, tool-call ids, function names, schema keys and
  ``type``/``format``/``required``/``$ref`` values) must match ``IDENTIFIER`` and are read: each message's,
  each tool's, ``tool_choice``'s and the response schema's identifiers (with literal numbers, arguments' keys
  and numbers, and the strings of extra keys) make one more text, separators and camelCase read as spaces.
  It cannot be redacted: validated PII there covering whole words blocks. Any other message field, key of a
  tool call, of its function or of ``tool_choice`` is refused.
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
#: start with the top-level field's name (``("tools", 0, "description")``), gathered identifiers with
#: ``"identifiers"`` (no body path starts so).
TextKey = tuple

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
#: content part type -> the field holding its text
TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal", "thinking": "thinking"}
#: other keys a content part may carry (prompt caching, citations, a reasoning signature): their strings are read
PART_EXTRAS = {"cache_control", "annotations", "citations", "signature", "logprobs", "id", "index"}
#: message fields read as the message's own texts
TEXT_FIELDS = ("refusal", "reasoning_content", "reasoning")
MESSAGE_FIELDS = {"role", "content", "name", "tool_calls", "tool_call_id", "function_call", *TEXT_FIELDS}
#: keys of a tool call (``extra_content``, ``provider_specific_fields``: gateways', their strings read)
TOOL_CALL_KEYS = {"id", "type", "function", "index", "extra_content", "provider_specific_fields"}
#: top-level fields the router itself reads or rewrites (always allowed; ``checks.allowed_fields`` adds the rest)
READ_FIELDS = {"model", "messages", "tools", "tool_choice", "response_format", "chat_template_kwargs"}
#: JSON-schema keys whose values name things (identifiers), never prose
_NAMING_KEYS = {"type", "format", "required", "$ref", "$schema"}
#: JSON-schema keys whose values are literal data (numbers there are read: a card number as a ``default``)
_LITERAL_KEYS = {"default", "const", "enum", "examples"}
IDENTIFIER = re.compile(r"[A-Za-z0-9_.:$/#-]{1,128}")  # fullmatch: no "$" that lets a final newline in
#: separators read as spaces, except one "-" or "." between digits (4111-1111, 10.0.0.1)
_SEPARATORS = re.compile(r"(?<![0-9])[_.:$/#-]+|[_.:$/#-]+(?![0-9])|[_:$/#]+|[.-]{2,}")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")  # IgnoreAllRules -> Ignore All Rules
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_TEXTS = 4096  # texts one request may hold (beyond: 413)
MAX_DEPTH = 64  # JSON nesting a request (or a tool call's arguments) may have; chat bodies need about 10


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
    path: tuple  # where the text sits in the body (for redaction; for gathered texts, where they come from)
    redactable: bool = True  # False for texts gathered from several places (identifiers): PII there blocks
    pii: bool = True  # False: read for jailbreaks only (a tool call's whole arguments: their strings are read too)
    json_path: tuple | None = None  # a string inside the JSON at ``path`` (tool-call arguments): redacted there
    cuts: tuple[int, ...] = ()  # where the parts of a joined text meet: only PII across them counts there


def json_depth(value: object) -> int:
    """Nesting depth of a parsed JSON value, without recursion (a hostile body may nest thousands deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _refuse(where: str, what: str, hint: str) -> Refused:
    return Refused(f"{where}: {what}; {hint}")


def _identifier(value: object, where: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise _refuse(where, "must be an identifier (letters, digits, _ . : - at most 128)", "not free text")
    return value


def _words(identifiers: list[str]) -> str:
    """Identifiers as the words they spell (``Ignore_all-rules``, ``IgnoreAllRules`` -> ``Ignore all rules``,
    ``Ignore All Rules``): what a template renders, read by the classifier as text."""
    return " ".join(_CAMEL.sub(" ", _SEPARATORS.sub(" ", name)).strip() for name in identifiers).strip()


def _strings(value: object) -> Iterator[str]:
    """Every key and string of a JSON value (what extra keys carry: read with the identifiers)."""
    return (str(leaf) for at, leaf in _json_leaves(value) if at is None or isinstance(leaf, str))


def _only_keys(value: dict, allowed: set, where: str) -> None:
    extra = sorted(str(name)[:64] for name in value if name not in allowed)
    if extra:
        raise _refuse(f"{where}.{extra[0]}", "not forwarded by the router", "remove it")


def inspect_chat(request: dict, checks: ChecksConfig) -> dict[TextKey, Text]:
    """Every non-blank text a backend would read in ``request``; Refused for anything it cannot account for.

    Strips the top-level fields ``checks.unknown_fields: strip`` removes and writes tool-call arguments in
    their canonical form (``request`` is changed in place; doing it again changes nothing).
    """
    if not isinstance(request, dict):
        raise Refused("request body must be a JSON object")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise Refused("messages: must be a non-empty list of message objects")
    _top_level(request, checks)
    found: dict[TextKey, Text] = {}
    for i, message in enumerate(messages):
        for key, text in _message_texts(i, message, checks):
            if text.text.strip():
                found[key] = text
    for key, text in _definition_texts(request):
        if text.text.strip():
            found[key] = text
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
        _identifier(function.get("name"), "tool_choice.function.name")
    elif choice is not None and choice not in ("auto", "none", "required"):
        raise Refused("tool_choice: must be 'auto', 'none', 'required' or a function object")


def _message_texts(i: int, message: dict, checks: ChecksConfig) -> Iterator[tuple[TextKey, Text]]:
    where, role = f"messages[{i}]", message.get("role")
    if role not in ROLES:
        raise _refuse(f"{where}.role", "unknown role", f"use one of {', '.join(ROLES)} (lowercase)")
    extra = sorted(str(name)[:64] for name in message if name not in MESSAGE_FIELDS)
    if extra:
        raise _refuse(f"{where}.{extra[0]}", "this message field is not forwarded by the router", "remove it")
    names: list[str] = []  # identifiers, ids, the strings of extra keys, arguments' keys and numbers
    for field in ("name", "tool_call_id"):
        if message.get(field) is not None:
            names.append(_identifier(message[field], f"{where}.{field}"))
    content = message.get("content")
    if isinstance(content, str):
        yield (i, None), Text(content, role, ("messages", i, "content"))
    elif isinstance(content, list):
        parts = list(_part_texts(i, content, where, checks, names))
        yield from ((key, Text(text, role, path)) for key, path, text in parts)
        if len(parts) > 1:  # templates join parts with a newline, glue them, or glue them trimmed: read all three
            texts = [text for _, _, text in parts]
            for name, pieces, separator in (
                ("joined", texts, "\n"),
                ("glued", texts, ""),
                ("trimmed", [text.strip() for text in texts], ""),
            ):
                if name == "trimmed" and pieces == texts:
                    continue
                whole, cuts = _joined(pieces, separator)
                yield (i, name), Text(whole, role, ("messages", i, "content"), redactable=False, cuts=cuts)
    elif content is not None:
        raise Refused(f"{where}.content: must be a string, a list of parts or null")
    for name in TEXT_FIELDS:
        value = message.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Refused(f"{where}.{name}: must be a string")
        yield (i, name), Text(value, role, ("messages", i, name))
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise Refused(f"{where}.tool_calls: must be a list")
        for c, call in enumerate(calls):
            call_where = f"{where}.tool_calls[{c}]"
            if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                raise Refused(f"{call_where}: must be an object with a function")
            _only_keys(call, TOOL_CALL_KEYS, call_where)
            if call.get("type") not in (None, "function"):
                raise Refused(f"{call_where}.type: must be 'function'")
            if call.get("index") is not None and type(call["index"]) is not int:
                raise Refused(f"{call_where}.index: must be an integer")
            if call.get("id") is not None:
                names.append(_identifier(call["id"], f"{call_where}.id"))
            names.extend(
                _strings({k: v for k, v in call.items() if k in ("extra_content", "provider_specific_fields")})
            )
            path: tuple = ("messages", i, "tool_calls", c, "function", "arguments")
            yield from _call_texts(call["function"], f"{call_where}.function", (i, "tool_calls", c), path, role, names)
    legacy = message.get("function_call")
    if legacy is not None:
        if not isinstance(legacy, dict):
            raise Refused(f"{where}.function_call: must be an object")
        path = ("messages", i, "function_call", "arguments")
        yield from _call_texts(legacy, f"{where}.function_call", (i, "function_call"), path, role, names)
    if names:
        yield (i, "identifiers"), Text(_words(names), role, ("messages", i), redactable=False)


def _joined(pieces: list[str], separator: str) -> tuple[str, tuple[int, ...]]:
    """The pieces joined, and the offsets where one ends and the next begins."""
    cuts, at = [], 0
    for piece in pieces[:-1]:
        at += len(piece)
        cuts.append(at)
        at += len(separator)
    return separator.join(pieces), tuple(cuts)


def _part_texts(
    i: int, content: list, where: str, checks: ChecksConfig, names: list[str]
) -> Iterator[tuple[TextKey, tuple, str]]:
    """The text-carrying parts' texts; the strings of their ``PART_EXTRAS`` go to ``names``."""
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
        _only_keys(part, {"type", payload, *PART_EXTRAS}, f"{where}.content[{p}]")
        names.extend(_strings({k: v for k, v in part.items() if k in PART_EXTRAS}))
        if skipped:
            if kind == "image_url":
                _image_url(part.get("image_url"), f"{where}.content[{p}].image_url")
            continue
        text = part.get(field)
        if not isinstance(text, str):
            raise Refused(f"{where}.content[{p}].{field}: must be a string")
        yield (i, p), ("messages", i, "content", p, field), text


def _image_url(image: object, where: str) -> None:
    """An image part goes through unread: a ``data:`` URL must hold an image (one of another type, a text or a
    PDF, is a document some gateways hand the model)."""
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise Refused(f"{where}: must be a URL")
    plain = "".join(url.split()).lower()  # " data:", "x-data:..." and the like are data: URLs to some gateways
    if "data:" in plain and not plain.startswith("data:image/"):
        raise Refused(f"{where}: a data: URL must be data:image/")
    if isinstance(image, dict):
        _only_keys(image, {"url", "detail", "format"}, where)
        if image.get("detail") is not None:
            _identifier(image["detail"], f"{where}.detail")
        if image.get("format") is not None and not str(image["format"]).startswith("image/"):
            raise Refused(f"{where}.format: must be an image/ media type")


def _call_texts(
    function: dict, where: str, key: tuple, path: tuple, role: str, names: list[str]
) -> Iterator[tuple[TextKey, Text]]:
    _only_keys(function, {"name", "arguments"}, where)
    names.append(_identifier(function.get("name"), f"{where}.name"))
    arguments = function.get("arguments")
    if arguments is None:
        return
    if not isinstance(arguments, str):
        raise Refused(f"{where}.arguments: must be a string (JSON)")
    if not arguments.strip():
        return
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError):
        if "\\" in arguments:  # escapes another parser might decode into what was not read here
            raise Refused(f"{where}.arguments: must be JSON, or hold no backslash") from None
        yield key, Text(arguments, role, path)  # as it is: a backend renders it raw, or not at all
        return
    if json_depth(value) > MAX_DEPTH:
        raise Refused(f"{where}.arguments: nests deeper than {MAX_DEPTH} levels", "too_deep")
    function["arguments"] = canonical = json.dumps(value, ensure_ascii=False)
    if _SURROGATE.search(canonical):
        raise Refused(f"{where}.arguments: holds a lone surrogate escape")
    yield key, Text(canonical, role, path, redactable=False, pii=False)  # whole, as templates dump it
    for at, leaf in _json_leaves(value):  # decoded (the backend decodes: \u0040 is @, \n a line break)
        if at is None or not isinstance(leaf, str):
            names.append(str(leaf))  # keys and numbers: read with the identifiers
        else:
            yield (*key, "arguments", *at), Text(leaf, role, path, json_path=at)


def _json_leaves(value: object, at: tuple = ()) -> Iterator[tuple[tuple | None, object]]:
    """``(path, value)`` of every string and number inside parsed JSON, and ``(None, key)`` for every key."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield None, name
            yield from _json_leaves(item, (*at, name))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _json_leaves(item, (*at, n))
    elif isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        yield at, value


def _definition_texts(request: dict) -> Iterator[tuple[TextKey, Text]]:
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
                where_in_body: tuple = ("tools", t, "function", "description")
                yield ("tools", t, "description"), Text(description, "system", where_in_body)
            if function.get("parameters") is not None:
                yield from _schema_texts(function["parameters"], ("tools", t, "function", "parameters"), names)
            gathered = Text(_words(names), "system", ("tools", t, "function"), redactable=False)
            yield ("identifiers", "tools", t), gathered
    choice = request.get("tool_choice")  # its shape checked in _top_level
    if isinstance(choice, dict):
        gathered = Text(_words([choice["function"]["name"]]), "system", ("tool_choice",), redactable=False)
        yield ("identifiers", "tool_choice"), gathered
    response_format = request.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, dict):
            raise Refused("response_format: must be an object")
        names = []
        yield from _schema_texts(response_format, ("response_format",), names)
        gathered = Text(_words(names), "system", ("response_format",), redactable=False)
        yield ("identifiers", "response_format"), gathered


def _schema_texts(
    value: object, path: tuple, names: list[str], naming: bool = False, literal: bool = False
) -> Iterator[tuple[TextKey, Text]]:
    """Every string of a JSON value (a schema) is read; keys and naming values must be identifiers and, with
    the numbers of literal values (``default``, ``enum``, ...), are appended to ``names``."""
    where = ".".join(str(p) for p in path)
    if isinstance(value, str):
        if naming:
            names.append(_identifier(value, where))
        else:
            yield path, Text(value, "system", path)
    elif isinstance(value, dict):
        for name, item in value.items():
            names.append(_identifier(name, f"{where} (a key)"))
            yield from _schema_texts(item, (*path, name), names, name in _NAMING_KEYS, literal or name in _LITERAL_KEYS)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _schema_texts(item, (*path, n), names, naming, literal)
    elif literal and isinstance(value, (int, float)) and not isinstance(value, bool):
        names.append(str(value))
