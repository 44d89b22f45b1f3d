"""The routing policy: one chat request and its texts' Signals -> a Decision. Pure: no I/O, no model.

The proxy and the ExtProc server both run it the same way::

    texts = texts_to_check(request, config)                    # {(message, part): text}
    signals = router.classify_batch(list(texts.values()))
    decision = decide(dict(zip(texts, signals)), request, config)
    decision.action, decision.body, decision.headers()

Order of the rules (``docs/router-config.md`` has the details):

0. What is checked: :mod:`.inspect` names every text a backend reads (or refuses the request); a text the
   classifier could not read whole blocks the request (``text_too_long``: 413), never forwards an unread tail.
1. ``failed=True`` (classification raised or timed out): ``fail_mode`` (per check, default closed) blocks
   (``classification_failed``: 503); a check explicitly ``open`` routes with no PII/jailbreak action and the
   tools untouched, recorded in ``Decision.failed_open``.
2. Model: an explicit ``model`` passes through; ``"auto"`` (or none) is routed by the category of the LAST
   user message (the request being answered; earlier turns and tool results do not steer it). Confident
   enough and configured -> the route's highest-scoring model, else ``default_model``. With ``selection:
   expected_accuracy | cost_aware`` the whole category probability vector picks (:func:`_select`); with
   ``selection: learned`` the bundle's selector head, P(correct) per model for this request (:func:`_learned`).
3. Jailbreak: any text of a ``checks.jailbreak_roles`` message flagged -> ``jailbreak.action``.
4. PII: the selected model's policy over every ``checks.pii_roles`` text -> block, redact or allow.
5. Tools: keep those whose intent matches the last user message's predicted intent, at most ``top_k``.
6. Reasoning: a category route's ``reasoning`` flag, sent in the model's style.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..data.intents import NO_FUNCTION
from ..errors import RouterforgeError
from ..runtime.signals import LabelSignal, PiiSpan, Signals
from .config import AUTO, CategoryRoute, ReasoningConfig, ReasoningStyle, RouterConfig
from .inspect import Text, TextKey, inspect_chat

_HEADER_LIMIT = 1024  # characters of the reasons header; proxies reject very long headers
_MODEL_LIMIT = 128  # a client's model name is echoed back cut
#: the types a validator confirms (Luhn, mod-97, the phonenumbers library, ...): what blocks in identifiers, where
#: a learned type would flag an agent's name or a tool called google_search
VALIDATED = frozenset({"CREDIT_CARD", "US_SSN", "IBAN_CODE", "PHONE_NUMBER", "EMAIL_ADDRESS", "IP_ADDRESS"})


@dataclass
class Decision:
    """What to do with one request; ``body`` is what to forward (for a block: the request, untouched)."""

    model: str
    backend: str | None  # name of the backend serving ``model``; None when no backend serves it
    reasoning: bool | None  # the category route's reasoning flag; None when the model was not chosen by category
    action: Literal["route", "block", "redact"]
    reasons: list[str] = field(default_factory=list)  # short, machine-readable; never contain the texts
    category: str | None = None  # predicted category of the last user message (even when not used)
    intent: str | None = None  # predicted intent of the last user message
    tools: list[dict] | None = None  # tools kept; None when the request had no ``tools``
    # jailbreak | pii | classification_failed | jailbreak_unchecked | pii_unchecked | text_too_long
    block_reason: str | None = None
    body: dict = field(default_factory=dict)
    failed_open: tuple[str, ...] = ()  # checks skipped because classification failed under fail_mode open
    truncated: int = 0  # checked texts the classifier could not read whole

    def headers(self, expose_reasons: bool = True) -> dict[str, str]:
        """``x-routerforge-*`` response headers (ASCII, cut to a safe length); ``expose_reasons=False`` leaves
        out the reasons (scores and thresholds are an oracle for tuning attacks; the logs keep them)."""
        headers = {
            "x-routerforge-model": self.model[:_MODEL_LIMIT],
            "x-routerforge-action": self.action,
            "x-routerforge-category": self.category or "none",
        }
        if expose_reasons:
            headers["x-routerforge-reasons"] = "; ".join(self.reasons)[:_HEADER_LIMIT]
        if self.intent is not None:
            headers["x-routerforge-intent"] = self.intent
        if self.reasoning is not None:
            headers["x-routerforge-reasoning"] = "on" if self.reasoning else "off"
        if self.block_reason is not None:
            headers["x-routerforge-block-reason"] = self.block_reason
        return {name: "".join(c if " " <= c <= "~" else "?" for c in value) for name, value in headers.items()}


def _messages(request: dict) -> list[dict]:
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise RouterforgeError(
            "request.messages must be a list of message objects", hint="send an OpenAI chat completions body"
        )
    return messages


def _last_user(messages: list[dict]) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)


def _is_content(key: TextKey) -> bool:
    """A message's content (string or part), as opposed to its other fields or texts outside the messages."""
    return len(key) == 2 and isinstance(key[0], int) and not isinstance(key[1], str)


