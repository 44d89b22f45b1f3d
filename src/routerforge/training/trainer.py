"""Fine-tune one task on one backbone with the Hugging Face Trainer, then evaluate and save atomically.

>>> import routerforge as rf
>>> data = rf.data.load("jailbreak", "train.jsonl")
>>> result = rf.train(data, model="minilm", output="models/jailbreak", lora=rf.LoraSettings(rank=12))
>>> result.metrics["test"]["macro_f1"]

What the Trainer does not do and this module adds: adaptive hyperparameters, class-weighted / focal loss,
BIO labels for PII over the tokenizer's offsets, LoRA with a merged copy, and a model directory that is written
to a temporary place and renamed, with ``routerforge.json`` (labels, hyperparameters, split manifest, metrics).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..bundle import INFO_FILE, SCHEMA_VERSION, read_info, write_info
from ..data.schema import Span
from ..data.spans import bio_label_names, bio_labels
from ..data.splits import TaskData
from ..errors import RouterforgeError
from ..evaluation.calibrate import calibrate_and_score
from ..io import atomic_directory, refuse_to_replace, write_json
from ..modeling.backbones import resolve_backbone
from ..modeling.heads import CrfTokenClassifier, save_model
from ..modeling.losses import classification_loss, inverse_frequency_weights, is_imbalanced
from ..text.normalise import CURRENT as NORMALISATION
from ..text.normalise import NORMALISERS
from .hyperparams import Hyperparams, adaptive_hyperparams
from .lora import LoraSettings, head_module_names, save_lora, wrap_with_lora

CHECKPOINTS = "checkpoints"
# Hyperparameters --resume may change: how long to train and how often to checkpoint, not what is trained.
RESUMABLE_CHANGES = {"epochs", "max_steps", "patience", "save_steps"}


@dataclass
class TrainResult:
    output: Path
    metrics: dict
    seconds: float
    info: dict


def _versions() -> dict:
    import peft
    import torch
    import transformers

    from .. import __version__

    return {
        "routerforge": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
    }


def _label_names(data: TaskData) -> list[str]:
    return bio_label_names(data.labels) if data.task.kind == "token" else list(data.labels)


def _normalised_spans(norm, spans: tuple[Span, ...]) -> list[Span]:
    """Gold spans in normalised coordinates; a span whose characters were all removed (invisible) is dropped."""
    moved = [(s.entity_type, norm.to_normalised_span(s.start, s.end)) for s in spans]
    return [Span(entity, *where) for entity, where in moved if where is not None]


def _encode(data: TaskData, split: str, tokenizer, label2id: dict, max_length: int):
    """Normalise and tokenise one split (truncated to the training window) into a ``datasets.Dataset``; count
    long rows. The runtime applies the same normalisation (``NORMALISATION`` in ``routerforge.json``)."""
    import datasets

    examples = data.split(split)
    norms = [NORMALISERS[NORMALISATION](e.text) for e in examples]
    texts = [n.text for n in norms]
    full_lengths = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]] if texts else []
    token_task = data.task.kind == "token"
    encoded = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=token_task)
    if token_task:
        spans = [_normalised_spans(n, e.spans) for n, e in zip(norms, examples)]
        vanished = sum(len(e.spans) for e in examples) - sum(map(len, spans))
        if vanished:
            warnings.warn(
                f"{data.task.name} {split}: {vanished} gold span(s) held only invisible characters and "
                "vanished under normalisation; they are not trained on",
                stacklevel=2,
            )
        labels = [bio_labels(offsets, s, label2id) for offsets, s in zip(encoded.pop("offset_mapping"), spans)]
    else:
        labels = [label2id[e.label] for e in examples]
    columns = {k: encoded[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded}
    columns["labels"] = labels
    columns["length"] = [len(ids) for ids in encoded["input_ids"]]
    long_rows = sum(n > max_length for n in full_lengths)
    return datasets.Dataset.from_dict(columns), long_rows


def choose_loss(hp: Hyperparams, kind: str, train_set, num_labels: int, crf: bool) -> tuple[str, list | None]:
    """The loss (``crf``; else ``hp.loss``; else class-weighted CE when sequence classes are imbalanced) and its
    class weights, from the training labels (-100 marks special tokens, not ``O``)."""
    labels = (
        np.concatenate([np.asarray(r) for r in train_set["labels"]])
        if kind == "token"
        else np.asarray(train_set["labels"])
    )
    counts = np.bincount(labels[labels >= 0], minlength=num_labels)
    loss = "crf" if crf else hp.loss or ("weighted" if kind == "sequence" and is_imbalanced(counts) else "ce")
    return loss, inverse_frequency_weights(counts.tolist()) if loss in ("weighted", "focal") else None


def training_record(state, seconds: float, use_gpu: bool, resumed_from: str | None) -> dict:
    """What ``routerforge.json`` keeps of a Trainer run."""
    return {
        "seconds": round(seconds, 1),
        "global_steps": state.global_step,
        "epochs": round(state.epoch or 0, 3),
        "resumed_from": Path(resumed_from).name if resumed_from else None,
        "best_metric": state.best_metric,
        "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
        "device": "cuda" if use_gpu else "cpu",
        "log_history": state.log_history,
    }


def _compute_metrics_fn(kind: str, id2label: dict):
    """Validation metric for checkpoint selection: macro F1 (sequence) or seqeval entity F1 (token)."""
    from sklearn.metrics import accuracy_score, f1_score

    def compute(prediction):
        preds, labels = prediction.predictions, prediction.label_ids
        if kind == "token":
            from seqeval.metrics import f1_score as entity_f1

            gold, pred = [], []
            for p_row, l_row in zip(preds, labels):
                keep = l_row != -100
                gold.append([id2label[int(i)] for i in l_row[keep]])
                pred.append([id2label[int(i)] for i in p_row[keep]])
            return {"entity_f1": entity_f1(gold, pred, zero_division=0)}
        # macro over the labels present in validation: the same definition the evaluation report uses
        return {
            "macro_f1": f1_score(labels, preds, labels=np.unique(labels), average="macro", zero_division=0),
            "accuracy": accuracy_score(labels, preds),
        }

    return compute


def _crf_of(model) -> CrfTokenClassifier | None:
    """The CRF model inside whatever wraps it (peft, DDP), if there is one."""
    return next((m for m in model.modules() if isinstance(m, CrfTokenClassifier)), None)


def _predictions_fn(net):
    """Validation predictions: argmax per token or sequence; Viterbi tags for a CRF model."""
    crf = _crf_of(net)

    def predict(logits, labels):
        return crf.decode(logits, labels != -100) if crf is not None else logits.argmax(dim=-1)

    return predict


def _make_trainer_class():
    from transformers import Trainer

    class TaskTrainer(Trainer):
        """The HF Trainer with our loss (class weights, focal) instead of the model's built-in CE."""

        def __init__(self, *args, loss_kind: str = "ce", class_weights=None, focal_gamma: float = 2.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_kind, self.class_weights, self.focal_gamma = loss_kind, class_weights, focal_gamma

        def _get_train_sampler(self, *args, **kwargs):
            """The length-grouped sampler with its own seeded generator. Without one it draws from the global RNG,
            which dropout moves differently on each DDP rank: from the second epoch on, the ranks' orders differ
            and their shards overlap (some rows seen twice an epoch, others not at all)."""
            import torch

            sampler = super()._get_train_sampler(*args, **kwargs)
            sampler.generator = torch.Generator().manual_seed(self.args.seed)
            return sampler

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"]
            outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
            if self.loss_kind == "crf":
                loss = _crf_of(model).nll(outputs.logits, labels)
            else:
                loss = classification_loss(outputs.logits, labels, self.loss_kind, self.class_weights, self.focal_gamma)
            return (loss, outputs) if return_outputs else loss

    return TaskTrainer


def _training_arguments(hp: Hyperparams, checkpoint_dir: Path, metric: str, use_gpu: bool):
    """Trainer settings: evaluate and checkpoint every epoch (or every ``save_steps``, or at --max-steps), keep the
    best by ``metric``. Under torchrun / accelerate launch the same settings run DDP (gloo on CPU, NCCL on GPU)."""
    from transformers import TrainingArguments

    strategy = "steps" if hp.save_steps or hp.max_steps else "epoch"
    every = hp.save_steps or hp.max_steps
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.eval_batch_size,
        learning_rate=hp.lr,
        weight_decay=hp.weight_decay,
        warmup_steps=hp.warmup,
        num_train_epochs=hp.epochs,
        max_steps=hp.max_steps or -1,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=every,
        save_steps=every,
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=True,
        save_total_limit=2,
        train_sampling_strategy="group_by_length",
        seed=hp.seed,
        report_to=["tensorboard"],
        logging_steps=20,
        disable_tqdm=True,
        use_cpu=not use_gpu,
        fp16=use_gpu and hp.fp16 is not False,
        label_names=["labels"],
        dataloader_num_workers=0,
        ddp_backend=_ddp_backend(use_gpu),
        optim="adamw_torch_fused",  # on CPU ~20x faster per step than the default foreach AdamW (docs/)
    )


