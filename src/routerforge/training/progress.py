"""A rich progress bar for the HF Trainer (its own tqdm bars are turned off)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback


class RichProgressCallback(TrainerCallback):
    """One bar over all optimiser steps; validation metrics printed after each evaluation."""

    def __init__(self, description: str, console: Console | None = None):
        self.description, self.console = description, console or Console(stderr=True)
        self.progress: Progress | None = None
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.bar = self.progress.add_task(self.description, total=state.max_steps, loss="-")
        self.progress.update(self.bar, completed=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.bar, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is not None and logs and "loss" in logs:
            self.progress.update(self.bar, loss=f"{logs['loss']:.4f}")

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.progress is not None and metrics:
            shown = {
                k.removeprefix("eval_"): round(v, 4)
                for k, v in metrics.items()
                if isinstance(v, float) and not k.endswith(("runtime", "per_second"))
            }
            self.progress.console.print(f"  epoch {state.epoch:.2f} validation: {shown}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
