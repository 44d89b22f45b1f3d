# `make demo` and `make test` build their own virtual environment: torch (CPU build) first, then the project with
# its training extra (`pip install routerforge` alone is the serving-only install: no torch).
VENV ?= .venv
PY := $(VENV)/bin/python
RF := $(VENV)/bin/routerforge
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1

# The public data sets for the benchmarks, laid out as configs/local-data.yaml says.
DATA_DIR ?= data

.PHONY: demo test test-fast lint constraints bench-quality bench-latency bench-load bench-robustness clean

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[train,minilm,pii-data,test]'
	touch $@

# Re-pin constraints.txt to what the venv holds now (after upgrading a package and passing `make test`).
constraints: $(VENV)/.installed
	{ sed -n 1,2p constraints.txt; $(PY) -m pip freeze --exclude-editable | grep '==' | grep -v '^torch=='; } > constraints.new
	mv constraints.new constraints.txt

# Main job, offline (configs/quickstart.yaml): synthetic data for the four tasks -> one MiniLM encoder with four
# heads -> calibrate -> evaluate -> int8 ONNX export (parity-checked) -> report, then classify with the bundle.
demo: $(VENV)/.installed
	$(RF) pipeline configs/quickstart.yaml
	$(RF) classify runs/quickstart/bundle "Call John Smith at 555-123-4567 about the integral of x^2"

# Lint, format check and type check (src/), then every test: one process per core (at most 4), a test file each.
test: lint
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile

# The tests without the slow ones (DDP, kill-and-resume, hostile loaders, real MiniLM): a few minutes less.
test-fast: lint
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile -m "not slow"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/mypy

# Quality runs on $(DATA_DIR), then the TF-IDF baselines on the same splits (by hand; benchmarks/README.md)
bench-quality: $(VENV)/.installed
	PATH=$(VENV)/bin:$$PATH bash benchmarks/quality.sh $(DATA_DIR) models
	$(PY) benchmarks/baselines.py models/category models/category-lora models/intent models/clinc150

# Serving latency: the four per-task models vs the multitask bundle (torch, ONNX, ONNX int8); benchmarks/README.md
bench-latency: $(VENV)/.installed
	$(PY) benchmarks/latency.py --per-task category=models/category pii=models/pii-e10 jailbreak=models/jailbreak \
		intent=models/intent-e8 --bundle runs/local-data/bundle --output benchmarks/results/latency.json

# Router under load (proxy + micro-batching, ONNX int8 bundle, fake upstream); benchmarks/load.py docstring
bench-load: $(VENV)/.installed
	PATH=$(VENV)/bin:$$PATH bash benchmarks/load.sh

# Jailbreak detection under obfuscation (spaced letters, leetspeak, homoglyphs, buried attacks, ...)
bench-robustness: $(VENV)/.installed
	$(PY) benchmarks/robustness.py models/jailbreak runs/local-data/bundle --output benchmarks/results/robustness.json

clean:
	rm -rf $(VENV) runs reports models .pytest_cache