def checked_texts(request: dict, config: RouterConfig) -> dict[TextKey, Text]:
    """The texts a check reads (PII roles, jailbreak roles, the last user message's content), with role and
    path; Refused (a RouterforgeError with the status to answer) for a request with something no check reads."""
    messages = _messages(request)
    roles = {*config.checks.pii_roles, *config.checks.jailbreak_roles}
    last = _last_user(messages)
    return {
        key: text
        for key, text in inspect_chat(request, config.checks).items()
        if text.role in roles or (key[0] == last and _is_content(key))
    }


def texts_to_check(request: dict, config: RouterConfig) -> dict[TextKey, str]:
    """:func:`checked_texts`, text only: what the classifier is given."""
    return {key: text.text for key, text in checked_texts(request, config).items()}


def _get_path(body: dict, path: tuple):
    for step in path:
        body = body[step]
    return body


def _edited_json(raw: str, changes: list[tuple[tuple, str]]) -> str:
    """JSON text ``raw`` with the strings at each path replaced (the canonical form inspect wrote)."""
    value = json.loads(raw)
    for at, new in changes:
        if not at:
            value = new
            continue
        _set_path(value, at, new)
    return json.dumps(value, ensure_ascii=False)


def _set_path(body, path: tuple, value: str) -> None:
    _get_path(body, path[:-1])[path[-1]] = value


def _where(path: tuple) -> str:
    """Where a text sits, for reasons (never the text): ``messages[2]`` for a message's content (string or
    part), else its path (``messages[1].tool_calls[0].function.arguments``, ``tools[0].function.description``)."""
    if len(path) in (3, 5) and path[0] == "messages" and path[2] == "content":
        return f"messages[{path[1]}]"
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(".")


def _most_confident(found: list[LabelSignal | None]) -> LabelSignal | None:
    """One label for a message of several text parts: the part the head is surest about."""
    present = [signal for signal in found if signal is not None]
    return max(present, key=lambda signal: signal.confidence) if present else None


def _mean_selector(found: list[LabelSignal | None]) -> LabelSignal | None:
    """The selector's P(correct) per model averaged over the last user message's parts (most have one)."""
    parts = [s for s in found if s is not None]
    if len(parts) <= 1:
        return parts[0] if parts else None
    probs = {m: sum(s.probs[m] for s in parts) / len(parts) for m in parts[0].probs}
    best = max(probs, key=probs.__getitem__)
    return LabelSignal(best, probs[best], probs)


def is_auto(model: str | None) -> bool:
    """Whether the request asks the router to choose: ``"auto"``, or no model at all (missing or empty)."""
    return model in (None, "", AUTO)


def _route(
    requested: str | None, category: LabelSignal | None, config: RouterConfig, selector: LabelSignal | None = None
) -> tuple[str, CategoryRoute | None, str]:
    """The model, the category route that chose it (if any), and the reason."""
    if requested is not None and not is_auto(requested):
        return requested, None, f"model={requested} requested"
    default = config.default_model
    if config.selection == "learned":
        model, why = _learned(selector, config)
        route = config.categories.get(category.label) if category is not None else None  # its reasoning flag
        return model, route, why
    if category is None:
        return default, None, f"category missing->{default}"
    seen = f"category={category.label}({category.confidence:.2f})"
    route = config.categories.get(category.label)
    if config.selection != "top_score":
        model, why = _select(category, config)
        return model, route, f"{seen} {why}"
    if route is None:
        return default, None, f"{seen} no route->{default}"
    if category.confidence < config.category_threshold:
        return default, None, f"{seen}<{config.category_threshold:.2f}->{default}"
    return route.best_model(), route, f"{seen}->{route.best_model()}"


