"""`routerforge pipeline`: one YAML -> data, train, calibrate, eval, export, report under runs/<name>/, with
stages skipped when their inputs did not change, resumed after a kill, and config errors that name the field."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import routerforge as rf
from routerforge.cli import app
from routerforge.data import load_split_from_manifest
from routerforge.errors import RouterforgeError

runner = CliRunner()
TASKS = ("jailbreak", "intent")


def write_config(tmp_path, backbone, *, mode="both", n=60, name="tiny", tasks=TASKS):
    """A tiny run: synthetic data, a 2-layer backbone, 3 optimiser steps per model, ONNX fp32 export."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nseed: 3\nbackbone: {backbone}\n"
        "tasks:\n"
        + "".join(f"  {t}: {{data: ['synth:{n}']}}\n" for t in tasks)
        + "splits: {val: 0.2, test: 0.2, near_duplicate_threshold: 1.01}\n"
        f"training: {{mode: {mode}, max_length: 32, overrides: {{max_steps: 3, batch_size: 8, lr: 0.003, "
        "patience: 0, warmup: 0.0}}\n"
        "export: {formats: [onnx]}\n"
    )
    return path


def run(config, runs, *args):
    return runner.invoke(app, ["pipeline", str(config), "--runs-dir", str(runs), *args])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """A stub run report (the real one, with its plots, runs once in the end-to-end test)."""

    def stub_report(run_dir, config):
        (run_dir / "report").mkdir(exist_ok=True)
        (run_dir / "report" / "index.html").write_text(config.name)
        return run_dir / "report" / "index.html"

    monkeypatch.setattr("routerforge.reports.run_report.write_run_report", stub_report)


def state(run_dir):
    return json.loads((run_dir / "pipeline.json").read_text())


def item_times(run_dir):
    """``{stage/item: started}``: an item that did not run keeps its timestamp."""
    return {
        f"{stage}/{name}": entry["started"]
        for stage, record in state(run_dir)["stages"].items()
        for name, entry in record["items"].items()
    }


@pytest.fixture(scope="module")
def finished_run(tiny_bert, tmp_path_factory):
    """One full run in both modes (two per-task models and a bundle), shared read-only by the tests below."""
    tmp = tmp_path_factory.mktemp("pipeline")
    config = write_config(tmp, tiny_bert)
    (tmp / "runs" / "tiny").mkdir(parents=True)
    (tmp / "runs" / "tiny" / "latency.json").write_text("{}")  # the report's own latency check: not here
    cli = run(config, tmp / "runs")
    assert cli.exit_code == 0, cli.output
    return config, tmp / "runs" / "tiny", cli.output


def copy_run(finished_run, tmp_path):
    config, run_dir, _ = finished_run
    shutil.copytree(run_dir, tmp_path / "runs" / "tiny")
    return config, tmp_path / "runs" / "tiny"


