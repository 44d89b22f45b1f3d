"""Train one encoder with four heads jointly, on the HF Trainer, and save ONE bundle.

>>> import routerforge as rf
>>> data = {t: rf.data.load(t, ...) for t in ("category", "pii", "jailbreak", "intent")}
>>> result = rf.train_multitask(data, model="minilm", output="runs/x/bundle")

Each batch comes from one task; tasks are drawn in proportion to ``size ** temperature`` (T=1: proportional to
size, T=0: uniform; 0.5 lifts small tasks without drowning large ones). An epoch is as many batches as the
tasks' training rows fill. Each task's loss is scaled by its weight. Validation runs every task's own split;
the best checkpoint is the one with the best mean of the per-task selection metrics (macro F1, entity F1).
Per-task data and splits are exactly those of per-task training (same manifests), so results compare 1:1.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bundle import INFO_FILE, MULTITASK
from ..data.schema import Example
from ..data.splits import TaskData, normalise
from ..errors import RouterforgeError
from ..io import refuse_to_replace
from ..modeling.heads import crf_decode, crf_nll
from ..modeling.losses import classification_loss
from ..modeling.multitask import MultitaskModel
from ..tasks import JAILBREAK_LABELS
from .distill import annealed_loss, teacher_probabilities
from .hyperparams import BUNDLE_SETTINGS, Hyperparams, adaptive_hyperparams
from .lora import LoraSettings
from .setup import (
    CHECKPOINTS,
    Resume,
    ShapePadding,
    TrainResult,
    base_info,
    choose_loss,
    compute_metrics_fn,
    encode,
    fit,
    label_names,
    load_backbone,
    load_tokenizer,
    make_callbacks,
    prepare_checkpoints,
    rank_result,
    save_scored,
    training_arguments,
)

SCORE = "score"  # eval_score: the mean of the per-task validation metrics
BENIGN = JAILBREAK_LABELS[0]


class TaskBatchSampler(torch.utils.data.Sampler):
    """Batches of indices into the concatenated training rows, each batch from one task.

    ``offsets[i]:offsets[i]+sizes[i]`` are task i's rows. With ``lengths`` (tokens per row, per task) each pass over
    a task groups similar lengths into a batch, as the per-task Trainer's ``group_by_length`` does: a shuffled
    pass is cut into chunks of 50 batches, each chunk sorted by length, then the batches are shuffled, so a batch
    pads to its own rows' width rather than to a random long row's. Deterministic for a (seed, epoch) pair, so
    every DDP rank draws the same sequence (accelerate gives rank r batches r, r+N, r+2N, ...) and a resumed run
    replays the same batches (the Trainer skips those it already trained on). No ``batch_size`` attribute, on
    purpose: without one accelerate shards whole batches of any length and pads the last round with whole early
    batches; with one it drops short batches (a task smaller than a batch) and splices rows of two tasks into one
    batch.
    """

    CHUNK = 50  # batches per length-sorted chunk (the Trainer's LengthGroupedSampler uses 50 too)

    def __init__(
        self, sizes: list[int], batch_size: int, temperature: float, seed: int, lengths: list[list[int]] | None = None
    ):
        self.sizes, self.rows_per_batch, self.seed, self.epoch = sizes, batch_size, seed, 0
        self.lengths = [np.asarray(x) for x in lengths] if lengths is not None else None
        self.drop_last = False  # read by accelerate when it shards batches across processes
        weights = np.asarray(sizes, dtype=float) ** temperature
        self.probs = weights / weights.sum()
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.n_batches = int(sum(-(-n // batch_size) for n in sizes))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n_batches

    def _pass(self, task: int, rng: np.random.Generator) -> list[np.ndarray]:
        """One shuffled pass over a task's rows as full batches, in the order they are served (the tail short of
        a batch is left out of this pass; a task smaller than a batch is one batch). Length-grouped when lengths
        are known: sorted within chunks, then the batches shuffled."""
        order, size = rng.permutation(self.sizes[task]), self.rows_per_batch
        if self.lengths is not None:
            chunk = size * self.CHUNK
            order = np.concatenate(
                [
                    c[np.argsort(-self.lengths[task][c], kind="stable")]
                    for c in np.split(order, range(chunk, len(order), chunk))
                ]
            )
        batches = [order[i : i + size] for i in range(0, max(len(order) - size, 0) + 1, size)]
        return [batches[i] for i in rng.permutation(len(batches))] if self.lengths is not None else batches

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        # every task's first pass is drawn before the task sequence, later ones when a task runs out: without
        # lengths this is the sampler's original order of draws: a seed gives the batches it always gave (for every
        # task of at least one batch of rows)
        queues = [deque(self._pass(task, rng)) for task in range(len(self.sizes))]
        for task in rng.choice(len(self.sizes), size=self.n_batches, p=self.probs):
            if not queues[task]:
                queues[task] = deque(self._pass(task, rng))
            yield (self.offsets[task] + queues[task].popleft()).tolist()


class TaskCollator:
    """Pads a one-task batch with the collator of that task's kind (token labels are padded with -100)."""

    def __init__(self, tokenizer, kinds: list[str]):
        from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

        self.kinds = kinds
        self.token = ShapePadding(DataCollatorForTokenClassification(tokenizer), tokenizer.padding_side)
        self.sequence = ShapePadding(DataCollatorWithPadding(tokenizer), tokenizer.padding_side)

    def __call__(self, features: list[dict]) -> dict:
        kind = self.kinds[features[0]["task_id"]]
        return (self.token if kind == "token" else self.sequence)(features)


