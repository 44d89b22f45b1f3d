#!/usr/bin/env bash
# Load curve with wrk (apt install wrk): concurrency 1, 8, 32, 128 for DURATION seconds each against a router
# already listening on URL; one JSON line per point (latency over every response: 429s are answered in ~1 ms).
#   routerforge serve --config benchmarks/load-router.yaml --port 8080 &
#   ENDPOINT=classify DURATION=60 benchmarks/load_wrk.sh http://127.0.0.1:8080 > benchmarks/results/load-wrk.jsonl
set -euo pipefail
URL=${1:-http://127.0.0.1:8080}
cd "$(dirname "$0")"
for c in ${CONCURRENCY:-1 8 32 128}; do
  printf '{"concurrency": %d, "endpoint": "%s", "result": ' "$c" "${ENDPOINT:-classify}"
  wrk -t1 -c"$c" -d"${DURATION:-60}"s --timeout 30s --latency -s load_wrk.lua "$URL" | tail -1 | tr -d '\n'
  echo "}"
done
