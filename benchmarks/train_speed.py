"""Training throughput on this CPU: fp32 against bf16 autocast, and random against length-grouped batches, one
optimiser step at a time, interleaved.

    python benchmarks/train_speed.py [--data DATA_DIR/mmlu_pro/questions.jsonl] [--steps 12] [--rounds 3] [--compile]

Real MMLU-Pro questions (or a built-in sentence when no file is given), MiniLM with a 14-way head, batch 16,
padded to the longest row of the batch (max 128 tokens), AdamW fused: what ``routerforge train`` runs per step.
Three arms: fp32 and bf16 on random batches (what the bundle's task sampler drew before it grouped lengths), and
bf16 on length-grouped batches (the task sampler's ``_pass`` over 50 batches' rows, as training draws them).
The bf16 arms run only where the CPU has native bf16 (emulated, it is many times slower and not what training
would run). Rounds alternate the arms so load on a shared machine hits all alike; prints tokens/s (non-padding
tokens) per round and the median ratios, and the largest |logit| difference of one forward pass in each precision.
``--compile`` adds two arms on length-grouped batches: fp32 eager and fp32 under ``torch.compile`` (inductor,
dynamic shapes, as the Trainer's ``torch_compile`` would run it), after a warm-up over every batch shape whose
seconds (the compile cost a run pays once) are printed apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from routerforge.modeling.backbones import resolve_backbone
from routerforge.training.hyperparams import Hyperparams
from routerforge.training.multitask import TaskBatchSampler
from routerforge.training.setup import use_bf16


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
    parser.add_argument("--compile", action="store_true", help="add fp32 grouped arms, eager and torch.compile")
    args = parser.parse_args()

    backbone = resolve_backbone("minilm")
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=14)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    pool = _texts(args.data, TaskBatchSampler.CHUNK * args.batch_size)
    lengths = [len(ids) for ids in tokenizer(pool, truncation=True, max_length=128)["input_ids"]]
    sampler = TaskBatchSampler([len(pool)], args.batch_size, 1.0, seed=0, lengths=[lengths])
    grouped = sampler._pass(0, np.random.default_rng(0))[: args.steps]
    shuffled = np.random.default_rng(1).permutation(len(pool))
    random = [shuffled[i * args.batch_size : (i + 1) * args.batch_size] for i in range(args.steps)]

    def encode(rows) -> list:
        return [
            tokenizer([pool[i] for i in b], truncation=True, max_length=128, padding=True, return_tensors="pt")
            for b in rows
        ]

    random_batches, grouped_batches = encode(random), encode(grouped)
    arms = {"fp32": (random_batches, False)}
    if use_bf16(Hyperparams(), use_gpu=False):  # emulated bf16 is many times slower: not what training runs
        arms |= {"bf16": (random_batches, True), "bf16_grouped": (grouped_batches, True)}
    else:
        print("no native bf16 on this CPU: the bf16 arms are left out", flush=True)
    if args.compile:
        arms |= {"fp32_grouped": (grouped_batches, False), "fp32_grouped_compiled": (grouped_batches, False)}
    labels = torch.zeros(args.batch_size, dtype=torch.long)
    compiled = torch.compile(model, dynamic=True) if args.compile else None  # shares model's parameters

    def step(batch, bf16: bool, net=model) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = net(**batch, labels=labels[: batch["input_ids"].shape[0]]).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()

    model.train()
    batches = arms["fp32"][0]
    for bf16 in {bf16 for _, bf16 in arms.values()}:  # warm-up of each path
        step(batches[0], bf16)
    compile_s = None
    if compiled is not None:
        started = time.perf_counter()
        for batch in arms["fp32_grouped_compiled"][0]:
            step(batch, False, compiled)
        compile_s = round(time.perf_counter() - started, 1)
        print(f"torch.compile warm-up over {args.steps} batches: {compile_s} s", flush=True)
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(args.rounds):
        for name, (arm, bf16) in arms.items():
            tokens = sum(int(b["attention_mask"].sum()) for b in arm)
            net = compiled if name.endswith("_compiled") else model
            started = time.perf_counter()
            for batch in arm:
                step(batch, bf16, net)
            rates[name].append(tokens / (time.perf_counter() - started))
            print(f"round {r + 1} {name}: {rates[name][-1]:,.0f} tokens/s", flush=True)
    model.eval()
    with torch.no_grad():
        fp32 = model(**batches[0]).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(**batches[0]).logits.float()

    def ratio(a: str, b: str) -> float | None:
        if a not in rates or b not in rates:
            return None
        return round(statistics.median(x / y for x, y in zip(rates[a], rates[b])), 2)

    padded = {
        name: sum(b["attention_mask"].numel() for b in arm) / sum(int(b["attention_mask"].sum()) for b in arm)
        for name, (arm, _) in arms.items()
    }
    print(
        json.dumps(
            {
                "tokens_per_s": {name: round(statistics.median(r)) for name, r in rates.items()},
                "padded_over_real_tokens": {name: round(v, 3) for name, v in padded.items()},
                "bf16_over_fp32": ratio("bf16", "fp32"),
                "grouped_over_random_bf16": ratio("bf16_grouped", "bf16"),
                "bf16_grouped_over_fp32": ratio("bf16_grouped", "fp32"),
                "max_abs_logit_diff": float((fp32 - bf16).abs().max()),
                **(
                    {"compiled_over_eager_fp32": ratio("fp32_grouped_compiled", "fp32_grouped"), "compile_s": compile_s}
                    if args.compile
                    else {}
                ),
                "threads": torch.get_num_threads(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