def _ddp_backend(use_gpu: bool) -> str | None:
    """gloo for a multi-process CPU run (accelerate would pick MPI where torch has it, which torchrun cannot
    start); otherwise the default (NCCL on GPUs), and none at all for a single process."""
    return "gloo" if not use_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None


def _prepare_checkpoints(checkpoint_dir: Path, resume: bool, run: dict, args) -> str | None:
    """The checkpoint to resume from (``--resume``), after checking it belongs to the same data and settings;
    a fresh run first clears checkpoints an interrupted earlier run left behind. Rank 0 goes first and alone
    changes files; the other ranks wait for it (``args``: the run's TrainingArguments), then only read."""
    with args.main_process_first(local=False, desc="checkpoints"):
        marker = checkpoint_dir / "run.json"
        if resume:
            last = _last_complete_checkpoint(checkpoint_dir, remove_partial=args.should_save)
            if last is None:
                raise RouterforgeError(
                    "--resume: no checkpoint to resume from",
                    source=str(checkpoint_dir),
                    hint="train without --resume first",
                )
            if not marker.is_file() or json.loads(marker.read_text()) != json.loads(json.dumps(run, default=str)):
                raise RouterforgeError(
                    "--resume: the checkpoints come from different data or settings",
                    source=str(checkpoint_dir),
                    hint="resume with the same command, or drop --resume",
                )
            return last
        if args.should_save:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
            checkpoint_dir.mkdir(parents=True)
            write_json(marker, run)
        return None