def _make_trainer_class():
    from transformers import Trainer, TrainerCallback

    class SamplerEpoch(TrainerCallback):
        """Sets the sampler's epoch; accelerate's sharding and resume wrappers do not pass ``set_epoch`` on."""

        def __init__(self, sampler: TaskBatchSampler):
            self.sampler = sampler

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.sampler.set_epoch(int(state.epoch or 0))  # a resumed run starts mid-epoch: 1.5 -> epoch 1

    class MultitaskTrainer(Trainer):
        """The HF Trainer with task-sampled batches, per-task losses and a per-task validation."""

        def __init__(self, *args, sampler: TaskBatchSampler, tasks: list[dict], val_sets: dict, **kwargs):
            super().__init__(*args, **kwargs)
            self.task_sampler, self.tasks, self.val_sets = sampler, tasks, val_sets
            self.add_callback(SamplerEpoch(sampler))

        def get_train_dataloader(self):
            loader = torch.utils.data.DataLoader(
                self.train_dataset, batch_sampler=self.task_sampler, collate_fn=self.data_collator, num_workers=0
            )
            return self.accelerator.prepare(loader)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            soft = inputs.pop("soft_labels", None)  # a taught head's teacher probabilities (training rows only)
            outputs = model(**inputs)
            task = self.tasks[int(inputs["task_id"][0])]
            if task["crf"]:
                loss = crf_nll(_unwrap(model).crf_of(task["name"]), outputs["logits"], labels)
            else:
                loss = classification_loss(
                    outputs["logits"], labels, task["loss"], task["class_weights"], task["focal_gamma"]
                )
            if soft is not None:
                done = self.state.global_step / max(self.state.max_steps, 1)
                loss = annealed_loss(loss, outputs["logits"], soft, done)
            loss = task["weight"] * loss
            return (loss, outputs) if return_outputs else loss

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            """Each task's validation split through the Trainer's own loop, then their mean as ``eval_score``."""
            metrics = {}
            for task in self.tasks:
                name = task["name"]
                self.compute_metrics = compute_metrics_fn(task["kind"], task["id2label"])
                self.preprocess_logits_for_metrics = _predictions_fn(_unwrap(self.model), task)
                output = self.evaluation_loop(
                    self.get_eval_dataloader(self.val_sets[name]),
                    description=f"Evaluation {name}",
                    metric_key_prefix=f"{metric_key_prefix}_{name}",
                )
                metrics |= output.metrics
            metrics[f"{metric_key_prefix}_{SCORE}"] = float(
                np.mean([metrics[f"{metric_key_prefix}_{t['name']}_{t['metric']}"] for t in self.tasks])
            )
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    return MultitaskTrainer