def test_end_to_end_writes_every_stage(finished_run):
    _, run_dir, output = finished_run
    recorded = state(run_dir)
    assert [s for s in recorded["stage_order"] if s in recorded["stages"]] == list(recorded["stage_order"])
    for stage, record in recorded["stages"].items():
        assert record["status"] == "done" and record["seconds"] >= 0, stage
        for name, entry in record["items"].items():
            assert entry["status"] == "done" and len(entry["input_hash"]) == 16 and entry["ended"] >= entry["started"]
            assert (run_dir / entry["path"]).exists(), (stage, name)
    assert set(recorded["stages"]["train"]["items"]) == {*TASKS, "bundle"}
    assert set(recorded["stages"]["eval"]["items"]) == {f"{m}/{t}" for m in (*TASKS, "bundle") for t in TASKS} - {
        "jailbreak/intent",
        "intent/jailbreak",
    }
    for task in TASKS:
        saved = json.loads((run_dir / "data" / f"{task}.json").read_text())
        assert saved["manifest"]["sources"][0]["path"] == "synth:60:3"  # the seed is in the manifest
        for model in (task, "bundle"):
            metrics = json.loads((run_dir / "eval" / model / task / "metrics.json").read_text())
            # eval scored exactly the test rows the data stage recorded
            assert metrics["evaluated_on"]["fingerprint"] == saved["manifest"]["fingerprint"]
            assert metrics["evaluated_on"]["rows"] == len(saved["manifest"]["splits"]["test"])
        info = json.loads((run_dir / "models" / task / "routerforge.json").read_text())
        assert info["data"]["manifest"] == saved["manifest"]
    bundle = json.loads((run_dir / "bundle" / "routerforge.json").read_text())
    assert bundle["exports"]["onnx"]["parity"]["passed"] and (run_dir / "bundle" / "model.onnx").is_file()
    assert (run_dir / "bundle" / "README.md").is_file() and (run_dir / "models" / "intent" / "README.md").is_file()
    assert "synthetic template data only (jailbreak, intent)" in (run_dir / "bundle" / "README.md").read_text()
    assert (run_dir / "report" / "index.html").is_file()  # the real run report, with every model
    assert all(key in (run_dir / "report" / "report.md").read_text() for key in ("bundle", "models/intent"))
    assert "ROC-AUC" in output and "macro F1" in output and "stages" in output  # the summary tables


def test_second_run_skips_everything(finished_run, tmp_path, monkeypatch):
    config, run_dir = copy_run(finished_run, tmp_path)
    before = item_times(run_dir)

    def boom(*args, **kwargs):
        raise AssertionError("recomputed")

    for module, name in (
        ("routerforge.training.from_config", "train_model"),
        ("routerforge.training.from_config", "train_bundle"),
        ("routerforge.evaluation.evaluator", "evaluate"),
        ("routerforge.exporters.exporter", "export"),
        ("routerforge.evaluation.calibrator", "calibrate"),
        ("routerforge.reports.run_report", "write_run_report"),
    ):
        monkeypatch.setattr(f"{module}.{name}", boom)
    cli = run(config, tmp_path / "runs")
    assert cli.exit_code == 0, cli.output
    assert cli.output.count(": skipped (unchanged)") == len(before)
    assert item_times(run_dir) == before
    assert all(not r["ran"] for r in state(run_dir)["stages"].values())