def _last_complete_checkpoint(checkpoint_dir: Path, remove_partial: bool) -> str | None:
    """The newest checkpoint whose ``trainer_state.json`` (the Trainer writes it last) parses. A kill during a
    save leaves a newer checkpoint without one, which would not resume; ``remove_partial`` deletes those."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    steps = {
        int(p.name.rsplit("-", 1)[1]): p
        for p in checkpoint_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
        if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()
    }
    for _, path in sorted(steps.items(), reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text())
            return str(path)
        except (OSError, ValueError):
            if remove_partial:
                shutil.rmtree(path, ignore_errors=True)
    return None


def refuse_sharded_weights(trainer) -> None:
    """Rank 0 writes the model from its own copy of the weights, so every rank must hold them whole: DDP and
    DeepSpeed ZeRO-1/2 do; FSDP and ZeRO-3 shard them. Refused before training rather than found after it."""
    deepspeed = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if trainer.is_fsdp_enabled or (deepspeed is not None and deepspeed.zero_stage == 3):
        raise RouterforgeError(
            "FSDP and DeepSpeed ZeRO-3 shard the weights across processes, and routerforge "
            "writes the model from rank 0's copy",
            hint="launch DDP (torchrun, accelerate launch "
            "--multi_gpu) or DeepSpeed ZeRO stage 1 or 2; see docs/distributed.md",
        )


def fit(trainer, last_checkpoint: str | None, started: float) -> float:
    """Run a set-up Trainer (both trainers): rich bar instead of raw log dicts, no sharded weights, resume from
    ``last_checkpoint``; returns the seconds since ``started``."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    refuse_sharded_weights(trainer)
    trainer.train(resume_from_checkpoint=last_checkpoint)
    return time.perf_counter() - started


