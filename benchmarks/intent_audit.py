"""Audit the function -> intent rule table on the shared function-calling data.

Prints, per file and in total, the label distribution and drop counts, the called functions no rule matches,
and a seeded random sample of labelled rows (query, called functions with descriptions, label) to read and judge
by hand. Reads the data in place; writes nothing.

    python benchmarks/intent_audit.py [DATA_DIR] [--seed 0] [--sample 100] [--rules my_rules.yaml] [--functions]

DATA_DIR (default: data/) holds function_calling/ with the two files.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from routerforge.data.intents import (
    DEFAULT_RULES,
    IntentRules,
    intent_for_function,
    intent_from_bfcl_row,
    intent_from_glaive_row,
    load_rules,
)

FILES = {"glaive_toolcall_en_demo.jsonl": intent_from_glaive_row, "bfcl_v4_queries.jsonl": intent_from_bfcl_row}


def called_functions(file: str, row: dict) -> list[tuple[str, str]]:
    """(name, description) of the functions a row called, in call order."""
    if file.startswith("glaive"):
        names, tools = row.get("called_functions") or [], row.get("tools_json") or []
        tools = json.loads(tools) if isinstance(tools, str) else tools
    else:
        names, tools = row.get("ground_truth_functions") or [], row.get("tools") or []
    described = {t.get("name"): t.get("description", "") for t in tools}
    return [(n, described.get(n, "")) for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", default="data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--rules", default=None, help="YAML rule table (default: the built-in one)")
    parser.add_argument("--unmatched", type=int, default=60, help="how many unmatched function names to list")
    parser.add_argument("--functions", action="store_true", help="also list every called function by category")
    args = parser.parse_args()
    rules: IntentRules = load_rules(args.rules) if args.rules else DEFAULT_RULES
    folder = Path(args.data_dir) / "function_calling"

    labelled: list[tuple[str, dict, str]] = []
    unmatched: Counter[str] = Counter()
    by_intent: Counter[tuple[str, str]] = Counter()
    total_labels: Counter[str] = Counter()
    total_drops: Counter[str] = Counter()
    for file, convert in FILES.items():
        rows = [json.loads(line) for line in (folder / file).read_text(encoding="utf-8").splitlines() if line]
        labels: Counter[str] = Counter()
        drops: Counter[str] = Counter()
        for row in rows:
            label, reason = convert(row, rules)
            if label:
                labels[label] += 1
                labelled.append((file, row, label))
            else:
                drops[reason] += 1
            for name, description in called_functions(file, row):
                intent = intent_for_function(name, description, rules)
                if intent is None:
                    unmatched[f"{name}: {description[:90]}"] += 1
                else:
                    by_intent[(intent, f"{name}: {description[:90]}")] += 1
        total_labels += labels
        total_drops += drops
        print(f"\n== {file}: {len(rows)} rows, {sum(labels.values())} labelled, {sum(drops.values())} dropped")
        for label, n in labels.most_common():
            print(f"  {label:24s} {n:5d}")
        for reason, n in drops.most_common():
            print(f"  dropped: {reason:15s} {n:5d}")
    print(f"\n== total: {sum(total_labels.values())} labelled, {sum(total_drops.values())} dropped")
    for label, n in total_labels.most_common():
        print(f"  {label:24s} {n:5d}")
    for reason, n in total_drops.most_common():
        print(f"  dropped: {reason:15s} {n:5d}")

    print(f"\n== unmatched called functions: {len(unmatched)} distinct, {sum(unmatched.values())} calls")
    for name, n in unmatched.most_common(args.unmatched):
        print(f"  {n:3d}  {name}")

    if args.functions:
        for (intent, name), n in sorted(by_intent.items(), key=lambda item: (item[0][0], -item[1], item[0][1])):
            print(f"  {intent:22s} {n:3d}  {name}")

    sample = random.Random(args.seed).sample(labelled, min(args.sample, len(labelled)))
    print(f"\n== audit sample: {len(sample)} labelled rows, seed {args.seed}")
    for i, (file, row, label) in enumerate(sample, 1):
        print(f"\n[{i}] {file.split('_')[0]} {row['id']} -> {label}")
        print(f"    query: {' '.join(str(row['text']).split())[:300]}")
        for name, description in called_functions(file, row):
            print(f"    call:  {name} = {intent_for_function(name, description, rules)} | {description[:160]}")


if __name__ == "__main__":
    main()
