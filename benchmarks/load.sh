#!/usr/bin/env bash
# Load benchmark (make bench-load): batching on (classify + chat at 1/8/32/128), batching off (classify at 32)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p logs
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
uptime
routerforge serve --config benchmarks/load-router.yaml --port 8080 > logs/serve-on.log 2>&1 &
SERVER=$!
for i in $(seq 60); do curl -sf http://127.0.0.1:8080/readyz >/dev/null && break; sleep 1; done
python benchmarks/load.py --url http://127.0.0.1:8080 --endpoint classify --label batching-on --tokenizer runs/local-data/bundle --output benchmarks/results/load-classify-on.json
python benchmarks/load.py --url http://127.0.0.1:8080 --endpoint chat --fake-upstream-port 9000 --label batching-on --tokenizer runs/local-data/bundle --output benchmarks/results/load-chat-on.json
kill $SERVER; wait $SERVER || true
routerforge serve --config benchmarks/load-router-nobatch.yaml --port 8080 > logs/serve-off.log 2>&1 &
SERVER=$!
for i in $(seq 60); do curl -sf http://127.0.0.1:8080/readyz >/dev/null && break; sleep 1; done
python benchmarks/load.py --url http://127.0.0.1:8080 --endpoint classify --concurrency 32 --label batching-off --tokenizer runs/local-data/bundle --output benchmarks/results/load-classify-off.json
kill $SERVER; wait $SERVER || true
uptime