def test_refused_int8_export_is_recorded_and_the_run_goes_on(finished_run, tmp_path, monkeypatch):
    """An int8 model that fails parity is refused (fp32 serves it), recorded, and not fatal to the run; the
    exporter writes the refusal into routerforge.json and leaves the model files alone."""
    import routerforge.exporters.exporter as exporters
    from routerforge.exporters.parity import ParityError

    original, run_dir = copy_run(finished_run, tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(original.read_text().replace("formats: [onnx]", "formats: [onnx, onnx-int8]"))
    failing = {
        "passed": False,
        "criteria": "label agreement >= 99%",
        "heads": {"intent": {"passed": False, "label_agreement": 0.9, "rows": 10}},
    }
    files = sorted(p.name for p in (run_dir / "models" / "intent").iterdir())
    with pytest.MonkeyPatch.context() as patch, pytest.raises(ParityError):
        patch.setattr("routerforge.exporters.exporter.check_parity", lambda *a, **k: failing)
        exporters.export(run_dir / "models" / "intent", "onnx-int8")
    assert sorted(p.name for p in (run_dir / "models" / "intent").iterdir()) == files
    info = json.loads((run_dir / "models" / "intent" / "routerforge.json").read_text())
    assert info["exports"]["onnx-int8"]["refused"] == "parity" and info["exports"]["onnx-int8"]["file"] is None

    real = exporters.export

    def refuse_int8(model_dir, fmt, **kwargs):
        if fmt != "onnx-int8":
            return real(model_dir, fmt, **kwargs)
        raise ParityError("onnx-int8 export failed its parity check", {"parity": failing})

    monkeypatch.setattr("routerforge.exporters.exporter.export", refuse_int8)
    cli = run(config, tmp_path / "runs", "--from", "export")
    assert cli.exit_code == 0, cli.output
    output = " ".join(cli.output.split())  # the console wraps long lines
    assert output.count("onnx-int8 refused") == 3 and "intent: label agreement 90.0%" in output
    items = state(run_dir)["stages"]["export"]["items"]
    assert all(
        item["formats"]["onnx-int8"]["refused"] == "parity" and item["formats"]["onnx"]["parity"]
        for item in items.values()
    )
    assert all((run_dir / p / "model.onnx").is_file() for p in ("bundle", "models/intent", "models/jailbreak"))


def test_changed_data_reruns_only_what_depends_on_it(finished_run, tiny_bert, tmp_path):
    _, run_dir = copy_run(finished_run, tmp_path)
    config = write_config(tmp_path, tiny_bert)
    config.write_text(config.read_text().replace("jailbreak: {data: ['synth:60']}", "jailbreak: {data: ['synth:70']}"))
    cli = run(config, tmp_path / "runs")
    assert cli.exit_code == 0, cli.output
    ran = {stage: set(r["ran"]) for stage, r in state(run_dir)["stages"].items()}
    assert ran["data"] == {"jailbreak"}
    assert ran["train"] == ran["calibrate"] == ran["export"] == {"jailbreak", "bundle"}
    assert ran["eval"] == {"jailbreak/jailbreak", "bundle/jailbreak", "bundle/intent"}
    assert ran["report"] == {"report"}


def test_bundle_settings_retrain_only_the_bundle(finished_run, tiny_bert, tmp_path, monkeypatch):
    from routerforge.training.multitask import TaskBatchSampler

    grouped = []
    original = TaskBatchSampler.__init__

    def recording_init(self, *args, lengths=None, **kwargs):
        grouped.append(lengths is not None)
        original(self, *args, lengths=lengths, **kwargs)

    monkeypatch.setattr(TaskBatchSampler, "__init__", recording_init)
    _, run_dir = copy_run(finished_run, tmp_path)
    config = write_config(tmp_path, tiny_bert)
    text = config.read_text()
    config.write_text(text + "multitask: {cross_task_negatives: 4, group_task_lengths: true}\n")
    cli = run(config, tmp_path / "runs")
    assert cli.exit_code == 0, cli.output
    assert grouped == [True]  # the bundle's sampler grouped lengths
    assert state(run_dir)["stages"]["train"]["ran"] == ["bundle"]  # the per-task models do not read them
    info = json.loads((run_dir / "bundle" / "routerforge.json").read_text())
    assert sum(info["multitask"]["cross_task_negatives"].values()) == 4 and info["multitask"]["group_task_lengths"]
    assert "'group_task_lengths': True" in cli.output  # said before training


def test_a_changed_teacher_reteaches_the_bundle(finished_run, tiny_bert, tmp_path):
    """The bundle's hash covers its teachers: a per-task teacher of this run that re-trains (here for its own
    overrides, which the bundle does not read) re-trains the bundle it teaches."""
    _, run_dir = copy_run(finished_run, tmp_path)
    config = write_config(tmp_path, tiny_bert)
    taught = config.read_text() + f"multitask: {{teachers: {{intent: {run_dir / 'models' / 'intent'}}}}}\n"
    config.write_text(taught)
    assert run(config, tmp_path / "runs").exit_code == 0
    assert state(run_dir)["stages"]["train"]["ran"] == ["bundle"]
    own = "intent: {data: ['synth:60'], overrides: {lr: 0.002}}"
    config.write_text(taught.replace("intent: {data: ['synth:60']}", own))
    cli = run(config, tmp_path / "runs")
    assert cli.exit_code == 0, cli.output
    assert state(run_dir)["stages"]["train"]["ran"] == ["intent", "bundle"]


def test_the_bundle_trains_on_rows_an_attacker_made_of_this_runs_jailbreak_model(finished_run, tiny_bert, tmp_path):
    """``multitask.adversarial_from``: before the bundle trains, the greedy attacker pads the per-task jailbreak
    model's own training jailbreaks; the rows join the bundle's jailbreak training split only and the manifest
    re-creates them. A bundle re-trained for another reason reads the same file; a re-trained jailbreak model
    makes new rows and re-trains the bundle."""
    from routerforge.bundle import head_data, read_info
    from routerforge.data import load_split_from_manifest

    _, run_dir = copy_run(finished_run, tmp_path)
    config = write_config(tmp_path, tiny_bert)
    source = run_dir / "models" / "jailbreak"
    attacked = config.read_text() + f"multitask: {{adversarial_from: {source}}}\n"
    config.write_text(attacked)
    cli = run(config, tmp_path / "runs")
    assert cli.exit_code == 0, cli.output
    assert state(run_dir)["stages"]["train"]["ran"] == ["bundle"] and "adversarial rows from" in cli.output
    (rows_file,) = (run_dir / "data").glob("jailbreak-adversarial-*.jsonl")
    made = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert made and all(row["label"] == "jailbreak" for row in made)

    bundle, own = (head_data(read_info(m), "jailbreak")["manifest"] for m in (run_dir / "bundle", source))
    assert bundle["load_options"]["adversarial"] == str(rows_file.resolve())
    assert bundle["splits"]["val"] == own["splits"]["val"] and bundle["splits"]["test"] == own["splits"]["test"]
    added = {key for key, _ in bundle["splits"]["train"]} - {key for key, _ in own["splits"]["train"]}
    train = load_split_from_manifest(bundle, "train")
    assert added and {e.key for e in train if e.source == "adversarial"} == added

    config.write_text(attacked.replace("adversarial_from:", "temperature: 0.4, adversarial_from:"))
    cli = run(config, tmp_path / "runs")
    assert cli.exit_code == 0, cli.output
    assert state(run_dir)["stages"]["train"]["ran"] == ["bundle"] and "adversarial rows from" not in cli.output
    assert list((run_dir / "data").glob("jailbreak-adversarial-*.jsonl")) == [rows_file]

    own_lr = "jailbreak: {data: ['synth:60'], overrides: {lr: 0.002}}"
    config.write_text(attacked.replace("jailbreak: {data: ['synth:60']}", own_lr))
    cli = run(config, tmp_path / "runs")
    assert cli.exit_code == 0, cli.output
    assert state(run_dir)["stages"]["train"]["ran"] == ["jailbreak", "bundle"] and "adversarial rows from" in cli.output
    assert len(list((run_dir / "data").glob("jailbreak-adversarial-*.jsonl"))) == 2


def test_only_and_from(finished_run, tmp_path):
    config, run_dir = copy_run(finished_run, tmp_path)
    before = item_times(run_dir)
    cli = run(config, tmp_path / "runs", "--only", "eval")
    assert cli.exit_code == 0, cli.output
    after = item_times(run_dir)
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {key for key in before if key.startswith("eval/")}

    cli = run(config, tmp_path / "runs", "--from", "export")
    assert cli.exit_code == 0, cli.output
    ran = {stage: r["ran"] for stage, r in state(run_dir)["stages"].items()}
    assert not ran["eval"] and not ran["train"] and not ran["calibrate"]
    assert set(ran["export"]) == {*TASKS, "bundle"} and ran["report"] == ["report"]
    assert "skipped (unchanged)" in cli.output  # data, train, calibrate, eval


def test_only_needs_its_inputs(tiny_bert, tmp_path):
    config = write_config(tmp_path, tiny_bert)
    cli = run(config, tmp_path / "runs", "--only", "train")
    assert cli.exit_code == 2
    assert "data stage has no finished output" in cli.output and "--only data" in cli.output
    cli = run(config, tmp_path / "runs", "--from", "training")
    assert cli.exit_code == 2 and "unknown stage 'training'" in cli.output and "calibrate" in cli.output


def test_killed_run_resumes_without_recomputing(tiny_bert, tmp_path, monkeypatch):
    config = write_config(tmp_path, tiny_bert, mode="per-task", name="killed", tasks=("jailbreak",))
    runs, run_dir = tmp_path / "runs", tmp_path / "runs" / "killed"

    # 1: killed after training steps, before the model directory is written: the checkpoint stays
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("routerforge.training.setup.calibrate_and_score", killed)
    cli = run(config, runs)
    assert cli.exit_code != 0
    recorded = state(run_dir)["stages"]
    assert recorded["data"]["status"] == "done" and recorded["train"]["items"]["jailbreak"]["status"] == "failed"
    assert not (run_dir / "models" / "jailbreak" / "routerforge.json").exists()
    assert list((run_dir / "models" / "jailbreak" / "checkpoints").glob("checkpoint-*"))
    monkeypatch.undo()
    # the data stage re-ran with the same rows (say, a new version recorded its options otherwise): the train
    # stage's record no longer matches, but its checkpoint was made with the same data and settings
    saved = state(run_dir)
    saved["stages"]["train"]["items"]["jailbreak"]["input_hash"] = "an earlier one"
    (run_dir / "pipeline.json").write_text(json.dumps(saved))

    # 2: killed between stages (in eval): training resumed from its checkpoint, nothing after eval recorded
    monkeypatch.setattr("routerforge.evaluation.evaluator.evaluate", killed)
    cli = run(config, runs)
    assert cli.exit_code != 0
    recorded = state(run_dir)["stages"]
    assert recorded["train"]["items"]["jailbreak"]["resumed"] is True
    assert recorded["calibrate"]["status"] == "done" and recorded["eval"]["status"] == "failed"
    assert "export" not in recorded
    monkeypatch.undo()

    # 3: finishes; the finished stages are not recomputed
    before = item_times(run_dir)
    cli = run(config, runs)
    assert cli.exit_code == 0, cli.output
    after = item_times(run_dir)
    for key in ("data/jailbreak", "train/jailbreak", "calibrate/jailbreak"):
        assert after[key] == before[key]
    assert after["eval/jailbreak/jailbreak"] != before["eval/jailbreak/jailbreak"]
    assert state(run_dir)["stages"]["report"]["status"] == "done"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("tasks:\n  jailbreak: {data: ['synth:many']}\n", ["field tasks.jailbreak.data", "synth:N"]),
        ("tasks:\n  jailbreak: {data: []}\n", ["field tasks.jailbreak.data", "no data"]),
        ("tasks:\n  jailbreak: {data: ['synth:10'], lora: {rank: 0}}\n", ["field tasks.jailbreak.lora.rank"]),
        ("tasks:\n  jailbreak: {data: ['synth:10']}\ncalibration: {target_fpr: 2}\n", ["field calibration.target_fpr"]),
        ("tasks:\n  jailbreak: {data: ['synth:10']}\ntraining: {overrides: {fp16: maybe}}\n", ["fp16"]),
    ],
)
def test_config_errors_name_the_field(tmp_path, text, fragments):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    cli = run(path, tmp_path / "runs")
    assert cli.exit_code == 2
    for fragment in fragments:
        assert fragment in cli.output, cli.output


