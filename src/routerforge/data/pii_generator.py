"""PII training rows at scale from presidio-evaluator's sentence faker, without leakage.

Rows are made only from the templates of the **training split** (the ``group`` of a row loaded with
``group_by: template_id`` is its template's 0-based line in the template list), never from a template of the
validation or test split nor from one that no loaded row uses, so a template-disjoint evaluation stays
template-disjoint. Values come from presidio-evaluator's Faker providers and its table of fake people (names
from many cultures, several phone and date styles). Multi-sentence documents (generated rows joined, offsets
shifted) teach the token head text longer than one sentence.

Needs the ``pii-data`` extra (``pip install 'routerforge[pii-data]'``: presidio-evaluator).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import random
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

from ..errors import RouterforgeError
from .schema import Example, Span

SOURCE = "generated:pii"
_SEPARATORS = (" ", " ", "\n", "\n\n")
FILLER_SHARE = 0.4
_INNER_CAPITAL = re.compile(r"(?<![.!?:]\s)(?<![.!?:]\s\s)(?<!^)(?<!\n)\b(?!I\b)[A-Z]")  # "I" is no name
_DIGITS = re.compile(r"\d{5}")
FAKER_NOW = (2025, 1, 1, 12, 0)  # the clock generation reads: rows are a function of the seed alone


def read_templates(path: str | Path | None) -> list[str]:
    """The template list, one per line (``template_id`` = 0-based line); default: presidio-evaluator's own."""
    if path is None:
        path = _presidio().presidio_templates_file_path
    path = Path(path)
    if not path.is_file():
        raise RouterforgeError("no template file here", source=str(path), hint="generate.templates: a templates.txt")
    return path.read_text(encoding="utf-8").splitlines()


def train_template_ids(train: list[Example], n_templates: int) -> list[int]:
    """The template ids of the training rows (their ``group``); refuses rows without a numeric template id."""
    ids = set()
    for e in train:
        if e.group is None or not str(e.group).isdigit():
            raise RouterforgeError(
                "generated PII rows need the template id of every training row",
                source=e.key,
                hint="load the PII data with group_by: template_id",
            )
        ids.add(int(e.group))
    if not ids:
        raise RouterforgeError("no training row has a template id", hint="load the PII data with group_by: template_id")
    out_of_range = sorted(i for i in ids if i >= n_templates)
    if out_of_range:
        raise RouterforgeError(
            f"template ids {out_of_range[:5]} are past the end of the template list ({n_templates} lines)",
            hint="generate.templates must be the list the data was generated from",
        )
    return sorted(ids)


def generate(
    templates: list[str], ids: list[int], n: int, seed: int, labels: tuple[str, ...], lower_case_ratio: float = 0.05
) -> list[Example]:
    """``n`` rows from the templates ``ids`` (deterministic in ``seed``); rows whose spans fall outside
    ``labels`` or do not match their text are dropped. ``group`` is the template id."""
    if not ids:  # the faker would fall back to every template it ships
        raise RouterforgeError("no templates to generate from")
    module = _presidio()
    chosen = [templates[i].replace("\\n", "\n") for i in ids]  # the list writes line breaks as \n
    allowed = set(labels)
    state = random.getstate(), _np_state()
    try:
        random.seed(seed)  # the faker builds its table of people (random middle initials) before it seeds itself
        with contextlib.redirect_stdout(io.StringIO()), _fixed_clock():  # the faker prints its defaults
            faker = module.PresidioSentenceFaker(
                "en_US",
                lower_case_ratio=lower_case_ratio,
                sentence_templates=chosen,
                entity_providers=_providers(module),
                random_seed=seed,
            )
            samples = faker.generate_new_fake_sentences(n)
    finally:  # the faker seeds the global generators: give them back
        random.setstate(state[0])
        _np_restore(state[1])
    rows: list[Example] = []
    for sample in samples:
        text = sample.full_text
        spans = tuple(
            sorted(
                (Span(s.entity_type, s.start_position, s.end_position) for s in sample.spans),
                key=lambda s: s.start,
            )
        )
        if not all(s.entity_type in allowed for s in spans) or not _consistent(text, spans, sample.spans):
            continue
        group = str(ids[sample.template_id])
        rows.append(Example(text=text, spans=spans, group=group, source=SOURCE, row=len(rows) + 1))
    return rows


# Words beside a value that are not part of it: Presidio labels the value alone ("Northern Italy" -> GPE "Italy",
# "the Acme Choir" -> ORGANIZATION "Acme"), and a template the model never saw puts such words in other places.
_PLACE_WORDS = ("Northern", "Eastern", "Western", "Central", "Greater", "Rural", "Coastal", "Downtown")
CONTEXT_WORDS = {  # placeholder -> (words, whether they go before the value)
    "{{city}}": (_PLACE_WORDS, True),
    "{{country}}": (_PLACE_WORDS, True),
    "{{organization}}": (("Choir", "Band", "Team", "Club", "Festival", "Awards", "Museum", "Podcast"), False),
}


def context_templates(templates: list[str], ids: list[int], seed: int) -> tuple[list[str], list[int]]:
    """The templates of ``ids`` that hold a place or organisation placeholder, each such placeholder with a word
    beside it that the value's span does not cover (:data:`CONTEXT_WORDS`), and the id each one came from."""
    rng = random.Random(f"routerforge.pii-context:{seed}")
    out, origin = [], []
    for i in ids:
        template = templates[i]
        if not any(p in template for p in CONTEXT_WORDS):
            continue
        for placeholder, (words, before) in CONTEXT_WORDS.items():
            word = rng.choice(words)
            template = template.replace(placeholder, f"{word} {placeholder}" if before else f"{placeholder} {word}")
        out.append(template)
        origin.append(i)
    return out, origin


