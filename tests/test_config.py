"""The YAML schema of DESIGN.md: a valid file loads; every bad file is a RouterforgeError naming file and field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from routerforge.config import MultitaskConfig, ProjectConfig, load_config
from routerforge.errors import RouterforgeError

VALID = """\
name: local-data                 # run name: artefacts under runs/<name>/
seed: 13
backbone: minilm                 # alias, local dir or hub id
data_dir: ../shared/data
tasks:
  category:  {data: [mmlu_pro/questions.jsonl], text_field: question, label_field: category}
  pii:       {data: [presidio_pii/synth_dataset_v2.jsonl], group_by: template_id}
  jailbreak: {data: [jailbreak/train.jsonl]}
  intent:    {data: [function_calling/bfcl_v4_queries.jsonl, function_calling/glaive_toolcall_en_demo.jsonl],
              rules: null}
splits: {val: 0.1, test: 0.1, near_duplicate_threshold: 0.9}
training:
  mode: per-task
  max_length: 128
  lora: null
  overrides: {}
multitask: {temperature: 0.5, loss_weights: {category: 1, pii: 1, jailbreak: 1, intent: 1}}
export: {formats: [onnx, onnx-int8]}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_design_example_loads(tmp_path):
    config = load_config(write(tmp_path, VALID))
    assert config.name == "local-data" and config.seed == 13 and config.backbone == "minilm"
    assert set(config.tasks) == {"category", "pii", "jailbreak", "intent"}
    assert config.tasks["category"].text_field == "question" and config.tasks["category"].label_field == "category"
    assert config.tasks["pii"].group_by == "template_id"
    assert config.tasks["intent"].rules is None and len(config.tasks["intent"].data) == 2
    assert config.splits.val == 0.1 and config.splits.near_duplicate_threshold == 0.9
    assert config.training.mode == "per-task" and config.training.lora is None and config.training.overrides == {}
    assert config.multitask.loss_weights == {"category": 1, "pii": 1, "jailbreak": 1, "intent": 1}
    assert config.export.formats == ["onnx", "onnx-int8"]


def test_minimal_config_and_defaults(tmp_path):
    config = load_config(write(tmp_path, "tasks:\n  jailbreak: {data: train.jsonl}\n"))
    assert config.tasks["jailbreak"].data == ["train.jsonl"]  # one path is a list of one
    assert config.name == "run" and config.splits.test == 0.1 and config.training.max_length == 128
    assert config.export.formats == ["onnx", "onnx-int8"]


def test_lora_and_overrides(tmp_path):
    text = VALID.replace("  lora: null", "  lora: {rank: 4, targets: [query, value]}").replace(
        "  overrides: {}", "  overrides: {epochs: 1, lr: 3.0e-5, batch_size: 2}"
    )
    config = load_config(write(tmp_path, text))
    assert config.training.lora.rank == 4 and config.training.lora.alpha == 8.0
    assert config.training.lora.targets == ["query", "value"]
    assert config.training.overrides == {"epochs": 1, "lr": 3e-5, "batch_size": 2}


def test_bundle_settings_live_under_multitask(tmp_path):
    text = VALID.replace("multitask: {", "multitask: {group_task_lengths: true, cross_task_negatives: 50, ")
    config = load_config(write(tmp_path, text))
    assert config.multitask.group_task_lengths and config.multitask.cross_task_negatives == 50
    # the pipeline hashes what it hashed before these settings existed while they are off
    assert MultitaskConfig(temperature=0.0).hashed() == {"temperature": 0.0, "loss_weights": {}}
    assert MultitaskConfig(cross_task_negatives=50).hashed()["cross_task_negatives"] == 50
    misplaced = VALID.replace("  overrides: {}", "  overrides: {cross_task_negatives: 50}")
    expect_error(write(tmp_path, misplaced), "training.overrides", "bundle settings, put them under multitask:")


def test_adversarial_rows_come_from_one_place(tmp_path):
    """``multitask.adversarial_from`` makes the bundle's adversarial rows; a jailbreak task must exist and must not
    name its own rows file as well."""
    text = VALID.replace("multitask: {", "multitask: {adversarial_from: runs/x/models/jailbreak, ")
    assert load_config(write(tmp_path, text)).multitask.hashed()["adversarial_from"] == "runs/x/models/jailbreak"
    both = text.replace("[jailbreak/train.jsonl]}", "[jailbreak/train.jsonl], adversarial: a.jsonl}")
    expect_error(write(tmp_path, both), "adversarial_from needs a jailbreak task without its own adversarial file")
    alone = text.replace("  jailbreak: {data: [jailbreak/train.jsonl]}\n", "")
    assert "own adversarial file" not in str(expect_error(write(tmp_path, alone), "needs a jailbreak task"))
    taught = text.replace("adversarial_from:", "teachers: {jailbreak: runs/x/models/jailbreak}, adversarial_from:")
    expect_error(write(tmp_path, taught), "also the jailbreak teacher")


