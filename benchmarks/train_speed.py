"""Training throughput on this CPU: fp32 against bf16 autocast, one optimiser step at a time, interleaved.

    python benchmarks/train_speed.py [--data DATA_DIR/mmlu_pro/questions.jsonl] [--steps 12] [--rounds 3]

Real MMLU-Pro questions (or a built-in sentence when no file is given), MiniLM with a 14-way head, batch 16,
padded to the longest row of the batch (max 128 tokens), AdamW fused: what ``routerforge train`` runs per step.
Rounds alternate fp32 and bf16 so load on a shared machine hits both alike; prints tokens/s (non-padding tokens)
per round and the median ratio, and the largest |logit| difference of one forward pass in each precision.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from routerforge.modeling.backbones import resolve_backbone


def _texts(path: str | None, n: int) -> list[str]:
    if not path:
        return [f"question {i}: what is the derivative of x^{i} with respect to x, and why?" for i in range(n)]
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["question"] for _, line in zip(range(n), f)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="an MMLU-Pro questions.jsonl")
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per precision, interleaved")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    backbone = resolve_backbone("minilm")
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=14)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    texts = _texts(args.data, args.steps * args.batch_size)
    batches = [
        tokenizer(texts[i : i + args.batch_size], truncation=True, max_length=128, padding=True, return_tensors="pt")
        for i in range(0, len(texts), args.batch_size)
    ]
    labels = torch.zeros(args.batch_size, dtype=torch.long)

    def step(batch, bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = model(**batch, labels=labels[: batch["input_ids"].shape[0]]).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()

    model.train()
    step(batches[0], False), step(batches[0], True)  # warm-up of both paths
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for r in range(args.rounds):
        for name in ("fp32", "bf16"):
            started = time.perf_counter()
            for batch in batches:
                step(batch, name == "bf16")
            rates[name].append(tokens / (time.perf_counter() - started))
            print(f"round {r + 1} {name}: {rates[name][-1]:,.0f} tokens/s", flush=True)
    model.eval()
    with torch.no_grad():
        fp32 = model(**batches[0]).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(**batches[0]).logits.float()
    ratio = statistics.median(b / f for b, f in zip(rates["bf16"], rates["fp32"]))
    print(
        json.dumps(
            {
                "tokens_per_round": tokens,
                "fp32_tokens_per_s": statistics.median(rates["fp32"]),
                "bf16_tokens_per_s": statistics.median(rates["bf16"]),
                "bf16_over_fp32": round(ratio, 2),
                "max_abs_logit_diff": float((fp32 - bf16).abs().max()),
                "threads": torch.get_num_threads(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
