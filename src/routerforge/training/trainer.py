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

import time
from pathlib import Path

from ..bundle import INFO_FILE
from ..data.splits import TaskData
from ..errors import RouterforgeError
from ..io import refuse_to_replace
from ..modeling.heads import CrfTokenClassifier, save_model
from ..modeling.losses import classification_loss
from ..modeling.shapes import ShapeAware
from .hyperparams import Hyperparams, adaptive_hyperparams
from .lora import LoraSettings, head_module_names, save_lora, wrap_with_lora
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

__all__ = ["CHECKPOINTS", "TrainResult", "train"]


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


def train(
    data: TaskData,
    model: str = "minilm",
    output: str | Path | None = None,
    *,
    lora: LoraSettings | None = None,
    hyperparams: Hyperparams | dict | None = None,
    crf: bool = False,
    resume: Resume = False,
    allow_pickle: bool = False,
    progress: bool = True,
    evaluate_after: bool = True,
    callbacks: list | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on ``data`` and write a model directory to ``output``.

    ``hyperparams``: a :class:`Hyperparams` or a dict of overrides on the adaptive defaults (by training-set
    size). ``resume``: continue from the last checkpoint in ``output/checkpoints`` (``"auto"``: only a checkpoint
    of this very run, else afresh). ``callbacks``: extra ``transformers.TrainerCallback`` objects. ``crf``: a
    CRF over the token head (pii only). ``allow_pickle``: accept a backbone whose weights are not safetensors.
    """
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
    )

    started = time.perf_counter()
    if output is None:
        raise RouterforgeError("say where to write the model: output=DIR", hint="the CLI's default is models/<task>")
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
    backbone_path, tokenizer = load_tokenizer(model)

    names = label_names(data)
    label2id = {name: i for i, name in enumerate(names)}
    id2label = {i: name for name, i in label2id.items()}
    train_set, long_train = encode(data, "train", tokenizer, label2id, hp.max_length, hp.shape_features)
    val_set, long_val = encode(data, "val", tokenizer, label2id, hp.max_length, hp.shape_features)

    loss_kind, weights = choose_loss(hp, kind, train_set, len(names), crf)

    torch.manual_seed(hp.seed)
    auto = AutoModelForTokenClassification if kind == "token" else AutoModelForSequenceClassification
    net = load_backbone(
        auto,
        backbone_path,
        allow_pickle,
        num_labels=len(names),
        id2label=id2label,
        label2id=label2id,
        ignore_mismatched_sizes=True,
    )
    if hp.gradient_checkpointing:  # non-reentrant: works with frozen (LoRA) embeddings too
        net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hp.shape_features:
        net = ShapeAware(net)
    if crf:
        net = CrfTokenClassifier(net, len(names))
    if lora is not None:
        net = wrap_with_lora(net, lora, head_module_names(net))

    checkpoint_dir = output / CHECKPOINTS
    use_gpu = torch.cuda.is_available()
    args = training_arguments(hp, checkpoint_dir, task.metric, use_gpu)
    last_checkpoint = prepare_checkpoints(
        checkpoint_dir,
        resume,
        {
            "fingerprint": data.fingerprint,
            "backbone": model,
            "lora": lora.model_dump() if lora else None,
            "crf": crf,
        },
        hp,
        args,
    )
    collator = ShapePadding(
        DataCollatorForTokenClassification(tokenizer) if kind == "token" else DataCollatorWithPadding(tokenizer),
        tokenizer.padding_side,
    )
    trainer = _make_trainer_class()(
        model=net,
        args=args,
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(kind, id2label),
        preprocess_logits_for_metrics=_predictions_fn(net),
        callbacks=make_callbacks(hp, callbacks, progress, f"train {task.name}"),
        loss_kind=loss_kind,
        class_weights=weights,
        focal_gamma=hp.focal_gamma,
    )
    train_seconds = fit(trainer, last_checkpoint, started)
    if not trainer.is_world_process_zero():
        return rank_result(trainer, output, train_seconds)

    info = base_info(
        task=task.name,
        kind=kind,
        model=model,
        backbone_path=backbone_path,
        model_type=net.config.model_type,
        hp=hp,
        lora=lora,
        crf=crf,
        trainer=trainer,
        seconds=train_seconds,
        use_gpu=use_gpu,
        resumed_from=last_checkpoint,
    )
    info["hyperparams"] |= {"loss": loss_kind}
    info |= {
        "labels": list(data.labels),
        "label_names": names,
        "data": {
            "manifest": data.manifest(),
            "report": data.report
            | {"rows_longer_than_training_window": {"train": long_train, "val": long_val, "window": hp.max_length}},
        },
    }

    def save_weights(directory: Path) -> None:
        (save_lora if lora is not None else save_model)(trainer.model, directory)

    return save_scored(
        output,
        info,
        save_weights=save_weights,
        tokenizer=tokenizer,
        checkpoint_dir=checkpoint_dir,
        splits={task.name: {"train": data.train, "val": data.val, "test": data.test}},
        evaluate_after=evaluate_after,
        started=started,
        trainer=trainer,
    )