def expect_error(path: Path, *fragments: str) -> RouterforgeError:
    with pytest.raises(RouterforgeError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}"), message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_unknown_top_level_field(tmp_path):
    expect_error(write(tmp_path, VALID + "epochs: 3\n"), "field epochs", "xtra")


def test_unknown_nested_field(tmp_path):
    expect_error(write(tmp_path, VALID.replace("group_by: template_id", "group: template_id")), "tasks.pii.group")


def test_unknown_task(tmp_path):
    text = VALID.replace("  jailbreak: {data: [jailbreak/train.jsonl]}", "  toxicity: {data: [t.jsonl]}")
    expect_error(write(tmp_path, text), "field tasks", "unknown tasks ['toxicity']", "known:")


def test_no_tasks(tmp_path):
    expect_error(write(tmp_path, "name: x\ntasks: {}\n"), "field tasks", "at least one task")


def test_missing_tasks(tmp_path):
    expect_error(write(tmp_path, "name: x\n"), "field tasks", "required")


def test_unknown_hyperparameter(tmp_path):
    text = VALID.replace("  overrides: {}", "  overrides: {epochs: 2, learning_rate: 0.1}")
    expect_error(write(tmp_path, text), "field training.overrides", "learning_rate")


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("seed: 13", "seed: thirteen", "field seed"),
        ("  max_length: 128", "  max_length: lots", "field training.max_length"),
        ("  max_length: 128", "  max_length: 4", "field training.max_length"),
        ("  mode: per-task", "  mode: sometimes", "field training.mode"),
        ("splits: {val: 0.1,", "splits: {val: 1.5,", "field splits.val"),
        ("export: {formats: [onnx, onnx-int8]}", "export: {formats: [tflite]}", "field export.formats[0]"),
        ("name: local-data", "name: my run/1", "field name"),
        ("  lora: null", "  lora: {rank: 0}", "field training.lora.rank"),
        ("  lora: null", "  lora: {rank: 8, scale: 2}", "field training.lora.scale"),
        ("  jailbreak: {data: [jailbreak/train.jsonl]}", "  jailbreak: {data: 5}", "field tasks.jailbreak.data"),
    ],
)
def test_bad_values(tmp_path, old, new, field):
    assert old in VALID
    expect_error(write(tmp_path, VALID.replace(old, new)), field)


def test_invalid_yaml_names_the_line(tmp_path):
    err = expect_error(write(tmp_path, "name: x\ntasks:\n  jailbreak: {data: [a.jsonl]\nseed: 1\n"), "invalid YAML")
    assert err.line is not None and f"{err.source}:{err.line}:" in str(err)


def test_not_a_mapping(tmp_path):
    expect_error(write(tmp_path, "- just\n- a list\n"), "YAML mapping")
    expect_error(write(tmp_path, "", name="empty.yaml"), "YAML mapping")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.yaml", "not found")


def test_data_paths(tmp_path):
    absolute = str(tmp_path / "abs.jsonl")
    config = ProjectConfig.model_validate(
        {
            "data_dir": "/data/root",
            "tasks": {
                "jailbreak": {"data": ["jailbreak/train.jsonl", "hf:jackhhao/jailbreak-classification:test", absolute]}
            },
        }
    )
    assert config.data_paths("jailbreak") == [
        os.path.join("/data/root", "jailbreak/train.jsonl"),
        "hf:jackhhao/jailbreak-classification:test",
        absolute,
    ]
    # an explicit data_dir (the CLI's --data-dir) wins over the config's
    assert config.data_paths("jailbreak", "other")[0] == os.path.join("other", "jailbreak/train.jsonl")
    no_dir = ProjectConfig.model_validate({"tasks": {"jailbreak": {"data": "x/train.jsonl"}}})
    assert no_dir.data_paths("jailbreak") == ["x/train.jsonl"]


def test_data_paths_from_design_example(tmp_path):
    config = load_config(write(tmp_path, VALID))
    assert config.data_paths("category") == [str(Path("../shared/data") / "mmlu_pro/questions.jsonl")]


def test_pipeline_config_doc_names_every_field():
    """docs/pipeline-config.md documents the schema field by field; a new field must get a line there."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("doc", root / "scripts" / "pipeline-config-doc.py")
    doc_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(doc_module)
    doc = (root / "docs" / "pipeline-config.md").read_text()
    missing = [
        f"{prefix}{name}"
        for model, prefix, _ in doc_module.SECTIONS
        for name in model.model_fields
        if f"| `{prefix}{name}` |" not in doc
    ]
    assert not missing, f"add these to docs/pipeline-config.md (scripts/pipeline-config-doc.py): {missing}"