def _select(category: LabelSignal, config: RouterConfig) -> tuple[str, str]:
    """``expected_accuracy`` / ``cost_aware``: E[acc(m)] = sum_c p(c) x score(m, c) over the routed categories'
    probabilities (renormalised), minus ``cost_lambda`` x cost, or the cheapest within ``cost_epsilon`` of the best.
    The full vector, not the top label: an unsure request goes to a model good at all its likely categories."""
    default = config.default_model
    probs = {label: p for label, p in (category.probs or {category.label: category.confidence}).items()}
    mass = sum(p for label, p in probs.items() if label in config.categories)
    if mass <= 0:
        return default, f"no routed category->{default}"
    models = list(dict.fromkeys(m for route in config.categories.values() for m in route.model_scores))
    expected = {
        m: sum(p * config.categories[c].model_scores.get(m, 0.0) for c, p in probs.items() if c in config.categories)
        / mass
        for m in models
    }
    return _cost_rule(expected, config, "E[acc]", uses_cost=config.selection == "cost_aware")


def _cost_rule(score: dict[str, float], config: RouterConfig, name: str, uses_cost: bool) -> tuple[str, str]:
    """The model ``score`` (expected accuracy or P(correct)) picks: the highest, or with costs the cheapest within
    ``cost_epsilon`` of the best, else the highest ``score - cost_lambda x model_costs`` (one rule for
    ``cost_aware`` and ``learned``)."""
    if not uses_cost:
        best = max(score, key=score.__getitem__)
        return best, f"{name}={score[best]:.3f}->{best}"
    costs = config.model_costs
    if config.cost_epsilon is not None:
        top = max(score.values())
        best = min((m for m in score if score[m] >= top - config.cost_epsilon), key=costs.__getitem__)
        return best, f"{name}={score[best]:.3f} within {config.cost_epsilon:g} at ${costs[best]:.2f}/1k->{best}"
    best = max(score, key=lambda m: score[m] - config.cost_lambda * costs[m])
    return best, f"{name}={score[best]:.3f} ${costs[best]:.2f}/1k (lambda {config.cost_lambda:g})->{best}"


def _learned(selector: LabelSignal | None, config: RouterConfig) -> tuple[str, str]:
    """``learned``: the selector head's P(correct | request) per model, over the served models it scores; the
    likeliest to be right, or with ``cost_lambda`` / ``cost_epsilon`` the same cost rules as ``cost_aware``."""
    default = config.default_model
    if selector is None:
        return default, f"selector missing->{default}"
    costs = config.model_costs
    uses_cost = config.cost_epsilon is not None or config.cost_lambda > 0
    p = {m: v for m, v in selector.probs.items() if config.backend_for(m) is not None and (m in costs or not uses_cost)}
    if not p:
        return default, f"selector scores no served model->{default}"
    return _cost_rule(p, config, "P(correct)", uses_cost)


def _set_reasoning(body: dict, style: ReasoningStyle, on: bool, settings: ReasoningConfig) -> str:
    """Write the reasoning switch the model understands into ``body``; return the reason."""
    state = "on" if on else "off"
    if style == "qwen3":
        body["chat_template_kwargs"] = {**(body.get("chat_template_kwargs") or {}), "enable_thinking": on}
        return f"reasoning={state}(qwen3)"
    if style == "openai":
        effort = settings.effort_on if on else settings.effort_off
        if effort is None:
            return f"reasoning={state}(openai default)"
        body["reasoning_effort"] = effort
        return f"reasoning={state}(openai {effort})"
    return f"reasoning={state}(not sent)"


def _whole_words(text: str, span: PiiSpan) -> bool:
    """The span starts and ends at word boundaries: a card number that is a key, not digits inside a hex id."""
    return (span.start == 0 or text[span.start - 1].isspace()) and (span.end == len(text) or text[span.end].isspace())


def _redact(text: str, spans: list[PiiSpan]) -> str:
    """Replace each span with ``<ENTITY_TYPE>``; overlapping spans merge (the first one's type names them)."""
    merged: list[list] = []  # [start, end, entity_type]
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        start, end = max(span.start, 0), min(span.end, len(text))
        if start >= end:
            continue
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, span.entity_type])
    for start, end, entity_type in reversed(merged):  # right to left: earlier offsets stay valid
        text = f"{text[:start]}<{entity_type}>{text[end:]}"
    return text