def _unwrap(model) -> MultitaskModel:
    return next(m for m in model.modules() if isinstance(m, MultitaskModel))


def jailbreak_negatives(data: dict[str, TaskData], rows: int, seed: int) -> tuple[list[Example], dict[str, int]]:
    """Benign rows for the jailbreak head: up to ``rows`` training texts of the bundle's other tasks, an equal share
    from each. Every one is a prompt the router is meant to serve (an exam question, a tool request, a customer
    message), and the jailbreak data's own benign side is mostly instructions and role play: without them the head
    scored a quarter of MMLU-Pro questions above 0.5 (benchmarks/README.md). Training splits only; never a text the
    jailbreak data holds (any split, either label) and no text twice, compared as splitting compares duplicates."""
    if rows <= 0:
        return [], {}
    others = [name for name in data if name != "jailbreak"]
    if "jailbreak" not in data or not others:
        raise RouterforgeError(
            "cross_task_negatives needs a jailbreak task and at least one other task in the bundle",
            source="multitask.cross_task_negatives",
        )
    own = data["jailbreak"]
    seen = {normalise(e.text) for e in own.train + own.val + own.test}
    rng = random.Random(f"routerforge.cross-task-negatives:{seed}")
    chosen: list[Example] = []
    counts: dict[str, int] = {}
    for i, name in enumerate(others):
        share = rows // len(others) + (i < rows % len(others))
        candidates = {normalise(e.text): e for e in data[name].train}
        pool = sorted(key for key in candidates if key not in seen)
        picked = rng.sample(pool, min(share, len(pool)))
        seen.update(picked)
        chosen += [
            Example(text=e.text, label=BENIGN, source=e.source, row=e.row, meta={"negative_from": name})
            for e in (candidates[key] for key in picked)
        ]
        counts[name] = len(picked)
    return chosen, counts


def _predictions_fn(model: MultitaskModel, task: dict):
    crf = model.crf_of(task["name"]) if task["crf"] else None

    def predict(logits, labels):
        return crf_decode(crf, logits, labels != -100) if crf is not None else logits.argmax(dim=-1)

    return predict


