"""Function call -> intent rules: every branch on hand-made rows (no shared data, no network)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from routerforge.data.intents import (
    DEFAULT_RULES,
    DROP_REASONS,
    FUNCTION_INTENTS,
    IRRELEVANCE,
    NO_RULE_MATCHES,
    RELEVANT_WITHOUT_GROUND_TRUTH,
    TOOLS_OFFERED_NO_CALL,
    IntentRules,
    intent_for_calls,
    intent_for_function,
    intent_from_bfcl_row,
    intent_from_glaive_row,
    load_rules,
    name_words,
)
from routerforge.errors import RouterforgeError
from routerforge.tasks import INTENT_LABELS


def test_labels_and_reasons():
    assert set(FUNCTION_INTENTS) | {"no_function_needed"} == set(INTENT_LABELS)
    assert set(DROP_REASONS) == {TOOLS_OFFERED_NO_CALL, NO_RULE_MATCHES, IRRELEVANCE, RELEVANT_WITHOUT_GROUND_TRUTH}


@pytest.mark.parametrize(
    "name, words",
    [
        ("Weather_1_GetWeather", "weather 1 get weather"),
        ("math.gcd", "math gcd"),
        ("getDataForProfessional", "get data for professional"),
        ("APITokenApi.get-tokens", "api token api get tokens"),
        ("GET_PARCEL_STATE", "get parcel state"),
    ],
)
def test_name_words(name, words):
    assert name_words(name) == words


@pytest.mark.parametrize(
    "name, description, intent",
    [
        ("send_email", "Send an email to a recipient", "communication"),
        ("create_calendar_event", "Create a new event in the calendar", "scheduling"),
        ("Hotels_4_ReserveHotel", "Reserve hotel rooms for a given duration", "scheduling"),
        ("list_files", "List all files in a directory", "file_operations"),
        ("cmd_controller.execute", "Executes a command with os.system()", "file_operations"),
        ("convert_currency", "Convert one currency to another", "data_transformation"),
        ("translate_text", "", "data_transformation"),
        ("calculate_tip", "Calculate the tip amount for a bill", "calculation"),
        ("math.gcd", "", "calculation"),
        ("predict_house_price", "Predict house price from its area", "analysis"),
        ("sentiment_analysis", "Perform sentiment analysis on a text", "analysis"),
        ("get_stock_price", "Get the current stock price", "information_retrieval"),
        ("Weather_1_GetWeather", "Retrieves the weather forecast", "information_retrieval"),
        ("weather_forecast", "Predict tomorrow's weather", "information_retrieval"),  # domain rule beats 'forecast'
    ],
)
def test_each_category_by_name(name, description, intent):
    assert intent_for_function(name, description) == intent


def test_description_used_when_name_says_nothing():
    assert intent_for_function("ChaXyz", "Calculates the product of two numbers.") == "calculation"
    # the earliest keyword is the action; 'email' later in the sentence is incidental
    assert (
        intent_for_function("adriel_contact", "Retrieve the contact details: name, email and phone number.")
        == "information_retrieval"
    )


def test_generic_verb_in_name_is_a_fallback():
    assert intent_for_function("get_area_of_square", "Calculate the area of a square.") == "calculation"
    assert intent_for_function("get_movie", "") == "information_retrieval"


def test_unknown_and_out_of_taxonomy_functions_match_nothing():
    assert intent_for_function("frobnicate", "Frobnicates the widget.") is None
    assert intent_for_function("frobnicate") is None
    assert intent_for_function("Payment_1_MakePayment", "Send money to a friend.") is None  # skip pattern
    assert intent_for_function("play_song", "Plays the song found by a search query.") is None


def test_calls_majority_vote():
    calls = [("get_weather", ""), ("calculate_tip", ""), ("calculate_bmi", "")]
    assert intent_for_calls(calls) == "calculation"


def test_calls_tie_goes_to_the_first_call():
    assert intent_for_calls([("calculate_tip", ""), ("get_weather", "")]) == "calculation"
    assert intent_for_calls([("get_weather", ""), ("calculate_tip", "")]) == "information_retrieval"
    # tie between the two categories that are not the first call's: the one reached first wins
    calls = [("frobnicate", ""), ("send_email", ""), ("math.gcd", ""), ("math.lcm", ""), ("send_sms", "")]
    assert intent_for_calls(calls) == "communication"


def test_calls_ignore_unmatched_and_none_when_nothing_matches():
    assert intent_for_calls([("frobnicate", ""), ("frobnicate", ""), ("send_email", "")]) == "communication"
    assert intent_for_calls([("frobnicate", "")]) is None
    assert intent_for_calls([]) is None


def _glaive(tools: list[dict], called: list[str], as_string: bool = False) -> dict:
    return {
        "id": 0,
        "text": "hi",
        "tools": [t["name"] for t in tools],
        "called_functions": called,
        "has_call": bool(called),
        "tools_json": json.dumps(tools) if as_string else tools,
    }


TIP = {"name": "calculate_tip", "description": "Calculate the tip amount", "parameters": {}}
MYSTERY = {"name": "do_thing", "description": "Computes the total.", "parameters": {}}
ODD = {"name": "frobnicate", "description": "Frobnicates.", "parameters": {}}


def test_glaive_rows():
    assert intent_from_glaive_row(_glaive([], [])) == ("no_function_needed", None)
    assert intent_from_glaive_row(_glaive([TIP], [])) == (None, TOOLS_OFFERED_NO_CALL)
    assert intent_from_glaive_row(_glaive([TIP], ["calculate_tip"])) == ("calculation", None)
    assert intent_from_glaive_row(_glaive([ODD], ["frobnicate"])) == (None, NO_RULE_MATCHES)


def test_glaive_descriptions_come_from_tools_json_in_any_shape():
    assert intent_from_glaive_row(_glaive([MYSTERY], ["do_thing"], as_string=True)) == ("calculation", None)
    wrapped = [{"type": "function", "function": MYSTERY}]
    row = {"tools": ["do_thing"], "called_functions": ["do_thing"], "tools_json": wrapped}
    assert intent_from_glaive_row(row) == ("calculation", None)
    # only tools_json says tools were offered
    assert intent_from_glaive_row({"called_functions": [], "tools_json": json.dumps([TIP])}) == (
        None,
        TOOLS_OFFERED_NO_CALL,
    )


def test_glaive_bad_tools_json_is_a_library_error():
    with pytest.raises(RouterforgeError, match="not valid JSON"):
        intent_from_glaive_row({"called_functions": ["calculate_tip"], "tools_json": "[{"})


def _bfcl(tools: list[dict], truth: list[str] | None, relevant: bool = True) -> dict:
    return {
        "id": "x_0",
        "category": "simple_python",
        "text": "q",
        "all_user_turns": ["q"],
        "tools": tools,
        "ground_truth_functions": truth,
        "relevant": relevant,
    }


def test_bfcl_rows():
    tools = [
        {"name": "do_thing", "description": "Computes the total."},
        {"name": "send_email", "description": "Send an email."},
    ]
    assert intent_from_bfcl_row(_bfcl(tools, None, relevant=False)) == (None, IRRELEVANCE)
    assert intent_from_bfcl_row(_bfcl(tools, None)) == (None, RELEVANT_WITHOUT_GROUND_TRUTH)
    assert intent_from_bfcl_row(_bfcl(tools, ["do_thing"])) == ("calculation", None)  # description looked up
    assert intent_from_bfcl_row(_bfcl(tools, ["send_email", "do_thing", "do_thing"])) == ("calculation", None)
    assert intent_from_bfcl_row(_bfcl([{"name": "frobnicate", "description": ""}], ["frobnicate"])) == (
        None,
        NO_RULE_MATCHES,
    )


def test_default_table_ships_as_yaml():
    shipped = resources.files("routerforge.data") / "intent_rules.yaml"
    assert shipped.is_file()
    with resources.as_file(shipped) as path:
        assert load_rules(path) == DEFAULT_RULES
    assert all(rule.intent in FUNCTION_INTENTS for rule in DEFAULT_RULES.rules)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_override(tmp_path):
    rules = load_rules(
        _write(
            tmp_path,
            """
