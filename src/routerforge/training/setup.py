"""The half of training that per-task and multitask training share: tokenizer and backbone loading, encoding,
loss choice, Trainer arguments, checkpoints and resume, callbacks, the common ``routerforge.json`` keys, and
the atomic save that calibrates and scores the model before it takes its final name.

Both :func:`routerforge.training.trainer.train` and :func:`routerforge.training.multitask.train_multitask` are a
model-specific middle between these steps.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from ..bundle import SCHEMA_VERSION, read_info, write_info
from ..data.schema import Span
from ..data.spans import bio_label_names, bio_labels
from ..data.splits import TaskData
from ..errors import RouterforgeError
from ..evaluation.calibrator import calibrate_and_score
from ..io import atomic_directory, write_json
from ..modeling.backbones import check_backbone
from ..modeling.losses import inverse_frequency_weights, is_imbalanced
from ..text.normalise import CURRENT as NORMALISATION
from ..text.normalise import NORMALISERS
from ..text.shapes import SHAPES_VERSION, token_shapes
from .hyperparams import Hyperparams
from .lora import LoraSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

CHECKPOINTS = "checkpoints"
# ``--resume`` (True), a fresh run (False), or resume only what matches this run ("auto": the pipeline).
Resume = bool | Literal["auto"]

# Hyperparameters --resume may change: how long to train and how often to checkpoint, not what is trained.
RESUMABLE_CHANGES = {"epochs", "max_steps", "patience", "save_steps"}


@dataclass
class TrainResult:
    """What a training run returns: where it wrote the model, its metrics and time."""

    output: Path
    metrics: dict
    seconds: float
    info: dict


def versions() -> dict:
    """Library versions recorded in routerforge.json."""
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


def label_names(data: TaskData) -> list[str]:
    """A head's output units: BIO tags for a token task, else the labels."""
    return bio_label_names(data.labels) if data.task.kind == "token" else list(data.labels)


def normalised_spans(norm, spans: tuple[Span, ...]) -> list[Span]:
    """Gold spans in normalised coordinates; a span whose characters were all removed (invisible) is dropped."""
    moved = [(s.entity_type, norm.to_normalised_span(s.start, s.end)) for s in spans]
    return [Span(entity, *where) for entity, where in moved if where is not None]


def encode(data: TaskData, split: str, tokenizer, label2id: dict, max_length: int, shapes: bool = False):
    """Normalise and tokenise one split (truncated to the training window) into a ``datasets.Dataset``; count
    long rows. The runtime applies the same normalisation (``NORMALISATION`` in ``routerforge.json``).
    ``shapes``: a ``shape_ids`` column, each token's shape in the normalised text (``text.shapes``)."""
    import datasets

    examples = data.split(split)
    norms = [NORMALISERS[NORMALISATION](e.text) for e in examples]
    texts = [n.text for n in norms]
    full_lengths = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]] if texts else []
    token_task = data.task.kind == "token"
    encoded = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=token_task or shapes)
    shape_ids = [token_shapes(t, o) for t, o in zip(texts, encoded["offset_mapping"])] if shapes else None
    if token_task:
        spans = [normalised_spans(n, e.spans or ()) for n, e in zip(norms, examples)]
        vanished = sum(len(e.spans or ()) for e in examples) - sum(map(len, spans))
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
    if shape_ids is not None:
        columns["shape_ids"] = shape_ids
    columns["length"] = [len(ids) for ids in encoded["input_ids"]]
    long_rows = sum(n > max_length for n in full_lengths)
    return datasets.Dataset.from_dict(columns), long_rows


class ShapePadding:
    """Wraps a Hugging Face data collator: pads ``shape_ids`` (which the tokenizer's padding does not know) with 0
    to the batch's width, on the tokenizer's padding side. Batches without the column pass through."""

    def __init__(self, collator, padding_side: str = "right"):
        self.collator, self.left = collator, padding_side == "left"

    def __call__(self, features: list[dict]) -> dict:
        if "shape_ids" not in features[0]:
            return self.collator(features)
        import torch

        shapes = [f["shape_ids"] for f in features]
        batch = self.collator([{k: v for k, v in f.items() if k != "shape_ids"} for f in features])
        width = batch["input_ids"].shape[1]
        pad = [[0] * (width - len(s)) for s in shapes]
        batch["shape_ids"] = torch.tensor([p + s if self.left else s + p for s, p in zip(shapes, pad)])
        return batch


