#!/usr/bin/env bash
# Load curve with wrk (apt install wrk): concurrency 1, 8, 32, 128 for DURATION seconds each against a router
# already listening on URL; one JSON line per point. wrk's p50/p99 are over every response (429s are answered in
# ~1 ms); "admitted" is the server's own classification latency of the requests it took (queueing included), read
# from /metrics before and after the point: the upper bound of the histogram bucket that holds its p50 / p99.
#   routerforge serve --config benchmarks/load-router.yaml --port 8080 &
#   ENDPOINT=classify DURATION=60 benchmarks/load_wrk.sh http://127.0.0.1:8080 > benchmarks/results/load-wrk.jsonl
# HONOUR_RETRY_AFTER=1: clients wait a 429's Retry-After before they send again (default: resend at once).
set -euo pipefail
URL=${1:-http://127.0.0.1:8080}
cd "$(dirname "$0")"
before=$(mktemp) after=$(mktemp)
trap 'rm -f "$before" "$after"' EXIT
for c in ${CONCURRENCY:-1 8 32 128}; do
  curl -sf "$URL/metrics" > "$before"
  printf '{"concurrency": %d, "endpoint": "%s", "honour_retry_after": %s, "result": ' "$c" "${ENDPOINT:-classify}" \
    "$([ "${HONOUR_RETRY_AFTER:-0}" = 1 ] && echo true || echo false)"
  wrk -t1 -c"$c" -d"${DURATION:-60}"s --timeout 30s --latency -s load_wrk.lua "$URL" | tail -1 | tr -d '\n'
  curl -sf "$URL/metrics" > "$after"
  printf ', "admitted": %s}\n' "$(python3 - "$before" "$after" <<'PY'
import json, sys
def buckets(path):
    out = {}
    for line in open(path):
        if line.startswith("routerforge_classification_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
    return out
b, a = buckets(sys.argv[1]), buckets(sys.argv[2])
delta = sorted((le, a[le] - b.get(le, 0.0)) for le in a)
total = delta[-1][1] if delta else 0
def bound(q):
    return next((le * 1000 for le, n in delta if n >= q * total), None) if total else None
print(json.dumps({"requests": int(total), "p50_ms_at_most": bound(0.5), "p99_ms_at_most": bound(0.99)}))
PY
)"
done
