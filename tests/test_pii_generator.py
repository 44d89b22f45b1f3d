"""Generated PII rows (tasks.pii.generate): training templates only, reproducible from the manifest."""

from __future__ import annotations

import json
import random

import pytest

import routerforge as rf
from routerforge.data import load_split_from_manifest, pii_generator, validation_template_rows
from routerforge.errors import RouterforgeError

TEMPLATES = [
    "My name is {{name}} and my phone is {{phone_number}}",
    "Send it to {{address}} please",
    "Her email is {{email}}, card {{credit_card_number}}",
    "{{first_name}} lives in {{city}}",
    "Call {{person}} at {{phone_number}}\\nthanks",
    "{{organization}} hired {{name}} in {{year}}",
    "This template is in no row: {{iban}}",
]
LABELS = ("CREDIT_CARD", "DATE_TIME", "EMAIL_ADDRESS", "GPE", "ORGANIZATION", "PERSON", "PHONE_NUMBER")
LABELS += ("STREET_ADDRESS",)


@pytest.fixture
def source(tmp_path):
    """Rows from templates 0-5 (never 6), with their template_id, as in presidio-research's data."""
    templates = tmp_path / "templates.txt"
    templates.write_text("\n".join(TEMPLATES) + "\n")
    rows = pii_generator.generate(TEMPLATES, list(range(6)), 240, seed=1, labels=LABELS)
    path = tmp_path / "pii.jsonl"
    with path.open("w") as out:
        for e in rows:
            spans = [{"entity_type": s.entity_type, "start": s.start, "end": s.end} for s in e.spans]
            out.write(json.dumps({"text": e.text, "spans": spans, "template_id": int(e.group)}) + "\n")
    return path, templates


def test_generated_rows_come_from_training_templates_only(source):
    path, templates = source
    state = random.getstate()
    data = rf.data.load(
        "pii",
        str(path),
        group_by="template_id",
        val=0.2,
        test=0.2,
        generate={"rows": 300, "documents": 40, "templates": str(templates)},
    )
    assert random.getstate() == state  # the faker's global seeding was undone
    generated = [e for e in data.train if e.source.startswith("generated:")]
    rows = [e for e in generated if e.group != "document"]
    train_templates = {str(e.group) for e in data.train if not e.source.startswith("generated:")}
    held_out = {str(e.group) for e in data.val + data.test}
    assert rows and {e.group for e in rows} <= train_templates and not {e.group for e in rows} & held_out
    assert "6" not in {e.group for e in rows}  # a template no row uses may be in someone's held-out data
    report = data.report["generated_train_rows"]
    assert report["rows"] == len(rows) and report["documents"] == len(generated) - len(rows) > 0
    assert sum(report["rows_per_template"].values()) == len(rows)
    assert not any("\\n" in e.text for e in rows)  # the template list's escaped line breaks are real ones
    for e in generated:
        assert all(0 <= s.start < s.end <= len(e.text) for s in e.spans)
        assert all(a.end <= b.start for a, b in zip(e.spans, e.spans[1:]))
        assert all(e.text[s.start : s.end].strip() == e.text[s.start : s.end] for s in e.spans)
    assert all(not e.source.startswith("generated:") for e in data.val + data.test)
    assert [e.key for e in load_split_from_manifest(data.manifest(), "train")] == [e.key for e in data.train]

    parity_rows = validation_template_rows(data.manifest(), 50)  # the export's extra parity rows
    val_templates = {str(e.group) for e in data.val}
    assert len(parity_rows) > 40 and {e.group for e in parity_rows} <= val_templates
    assert validation_template_rows(rf.data.load("pii", str(path), group_by="template_id").manifest(), 50) == []
    own = rf.data.load("pii", str(path), group_by="template_id", generate={"rows": 5})  # presidio's own templates
    assert len(validation_template_rows(own.manifest(), 5)) > 0


def test_context_rows_put_words_beside_values_outside_their_spans(source):
    path, templates = source
    derived, origin = pii_generator.context_templates(TEMPLATES, [0, 3, 5], seed=1)
    assert origin == [3, 5]  # only templates with a place or organisation placeholder
    assert derived[0].split(" {{city}}")[0].split()[-1] in pii_generator.CONTEXT_WORDS["{{city}}"][0]
    generate = {"rows": 50, "context_rows": 60, "templates": str(templates)}
    data = rf.data.load("pii", str(path), group_by="template_id", val=0.2, test=0.2, generate=generate)
    context = [e for e in data.train if e.source == "generated:pii:context"]
    train_templates = {str(e.group) for e in data.train if not e.source.startswith("generated:")}
    assert context and {e.group for e in context} <= train_templates
    words = {w for words, _ in pii_generator.CONTEXT_WORDS.values() for w in words}
    for e in context:
        beside = [w for w in words if f"{w} " in e.text or f" {w}" in e.text]
        assert beside and not any(w in e.text[s.start : s.end] for s in e.spans for w in beside)
    assert [e.key for e in load_split_from_manifest(data.manifest(), "train")] == [e.key for e in data.train]


