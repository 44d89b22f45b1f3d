"""The router's YAML schema: backends, category routes, PII / jailbreak / tool policies, server limits.

DESIGN.md puts the router schema in ``routerforge/config.py`` next to the training schema; it lives here
instead because ``routerforge.config`` imports the training modules, and serving must stay light (no torch,
no transformers). Every field is documented in ``docs/router-config.md``.

>>> config = load_router_config("configs/router.example.yaml")
>>> config.backend_for("qwen3-8b").base_url
'http://localhost:8000/v1'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ..data.intents import IntentRules, intent_for_function, load_rules
from ..runtime.recognizers import RecognizerConfig

ReasoningStyle = Literal["qwen3", "openai", "none"]
#: Roles a check may name (``developer`` is OpenAI's newer name for ``system``; ``function`` the legacy ``tool``).
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
#: The model name that asks the router to choose.
AUTO = "auto"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _fail(path: str, message: str) -> None:
    """Cross-field errors carry their own field path (pydantic gives model validators an empty location)."""
    raise ValueError(f"field {path}: {message}")


def auto_reasoning_style(model: str) -> ReasoningStyle:
    """Style guessed from the name: ``qwen3*`` -> qwen3; ``o1``/``o3``/``o4*``/``gpt-5*`` -> openai; else none."""
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith("qwen3"):
        return "qwen3"
    if re.match(r"o\d(\b|-)|gpt-5", name):
        return "openai"
    return "none"


class BackendConfig(_Strict):
    """One OpenAI-compatible server (vLLM, SGLang, OpenAI, ...) and the models it serves."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$", description="unique name; fallbacks and logs refer to it")
    base_url: str = Field(pattern=r"^https?://", description="API root, e.g. http://localhost:8000/v1")
    api_key_env: str | None = Field(
        None, description="environment variable holding the API key (sent as Bearer); null: no Authorization header"
    )
    models: list[str] = Field(min_length=1, description="model names this backend serves, as sent in 'model'")
    timeout_s: float = Field(60, gt=0, description="seconds to wait for the backend's response")
    fallback: str | None = Field(None, description="backend tried next on connection errors and 5xx responses")
    forward_client_auth: bool = Field(
        False,
        description=(
            "send the client's own Authorization header to this backend instead of api_key_env's key (a LiteLLM "
            "behind the router keeps per-user keys and budgets); needs server.auth_token_env null"
        ),
    )

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            # the value is not quoted: it may be a key pasted by mistake, and this message reaches logs
            raise ValueError(
                "is not an environment variable name; give the NAME (e.g. OPENAI_API_KEY), never the key itself"
            )
        return value

    @field_validator("models")
    @classmethod
    def _not_auto(cls, value: list[str]) -> list[str]:
        if AUTO in value:
            raise ValueError(f"{AUTO!r} is reserved (it asks the router to choose); rename the model")
        return value

    def api_key(self) -> str | None:
        """The key from ``api_key_env``, read at call time so rotating the variable needs no reload."""
        if self.api_key_env is None:
            return None
        return os.environ.get(self.api_key_env) or None


class CategoryRoute(_Strict):
    """Where one category's requests go."""

    model_scores: dict[str, float] = Field(
        min_length=1, description="model -> score; the highest score wins (ties: the first listed)"
    )
    reasoning: bool = Field(False, description="turn the model's reasoning (thinking) on for this category")

    @field_validator("model_scores")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        negative = [model for model, score in value.items() if score < 0]
        if negative:
            raise ValueError(f"scores must be >= 0 ({', '.join(negative)}); use 0 for a model to avoid")
        return value

    def best_model(self) -> str:
        """The model with the highest of this category's ``model_scores``."""
        return max(self.model_scores, key=self.model_scores.__getitem__)