def _tool_intent(tool: dict, config: RouterConfig) -> str | None:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        return None
    return config.tools.intent_of(function["name"], function.get("description") or "")


def _kept_tools(tools: list, request: dict, intent: LabelSignal | None, config: RouterConfig) -> tuple[list, str]:
    """The tools to forward and the reason; see "Tool filtering" in docs/router-config.md."""
    settings = config.tools
    if not settings.enabled:
        return tools, "tools not filtered"
    if request.get("tool_choice", "auto") not in ("auto", "none"):
        return tools, "tools kept: tool_choice"
    if intent is None:
        if config.missing_signals.intent == "keep_all_tools":
            return tools, "intent missing: tools kept"
        return [], "intent missing: tools dropped"
    seen = f"intent={intent.label}({intent.confidence:.2f})"
    if intent.confidence < settings.min_confidence:
        return tools, f"{seen}<{settings.min_confidence:.2f}: tools kept"
    if intent.label == NO_FUNCTION:
        return [], f"{seen}: tools dropped"
    intents = [_tool_intent(tool, config) for tool in tools]
    matching = [i for i, found in enumerate(intents) if found == intent.label]
    unknown = [i for i, found in enumerate(intents) if found is None]
    chosen = set((matching + unknown)[: settings.top_k])
    kept = [tool for i, tool in enumerate(tools) if i in chosen]
    return kept, f"{seen}: tools kept {len(kept)}/{len(tools)}"