skip_name_patterns: ['^legacy']
rules:
  - intent: communication
    name_patterns: ['frob\\w*']
  - intent: analysis
    description_keywords: ['inspects?']
""",
        )
    )
    assert isinstance(rules, IntentRules)
    assert intent_for_function("frobnicate", "", rules) == "communication"
    assert intent_for_function("widget", "Inspects the widget.", rules) == "analysis"
    assert intent_for_function("legacy_frob", "", rules) is None
    assert intent_for_function("send_email", "", rules) is None  # the custom table replaces the default one
    assert intent_from_glaive_row(_glaive([ODD], ["frobnicate"]), rules) == ("communication", None)
    assert intent_from_bfcl_row(_bfcl([{"name": "frobnicate"}], ["frobnicate"]), rules) == ("communication", None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rules:\n  - intent: gossip\n    name_patterns: [chat]\n", "rules[0].intent"),
        ("rules:\n  - intent: no_function_needed\n    name_patterns: [chat]\n", "rules[0].intent"),
        ("rules:\n  - intent: analysis\n    name_patterns: ['(unclosed']\n", "rules[0].name_patterns"),
        ("rules:\n  - intent: analysis\n    name_pattern: [x]\n", "rules[0].name_pattern"),
        ("rules:\n  - intent: analysis\n", "rules[0]"),
        ("skip_name_patterns: ['[']\nrules: []\n", "skip_name_patterns"),
        ("rules: {}\n", "'rules:' list"),
        ("- just a list\n", "'rules:' list"),
        ("rules: [\n", "invalid YAML"),
    ],
)
def test_yaml_validation_errors_name_file_and_field(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(RouterforgeError) as info:
        load_rules(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_bad_intent_error_lists_the_choices(tmp_path):
    with pytest.raises(RouterforgeError, match="choose one of information_retrieval"):
        load_rules(_write(tmp_path, "rules:\n  - intent: gossip\n    name_patterns: [chat]\n"))


def test_missing_rules_file(tmp_path):
    with pytest.raises(RouterforgeError, match="intent rule table file not found"):
        load_rules(tmp_path / "nope.yaml")
