"""Per-task teachers for the bundle's label heads (training/distill.py): the annealed loss, the teacher's
probabilities on the head's very training rows, the schedule from teacher to gold, and the refusals (a teacher
that saw the bundle's validation or test rows, or lacks the head)."""

from __future__ import annotations

import pytest
import torch

import routerforge as rf
from routerforge.data.synth import write_jsonl
from routerforge.errors import RouterforgeError
from routerforge.modeling.losses import classification_loss
from routerforge.training import distill

FAST = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "patience": 0, "warmup": 0.0, "max_length": 64}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_annealed_loss_runs_from_the_teacher_to_the_gold_label():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    gold = classification_loss(logits, labels, "ce", None, 2.0)
    teacher = torch.tensor([[0.2, 0.8, 0.0], [0.1, 0.1, 0.8]])
    soft_ce = -(teacher * torch.log_softmax(logits, -1)).sum(-1).mean()
    assert distill.annealed_loss(gold, logits, teacher, 1.0) == pytest.approx(float(gold))
    assert distill.annealed_loss(gold, logits, teacher, 0.0) == pytest.approx(float(soft_ce))
    assert distill.annealed_loss(gold, logits, teacher, 0.25) == pytest.approx(0.25 * float(gold) + 0.75 * soft_ce)
    one_hot = torch.nn.functional.one_hot(labels, 3).float()  # a teacher that answers the gold label: plain CE
    assert distill.annealed_loss(gold, logits, one_hot, 0.0) == pytest.approx(float(gold))


@pytest.fixture(scope="module")
def taught(tiny_bert, tmp_path_factory):
    """A per-task category teacher and a category + intent bundle it teaches, on the same data and splits."""
    tmp = tmp_path_factory.mktemp("distill")
    data = {
        task: rf.data.load(task, str(write_jsonl(task, tmp / f"{task}.jsonl", 120, seed=1)))
        for task in ("category", "intent")
    }
    rf.train(data["category"], model=str(tiny_bert), output=tmp / "teacher", hyperparams=FAST, progress=False)
    return tmp, data


def test_the_teacher_teaches_its_head_on_a_schedule_from_soft_to_gold(taught, tiny_bert, monkeypatch):
    tmp, data = taught
    seen: list[tuple[int, float]] = []
    original = distill.annealed_loss

    def recording(gold_loss, logits, soft, done):
        seen.append((soft.shape[0], done))
        assert torch.allclose(soft.sum(-1), torch.ones(soft.shape[0]), atol=1e-4)  # probabilities per row
        return original(gold_loss, logits, soft, done)

    monkeypatch.setattr("routerforge.training.multitask.annealed_loss", recording)
    result = rf.train_multitask(
        data, model=str(tiny_bert), output=tmp / "bundle", hyperparams=FAST, progress=False,
        teachers={"category": tmp / "teacher"},
    )  # fmt: skip
    assert result.info["multitask"]["teachers"] == {"category": str(tmp / "teacher")}
    steps = result.info["training"]["global_steps"]
    assert seen and seen[0][1] < 0.5 < seen[-1][1] <= 1  # only category batches, early soft, late gold
    assert len(seen) < steps  # the intent head has no teacher: its batches use the gold loss alone

    probs = distill.teacher_probabilities(
        tmp / "teacher",
        "category",
        data["category"],
        list(data["category"].labels),
        [e.text for e in data["category"].train],
    )
    assert probs.shape == (len(data["category"].train), len(data["category"].labels))


def test_a_teacher_that_saw_the_bundles_test_rows_or_lacks_the_head_is_refused(taught, tiny_bert, tmp_path):
    tmp, data = taught
    category = data["category"]
    other = rf.data.load("category", str(write_jsonl("category", tmp_path / "c.jsonl", 120, seed=1)), seed=99)
    with pytest.raises(RouterforgeError, match="trained on .* validation or test rows"):
        distill.teacher_probabilities(tmp / "teacher", "category", other, list(category.labels), ["x"])
    with pytest.raises(RouterforgeError, match="no label head named intent"):
        distill.teacher_probabilities(tmp / "teacher", "intent", data["intent"], list(data["intent"].labels), ["x"])
    with pytest.raises(RouterforgeError, match="no label task of this bundle"):
        rf.train_multitask(
            data, model=str(tiny_bert), output=tmp_path / "b", hyperparams=FAST, progress=False,
            teachers={"pii": tmp / "teacher"},
        )  # fmt: skip