def decide(
    signals: dict[TextKey, Signals],
    request: dict,
    config: RouterConfig,
    *,
    failed: bool = False,
    target: str | None = None,
) -> Decision:
    """The decision for ``request`` given the Signals of the texts :func:`texts_to_check` named.

    ``failed``: classification raised (or timed out); ``fail_mode`` decides. ``target``: decide for this model
    instead of the routed one (a fallback backend's model), keeping the category's reasoning flag; its PII
    policy and reasoning style apply. A text with no entry in ``signals`` counts as a missing head.
    """
    messages = _messages(request)
    texts = checked_texts(request, config)
    requested = request.get("model")
    if requested is not None and not isinstance(requested, str):
        raise RouterforgeError("request.model must be a string", hint=f"a served model name or {AUTO!r}")
    category: LabelSignal | None = None
    intent: LabelSignal | None = None
    selector: LabelSignal | None = None
    if not failed:
        last = _last_user(messages)
        user_signals = [
            found for key in texts if key[0] == last and _is_content(key) and (found := signals.get(key)) is not None
        ]
        category = _most_confident([found.category for found in user_signals])
        intent = _most_confident([found.intent for found in user_signals])
        selector = _mean_selector([found.selector for found in user_signals])

    model, route, why = _route(requested, category, config, selector)
    reasons = [why]
    if target is not None and target != model:
        model = target
        reasons.append(f"fallback->{target}")
    backend = config.backend_for(model)
    backend_name = backend.name if backend is not None else None

    def block(block_reason: str) -> Decision:
        return Decision(
            model,
            backend_name,
            None,
            "block",
            reasons,
            category.label if category else None,
            intent.label if intent else None,
            block_reason=block_reason,
            body=copy.deepcopy(request),
        )

    if failed:
        modes = {check: config.fail_mode_of(check) for check in ("jailbreak", "pii")}
        reasons += ["classification_failed", *(f"fail_mode.{check}={mode}" for check, mode in modes.items())]
        if "closed" in modes.values():
            return block("classification_failed")
        body = copy.deepcopy(request)
        body["model"] = model
        tools = body.get("tools")
        return Decision(
            model,
            backend_name,
            None,
            "route",
            reasons,
            tools=tools if isinstance(tools, list) else None,
            body=body,
            failed_open=tuple(modes),
        )

    cut = [key for key in texts if (found := signals.get(key)) and found.truncated]
    if cut:  # an unread tail may hold anything: refuse rather than forward it
        reasons += [f"text too long to check whole: {_where(texts[key].path)}" for key in cut]
        decision = block("text_too_long")
        decision.truncated = len(cut)
        return decision

    def role_keys(roles: Sequence[str]) -> list[TextKey]:
        return [key for key in texts if texts[key].role in roles]

    # jailbreak
    settings = config.jailbreak
    flagged, unchecked = False, False
    for key in role_keys(config.checks.jailbreak_roles):
        found = signals.get(key)
        if found is None or found.jailbreak is None:
            unchecked = True
            continue
        signal = found.jailbreak
        if settings.threshold is None:
            threshold, hit = signal.threshold, signal.flagged
        else:
            threshold, hit = settings.threshold, signal.p_jailbreak >= settings.threshold
        if hit:
            flagged = True
            reasons.append(
                f"jailbreak p={signal.p_jailbreak:.2f}>={threshold:.2f} {_where(texts[key].path)}"
                + (" allowed" if settings.action == "allow" else "")
            )
    if unchecked:
        reasons.append(f"jailbreak signal missing: {config.missing_signals.jailbreak}")
        if config.missing_signals.jailbreak == "block":
            return block("jailbreak_unchecked")
    if flagged and settings.action == "block":
        return block("jailbreak")

    # PII, under the selected model's policy
    policy = config.pii_policy(model)
    allowed = {entity_type.upper() for entity_type in policy.allowed_types}
    found_spans: dict[TextKey, list[PiiSpan]] = {}
    unchecked = False
    for key in role_keys(config.checks.pii_roles):
        if not texts[key].pii:
            continue
        found = signals.get(key)
        if found is None or found.pii is None:
            unchecked = True
            continue
        spans = [s for s in found.pii if s.score >= policy.threshold and s.entity_type.upper() not in allowed]
        if not texts[key].redactable:  # validated values only (an agent called Alice is not PII here) that are
            # across parts (joined texts: each part is read on its own too) or whole words (identifiers)
            text = texts[key]
            spans = [
                s
                for s in spans
                if s.entity_type.upper() in VALIDATED
                and (any(s.start < cut < s.end for cut in text.cuts) if text.cuts else _whole_words(text.text, s))
            ]
        if spans:
            found_spans[key] = spans
    if unchecked:
        reasons.append(f"pii signal missing: {config.missing_signals.pii}")
        if config.missing_signals.pii == "block":
            return block("pii_unchecked")
    verb = {"block": "blocked", "redact": "redacted", "allow": "allowed"}[policy.action]
    entity_types = dict.fromkeys(s.entity_type for spans in found_spans.values() for s in spans)
    reasons += [f"pii {entity_type} {verb}" for entity_type in entity_types]
    if found_spans and policy.action == "block":
        return block("pii")
    fixed = [key for key in found_spans if not texts[key].redactable] if policy.action == "redact" else []
    if fixed:  # identifiers (names, schema keys) and values split over parts cannot be redacted: PII there blocks
        reasons += [f"pii not redactable (identifiers, or across parts): {_where(texts[key].path)}" for key in fixed]
        return block("pii")

    body = copy.deepcopy(request)
    body["model"] = model
    if policy.action == "redact":
        inside_json: dict[tuple, list[tuple[tuple, str]]] = {}
        for key, spans in found_spans.items():
            text = texts[key]
            if text.json_path is None:
                _set_path(body, text.path, _redact(text.text, spans))
            else:  # a string of tool-call arguments: redacted in the decoded value, written back as JSON
                inside_json.setdefault(text.path, []).append((text.json_path, _redact(text.text, spans)))
        for path, changes in inside_json.items():
            _set_path(body, path, _edited_json(_get_path(body, path), changes))

    tools = body.get("tools")
    if isinstance(tools, list):
        tools, why = _kept_tools(tools, request, intent, config)
        reasons.append(why)
        if tools:
            body["tools"] = tools
        else:  # an empty tools list, or tool_choice / parallel_tool_calls without tools, is a 400 for most servers
            for name in ("tools", "tool_choice", "parallel_tool_calls"):
                body.pop(name, None)
    else:
        tools = None

    reasoning = route.reasoning if route is not None else None
    if reasoning is not None:
        reasons.append(_set_reasoning(body, config.reasoning_style(model), reasoning, config.reasoning))
    action: Literal["route", "redact"] = "redact" if found_spans and policy.action == "redact" else "route"
    return Decision(
        model,
        backend_name,
        reasoning,
        action,
        reasons,
        category.label if category else None,
        intent.label if intent else None,
        tools,
        None,
        body,
    )
