"""Function call -> intent category: the rule table that labels function-calling data for the ``intent`` task.

Function-calling sets (Glaive, BFCL) say *which function* a conversation called, not *what kind of request* it
was. A small ordered rule table maps the called function's name and description to one of seven categories
(``no_function_needed`` comes from the data: no tools offered and no call made).

How a function is matched (:meth:`IntentRules.match`):

0. The name is split into lowercase words (``Weather_1_GetWeather`` -> ``weather 1 get weather``, ``math.gcd``
   -> ``math gcd``). Every pattern is a regex searched as whole words (``\\b(?:pattern)\\b``, case-insensitive,
   so ``get`` does not match ``target``). A name matching ``skip_name_patterns`` (payments, orders, media
   playback, device control: outside the seven categories) is unmatched.
1. **Name, table order.** The first rule (fallback rules excepted) with a matching ``name_patterns`` entry wins.
   Names are short and deliberate; the order puts specific domains (``weather``, ``alarm``) before generic verbs.
2. **Description, earliest keyword.** Every rule's ``description_keywords`` are searched in the description and
   the keyword that occurs *earliest* wins (ties: table order). Descriptions lead with their main verb
   ("Retrieve the contact details ... email ..."), so the earliest keyword is the action, later ones incidental.
3. **Fallback names.** Rules marked ``fallback`` (the generic ``get``/``find``/``search`` verbs) match by name
   only when steps 1 and 2 found nothing: ``get_area_of_square`` "Calculate the area ..." is a calculation.
4. Nothing matches -> ``None``. Rows whose calls match nothing are dropped, never forced into a category.

The table ships as ``intent_rules.yaml`` next to this file (:data:`DEFAULT_RULES`). Copy it, edit it and pass it
as ``rules:`` in the config (or ``--rules``); :func:`load_rules` validates it and names the bad field.

>>> intent_for_function("send_email", "Send an email to a recipient")
'communication'
>>> intent_for_calls([("get_weather", ""), ("calculate_tip", ""), ("calculate_bmi", "")])
'calculation'
"""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ..errors import RouterforgeError
from ..tasks import INTENT_LABELS

NO_FUNCTION = "no_function_needed"
#: The categories a rule may assign (every intent label except ``no_function_needed``).
FUNCTION_INTENTS: tuple[str, ...] = tuple(label for label in INTENT_LABELS if label != NO_FUNCTION)

TOOLS_OFFERED_NO_CALL = "tools_offered_no_call"
NO_RULE_MATCHES = "no_rule_matches"
IRRELEVANCE = "irrelevance"
RELEVANT_WITHOUT_GROUND_TRUTH = "relevant_without_ground_truth"
#: Why a function-calling row gets no intent label (the second item the row converters return).
DROP_REASONS: tuple[str, ...] = (TOOLS_OFFERED_NO_CALL, NO_RULE_MATCHES, IRRELEVANCE, RELEVANT_WITHOUT_GROUND_TRUTH)

DEFAULT_RULES_FILE = "intent_rules.yaml"
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _whole_word(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE)


def _check_regexes(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"bad regex {pattern!r}: {err}") from None
    return patterns


def name_words(name: str) -> str:
    """``getWeather_v2.fetch-all`` -> ``get weather v 2 fetch all``: the string name patterns are searched in."""
    return " ".join(word.lower() for word in _WORD.findall(name))