def test_missing_data_file_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"data_dir: {tmp_path}\ntasks:\n  jailbreak: {{data: [nowhere.jsonl]}}\n")
    cli = run(path, tmp_path / "runs")
    assert cli.exit_code == 2 and "nowhere.jsonl: data file not found" in cli.output.replace("\n", "")


def test_per_task_lora_and_config_options(tmp_path):
    from routerforge.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(
        f"data_dir: {tmp_path}\nseed: 5\ntasks:\n"
        "  pii: {data: [p.jsonl, 'https://example.org/x.json', 'synth:10'], lora: {rank: 32}}\n"
        "  intent: {data: ['hf:org/set'], overrides: {epochs: 8, lr: 5.0e-5}}\n"
        "training: {lora: {rank: 8}, max_length: 64, overrides: {fp16: auto, max_length: 32}}\n"
    )
    cfg = load_config(path)
    assert cfg.lora_for("pii").rank == 32 and cfg.lora_for("pii").alpha == 64 and cfg.lora_for("intent").rank == 8
    options = cfg.load_options("pii")
    assert options["data"] == [str(tmp_path / "p.jsonl"), "https://example.org/x.json", "synth:10"]
    assert "lora" not in options and "crf" not in options and "overrides" not in options and options["seed"] == 5
    assert (
        cfg.hyperparam_overrides() == cfg.hyperparam_overrides("pii") == {"max_length": 32, "seed": 5, "fp16": "auto"}
    )
    assert cfg.hyperparam_overrides("intent") == {
        "max_length": 32,
        "seed": 5,
        "fp16": "auto",
        "epochs": 8,
        "lr": 5e-5,
    }  # its own model only; the bundle keeps the others
    path.write_text(path.read_text().replace("epochs: 8", "epoch: 8"))
    with pytest.raises(RouterforgeError, match=r"tasks.intent.overrides.*unknown hyperparameters \['epoch'\]"):
        load_config(path)
    assert cfg.calibration.target_fpr == 0.01