class ReasoningConfig(_Strict):
    """How a category's ``reasoning`` flag reaches each model."""

    styles: dict[str, ReasoningStyle] = Field(
        default_factory=dict,
        description=(
            "model -> qwen3 (chat_template_kwargs.enable_thinking) | openai (reasoning_effort) | none (nothing sent); "
            "models not listed get a style from their name (qwen3* -> qwen3, o1/o3/o4/gpt-5 -> openai, else none)"
        ),
    )
    effort_on: Literal["minimal", "low", "medium", "high"] = Field(
        "high", description="openai style: reasoning_effort sent when the category's reasoning is on"
    )
    effort_off: Literal["minimal", "low", "medium", "high"] | None = Field(
        "low", description="openai style: reasoning_effort sent when it is off (null: leave the model's default)"
    )


class PiiPolicy(_Strict):
    """What to do with PII found in the checked messages."""

    action: Literal["block", "redact", "allow"] = Field(
        "redact",
        description=("block: refuse the request; redact: replace each span with <ENTITY_TYPE>; allow: forward as is"),
    )
    allowed_types: list[str] = Field(
        default_factory=list,
        description=(
            "entity types always let through (case-insensitive), e.g. [GPE]; types unknown to the model are fine"
        ),
    )
    threshold: float = Field(0.5, ge=0, le=1, description="spans scoring below this are ignored")


class PiiConfig(_Strict):
    """What to do with PII per model (``pii`` in the router YAML) and which recognizers run."""

    default: PiiPolicy = Field(default_factory=PiiPolicy, description="policy for every model not in models")
    models: dict[str, PiiPolicy] = Field(
        default_factory=dict, description=("model -> its own policy (e.g. stricter for an external API)")
    )
    recognizers: RecognizerConfig | None = Field(
        None,
        description=(
            "validated PII recognizers run next to the PII head (enabled, disabled, custom regex recognizers, "
            "min_score); each field set replaces the bundle's pii_recognizers (docs/runtime.md)"
        ),
    )


#: Top-level chat fields forwarded by default: none of them is text a model reads.
DEFAULT_FIELDS = [
    "stream", "stream_options", "temperature", "top_p", "top_k", "min_p", "max_tokens", "max_completion_tokens",
    "n", "stop", "seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias", "logprobs",
    "top_logprobs", "parallel_tool_calls", "reasoning_effort", "min_tokens", "ignore_eos", "skip_special_tokens",
    "add_generation_prompt", "continue_final_message", "store", "service_tier",
]  # fmt: skip


class ChecksConfig(_Strict):
    """Which texts each check reads, and what else a request may carry (serving/inspect.py: what a backend reads;
    the category and intent always come from the last user message)."""

    pii_roles: list[Role] = Field(
        ["system", "developer", "user", "assistant", "tool", "function"],
        description="roles whose text is checked for PII and redacted (tool definitions count as system)",
    )
    jailbreak_roles: list[Role] = Field(
        ["system", "developer", "user", "assistant", "tool", "function"],
        description=(
            "roles whose text is checked for jailbreaks; every role is client-written (tool results carry indirect "
            "prompt injections, assistant turns prefill); tool definitions count as system"
        ),
    )
    skip_part_types: list[str] = Field(
        ["image_url", "input_audio"],
        description=(
            "content part types forwarded unread (the router has no check for them); any other non-text type: 400"
        ),
    )
    allowed_fields: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FIELDS),
        description=(
            "top-level fields forwarded besides those the router reads (model, messages, tools, tool_choice, "
            "response_format, chat_template_kwargs); list only fields no model reads as text"
        ),
    )
    unknown_fields: Literal["refuse", "strip"] = Field(
        "refuse", description="a top-level field not allowed: refuse (400 naming it) or strip (removed, not forwarded)"
    )
    template_kwargs: list[str] = Field(
        ["enable_thinking"],
        description="chat_template_kwargs keys a client may send (values: boolean, number or null)",
    )


class FailModeConfig(_Strict):
    """Per check: what a request gets when its classification fails or times out."""

    jailbreak: Literal["open", "closed"] = Field("closed", description="open: forward unchecked; closed: 503")
    pii: Literal["open", "closed"] = Field("closed", description="open: forward unchecked; closed: 503")


class JailbreakConfig(_Strict):
    """The jailbreak check's threshold override and action (``jailbreak`` in the router YAML)."""

    action: Literal["block", "allow"] = Field(
        "block", description="block: refuse flagged requests; allow: only record the reason"
    )
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "flag when p_jailbreak >= this; null: the bundle's calibrated threshold (Signals.jailbreak.flagged)"
        ),
    )