def train_multitask(
    data: dict[str, TaskData],
    model: str = "minilm",
    output: str | Path | None = None,
    *,
    lora: LoraSettings | None = None,
    hyperparams: Hyperparams | dict | None = None,
    temperature: float = 0.5,
    loss_weights: dict[str, float] | None = None,
    group_task_lengths: bool = False,
    cross_task_negatives: int = 0,
    teachers: Mapping[str, str | Path] | None = None,
    crf: bool = False,
    resume: Resume = False,
    allow_pickle: bool = False,
    progress: bool = True,
    evaluate_after: bool = True,
    callbacks: list | None = None,
) -> TrainResult:
    """Train one shared encoder with one head per task in ``data`` and write the bundle to ``output``.

    ``hyperparams``: adaptive defaults by the total training rows, overridable; ``crf`` adds a CRF to the
    token (pii) head; ``group_task_lengths`` batches similar lengths within each task; ``cross_task_negatives``
    adds that many of the other tasks' training texts to the jailbreak head as benign (:func:`jailbreak_negatives`);
    ``teachers`` (task -> per-task model) teach those label heads with teacher annealing (training/distill.py).
    After training, temperatures and the jailbreak threshold are fitted on validation and every task is scored on
    validation and test through the runtime.
    """
    from transformers import AutoModel

    started = time.perf_counter()
    if output is None:
        raise RouterforgeError("say where to write the model: output=DIR", hint="the CLI's default is models/<task>")
    if not data:
        raise RouterforgeError("multitask training needs at least one task")
    output = Path(output)
    refuse_to_replace(output, markers=(INFO_FILE,), allowed=(CHECKPOINTS,))
    weights = {name: 1.0 for name in data} | dict(loss_weights or {})
    unknown = set(weights) - set(data)
    if unknown:
        raise RouterforgeError(
            f"loss_weights name tasks that are not trained: {', '.join(sorted(unknown))}",
            source="multitask.loss_weights",
        )
    if crf and not any(d.task.kind == "token" for d in data.values()):
        raise RouterforgeError("crf needs a token task (pii) among the tasks")
    teachers = {name: Path(path) for name, path in (teachers or {}).items()}
    recorded = {"teachers": {name: str(path) for name, path in teachers.items()}} if teachers else {}
    for name in teachers:
        if name not in data or data[name].task.kind != "sequence":
            raise RouterforgeError(f"a teacher for {name}, which is no label task of this bundle", source="multitask")
    for name, d in data.items():
        if not d.val:
            raise RouterforgeError(f"the {name} validation split is empty", hint="raise the validation fraction")
    n_train = sum(len(d.train) for d in data.values())
    given = hyperparams if isinstance(hyperparams, dict) else {}
    misplaced = sorted(set(BUNDLE_SETTINGS) & set(given))
    if misplaced:
        raise RouterforgeError(f"{', '.join(misplaced)}: not hyperparameters", hint="pass them as keyword arguments")
    hp = (
        hyperparams
        if isinstance(hyperparams, Hyperparams)
        else adaptive_hyperparams(n_train, lora=lora is not None, overrides=hyperparams)
    )
    backbone_path, tokenizer = load_tokenizer(model)
    negatives, negatives_from = jailbreak_negatives(data, cross_task_negatives, hp.seed)

    tasks: list[dict[str, Any]] = []
    train_rows: list[dict[str, Any]] = []
    val_sets: dict[str, list[dict[str, Any]]] = {}
    lengths: list[list[int]] = []
    for task_id, (name, d) in enumerate(data.items()):
        kind, names = d.task.kind, label_names(d)
        label2id = {label: i for i, label in enumerate(names)}
        train_set, long_train = encode(d, "train", tokenizer, label2id, hp.max_length, hp.shape_features)
        val_set, long_val = encode(d, "val", tokenizer, label2id, hp.max_length, hp.shape_features)
        use_crf = crf and kind == "token"
        loss, class_weights = choose_loss(hp, kind, train_set, len(names), use_crf)  # on the task's own rows
        if name == "jailbreak" and negatives:
            from datasets import concatenate_datasets

            extra, _ = encode(
                replace(d, train=negatives), "train", tokenizer, label2id, hp.max_length, hp.shape_features
            )
            train_set = concatenate_datasets([train_set, extra])
        if name in teachers:  # the teacher scores the very rows the head trains on, negatives included
            texts = [e.text for e in d.train] + ([e.text for e in negatives] if name == "jailbreak" else [])
            soft = teacher_probabilities(teachers[name], name, d, names, texts)
            train_set = train_set.add_column("soft_labels", soft.astype(np.float32).tolist())
        tasks.append(
            {
                "name": name,
                "kind": kind,
                "labels": list(d.labels),
                "label_names": names,
                "id2label": dict(enumerate(names)),
                "crf": use_crf,
                "loss": loss,
                "class_weights": class_weights,
                "focal_gamma": hp.focal_gamma,
                "weight": weights[name],
                "metric": d.task.metric,
                "long_rows": {"train": long_train, "val": long_val, "window": hp.max_length},
            }
        )
        lengths.append(train_set["length"])
        columns = ("input_ids", "attention_mask", "labels") + (("shape_ids",) if hp.shape_features else ())
        taught = ("soft_labels",) if name in teachers else ()
        train_rows += [{k: row[k] for k in columns + taught} | {"task_id": task_id} for row in train_set]
        val_sets[name] = [{k: row[k] for k in columns} | {"task_id": task_id} for row in val_set]

    torch.manual_seed(hp.seed)
    encoder = load_backbone(AutoModel, backbone_path, allow_pickle)
    if hp.gradient_checkpointing:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora is not None:  # one shared adapter on the encoder; the heads stay fully trainable
        from peft import LoraConfig, get_peft_model

        from ..modeling.backbones import resolve_lora_targets

        encoder = get_peft_model(
            encoder,
            LoraConfig(
                r=lora.rank,
                # peft annotates int; a float alpha works (scaling = alpha / r); LoraSettings always sets it
                lora_alpha=lora.alpha,  # type: ignore[arg-type]
                lora_dropout=lora.dropout,
                target_modules=resolve_lora_targets(encoder, lora.targets),
            ),
        )
    heads = {t["name"]: {"kind": t["kind"], "num_labels": len(t["label_names"]), "crf": t["crf"]} for t in tasks}
    net = MultitaskModel(encoder, heads, shapes=hp.shape_features)

    checkpoint_dir = output / CHECKPOINTS
    use_gpu = torch.cuda.is_available()
    args = training_arguments(hp, checkpoint_dir, SCORE, use_gpu)
    last_checkpoint = prepare_checkpoints(
        checkpoint_dir,
        resume,
        {
            "fingerprints": {name: d.fingerprint for name, d in data.items()},
            "backbone": model,
            "temperature": temperature,
            "loss_weights": weights,
            "group_task_lengths": group_task_lengths,
            "cross_task_negatives": cross_task_negatives,
            **recorded,
            "lora": lora.model_dump() if lora else None,
            "crf": crf,
        },
        hp,
        args,
    )
    args.remove_unused_columns = False
    sampler = TaskBatchSampler(
        [len(rows) for rows in lengths],
        hp.batch_size,
        temperature,
        hp.seed,
        lengths=lengths if group_task_lengths else None,
    )
    trainer = _make_trainer_class()(
        model=net,
        args=args,
        train_dataset=train_rows,
        eval_dataset=val_sets[tasks[0]["name"]],
        data_collator=TaskCollator(tokenizer, [t["kind"] for t in tasks]),
        processing_class=tokenizer,
        callbacks=make_callbacks(hp, callbacks, progress, "train multitask"),
        sampler=sampler,
        tasks=tasks,
        val_sets=val_sets,
    )
    train_seconds = fit(trainer, last_checkpoint, started)
    if not trainer.is_world_process_zero():
        return rank_result(trainer, output, train_seconds)

    info = base_info(
        task=MULTITASK,
        kind=MULTITASK,
        model=model,
        backbone_path=backbone_path,
        model_type=encoder.config.model_type,
        hp=hp,
        lora=lora,
        crf=crf,
        trainer=trainer,
        seconds=train_seconds,
        use_gpu=use_gpu,
        resumed_from=last_checkpoint,
    )
    info |= {
        "heads": {
            t["name"]: {
                "kind": t["kind"],
                "labels": t["labels"],
                "label_names": t["label_names"],
                "crf": t["crf"],
                "loss": t["loss"],
                "loss_weight": t["weight"],
            }
            for t in tasks
        },
        "multitask": {
            "temperature": temperature,
            "loss_weights": weights,
            "sampling": dict(zip(data, np.round(sampler.probs, 4).tolist())),
            "group_task_lengths": group_task_lengths,
            "cross_task_negatives": negatives_from,
            **recorded,
        },
        "data": {
            name: {"manifest": d.manifest(), "report": d.report | {"rows_longer_than_training_window": t["long_rows"]}}
            for t, (name, d) in zip(tasks, data.items())
        },
    }

    def save_weights(directory: Path) -> None:
        final = _unwrap(trainer.model)
        if lora is not None:
            final.encoder.save_pretrained(directory / "adapter")
            final.encoder = final.encoder.merge_and_unload()
        final.save(directory)

    return save_scored(
        output,
        info,
        save_weights=save_weights,
        tokenizer=tokenizer,
        checkpoint_dir=checkpoint_dir,
        splits={name: {"train": d.train, "val": d.val, "test": d.test} for name, d in data.items()},
        evaluate_after=evaluate_after,
        started=started,
        trainer=trainer,
    )