# -- data sources: synth:N and URLs ---------------------------------------------------------------------------------


def test_synth_source_is_reproducible_from_the_manifest():
    data = rf.data.load("intent", ["synth:80"], seed=5, test=0.25)
    manifest = data.manifest()
    assert manifest["sources"][0]["path"] == "synth:80:5" and manifest["sources"][0]["sha256"].startswith("synth:")
    assert [e.text for e in load_split_from_manifest(manifest, "test")] == [e.text for e in data.test]
    again = rf.data.task_data_from_manifest(manifest, data.report)
    assert again.fingerprint == data.fingerprint and again.manifest() == manifest
    assert rf.data.load("intent", ["synth:80:6"], seed=5).fingerprint != data.fingerprint  # its own seed
    with pytest.raises(RouterforgeError, match="bad synthetic data spec 'synth:0'"):
        rf.data.load("intent", ["synth:0"])


def test_url_source_is_downloaded_once_and_hash_checked(tmp_path, monkeypatch):
    from routerforge.data.synth import write_jsonl

    monkeypatch.setenv("ROUTERFORGE_CACHE", str(tmp_path / "cache"))
    original = write_jsonl("jailbreak", tmp_path / "web" / "jb.jsonl", 60, seed=1)
    url = original.as_uri()
    data = rf.data.load("jailbreak", [url], seed=2)
    manifest = data.manifest()
    assert manifest["sources"][0]["path"] == url
    original.unlink()  # the cached copy serves from now on
    assert [e.text for e in load_split_from_manifest(manifest)] == [e.text for e in data.test]
    cached = next((tmp_path / "cache").rglob("jb.jsonl"))
    cached.write_text(cached.read_text().replace("a", "b", 1))
    with pytest.raises(RouterforgeError, match="sha256 differs"):
        load_split_from_manifest(manifest)
    with pytest.raises(RouterforgeError, match="could not download"):
        rf.data.load("jailbreak", [(tmp_path / "missing.jsonl").as_uri()])


