"""Score one model behind an OpenAI-compatible endpoint on a labelled set, as outcome rows for routing.

    python scripts/score-endpoint.py --data labelled.jsonl --base-url http://localhost:8000/v1 \
        --model qwen3-8b --outcomes my_outcomes.jsonl [--api-key-env OPENAI_API_KEY] [--concurrency 8]

``labelled.jsonl``: one object per line with ``question_id``, ``category``, ``prompt`` (the full text sent as the
user message) and ``answer`` (the gold answer). The model's answer is taken from its reply by ``--answer-regex``
(default: MMLU-Pro's "answer is (X)"; the first group) and compared with ``answer`` (case-insensitive, stripped).
The rows are merged into ``--outcomes`` (docs/routing.md format): this model's ``correct`` and ``output_chars``
are added to each question's row, other models' entries are kept, so one file grows a column per model run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from pathlib import Path

import httpx


async def _ask(client: httpx.AsyncClient, args, row: dict, gate: asyncio.Semaphore) -> tuple[int, str | None]:
    body = {"model": args.model, "messages": [{"role": "user", "content": row["prompt"]}], "temperature": 0}
    if args.max_tokens:
        body["max_tokens"] = args.max_tokens
    async with gate:
        for attempt in range(3):
            try:
                response = await client.post("/chat/completions", json=body)
                response.raise_for_status()
                return row["question_id"], response.json()["choices"][0]["message"].get("content") or ""
            except (httpx.HTTPError, KeyError, ValueError):
                if attempt == 2:
                    return row["question_id"], None  # recorded as missing, not as wrong
                await asyncio.sleep(2**attempt)
    return row["question_id"], None


async def _run(args, rows: list[dict]) -> dict[int, str | None]:
    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    gate = asyncio.Semaphore(args.concurrency)
    async with httpx.AsyncClient(base_url=args.base_url, headers=headers, timeout=args.timeout) as client:
        return dict(await asyncio.gather(*(_ask(client, args, row, gate) for row in rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--outcomes", required=True, type=Path)
    parser.add_argument("--name", help="column name in the outcomes (default: --model)")
    parser.add_argument("--api-key-env", help="environment variable holding the API key")
    parser.add_argument("--answer-regex", default=r"answer is \(?([A-J])\)?")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    replies = asyncio.run(_run(args, rows))
    pattern, name = re.compile(args.answer_regex, re.IGNORECASE), args.name or args.model
    existing = {}
    if args.outcomes.is_file():
        for line in args.outcomes.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                existing[record["question_id"]] = record
    for row in rows:
        record = existing.setdefault(
            row["question_id"],
            {"question_id": row["question_id"], "category": row.get("category", ""), "correct": {}, "output_chars": {}},
        )
        reply = replies.get(row["question_id"])
        if reply is None:
            continue  # no answer: the key stays absent (docs/routing.md)
        found = pattern.search(reply)
        given = (found.group(1) if found and found.groups() else found.group(0) if found else "").strip().casefold()
        record["correct"][name] = int(given == str(row["answer"]).strip().casefold())
        record["output_chars"][name] = len(reply)
    text = "".join(json.dumps(record) + "\n" for record in existing.values())
    tmp = args.outcomes.with_suffix(args.outcomes.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.outcomes)
    scored = sum(reply is not None for reply in replies.values())
    print(f"{name}: {scored}/{len(rows)} answered; outcomes in {args.outcomes}")


if __name__ == "__main__":
    main()
