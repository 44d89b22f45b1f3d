#!/usr/bin/env bash
# Quality runs on the public data (read in place), one after another, each with its wall time:
#   bash benchmarks/quality.sh [DATA_DIR] [OUT_DIR]      (defaults: data/, models/)
# Then: python benchmarks/baselines.py OUT_DIR/category OUT_DIR/intent ...; routerforge eval OUT_DIR/<name>
set -uo pipefail
D=${1:-data}
OUT=${2:-models}
mkdir -p "$OUT"
export TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
run() {
  local name=$1; shift
  local start=$(date +%s)
  routerforge train "$@" --output "$OUT/$name" > "$OUT/$name.log" 2>&1
  echo "$name rc=$? wall=$(( $(date +%s) - start ))s" | tee -a "$OUT/times.txt"
}
run category       --task category  --data $D/mmlu_pro/questions.jsonl --text-field question --label-field category --model minilm
run pii            --task pii       --data $D/presidio_pii/synth_dataset_v2.jsonl --group-by template_id --model minilm
run jailbreak-lora --task jailbreak --data $D/jailbreak/train.jsonl --model minilm --lora --lora-rank 12
run jailbreak      --task jailbreak --data $D/jailbreak/train.jsonl --model minilm
run intent         --task intent    --data $D/function_calling/bfcl_v4_queries.jsonl --data $D/function_calling/glaive_toolcall_en_demo.jsonl --model minilm
run clinc150       --task intent    --data $D/intent/clinc150.jsonl --label-field domain --split-field split --train-split train --test-split val --model minilm
run category-lora  --task category  --data $D/mmlu_pro/questions.jsonl --text-field question --label-field category --model minilm --lora