class IntentRule(BaseModel):
    """One row of the table: function names or descriptions that mean ``intent``."""

    model_config = ConfigDict(extra="forbid")

    intent: str = Field(description="one of the seven function categories (not no_function_needed)")
    why: str = Field("", description="what the rule is for; documentation only")
    name_patterns: list[str] = Field(
        default_factory=list, description="regexes matched as whole words in the split, lowercased name"
    )
    description_keywords: list[str] = Field(
        default_factory=list, description="regexes matched as whole words in the description"
    )
    fallback: bool = Field(False, description="name patterns count only when no description keyword matches")
    _names: list[re.Pattern[str]] = PrivateAttr(default_factory=list)
    _keywords: list[re.Pattern[str]] = PrivateAttr(default_factory=list)

    @field_validator("intent")
    @classmethod
    def _known_intent(cls, value: str) -> str:
        if value not in FUNCTION_INTENTS:
            raise ValueError(f"{value!r} is not a function category; choose one of {', '.join(FUNCTION_INTENTS)}")
        return value

    @field_validator("name_patterns", "description_keywords")
    @classmethod
    def _valid_regexes(cls, patterns: list[str]) -> list[str]:
        return _check_regexes(patterns)

    @model_validator(mode="after")
    def _not_empty(self) -> IntentRule:
        if not self.name_patterns and not self.description_keywords:
            raise ValueError("a rule needs name_patterns or description_keywords")
        return self

    def model_post_init(self, __context: Any) -> None:
        self._names = [_whole_word(p) for p in self.name_patterns]
        self._keywords = [_whole_word(p) for p in self.description_keywords]

    def matches_name(self, words: str) -> bool:
        """Whether the function-name words match one of this rule's name patterns."""
        return any(p.search(words) for p in self._names)

    def first_keyword(self, description: str) -> int | None:
        """Position of this rule's earliest keyword in ``description`` (None: no keyword occurs)."""
        hits = [m.start() for p in self._keywords if (m := p.search(description))]
        return min(hits) if hits else None


class IntentRules(BaseModel):
    """The ordered rule table; see the module docstring for how a function is matched."""

    model_config = ConfigDict(extra="forbid")

    skip_name_patterns: list[str] = Field(
        default_factory=list,
        description=(
            "regexes (whole words, on the split name) for functions that fit no category; checked first, they make "
            "the call unmatched"
        ),
    )
    rules: list[IntentRule]
    _skip: list[re.Pattern[str]] = PrivateAttr(default_factory=list)

    @field_validator("skip_name_patterns")
    @classmethod
    def _valid_regexes(cls, patterns: list[str]) -> list[str]:
        return _check_regexes(patterns)

    def model_post_init(self, __context: Any) -> None:
        self._skip = [_whole_word(p) for p in self.skip_name_patterns]

    def match(self, name: str, description: str = "") -> str | None:
        """The intent of a function (name and description), or None when no rule applies."""
        words = name_words(name)
        if any(p.search(words) for p in self._skip):
            return None
        for rule in self.rules:
            if not rule.fallback and rule.matches_name(words):
                return rule.intent
        best: tuple[int, int] | None = None  # (position in description, rule index)
        for index, rule in enumerate(self.rules):
            position = rule.first_keyword(description or "")
            if position is not None and (best is None or (position, index) < best):
                best = (position, index)
        if best:
            return self.rules[best[1]].intent
        return next((rule.intent for rule in self.rules if rule.fallback and rule.matches_name(words)), None)


def load_rules(path: str | Path) -> IntentRules:
    """Read and validate a YAML rule table (``rules:`` list of ``intent``/``name_patterns``/... mappings)."""
    from ..io import load_yaml

    return load_yaml(
        path,
        IntentRules,
        what="intent rule table",
        hint=f"expected a mapping with a 'rules:' list; copy routerforge/data/{DEFAULT_RULES_FILE} and edit it, "
        "or rules: null for the built-in table",
    )


def _default_rules() -> IntentRules:
    with resources.as_file(resources.files(__package__) / DEFAULT_RULES_FILE) as path:
        return load_rules(path)


#: The built-in table, read from ``intent_rules.yaml`` shipped with the package.
DEFAULT_RULES: IntentRules = _default_rules()


def intent_for_function(name: str, description: str = "", rules: IntentRules | None = None) -> str | None:
    """The category of one called function, or None when no rule matches."""
    return (DEFAULT_RULES if rules is None else rules).match(name, description)


def intent_for_calls(calls: list[tuple[str, str]], rules: IntentRules | None = None) -> str | None:
    """The category most ``(name, description)`` calls map to.

    Calls no rule matches are ignored; on a tie the category reached first in call order wins; None if no call
    matches.
    """
    intents = [i for name, description in calls if (i := intent_for_function(name, description, rules))]
    if not intents:
        return None
    counts = Counter(intents)  # insertion order = first occurrence, and max() keeps the first of equals
    return max(counts, key=counts.__getitem__)