def choose_loss(hp: Hyperparams, kind: str, train_set, num_labels: int, crf: bool) -> tuple[str, torch.Tensor | None]:
    """The loss (``crf``; else ``hp.loss``; else class-weighted CE when sequence classes are imbalanced) and its
    class weights, from the training labels (-100 marks special tokens, not ``O``)."""
    labels = (
        np.concatenate([np.asarray(r) for r in train_set["labels"]])
        if kind == "token"
        else np.asarray(train_set["labels"])
    )
    counts = np.bincount(labels[labels >= 0], minlength=num_labels).tolist()
    loss = "crf" if crf else hp.loss or ("weighted" if kind == "sequence" and is_imbalanced(counts) else "ce")
    return loss, inverse_frequency_weights(counts) if loss in ("weighted", "focal") else None


def training_record(trainer, seconds: float, use_gpu: bool, resumed_from: str | None) -> dict:
    """What ``routerforge.json`` keeps of a Trainer run."""
    state, args = trainer.state, trainer.args
    return {
        "seconds": round(seconds, 1),
        "global_steps": state.global_step,
        "epochs": round(state.epoch or 0, 3),
        "resumed_from": Path(resumed_from).name if resumed_from else None,
        "best_metric": state.best_metric,
        "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
        "device": "cuda" if use_gpu else "cpu",
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "log_history": state.log_history,
    }


def compute_metrics_fn(kind: str, id2label: dict):
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


def training_arguments(hp: Hyperparams, checkpoint_dir: Path, metric: str, use_gpu: bool):
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
        save_steps=every,  # type: ignore[arg-type]  # annotated float; None (the "epoch" strategy) is unused
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
        bf16=(bf16 := use_bf16(hp, use_gpu)),
        fp16=use_gpu and not bf16 and hp.fp16 is not False,
        label_names=["labels"],
        dataloader_num_workers=0,
        ddp_backend=ddp_backend(use_gpu),
        optim="adamw_torch_fused",  # on CPU ~20x faster per step than the default foreach AdamW (docs/)
    )


def use_bf16(hp: Hyperparams, use_gpu: bool) -> bool:
    """Whether to train under bf16 autocast: as asked, or (auto) where the hardware runs bf16 natively. Weights,
    optimiser state and the saved model stay fp32."""
    if hp.bf16 != "auto":
        return bool(hp.bf16)
    import torch

    if use_gpu:
        return torch.cuda.is_bf16_supported()
    native = (
        getattr(torch.cpu, name, lambda: False) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )
    return any(check() for check in native)


def ddp_backend(use_gpu: bool) -> str | None:
    """gloo for a multi-process CPU run (accelerate would pick MPI where torch has it, which torchrun cannot
    start); otherwise the default (NCCL on GPUs), and none at all for a single process."""
    return "gloo" if not use_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None


def prepare_checkpoints(checkpoint_dir: Path, resume: Resume, run: dict, hp: Hyperparams, args) -> str | None:
    """The checkpoint to resume from, after checking it belongs to the same data and settings (``run``, plus
    ``hp`` but for :data:`RESUMABLE_CHANGES`); a fresh run first clears checkpoints an interrupted earlier run left
    behind. ``--resume`` (True) may change the run's length, patience and checkpoint interval on purpose;
    ``"auto"`` (the pipeline) resumes only a run made with those unchanged as well (and as many processes), so
    that it gives the model a fresh run would give, and otherwise starts afresh. Rank 0 goes first and alone
    changes files; the other ranks wait for it (``args``: the run's TrainingArguments), then only read."""
    marker = checkpoint_dir / "run.json"
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    schedule = json.loads(json.dumps(hp.model_dump(include=RESUMABLE_CHANGES) | {"processes": processes}))
    current = json.loads(json.dumps(run | {"hyperparams": hp.model_dump(exclude=RESUMABLE_CHANGES)}, default=str))
    with args.main_process_first(local=False, desc="checkpoints"):
        if resume:
            last = last_complete_checkpoint(checkpoint_dir, remove_partial=args.should_save)
            recorded = json.loads(marker.read_text()) if marker.is_file() else {}
            same = {k: v for k, v in recorded.items() if k != "schedule"} == current
            if last is not None and same and (resume is True or recorded.get("schedule") == schedule):
                if args.should_save:  # a later automatic resume compares with the schedule now in force
                    write_json(marker, current | {"schedule": schedule})
                return last
            if resume is True and last is None:
                raise RouterforgeError(
                    "--resume: no checkpoint to resume from",
                    source=str(checkpoint_dir),
                    hint="train without --resume first",
                )
            if resume is True:
                raise RouterforgeError(
                    "--resume: the checkpoints come from different data or settings",
                    source=str(checkpoint_dir),
                    hint="resume with the same command, or drop --resume",
                )
        if args.should_save:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
            checkpoint_dir.mkdir(parents=True)
            write_json(marker, current | {"schedule": schedule})
        return None