class ToolsConfig(_Strict):
    """Tool filtering: keep the tools whose intent matches the request's predicted intent."""

    enabled: bool = Field(True, description="filter the request's tools; false: forward them untouched")
    top_k: int = Field(3, ge=1, description="keep at most this many tools")
    min_confidence: float = Field(0.0, ge=0, le=1, description="below this intent confidence all tools are kept")
    map: dict[str, str] = Field(
        default_factory=dict, description=("tool (function) name -> intent; checked before the rule table")
    )
    rules: str | None = Field(
        None,
        description=(
            "intent rule table YAML (as for training; relative to this file); null: the built-in table. Use the "
            "table the intent model was trained with"
        ),
    )
    _rules: IntentRules | None = PrivateAttr(None)

    def model_post_init(self, __context: Any) -> None:
        if self.rules is not None:
            self._rules = load_rules(self.rules)  # a bad table raises a RouterforgeError naming its file

    @field_validator("map")
    @classmethod
    def _non_empty(cls, value: dict[str, str]) -> dict[str, str]:
        empty = [name for name, intent in value.items() if not intent]
        if empty:
            raise ValueError(f"tools {empty} map to an empty intent; give an intent label")
        return value

    def intent_of(self, name: str, description: str = "") -> str | None:
        """The tool's intent: ``map`` first, then the same rule table that labelled the intent training data."""
        return self.map.get(name) or intent_for_function(name, description, self._rules)


class MissingSignalsConfig(_Strict):
    """What the policy does when the bundle lacks a head (guard-only bundles) or a text has no signals."""

    category: Literal["default_model"] = Field("default_model", description="route to default_model")
    intent: Literal["keep_all_tools", "drop_all_tools"] = Field(
        "keep_all_tools", description=("keep_all_tools: forward the tools unfiltered; drop_all_tools: remove them")
    )
    pii: Literal["no_action", "block"] = Field("no_action", description="no_action: forward; block: refuse")
    jailbreak: Literal["not_checked", "block"] = Field(
        "not_checked", description=("not_checked: forward; block: refuse")
    )


class ServerConfig(_Strict):
    """Limits of the proxy and ExtProc servers."""

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every interface)")
    port: int = Field(8080, ge=1, le=65535, description="port to listen on")
    max_batch_size: int = Field(16, ge=1, description="texts classified in one encoder call")
    max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="how long a batch waits to fill before it runs; 0 (adaptive): at once when the worker is idle, "
        "texts that arrive while it is busy form the next batch",
    )
    queue_size: int = Field(4096, ge=1, description="texts waiting for classification; beyond it requests get 429")
    max_queue_ms: float | None = Field(
        70.0,
        gt=0,
        description=(
            "admission control: a request that would wait longer than this to be checked (queued work estimated "
            "from measured encoder calls, plus its own) gets 429 with Retry-After at once, before its body is read "
            "when the queue alone is too long; null: only queue_size and classify_timeout_s limit the wait"
        ),
    )
    max_body_bytes: int = Field(1_000_000, ge=1, description="larger request bodies get 413")
    signal_cache: int = Field(
        4096,
        ge=0,
        description=(
            "checked texts whose signals are kept (least recently used out; about 4 KB of signals per entry at "
            "most on average), so a conversation's earlier messages are not classified again each turn; a reload "
            "empties it; 0: off (a hit answers sooner, which a client timing its requests could notice)"
        ),
    )
    auth_token_env: str | None = Field(
        None,
        description=(
            "environment variable holding the token clients must send as 'Authorization: Bearer'; null: no auth"
        ),
    )
    classify_timeout_s: float = Field(
        5.0, gt=0, description="classification slower than this counts as failed (fail_mode applies)"
    )
    max_batch_chars: int = Field(
        16_000, ge=1, description="characters classified in one encoder call (at least one text): long texts go fewer"
    )
    allowed_hosts: list[str] | None = Field(
        None,
        description=(
            "Host header values accepted (without port; '*': any); null: loopback names only without auth_token_env, "
            "any with it (DNS rebinding needs no token)"
        ),
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="browser Origin values accepted (e.g. https://app.example.com); a request with another Origin: 403",
    )
    expose_reasons: bool = Field(
        False,
        description=(
            "send x-routerforge-reasons (scores, thresholds) to clients; false: action and block reason only, the "
            "reasons stay in the logs (exact scores are an oracle for tuning attacks)"
        ),
    )
    max_connections: int = Field(
        512, ge=1, description="concurrent connections and requests (uvicorn limit_concurrency); beyond: 503"
    )
    body_timeout_s: float = Field(10.0, gt=0, description="seconds to receive a request body; slower: 408")
    header_timeout_s: float = Field(
        10.0, gt=0, description="seconds a new connection has to send its request headers; slower: closed"
    )
    max_upstream_bytes: int = Field(
        16_000_000, ge=1, description="largest non-streamed backend answer relayed; larger: 502"
    )
    block_status: Literal[403, 400] = Field(
        403,
        description=(
            "HTTP status of a policy block: 403 (code = the block reason), or 400 with code content_policy_violation "
            "as OpenAI and LiteLLM answer (SDKs raise BadRequestError; the reason stays in the message)"
        ),
    )

    @field_validator("auth_token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "is not an environment variable name; give the NAME (e.g. ROUTERFORGE_TOKEN), never the token"
            )
        return value