def test_raw_glaive_v2_rows_are_labelled_by_the_rule_table(tmp_path):
    system = (
        "SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -\n"
        '{\n  "name": "get_news_headlines",\n  "description": "Get the latest news headlines",\n'
        '  "parameters": {"type": "object", "properties": {"country": {"type": "string"}}}\n}\n\n'
        '{"name": "send_email", "description": "Send an email", "parameters": {}}\n'
    )
    rows = [
        {
            "system": system,
            "chat": "USER: Any news from Peru today?\n\n\nASSISTANT: <functioncall> "
            '{"name": "get_news_headlines", "arguments": \'{"country": "Peru"}\'} '
            "<|endoftext|>\n\n\nFUNCTION RESPONSE: {}\n\n\nASSISTANT: Here.<|endoftext|>",
        },
        {
            "system": "SYSTEM: You are a helpful assistant, with no access to external functions.",
            "chat": "USER: Tell me a joke.\n\n\nASSISTANT: Why did...<|endoftext|>",
        },
        {"system": system, "chat": "USER: Hi there\n\n\nASSISTANT: Hello!<|endoftext|>"},
    ]
    path = tmp_path / "glaive.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from routerforge.data.sources import load_examples
    from routerforge.tasks import get_task

    loaded = load_examples(get_task("intent"), [str(path)])
    assert [(e.text, e.label) for e in loaded.examples] == [
        ("Any news from Peru today?", "information_retrieval"),
        ("Tell me a joke.", "no_function_needed"),
    ]
    assert dict(loaded.dropped) == {"tools_offered_no_call": 1}


