"""The runtime: normalise once, tokenise once, ONE encoder pass for every head -> :class:`Signals`.

>>> from routerforge import Router
>>> router = Router.load("runs/local-data/bundle")        # ONNX Runtime when model(.int8).onnx exists
>>> s = router.classify("Call John at 555-123-4567 about the integral of x^2")
>>> s.category.label, s.jailbreak.flagged, [(p.entity_type, p.start, p.end) for p in s.pii]

The same code serves a multitask bundle and a per-task model (one head), with any backend; ``eval``,
calibration and export parity all go through it, so what is measured is what is served. This module imports
neither torch nor transformers (only ``tokenizers`` and numpy; onnxruntime for the ONNX backends).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from ..bundle import heads_of, is_bundle, pii_min_score, pii_recognizers, read_info, shape_features
from ..data.spans import decode_spans
from ..errors import RouterforgeError
from ..numerics import softmax
from ..text.normalise import normaliser_for
from ..text.shapes import token_shapes
from .backends import (
    ONNX_FILES,
    TORCHSCRIPT_FILE,
    OnnxBackend,
    TorchBackend,
    TorchScriptBackend,
    saturation_warning,
)
from .lexical import load_lexical
from .recognizers import RecognizerConfig, Recognizers
from .signals import JailbreakSignal, LabelSignal, PiiSpan, Signals
from .windows import merge_token_rows, plan_windows

log = logging.getLogger("routerforge.runtime")

DEFAULT_THRESHOLD = 0.5  # P(jailbreak) cut-off of a model that has no threshold chosen on validation
# Window defaults (tokens, special tokens included): the model's training window (``max_length`` in
# routerforge.json, else WINDOW), a quarter of it shared with each neighbour, at most MAX_WINDOWS per text.
# docs/runtime.md has the measurements behind them (PII F1 drops when windows exceed the training window).
WINDOW, MAX_WINDOWS = 256, 64
BACKENDS = ("onnx-int8", "onnx", "torch", "torchscript")


def viterbi(emissions: np.ndarray, crf: dict[str, np.ndarray]) -> np.ndarray:
    """Best tag path under a linear-chain CRF (pytorch-crf's parameters), in numpy: serving needs no torch."""
    if len(emissions) == 0:
        return np.zeros(0, dtype=int)
    score = crf["start_transitions"] + emissions[0]
    back = np.zeros(emissions.shape, dtype=int)
    for t in range(1, len(emissions)):
        total = score[:, None] + crf["transitions"] + emissions[t][None, :]
        back[t] = total.argmax(axis=0)
        score = total.max(axis=0)
    path = [int((score + crf["end_transitions"]).argmax())]
    for t in range(len(emissions) - 1, 0, -1):
        path.append(int(back[t][path[-1]]))
    return np.array(path[::-1])


def _crf_parameters(path: Path, info: dict, task: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if is_bundle(info):
        prefix = f"{task}.crf."
        tensors = load_file(str(path / "heads.safetensors"))
        return {k[len(prefix) :]: v.astype(np.float64) for k, v in tensors.items() if k.startswith(prefix)}
    return {k: v.astype(np.float64) for k, v in load_file(str(path / "crf.safetensors")).items()}


class SpecialTokens:
    """What the tokenizer puts around a single text ([CLS] ... [SEP], <s> ... </s>), and its padding id."""

    def __init__(self, tokenizer, path: Path):
        encoding = tokenizer.encode("a")
        content = [i for i, special in enumerate(encoding.special_tokens_mask) if not special]
        self.prefix = encoding.ids[: content[0]]
        self.suffix = encoding.ids[content[-1] + 1 :]
        config = path / "tokenizer_config.json"
        pad = json.loads(config.read_text()).get("pad_token") if config.is_file() else None
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_id = tokenizer.token_to_id(pad) if pad and tokenizer.token_to_id(pad) is not None else 0


class Router:
    """A loaded model directory (bundle or per-task model) with one backend; thread-safe for reads."""

    def __init__(
        self,
        path: Path,
        info: dict,
        backend,
        backend_name: str,
        *,
        window: int | None = None,
        overlap: int | None = None,
        max_windows: int | None = None,
        normalisation: str | None = None,
        recognizers: RecognizerConfig | dict | bool | None = None,
    ):
        from tokenizers import Tokenizer

        self.path, self.info, self.backend, self.backend_name = Path(path), info, backend, backend_name
        self.heads = heads_of(info)
        self.normalise = normaliser_for(info, normalisation)  # the one the model was trained with
        self.shaped = shape_features(info)  # the model also reads each token's shape (text/shapes.py)
        self.id2label = {task: dict(enumerate(h["label_names"])) for task, h in self.heads.items()}
        if not (self.path / "tokenizer.json").is_file():
            raise RouterforgeError(
                "no tokenizer.json in the model directory",
                source=str(path),
                hint="pass a directory written by routerforge",
            )
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.special = SpecialTokens(self.tokenizer, self.path)
        n_special = len(self.special.prefix) + len(self.special.suffix)
        positions = json.loads((self.path / "config.json").read_text()).get("max_position_embeddings", 512)
        self.window = min(window or int(info.get("max_length") or WINDOW), positions)
        self.overlap = self.window // 4 if overlap is None else overlap
        self.max_windows = max_windows or MAX_WINDOWS
        self.content = self.window - n_special
        if not 0 <= self.overlap < self.content:
            raise RouterforgeError(
                f"window overlap {self.overlap} must be below the window's {self.content} text tokens",
                hint="lower --overlap or raise --window",
            )
        calibration = info.get("calibration", {})
        self.temperature = {t: float(calibration.get(t, {}).get("temperature", 1.0)) for t in self.heads}
        self.threshold = float(info.get("thresholds", {}).get("jailbreak", DEFAULT_THRESHOLD))
        self.crf = {t: _crf_parameters(self.path, info, t) for t, h in self.heads.items() if h.get("crf")}
        # label heads' word n-gram priors (runtime/lexical.py), as routerforge.json's calibration keeps them
        self.lexical = load_lexical(self.path, calibration)
        # PII post-processing (runtime/recognizers.py): the bundle's pii_recognizers, fields overridden by the
        # router's; False: the learned head's spans as decoded (ablations)
        self.recognizers = (
            None
            if recognizers is False
            else Recognizers.for_model(
                pii_recognizers(info), None if recognizers is True else recognizers, min_score=pii_min_score(info)
            )
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: str | None = None,
        *,
        window: int | None = None,
        overlap: int | None = None,
        max_windows: int | None = None,
        allow_pickle: bool = False,
        threads: int | None = None,
        info: dict | None = None,
        normalisation: str | None = None,
        recognizers: RecognizerConfig | dict | bool | None = None,
    ) -> Router:
        """``backend``: onnx-int8 | onnx | torch | torchscript; default: the fastest export present, else torch.
        ``info`` replaces ``routerforge.json`` (training scores a model before that file is written).
        ``normalisation`` ("identity", "robust-v1", "robust-v2") replaces the one the model was trained with
        (ablations). ``recognizers``: the validated PII recognizers and minimum span score
        (:class:`~routerforge.runtime.recognizers.RecognizerConfig`, over the bundle's ``pii_recognizers``);
        False returns the token head's spans untouched."""
        path = Path(path)
        info = info if info is not None else read_info(path)
        if backend is None:
            backend = next((name for name, file in ONNX_FILES.items() if (path / file).is_file()), "torch")
        if backend not in BACKENDS:
            raise RouterforgeError(f"unknown backend {backend!r}", hint=f"choose one of {', '.join(BACKENDS)}")
        if backend in ONNX_FILES or backend == "torchscript":
            file = path / (ONNX_FILES.get(backend) or TORCHSCRIPT_FILE)
            if not file.is_file():
                raise RouterforgeError(
                    f"no {file.name} in the model directory",
                    source=str(path),
                    hint=f"run: routerforge export {path} --format {backend}",
                )
            if backend == "onnx-int8" and (warning := saturation_warning(info)):
                log.warning("%s: %s", path, warning)
            runner: OnnxBackend | TorchBackend = (
                OnnxBackend(file, threads, row_wise=backend == "onnx-int8")
                if backend in ONNX_FILES
                else TorchScriptBackend(file, heads_of(info))
            )
        else:
            runner = TorchBackend(path, info, heads_of(info), allow_pickle=allow_pickle)
        return cls(
            path,
            info,
            runner,
            backend,
            window=window,
            overlap=overlap,
            max_windows=max_windows,
            normalisation=normalisation,
            recognizers=recognizers,
        )

    # -- public API -----------------------------------------------------------------------------------------

    def classify(self, text: str) -> Signals:
        """Every head's signal for one text (one encoder pass; long texts in windows): see :class:`Signals`."""
        return self.classify_batch([text])[0]

    def __repr__(self) -> str:
        return f"Router({str(self.path)!r}, backend={self.backend_name!r}, heads={list(self.heads)})"

    def classify_batch(self, texts: list[str], batch_size: int = 32) -> list[Signals]:
        """Signals for each text; long texts are windowed (``windows``), never silently cut (``truncated``)."""
        started = time.perf_counter()
        norms = [self.normalise(text) for text in texts]
        encodings = self.tokenizer.encode_batch([n.text for n in norms], add_special_tokens=False)
        plans = [plan_windows(len(e.ids), self.content, self.overlap, self.max_windows) for e in encodings]
        jobs = [(i, w) for i, (windows, _) in enumerate(plans) for w in windows]
        shapes = self._shapes(norms, encodings)
        outputs = self._run(
            [encodings[i].ids[w.start : w.end] for i, w in jobs],
            None if shapes is None else [shapes[i][w.start : w.end] for i, w in jobs],
            batch_size,
        )
        per_text: list[list[int]] = [[] for _ in texts]
        for job, (i, _) in enumerate(jobs):
            per_text[i].append(job)
        signals = []
        for i, norm in enumerate(norms):
            windows, truncated = plans[i]
            rows = {head: [outputs[head][job] for job in per_text[i]] for head in self.heads}
            signals.append(self._decode(norm, encodings[i].offsets, windows, rows, truncated))
        elapsed = (time.perf_counter() - started) * 1000
        for s in signals:
            s.latency_ms = elapsed
        return signals

    def window_logits(self, texts: list[str], batch_size: int = 32) -> dict[str, list[np.ndarray]]:
        """The encoder's logits for each text's first window (``(labels,)`` per text, or ``(tokens, labels)`` for a
        token head), before any lexical prior (:meth:`with_prior`)."""
        return self._run(*self.first_windows(texts), batch_size=batch_size)

    def with_prior(self, head: str, logits: list[np.ndarray], texts: list[str]) -> list[np.ndarray]:
        """A label head's first-window logits of ``texts`` as served: with its lexical prior mixed in, when it has
        one (what calibration fits a temperature on and export parity compares)."""
        prior = self.lexical.get(head)
        if prior is None:
            return logits
        return [prior.combine(z, self.normalise(t).text) for z, t in zip(logits, texts)]

    def first_window_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of the first window's tokens, in the *original* texts (gold spans are there too)."""
        norms = [self.normalise(t) for t in texts]
        encodings = self.tokenizer.encode_batch([n.text for n in norms], add_special_tokens=False)
        return [
            [n.to_original(s, e) if s < e else (s, e) for s, e in enc.offsets[: self.content]]
            for n, enc in zip(norms, encodings)
        ]

    # -- internals ------------------------------------------------------------------------------------------

    def batches(self, windows: list[list[int]], batch_size: int, shapes: list[list[int]] | None = None):
        """``(window indices, input_ids, attention_mask, shape_ids or None)`` per padded batch of content-id
        windows (``shapes``: their token shapes, for a model with shape features), special tokens added, similar
        lengths together (they pad less): what every backend call receives."""
        prefix, suffix = self.special.prefix, self.special.suffix
        order = sorted(range(len(windows)), key=lambda j: len(windows[j]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = len(prefix) + len(suffix) + max(len(windows[j]) for j in chunk)
            ids = np.full((len(chunk), width), self.special.pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            shape_ids = None if shapes is None else np.zeros((len(chunk), width), dtype=np.int64)
            for row, j in enumerate(chunk):
                tokens = prefix + windows[j] + suffix
                ids[row, : len(tokens)], mask[row, : len(tokens)] = tokens, 1
                if shape_ids is not None and shapes is not None:  # special tokens and padding: shape 0
                    shape_ids[row, len(prefix) : len(prefix) + len(windows[j])] = shapes[j]
            yield chunk, ids, mask, shape_ids

    def first_windows(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]] | None]:
        """Each text's first window of content token ids, after the model's normalisation, and their token
        shapes (None for a model without shape features)."""
        norms = [self.normalise(t) for t in texts]
        encodings = self.tokenizer.encode_batch([n.text for n in norms], add_special_tokens=False)
        shapes = self._shapes(norms, encodings)
        return (
            [e.ids[: self.content] for e in encodings],
            None if shapes is None else [s[: self.content] for s in shapes],
        )

    def _shapes(self, norms, encodings) -> list[list[int]] | None:
        """Each text's token shapes, from its normalised characters (None for a model without shape features)."""
        return [token_shapes(n.text, e.offsets) for n, e in zip(norms, encodings)] if self.shaped else None

    def _run(
        self, windows: list[list[int]], shapes: list[list[int]] | None = None, batch_size: int = 32
    ) -> dict[str, list[np.ndarray]]:
        """Every head's logits for each window of content ids; token heads trimmed to the content tokens."""
        prefix = self.special.prefix
        out: dict[str, list] = {head: [None] * len(windows) for head in self.heads}
        for chunk, ids, mask, shape_ids in self.batches(windows, batch_size, shapes):
            logits = self.backend(ids, mask) if shape_ids is None else self.backend(ids, mask, shape_ids)
            for head, spec in self.heads.items():
                for row, j in enumerate(chunk):
                    value = logits[head][row]
                    out[head][j] = (
                        value[len(prefix) : len(prefix) + len(windows[j])] if spec["kind"] == "token" else value
                    )
        return out

    def _decode(self, norm, offsets, windows, rows: dict[str, list[np.ndarray]], truncated: bool) -> Signals:
        signals = Signals(windows=len(windows), truncated=truncated)
        for head, spec in self.heads.items():
            temperature = self.temperature[head]
            if spec["kind"] == "token":
                signals.pii = self._spans(norm, offsets, windows, rows[head], head, temperature)
                continue
            names = spec["label_names"]
            if spec["kind"] == "multilabel":  # the selector: independent P(correct) per pool model
                p_correct = (1.0 / (1.0 + np.exp(-np.stack(rows[head]) / temperature))).mean(axis=0)
                best = int(p_correct.argmax())
                signals.selector = LabelSignal(
                    names[best], float(p_correct[best]), dict(zip(names, p_correct.tolist()))
                )
                continue
            logits = np.stack(rows[head])
            if head in self.lexical:  # one prior per text (what its windows read), added to each window
                read = norm.text[: offsets[windows[-1].end - 1][1]] if truncated else norm.text
                logits = self.lexical[head].combine(logits, read)
            probs = softmax(logits, temperature)
            if head == "jailbreak" and "jailbreak" in names:  # the most suspicious window decides
                k = names.index("jailbreak")
                p = float(probs[:, k].max())
                flagged = p >= self.threshold
                other = next((n for n in names if n != "jailbreak"), "benign")
                signals.jailbreak = JailbreakSignal("jailbreak" if flagged else other, p, flagged, self.threshold)
                continue
            mean = probs.mean(axis=0)  # category, intent: the windows' average opinion
            best = int(mean.argmax())
            signal = LabelSignal(names[best], float(mean[best]), {n: float(v) for n, v in zip(names, mean)})
            if head in ("category", "intent"):
                setattr(signals, head, signal)
            else:
                signals.extra[head] = signal
        return signals

    def _spans(self, norm, offsets, windows, rows, head: str, temperature: float) -> list[PiiSpan]:
        probs = [softmax(r, temperature) for r in rows]
        if head in self.crf:
            tags = [viterbi(r.astype(np.float64), self.crf[head]) for r in rows]
        else:
            tags = [p.argmax(axis=-1) for p in probs]
        confidence = [p[np.arange(len(t)), t] for p, t in zip(probs, tags)]
        token_tags = merge_token_rows(windows, tags).astype(int)
        token_scores = merge_token_rows(windows, confidence)
        spans = decode_spans(
            norm.text, offsets[: len(token_tags)], token_tags.tolist(), token_scores.tolist(), self.id2label[head]
        )
        out = []
        for s in spans:
            start, end = norm.to_original(s["start"], s["end"])
            out.append(PiiSpan(s["entity_type"], start, end, norm.original[start:end], s["score"]))
        return out if self.recognizers is None else self.recognizers.apply(norm.original, out, norm)
