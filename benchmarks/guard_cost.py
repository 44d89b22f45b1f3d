"""What the guard reads in an agent-style request and what reading it costs: the texts ``inspect_chat`` finds (a
system prompt, four tools, a tool round trip with JSON arguments), the time of ``inspect_chat`` itself, and
``Router.classify_batch`` over those texts, cold (no signal cache), against the message contents alone,
interleaved.

    python benchmarks/guard_cost.py MODEL
"""

import copy
import json
import sys
import time

from routerforge.evaluation.metrics import latency_summary
from routerforge.runtime.engine import Router
from routerforge.serving.config import ChecksConfig
from routerforge.serving.inspect import inspect_chat


def tool(name, desc, props):
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": desc,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": "string", "description": v} for k, v in props.items()},
                "required": list(props),
            },
        },
    }


request = {
    "model": "auto",
    "messages": [
        {
            "role": "system",
            "content": "You are a helpful travel assistant. Use the tools to look up flights and weather, "
            "and answer briefly.",
        },
        {
            "role": "user",
            "content": "Find me a flight from Boston to Denver next Friday and tell me the weather there.",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a1b2c3",
                    "type": "function",
                    "function": {
                        "name": "search_flights",
                        "arguments": json.dumps({"origin": "BOS", "destination": "DEN", "date": "2026-12-11"}),
                    },
                },
                {
                    "id": "call_d4e5f6",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": json.dumps({"city": "Denver", "units": "imperial"}),
                    },
                },
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_a1b2c3",
            "content": json.dumps(
                {
                    "flights": [
                        {"number": "UA 1542", "departs": "08:10", "price": 219},
                        {"number": "WN 2231", "departs": "13:45", "price": 184},
                    ]
                }
            ),
        },
        {
            "role": "tool",
            "tool_call_id": "call_d4e5f6",
            "content": json.dumps({"forecast": "sunny", "high_f": 48, "low_f": 25}),
        },
        {
            "role": "assistant",
            "content": "Two options: UA 1542 at 08:10 ($219) or WN 2231 at 13:45 ($184). Denver will be sunny, 25-48F.",
        },
        {"role": "user", "content": "Book the cheaper one and email the confirmation to me."},
    ],
    "tools": [
        tool(
            "search_flights",
            "Search flights between two airports on a date",
            {"origin": "IATA code", "destination": "IATA code", "date": "YYYY-MM-DD"},
        ),
        tool("get_weather", "Current forecast for a city", {"city": "city name", "units": "metric or imperial"}),
        tool("book_flight", "Book a flight by its number", {"number": "flight number", "passenger": "full name"}),
        tool("send_email", "Send an email", {"to": "address", "subject": "subject line", "body": "message body"}),
    ],
}
found = inspect_chat(copy.deepcopy(request), ChecksConfig())
texts = [t.text for t in found.values()]
contents = [m["content"] for m in request["messages"] if isinstance(m.get("content"), str)]
print(
    "texts read:",
    len(texts),
    "characters:",
    sum(map(len, texts)),
    "| message contents alone:",
    len(contents),
    sum(map(len, contents)),
)
for k, t in found.items():
    print("  ", k, repr(t.text[:70]))
r = Router.load(sys.argv[1], "onnx-int8", threads=2)
times = {"inspect": [], "all texts": [], "contents only": []}
for rep in range(30):
    s = time.perf_counter()
    inspect_chat(copy.deepcopy(request), ChecksConfig())
    times["inspect"].append(time.perf_counter() - s)
    for name, batch in (
        (("all texts", texts), ("contents only", contents))
        if rep % 2
        else (("contents only", contents), ("all texts", texts))
    ):
        s = time.perf_counter()
        r.classify_batch(batch)
        times[name].append(time.perf_counter() - s)
for k, v in times.items():
    print(f"{k:14s} p50 {latency_summary(v)['p50_ms']:7.2f} ms")