@pytest.mark.parametrize("name", ["quickstart", "semantic-router", "local-data"])
def test_shipped_configs_load(name):
    from pathlib import Path

    from routerforge.config import load_config

    cfg = load_config(Path(__file__).parent.parent / "configs" / f"{name}.yaml")
    assert cfg.name == name
    if name == "semantic-router":
        assert cfg.backbone == "modernbert-base" and cfg.training.overrides["fp16"] == "auto"
        assert {t: (cfg.lora_for(t).rank, cfg.lora_for(t).alpha) for t in cfg.tasks} == {
            "category": (8, 16),
            "intent": (8, 16),
            "pii": (32, 64),
            "jailbreak": (12, 24),
        }
    if name == "quickstart":
        assert cfg.training.mode == "multitask" and cfg.backbone == "minilm"
        assert all(spec.startswith("synth:") for t in cfg.tasks.values() for spec in t.data)


def test_synthetic_pii_rows_do_not_depend_on_the_clock(monkeypatch):
    """A manifest re-creates synth:N rows by seed, so the generator must not draw dates up to 'now'."""
    import datetime as dt

    import faker.providers.date_time as faker_dates

    from routerforge.data.synth import generate

    today = [e.text for e in generate("pii", 300, seed=4)]

    class Later(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2031, 5, 6, 7, 8, tzinfo=tz)

    monkeypatch.setattr(faker_dates, "datetime", Later)
    assert [e.text for e in generate("pii", 300, seed=4)] == today


def test_train_config_shares_the_pipeline_training(tiny_bert, tmp_path, monkeypatch):
    """`routerforge train --config` trains through the same functions as the pipeline, per-task LoRA included."""
    config = write_config(tmp_path, tiny_bert, mode="per-task")
    config.write_text(
        config.read_text()
        .replace("jailbreak: {data: ['synth:60']}", "jailbreak: {data: ['synth:60'], lora: {rank: 2}}")
        .replace("training: {", "training: {lora: {rank: 4}, ")
    )
    monkeypatch.chdir(tmp_path)
    cli = runner.invoke(app, ["train", "--config", str(config)])
    assert cli.exit_code == 0, cli.output
    lora = {
        t: json.loads((tmp_path / "runs" / "tiny" / "models" / t / "routerforge.json").read_text())["lora"]
        for t in TASKS
    }
    assert (lora["jailbreak"]["rank"], lora["jailbreak"]["alpha"]) == (2, 4) and lora["intent"]["rank"] == 4
    cli = runner.invoke(
        app, ["train", "--config", str(config), "--task", "intent", "--lora-rank", "3", "--output", str(tmp_path / "m")]
    )
    assert cli.exit_code == 0, cli.output
    info = json.loads((tmp_path / "m" / "routerforge.json").read_text())
    assert (info["lora"]["rank"], info["lora"]["alpha"]) == (3, 6)  # the flag wins; alpha follows the new rank