def _function_defs(tools: Any) -> list[dict]:
    """Tool definitions as a list of dicts, whether given as a JSON string, a list, or OpenAI-style wrappers."""
    if isinstance(tools, str):
        try:
            tools = json.loads(tools) if tools.strip() else []
        except json.JSONDecodeError as err:
            raise RouterforgeError(
                f"tool definitions are not valid JSON ({err.msg} at character {err.pos})",
                hint="tools_json must be a JSON list of function definitions",
            ) from None
        except (ValueError, RecursionError) as err:  # an integer too long, nesting too deep
            raise RouterforgeError(f"tool definitions are not readable JSON ({err})") from None
    if not isinstance(tools or [], list):
        raise RouterforgeError(f"tool definitions must be a list, not {type(tools).__name__}")
    tools = [t.get("function", t) if t.get("type") == "function" else t for t in tools or [] if isinstance(t, dict)]
    return [d for d in tools if isinstance(d, dict)]


def _calls_with_descriptions(names: list[str], tools: Any) -> list[tuple[str, str]]:
    described = {
        d["name"]: d["description"] if isinstance(d.get("description"), str) else ""
        for d in _function_defs(tools)
        if isinstance(d.get("name"), str)
    }
    return [(name, described.get(name, "")) for name in names]


def _call_names(called: Any) -> list[str]:
    """The called functions: a list of names (what the Glaive and BFCL rows hold)."""
    if not isinstance(called, list) or not all(isinstance(name, str) for name in called):
        raise RouterforgeError(f"the called functions must be a list of function names, not {repr(called)[:60]}")
    return called


Label = tuple[str | None, str | None]


def intent_from_glaive_row(row: dict, rules: IntentRules | None = None) -> Label:
    """``(label, None)`` or ``(None, drop_reason)`` for a ``glaive_toolcall_en_demo.jsonl`` row.

    No tools and no call -> no_function_needed. Tools offered but not called says nothing about what the user
    wanted (the model just chatted), so the row is dropped.
    """
    called = _call_names(row.get("called_functions") or [])
    if not called:
        offered = row.get("tools") or _function_defs(row.get("tools_json"))
        return (None, TOOLS_OFFERED_NO_CALL) if offered else (NO_FUNCTION, None)
    intent = intent_for_calls(_calls_with_descriptions(called, row.get("tools_json")), rules)
    return (intent, None) if intent else (None, NO_RULE_MATCHES)


_GLAIVE_CALL = re.compile(r'<functioncall>\s*\{\s*"name"\s*:\s*"([^"]+)"')
_GLAIVE_TURN_END = re.compile(r"\n\s*(?:ASSISTANT|FUNCTION RESPONSE|USER):|<\|endoftext\|>")


def glaive_v2_row(row: dict) -> dict:
    """A raw ``glaiveai/glaive-function-calling-v2`` row (a ``system`` prompt listing the functions as JSON
    objects, a ``chat`` transcript with ``<functioncall> {"name": ...}`` turns) in the shape
    :func:`intent_from_glaive_row` reads: first user message, offered definitions, called names in order."""
    chat, system = row.get("chat") or "", row.get("system") or ""
    if not isinstance(chat, str) or not isinstance(system, str):
        raise RouterforgeError("a glaive-function-calling-v2 row needs 'chat' and 'system' strings")
    first = chat.split("USER:", 1)[1] if "USER:" in chat else ""
    tools, decoder, start = [], json.JSONDecoder(), system.find("{")
    while start != -1:
        try:
            found, end = decoder.raw_decode(system, start)
        except (ValueError, RecursionError):  # not JSON here (or too long an integer, too deep a nesting)
            found, end = None, start + 1
        if isinstance(found, dict) and "name" in found:
            tools.append(found)
        start = system.find("{", end)
    return {
        "text": _GLAIVE_TURN_END.split(first, 1)[0].strip(),
        "tools_json": tools,
        "tools": [t["name"] for t in tools],
        "called_functions": _GLAIVE_CALL.findall(chat),
    }


def intent_from_bfcl_row(row: dict, rules: IntentRules | None = None) -> Label:
    """``(label, None)`` or ``(None, drop_reason)`` for a ``bfcl_v4_queries.jsonl`` row.

    Irrelevance rows offer tools that do not fit the query; they are not "no function needed" conversations
    (the user did ask for an action), so they are dropped rather than labelled.
    """
    if not row.get("relevant", True):
        return None, IRRELEVANCE
    called = row.get("ground_truth_functions")
    if not called:
        return None, RELEVANT_WITHOUT_GROUND_TRUTH
    intent = intent_for_calls(_calls_with_descriptions(_call_names(called), row.get("tools")), rules)
    return (intent, None) if intent else (None, NO_RULE_MATCHES)