class RouterConfig(_Strict):
    """The whole router: which backends serve which models, and the policy that picks one per request."""

    bundle: str | None = Field(
        None,
        description=(
            "serving bundle directory (relative to this file) or hf:ORG/NAME[@REVISION] (a Hub model repository); "
            "the CLI's BUNDLE argument wins"
        ),
    )
    backends: list[BackendConfig] = Field(min_length=1, description="the OpenAI-compatible servers")
    default_model: str = Field(description="used when the category is unknown, unsure or missing")
    categories: dict[str, CategoryRoute] = Field(default_factory=dict, description="category label -> route")
    category_threshold: float = Field(
        0.5, ge=0, le=1, description="below this category confidence the default model is used"
    )
    selection: Literal["top_score", "expected_accuracy", "cost_aware", "learned"] = Field(
        "top_score",
        description=(
            "top_score: the predicted category's highest model_scores entry; expected_accuracy: model_scores are "
            "accuracies and the model with the highest sum_c p(c) x score(m, c) over the category probabilities "
            "wins (category_threshold unused); cost_aware: the same minus cost_lambda x model_costs; learned: the "
            "bundle's selector head, P(correct) per served model for this request (with cost_lambda or "
            "cost_epsilon, the same cost rules; routerforge train-selector; docs/routing.md)"
        ),
    )
    cost_lambda: float = Field(
        0.0,
        ge=0,
        description="cost_aware, learned: accuracy given up per USD per 1,000 requests (0: no cost term)",
    )
    cost_epsilon: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "cost_aware, learned: instead of cost_lambda, the cheapest model within this of the best expected accuracy"
        ),
    )
    model_costs: dict[str, float] = Field(
        default_factory=dict,
        description="model -> USD per 1,000 requests (routerforge route-config writes them); cost_aware needs each",
    )
    reasoning: ReasoningConfig = Field(default_factory=ReasoningConfig, description="reasoning style per model")
    pii: PiiConfig = Field(default_factory=PiiConfig, description="PII policy: default and per model")
    jailbreak: JailbreakConfig = Field(default_factory=JailbreakConfig, description="jailbreak policy")
    checks: ChecksConfig = Field(default_factory=ChecksConfig, description="which roles each check reads")
    tools: ToolsConfig = Field(default_factory=ToolsConfig, description="tool filtering by intent")
    fail_mode: FailModeConfig = Field(
        default_factory=FailModeConfig,
        description=(
            "when classification fails or times out: closed refuses (503 + Retry-After); open forwards unchecked "
            "(counted in routerforge_fail_open_total, logged); one value for both checks, or {jailbreak: .., pii: ..}"
        ),
    )
    missing_signals: MissingSignalsConfig = Field(
        default_factory=MissingSignalsConfig, description="fallbacks when a head is missing"
    )
    server: ServerConfig = Field(default_factory=ServerConfig, description="server limits")

    @model_validator(mode="after")
    def _consistent(self) -> RouterConfig:
        names = [backend.name for backend in self.backends]
        by_name = dict(zip(names, self.backends))
        for index, name in enumerate(names):
            if names.index(name) != index:
                _fail(f"backends[{index}].name", f"two backends are named {name!r}; give each a unique name")
        for index, backend in enumerate(self.backends):
            where = f"backends[{index}]"
            if backend.fallback == backend.name:
                _fail(f"{where}.fallback", "a backend cannot be its own fallback; name another backend or drop it")
            if backend.fallback is not None and backend.fallback not in by_name:
                _fail(f"{where}.fallback", f"no backend is named {backend.fallback!r}; choose one of {names}")
        for index, backend in enumerate(self.backends):
            chain = [backend.name]
            while (step := by_name[chain[-1]].fallback) is not None:
                if step in chain:
                    _fail(
                        f"backends[{index}].fallback",
                        f"fallbacks loop ({' -> '.join([*chain, step])}); end the chain at a backend without fallback",
                    )
                chain.append(step)
        if self.server.auth_token_env is not None:
            for index, backend in enumerate(self.backends):
                if backend.forward_client_auth:
                    _fail(
                        f"backends[{index}].forward_client_auth",
                        "the client's Authorization carries the router's token (server.auth_token_env) and would "
                        "reach the backend; set server.auth_token_env null (the backend checks the key) or drop it",
                    )
        self._served("default_model", self.default_model)
        for label, route in self.categories.items():
            for model in route.model_scores:
                self._served(f"categories.{label}.model_scores", model)
        for model in self.pii.models:
            self._served(f"pii.models.{model}", model)
        for model in self.reasoning.styles:
            self._served(f"reasoning.styles.{model}", model)
        return self

    @model_validator(mode="after")
    def _selection_fields(self) -> RouterConfig:
        """Scores must be accuracies for the expected-accuracy rules; cost_aware needs a cost for every model."""
        if self.selection in ("top_score", "learned"):  # learned: costs are checked against the selector's models
            return self._costs_valid()
        for label, route in self.categories.items():
            high = [model for model, score in route.model_scores.items() if score > 1]
            if high:
                _fail(
                    f"categories.{label}.model_scores",
                    f"selection {self.selection} reads scores as accuracies in [0, 1]; {high} score above 1",
                )
        if self.selection == "cost_aware":
            routed = dict.fromkeys(m for route in self.categories.values() for m in route.model_scores)
            missing = [model for model in routed if model not in self.model_costs]
            if missing:
                _fail("model_costs", f"selection cost_aware needs a cost for {missing} (USD per 1,000 requests)")
        return self._costs_valid()

    def _costs_valid(self) -> RouterConfig:
        for model, cost in self.model_costs.items():
            if cost < 0:
                _fail(f"model_costs.{model}", "must be >= 0")
        return self

    def _served(self, path: str, model: str) -> None:
        if self.backend_for(model) is None:
            _fail(
                path,
                f"model {model!r} is not served by any backend; add it to a backend's models "
                f"(served: {', '.join(self.served_models())})",
            )

    def served_models(self) -> list[str]:
        """Every model some backend serves, in config order (what ``GET /v1/models`` lists)."""
        return list(dict.fromkeys(model for backend in self.backends for model in backend.models))

    def backend_for(self, model: str) -> BackendConfig | None:
        """The first backend listing ``model`` (replicas further down are reached as fallbacks)."""
        return next((backend for backend in self.backends if model in backend.models), None)

    def targets(self, model: str) -> list[tuple[BackendConfig, str]]:
        """``(backend, model)`` pairs to try in order: the model's backend, then its fallback chain.

        A fallback that does not serve ``model`` gets its first listed model instead; re-run
        :func:`~routerforge.serving.policy.decide` with ``target=`` for that model so its PII policy and
        reasoning style apply. Empty when no backend serves ``model``.
        """
        backend = self.backend_for(model)
        if backend is None:
            return []
        by_name = {b.name: b for b in self.backends}
        pairs = [(backend, model)]
        while backend.fallback is not None:
            backend = by_name[backend.fallback]
            pairs.append((backend, model if model in backend.models else backend.models[0]))
        return pairs

    @field_validator("fail_mode", mode="before")
    @classmethod
    def _one_fail_mode(cls, value: object) -> object:
        """``fail_mode: open`` is short for ``{jailbreak: open, pii: open}``."""
        if isinstance(value, str):
            if value not in ("open", "closed"):
                raise ValueError("must be 'open' or 'closed', or a mapping {jailbreak: open|closed, pii: open|closed}")
            return {"jailbreak": value, "pii": value}
        return value

    def fail_mode_of(self, check: Literal["jailbreak", "pii"]) -> Literal["open", "closed"]:
        """The fail mode of one check (``closed`` unless configured ``open``)."""
        return getattr(self.fail_mode, check)

    def pii_policy(self, model: str) -> PiiPolicy:
        """The PII policy for a model: its own entry, else the default."""
        return self.pii.models.get(model, self.pii.default)

    def reasoning_style(self, model: str) -> ReasoningStyle:
        """How a model's backend turns reasoning on and off."""
        return self.reasoning.styles.get(model) or auto_reasoning_style(model)

    def check_heads(
        self, heads: set[str], category_labels: list[str] | None = None, selector_models: list[str] | None = None
    ) -> list[str]:
        """Warnings for a bundle with only ``heads`` (these category labels, this selector pool): what falls back
        or is never chosen, and why."""
        warnings = []
        if self.selection == "learned" and selector_models is not None:
            uses_cost = self.cost_epsilon is not None or self.cost_lambda > 0
            unserved = [m for m in selector_models if self.backend_for(m) is None]
            priceless = [m for m in selector_models if uses_cost and m not in self.model_costs and m not in unserved]
            if unserved:
                warnings.append(f"selector models {unserved} have no backend: never chosen")
            if priceless:
                warnings.append(f"selector models {priceless} have no model_costs entry: never chosen")
        if "category" not in heads and self.categories:
            warnings.append(f"no category head: every 'auto' request goes to default_model {self.default_model!r}")
        for head in ("intent", "pii", "jailbreak"):
            if head not in heads and (head != "intent" or self.tools.enabled):
                warnings.append(
                    f"no {head} head: missing_signals.{head}="
                    f"{getattr(self.missing_signals, head)} applies to every request"
                )
        if self.selection == "learned" and "selector" not in heads:
            warnings.append(
                f"selection learned but no selector head: every 'auto' request goes to default_model "
                f"{self.default_model!r} (add one: routerforge train-selector BUNDLE)"
            )
        if "category" in heads and category_labels is not None:
            unknown = sorted(set(self.categories) - set(category_labels))
            if unknown:
                warnings.append(
                    f"categories {unknown} are not labels of the category head, so they never match "
                    f"(labels: {', '.join(category_labels)})"
                )
        return warnings


def _resolve_paths(raw: dict, base: Path) -> None:
    """Relative ``bundle`` and ``tools.rules`` paths mean: next to the config file."""
    holders = [(raw, "bundle")]
    if isinstance(raw.get("tools"), dict):
        holders.append((raw["tools"], "rules"))
    for holder, key in holders:
        value = holder.get(key)
        if isinstance(value, str) and not value.startswith("hf:"):  # hf:ORG/NAME: a Hub bundle (routerforge.hub)
            holder[key] = str(base / Path(value).expanduser())  # an absolute path stays as it is


def load_router_config(path: str | Path) -> RouterConfig:
    """Read and validate a router YAML file; errors name the file, the line, the field path and the fix."""
    from ..io import load_yaml

    path = Path(path)
    return load_yaml(
        path,
        RouterConfig,
        what="router config",
        hint="fields in docs/router-config.md; see configs/router.example.yaml",
        prepare=lambda raw: _resolve_paths(raw, path.parent),
    )