def context_rows(
    templates: list[str], ids: list[int], n: int, seed: int, labels: tuple[str, ...], lower_case_ratio: float = 0.05
) -> list[Example]:
    """``n`` rows from :func:`context_templates` of ``ids``; ``group`` is the template each came from."""
    derived, origin = context_templates(templates, ids, seed)
    if not derived:
        raise RouterforgeError(
            "context_rows needs a training template with {{city}}, {{country}} or {{organization}}",
            hint="drop generate.context_rows",
        )
    made = generate(derived, list(range(len(derived))), n, seed, labels, lower_case_ratio)
    return [replace(e, group=str(origin[int(e.group or 0)]), source=f"{SOURCE}:context") for e in made]


def documents(
    rows: list[Example], n: int, seed: int, max_chars: int = 480, filler: list[Example] | None = None
) -> list[Example]:
    """``n`` documents of 2-6 rows joined by spaces or line breaks (offsets shifted), each at most
    ``max_chars`` long, so training sees several sentences in one window; with ``filler`` (PII-free rows), 40%
    of the sentences are filler, as PII sits among ordinary text in a real prompt."""
    if not rows:
        return []
    rng = random.Random(f"routerforge.pii-documents:{seed}")
    out = []
    for i in range(n):
        parts: list[Example] = []
        length = 0
        for _ in range(rng.randint(2, 6)):
            row = rng.choice(filler if filler and rng.random() < FILLER_SHARE else rows)
            if parts and length + 2 + len(row.text) > max_chars:
                break
            parts.append(row)
            length += len(row.text) + 2
        text, spans = "", []
        for j, row in enumerate(parts):
            if j:
                text += rng.choice(_SEPARATORS)
            spans += [Span(s.entity_type, s.start + len(text), s.end + len(text)) for s in row.spans or ()]
            text += row.text
        out.append(Example(text=text, spans=tuple(spans), group="document", source=f"{SOURCE}:documents", row=i + 1))
    return out


NEGATIVE_TEXT_FIELDS = ("text", "question", "prompt")  # the first a row has is its text (MMLU-Pro: question)


def negative_rows(files: list[str], n: int, seed: int) -> list[Example]:
    """``n`` PII-free rows (no span) from the texts of data ``files`` (a row's ``text``, else ``question``, else
    ``prompt``), keeping only texts that look free of PII by their characters: no capitalised word inside a
    sentence (names and places are), no run of 5+ digits (phone, card, account numbers), no ``@``.
    Deterministic in ``seed``."""
    from .sources import read_rows

    if n <= 0:
        return []
    rows = (row for file in files for _, row in read_rows(file) if isinstance(row, dict))
    candidates = (next((row[f] for f in NEGATIVE_TEXT_FIELDS if isinstance(row.get(f), str)), "") for row in rows)
    texts = sorted({t for t in candidates if _pii_free(t)})
    if not texts:
        raise RouterforgeError("no PII-free text in the negatives files", source=", ".join(files))
    chosen = random.Random(f"routerforge.pii-negatives:{seed}").sample(texts, min(n, len(texts)))
    return [
        Example(text=t, spans=(), group="negative", source=f"{SOURCE}:negatives", row=i + 1)
        for i, t in enumerate(chosen)
    ]


def _pii_free(text: str) -> bool:
    return bool(text.strip()) and "@" not in text and not _INNER_CAPITAL.search(text) and not _DIGITS.search(text)


def summary(rows: list[Example], docs: list[Example]) -> dict:
    """What the training report shows: rows per template and per entity type, documents."""
    return {
        "rows": len(rows),
        "documents": len(docs),
        "templates": len({e.group for e in rows}),
        "rows_per_template": dict(sorted(Counter(e.group for e in rows).items(), key=lambda kv: int(kv[0] or 0))),
        "spans_per_type": dict(sorted(Counter(s.entity_type for e in rows for s in e.spans or ()).items())),
    }


def _consistent(text: str, spans: tuple[Span, ...], raw) -> bool:
    """Offsets that point at real values (lower-casing can change a length) and do not overlap."""
    values = {(s.start_position, s.end_position): str(s.entity_value) for s in raw}
    if any(text[a:b] != v or v.lower() == "nan" for (a, b), v in values.items()):  # nan: a blank in the people table
        return False
    return all(a.end <= b.start for a, b in zip(spans, spans[1:]))


def _providers(module) -> list:
    """presidio-evaluator's providers minus the hospital one (it queries WikiData; no template uses it)."""
    return [p for p in module.presidio_additional_entity_providers if p.__name__ != "HospitalProvider"]


def _presidio():
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from presidio_evaluator.data_generator import presidio_sentence_faker
    except ImportError:
        raise RouterforgeError(
            "generated PII rows need presidio-evaluator",
            hint="pip install 'routerforge[pii-data]'",
        ) from None
    return presidio_sentence_faker


@contextlib.contextmanager
def _fixed_clock(now=FAKER_NOW):
    """Faker draws dates and years up to *now* (``year()``, ``date_time()``), so the same seed gave other rows
    an hour later and a manifest could not re-create them: its date provider reads a fixed clock meanwhile."""
    import faker.providers.date_time as dates

    class Now(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(*now, tzinfo=tz)

    class Today(datetime.date):
        @classmethod
        def today(cls):
            return cls(*now[:3])

    saved = dates.datetime, dates.dtdate
    dates.datetime, dates.dtdate = Now, Today
    try:
        yield
    finally:
        dates.datetime, dates.dtdate = saved


def _np_state():
    import numpy as np

    return np.random.get_state()


def _np_restore(state) -> None:
    import numpy as np

    np.random.set_state(state)
