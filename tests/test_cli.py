"""CLI paths that need no training: --config merging, the data command, synthetic augmentation, safety checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import routerforge as rf
from routerforge.cli import app
from routerforge.data import load_split_from_manifest
from routerforge.data.synth import write_jsonl
from routerforge.errors import RouterforgeError
from routerforge.io import refuse_to_replace

runner = CliRunner()


def _config(tmp_path, **task_extra):
    write_jsonl("jailbreak", tmp_path / "data" / "jb.jsonl", 200, seed=3)
    extra = "".join(f", {k}: {v}" for k, v in task_extra.items())
    path = tmp_path / "cfg.yaml"
    path.write_text(
        f"name: t\nseed: 5\ndata_dir: {tmp_path / 'data'}\n"
        f"tasks:\n  jailbreak: {{data: [jb.jsonl]{extra}}}\n"
        "splits: {val: 0.2, test: 0.2, near_duplicate_threshold: 0.95}\n"
    )
    return path


def test_data_command_reads_the_config_and_flags_override_it(tmp_path):
    config = _config(tmp_path, crf="false", augment_synth=0)
    cli = runner.invoke(app, ["data", "--config", str(config), "--task", "jailbreak", "--output", str(tmp_path / "o")])
    assert cli.exit_code == 0, cli.output
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["load_options"]["seed"] == 5 and manifest["load_options"]["test"] == 0.2
    cli = runner.invoke(app, ["data", "--config", str(config), "--task", "jailbreak", "--test", "0.3", "--json"])
    assert cli.exit_code == 0, cli.output
    report = json.loads(cli.stdout)
    assert report["rows_per_split"]["test"] > len(manifest["splits"]["test"])  # the flag won over the config


def test_config_errors_name_the_field(tmp_path):
    config = _config(tmp_path)
    cli = runner.invoke(app, ["data", "--config", str(config), "--task", "pii"])
    assert cli.exit_code == 2 and "not in the config" in cli.output
    config.write_text(config.read_text() + "training: {overrides: {epochz: 3}}\n")
    cli = runner.invoke(app, ["data", "--config", str(config), "--task", "jailbreak"])
    assert cli.exit_code == 2 and "training.overrides" in cli.output and "epochz" in cli.output


def test_synthetic_augmentation_goes_to_train_only_and_is_in_the_manifest(tmp_path):
    source = write_jsonl("pii", tmp_path / "pii.jsonl", 200, seed=3)
    plain = rf.data.load("pii", str(source), group_by="template_id")
    data = rf.data.load("pii", str(source), group_by="template_id", augment_synth=150)
    added = data.report["synthetic_train_rows"]["added"]
    assert 0 < added <= 150 and len(data.train) == len(plain.train) + added
    assert [e.key for e in data.test] == [e.key for e in plain.test]
    assert all(not e.source.startswith("synth:") for e in data.val + data.test)
    assert len(load_split_from_manifest(data.manifest(), "train")) == len(data.train)


def test_refuses_to_replace_a_directory_it_did_not_write(tmp_path):
    (tmp_path / "models" / "keep-me").mkdir(parents=True)
    with pytest.raises(RouterforgeError, match="did not write"):
        refuse_to_replace(tmp_path / "models", markers=("routerforge.json",))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    refuse_to_replace(tmp_path / "run", markers=("routerforge.json",), allowed=("checkpoints",))


def test_version_flag_prints_the_version():
    cli = runner.invoke(app, ["--version"])
    assert cli.exit_code == 0 and cli.stdout.strip() == f"routerforge {rf.__version__}"


def test_boolean_flags_have_help_and_no_bool_metavar():
    cli = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    flags = [line for line in cli.stdout.splitlines() if "--allow-pickle " in line or "--augment " in line]
    assert len(flags) == 2 and not any("<bool>" in line for line in flags), flags
    import typer

    root = typer.main.get_command(app)
    paths = [[]] + [[n] for n in root.commands] + [["bench", n] for n in root.commands["bench"].commands]
    for path in paths:  # --help included (typer shows <bool> for it unless told otherwise)
        cli = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
        assert cli.exit_code == 0 and "--help" in cli.stdout and "<bool>" not in cli.stdout, path


def test_batch_classify_streams_jsonl_line_for_line(tiny_bundle):
    """stdin: raw lines and JSON objects, blank lines kept; stdout: one JSON line per input line, in order."""
    lines = ["What is the integral of x^2?", "", json.dumps({"text": "Call John at 555-123-4567", "id": 7}), "ok"]
    cli = runner.invoke(
        app,
        ["classify", str(tiny_bundle), "-", "--backend", "torch", "--batch-size", "2"],
        input="\n".join(lines) + "\n",
    )
    assert cli.exit_code == 0, cli.output
    out = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [o["text"] for o in out] == ["What is the integral of x^2?", "", "Call John at 555-123-4567", "ok"]
    assert all(set(o) >= {"category", "jailbreak", "intent", "pii"} for o in out)
    bad = runner.invoke(app, ["classify", str(tiny_bundle), "-", "--backend", "torch"], input='{"txt": "x"}\n')
    assert bad.exit_code == 2 and "stdin:1" in bad.output and "'text'" in bad.output


def test_signals_round_trip_and_short_repr(tiny_bundle):
    import dataclasses

    from routerforge.runtime import Router, Signals

    router = Router.load(tiny_bundle, "torch")
    assert repr(router) == f"Router({str(tiny_bundle)!r}, backend='torch', heads={list(router.heads)})"
    signals = router.classify("Call John at 555-123-4567 about the integral of x^2")
    assert Signals.from_dict(json.loads(signals.to_json())) == signals
    signals.extra["custom"] = signals.category  # every field, nested ones too, as dataclasses.asdict has them
    assert signals.to_dict() == dataclasses.asdict(signals) and signals.to_dict()["category"]["probs"] is not (
        signals.category.probs
    )
    assert len(repr(signals)) < 300 and repr(signals).startswith("Signals(category=")


def test_backbone_and_task_errors_come_first_as_one_line(tmp_path, monkeypatch):
    """A backbone that cannot load, and an eval head that does not exist, fail in one line (exit 2) before any
    data is split or model loaded: the data path here does not even exist."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = str(tmp_path / "no-such-data.jsonl")
    cli = runner.invoke(app, ["train", "--task", "jailbreak", "--data", missing, "--model", "someorg/not-cached"])
    assert cli.exit_code == 2 and "not in the local Hugging Face cache" in cli.output, cli.output
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    cli = runner.invoke(app, ["train", "--task", "jailbreak", "--data", missing, "--model", str(tmp_path / "empty")])
    assert cli.exit_code == 2 and "no tokenizer" in cli.output, cli.output
    assert len(cli.output.strip().splitlines()) == 1


def test_train_refuses_flags_it_would_ignore(tmp_path):
    """One task's data flags without --task (the config's tasks would train on their own settings), and --mode
    with --task (one per-task model trains whatever the mode): refused before anything loads."""
    config = str(_config(tmp_path))
    cli = runner.invoke(app, ["train", "--config", config, "--data", "x.jsonl", "--text-field", "prompt"])
    assert cli.exit_code == 2 and "--data, --text-field describe one task's data" in cli.output, cli.output
    cli = runner.invoke(app, ["train", "--config", config, "--task", "jailbreak", "--mode", "multitask"])
    assert cli.exit_code == 2 and "--mode chooses what a config trains" in cli.output, cli.output
    assert not (tmp_path / "runs").exists() and not Path("runs/t").exists()


def test_eval_names_a_missing_head_before_loading_the_model(tiny_bundle):
    cli = runner.invoke(app, ["eval", str(tiny_bundle), "--task", "piii"])
    assert cli.exit_code == 2 and "'piii' is not one of" in cli.output