def test_pii_free_rows_fill_documents_and_the_manifest_re_creates_them(tmp_path, source, monkeypatch):
    path, templates = source
    negatives = tmp_path / "plain.jsonl"
    texts = ["why was my card declined?", "What do I do if I'm late? It keeps failing.", "how do I top up"]
    texts += ["Call Maria tomorrow", "my number is 5551234567", "mail me at a@b.org"]  # not PII-free: dropped
    negatives.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    questions = tmp_path / "questions.jsonl"  # MMLU-Pro's text field is `question`
    questions.write_text(json.dumps({"question": "what is the derivative of x squared?", "category": "math"}) + "\n")
    files = [str(negatives), str(questions)]
    generate = {"rows": 100, "documents": 40, "templates": str(templates), "negatives": files}
    data = rf.data.load(
        "pii", str(path), group_by="template_id", val=0.2, test=0.2, generate=generate | {"negative_rows": 5}
    )
    plain = [e for e in data.train if e.group == "negative"]
    kept = texts[:3] + ["what is the derivative of x squared?"]
    assert sorted(e.text for e in plain) == sorted(kept) and all(e.spans == () for e in plain)
    docs = [e for e in data.train if e.group == "document"]
    assert sum(any(t in d.text for t in kept) for d in docs) >= 10  # filler between the PII sentences
    assert data.report["generated_train_rows"]["negative_rows"] == 4
    assert [e.key for e in load_split_from_manifest(data.manifest(), "train")] == [e.key for e in data.train]
    moved = tmp_path / "moved"  # every recorded file moved: data, templates, PII-free texts
    moved.mkdir()
    for file in (path, templates, negatives, questions):
        file.rename(moved / file.name)
    monkeypatch.setenv("ROUTERFORGE_DATA_DIRS", str(moved))
    assert [(e.key, e.text) for e in load_split_from_manifest(data.manifest(), "train")] == [
        (e.key, e.text) for e in data.train
    ]
    negatives = moved / negatives.name
    negatives.write_text(json.dumps({"text": "changed"}) + "\n")
    with pytest.raises(RouterforgeError, match="changed since training"):
        load_split_from_manifest(data.manifest(), "train")
    with pytest.raises(RouterforgeError, match="negative_rows needs negatives"):
        rf.data.load("pii", str(path), group_by="template_id", generate={"rows": 5, "negative_rows": 5})


def test_generation_does_not_depend_on_the_global_random_state():
    runs = []
    for state in (1, 2):  # another process, or other code before it, leaves another state
        random.seed(state)
        runs.append([(e.text, e.spans) for e in pii_generator.generate(TEMPLATES, [0, 4], 80, seed=3, labels=LABELS)])
    assert runs[0] == runs[1]


def test_documents_keep_every_span_on_its_value():
    rows = pii_generator.generate(TEMPLATES, [0, 2, 3], 60, seed=4, labels=LABELS)
    values = {rows_text[s.start : s.end] for rows_text, spans in ((e.text, e.spans) for e in rows) for s in spans}
    docs = pii_generator.documents(rows, 30, seed=4)
    assert len(docs) == 30 and any(len(d.spans) > 3 for d in docs)
    assert all(d.text[s.start : s.end] in values for d in docs for s in d.spans)
    assert all(len(d.text) <= max(480, *(len(r.text) for r in rows)) for d in docs)  # one long row may pass


def test_generation_is_refused_without_template_ids_or_for_another_task(tmp_path, source):
    path, templates = source
    with pytest.raises(RouterforgeError, match="pii task"):
        rf.data.load("jailbreak", "synth:50", generate={"rows": 10})
    with pytest.raises(RouterforgeError, match="group_by: template_id"):
        rf.data.load("pii", str(path), generate={"rows": 10, "templates": str(templates)})
    with pytest.raises(RouterforgeError, match="unknown generate options"):
        rf.data.load("pii", str(path), group_by="template_id", generate={"rowz": 10})
    short = tmp_path / "short.txt"
    short.write_text(TEMPLATES[0] + "\n")
    with pytest.raises(RouterforgeError, match="past the end"):
        rf.data.load("pii", str(path), group_by="template_id", generate={"rows": 10, "templates": str(short)})


def test_generation_does_not_depend_on_the_clock():
    """A manifest re-creates generated rows by seed, so the faker must not draw dates up to the real 'now'."""
    import faker.providers.date_time as faker_dates

    templates = ["{{organization}} hired {{name}} in {{year}}", "It happened on {{date_time}}"]
    today = [e.text for e in pii_generator.generate(templates, [0, 1], 60, seed=5, labels=LABELS)]
    with pii_generator._fixed_clock((2031, 5, 6, 7, 8)):  # the real clock, years later
        later = faker_dates.datetime
        assert [e.text for e in pii_generator.generate(templates, [0, 1], 60, seed=5, labels=LABELS)] == today
        assert faker_dates.datetime is later  # the clock is the caller's again afterwards