def last_complete_checkpoint(checkpoint_dir: Path, remove_partial: bool) -> str | None:
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


def load_tokenizer(model: str) -> tuple[str, PreTrainedTokenizerBase]:
    """The backbone's local path and its fast tokenizer (character offsets need the Rust one)."""
    from transformers import AutoTokenizer

    backbone_path = check_backbone(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(backbone_path)
    except (OSError, ValueError) as err:
        raise RouterforgeError(f"cannot load the tokenizer: {err}", source=backbone_path) from None
    if not getattr(tokenizer, "is_fast", False):
        raise RouterforgeError("routerforge needs a fast (Rust) tokenizer for character offsets", source=backbone_path)
    return backbone_path, tokenizer


class _Pretrained(Protocol):
    """A transformers model class (AutoModel, AutoModelFor...): what :func:`load_backbone` is given."""

    def from_pretrained(self, *args: Any, **kwargs: Any) -> Any: ...


def load_backbone(loader: _Pretrained, backbone_path: str, allow_pickle: bool, **options):
    """``loader.from_pretrained`` (AutoModel, AutoModelFor...) with safetensors required unless ``allow_pickle``."""
    try:
        return loader.from_pretrained(backbone_path, use_safetensors=None if allow_pickle else True, **options)
    except (OSError, ValueError) as err:
        raise RouterforgeError(
            f"cannot load the backbone: {err}",
            source=backbone_path,
            hint="weights must be safetensors unless --allow-pickle",
        ) from None


def make_callbacks(hp: Hyperparams, extra: list | None, progress: bool, description: str) -> list:
    """Early stopping (``hp.patience``), the rich progress bar, and the caller's own callbacks."""
    from transformers import EarlyStoppingCallback

    callbacks = list(extra or [])
    if hp.patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=hp.patience))
    if progress:
        from .progress import RichProgressCallback

        callbacks.append(RichProgressCallback(description))
    return callbacks


def base_info(
    *,
    task: str,
    kind: str,
    model: str,
    backbone_path: str,
    model_type: str,
    hp: Hyperparams,
    lora: LoraSettings | None,
    crf: bool,
    trainer,
    seconds: float,
    use_gpu: bool,
    resumed_from: str | None,
) -> dict:
    """The ``routerforge.json`` keys every trained model has; the trainers add their heads, data and specifics."""
    return {
        "schema_version": SCHEMA_VERSION,
        "task": task,
        "kind": kind,
        "backbone": {"name": model, "path": backbone_path, "model_type": model_type},
        "hyperparams": hp.model_dump(),
        "lora": lora.model_dump() if lora else None,
        "crf": crf,
        "max_length": hp.max_length,
        "normalisation": NORMALISATION,
        "shape_features": SHAPES_VERSION if hp.shape_features else None,
        "training": training_record(trainer, seconds, use_gpu, resumed_from),
        "calibration": {},
        "thresholds": {},
        "versions": versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save_scored(
    output: Path,
    info: dict,
    *,
    save_weights: Callable[[Path], None],
    tokenizer,
    checkpoint_dir: Path,
    splits: dict[str, dict[str, list]],
    evaluate_after: bool,
    started: float,
    trainer,
) -> TrainResult:
    """Write the model into a temporary directory (weights, tokenizer, TensorBoard logs), calibrate it (lexical
    priors from ``splits``' training rows) and score it there through the serving path, write
    ``routerforge.json`` last, then rename it into place. A kill at any point leaves no directory that loads as
    a model. The other DDP ranks wait in :func:`rank_result`."""
    train_seconds = info["training"]["seconds"]
    with atomic_directory(output) as tmp:
        save_weights(tmp)
        tokenizer.save_pretrained(tmp)
        move_logs(checkpoint_dir, tmp)
        info = calibrate_and_score(tmp, info, splits) if evaluate_after else info | {"metrics": {}}
        info["training"]["seconds_with_eval"] = round(time.perf_counter() - started, 1)
        write_info(tmp, info)
    trainer.accelerator.wait_for_everyone()
    return TrainResult(output, info["metrics"], train_seconds, info)