def rank_result(trainer, output: Path, seconds: float) -> TrainResult:
    """On a rank other than 0 (torchrun): wait until rank 0 has written and scored the model, then return what
    it wrote, so every rank returns the same result and may load the model."""
    trainer.accelerator.wait_for_everyone()
    info = read_info(output)
    return TrainResult(output, info["metrics"], seconds, info)


def move_logs(checkpoint_dir: Path, model_dir: Path) -> None:
    """Keep the TensorBoard logs (``logs/``); the checkpoints go."""
    if (checkpoint_dir / "runs").is_dir():
        shutil.move(str(checkpoint_dir / "runs"), str(model_dir / "logs"))


def train(
    data: TaskData,
    model: str = "minilm",
    output: str | Path = "models/model",
    *,
    lora: LoraSettings | None = None,
    hyperparams: Hyperparams | dict | None = None,
    crf: bool = False,
    resume: bool = False,
    allow_pickle: bool = False,
    progress: bool = True,
    evaluate_after: bool = True,
    callbacks: list | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on ``data`` and write a model directory to ``output``.

    ``hyperparams``: a :class:`Hyperparams` or a dict of overrides on the adaptive defaults (by training-set
    size). ``resume``: continue from the last checkpoint in ``output/checkpoints``. ``callbacks``: extra
    ``transformers.TrainerCallback`` objects. ``crf``: a CRF over the token head (pii only).
    ``allow_pickle``: accept a backbone whose weights are not safetensors.
    """
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        EarlyStoppingCallback,
    )

    started = time.perf_counter()
    output = Path(output)
    refuse_to_replace(output, markers=(INFO_FILE,), allowed=(CHECKPOINTS,))
    if isinstance(hyperparams, Hyperparams):
        hp = hyperparams
    else:
        hp = adaptive_hyperparams(len(data.train), lora=lora is not None, kind=data.task.kind, overrides=hyperparams)
    task, kind = data.task, data.task.kind
    if crf and kind != "token":
        raise RouterforgeError(f"--crf is for token tasks (pii), not {task.name}")
    if crf and hp.loss not in (None, "ce"):
        raise RouterforgeError(f"loss {hp.loss!r} does not apply with --crf (the CRF has its own likelihood)")
    if not data.val:
        raise RouterforgeError(
            f"the {task.name} validation split is empty",
            hint="early stopping and checkpoint selection need validation rows: raise --val",
        )
    backbone_path = resolve_backbone(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(backbone_path)
    except (OSError, ValueError) as err:
        raise RouterforgeError(f"cannot load the tokenizer: {err}", source=backbone_path) from None
    if not getattr(tokenizer, "is_fast", False):
        raise RouterforgeError("routerforge needs a fast (Rust) tokenizer for character offsets", source=backbone_path)

    label_names = _label_names(data)
    label2id = {name: i for i, name in enumerate(label_names)}
    id2label = {i: name for name, i in label2id.items()}
    train_set, long_train = _encode(data, "train", tokenizer, label2id, hp.max_length)
    val_set, long_val = _encode(data, "val", tokenizer, label2id, hp.max_length)

    loss_kind, weights = choose_loss(hp, kind, train_set, len(label_names), crf)

    torch.manual_seed(hp.seed)
    auto = AutoModelForTokenClassification if kind == "token" else AutoModelForSequenceClassification
    try:
        net = auto.from_pretrained(
            backbone_path,
            num_labels=len(label_names),
            id2label=id2label,
            label2id=label2id,
            ignore_mismatched_sizes=True,
            use_safetensors=None if allow_pickle else True,
        )
    except (OSError, ValueError) as err:
        raise RouterforgeError(
            f"cannot load the backbone: {err}",
            source=backbone_path,
            hint="weights must be safetensors unless --allow-pickle",
        ) from None
    if hp.gradient_checkpointing:  # non-reentrant: works with frozen (LoRA) embeddings too
        net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if crf:
        net = CrfTokenClassifier(net, len(label_names))
    if lora is not None:
        net = wrap_with_lora(net, lora, head_module_names(net))

    checkpoint_dir = output / CHECKPOINTS
    use_gpu = torch.cuda.is_available()
    args = _training_arguments(hp, checkpoint_dir, task.metric, use_gpu)
    last_checkpoint = _prepare_checkpoints(
        checkpoint_dir,
        resume,
        {
            "fingerprint": data.fingerprint,
            "hyperparams": hp.model_dump(exclude=RESUMABLE_CHANGES),
            "backbone": model,
            "lora": lora.model_dump() if lora else None,
            "crf": crf,
        },
        args,
    )
    collator = DataCollatorForTokenClassification(tokenizer) if kind == "token" else DataCollatorWithPadding(tokenizer)
    callbacks = list(callbacks or [])
    if hp.patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=hp.patience))
    if progress:
        from .progress import RichProgressCallback

        callbacks.append(RichProgressCallback(f"train {task.name}"))
    trainer = _make_trainer_class()(
        model=net,
        args=args,
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=_compute_metrics_fn(kind, id2label),
        preprocess_logits_for_metrics=_predictions_fn(net),
        callbacks=callbacks,
        loss_kind=loss_kind,
        class_weights=weights,
        focal_gamma=hp.focal_gamma,
    )
    train_seconds = fit(trainer, last_checkpoint, started)
    if not trainer.is_world_process_zero():
        return rank_result(trainer, output, train_seconds)

    state = trainer.state
    info = {
        "schema_version": SCHEMA_VERSION,
        "task": task.name,
        "kind": kind,
        "labels": list(data.labels),
        "label_names": label_names,
        "backbone": {"name": model, "path": backbone_path, "model_type": net.config.model_type},
        "hyperparams": hp.model_dump() | {"loss": loss_kind},
        "lora": lora.model_dump() if lora else None,
        "crf": crf,
        "max_length": hp.max_length,
        "normalisation": NORMALISATION,
        "data": {
            "manifest": data.manifest(),
            "report": data.report
            | {"rows_longer_than_training_window": {"train": long_train, "val": long_val, "window": hp.max_length}},
        },
        "training": training_record(state, train_seconds, use_gpu, last_checkpoint),
        "calibration": {},
        "thresholds": {},
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with atomic_directory(output) as tmp:
        final = trainer.model
        if lora is not None:
            save_lora(final, tmp)
        else:
            save_model(final, tmp)
        tokenizer.save_pretrained(tmp)
        move_logs(checkpoint_dir, tmp)
        splits = {task.name: {"val": data.val, "test": data.test}}
        info = calibrate_and_score(tmp, info, splits) if evaluate_after else info | {"metrics": {}}
        metrics = info["metrics"]
        info["training"]["seconds_with_eval"] = round(time.perf_counter() - started, 1)
        write_info(tmp, info)
    trainer.accelerator.wait_for_everyone()  # the other ranks wait in rank_result until the model is in place
    return TrainResult(output, metrics, train_seconds, info)
