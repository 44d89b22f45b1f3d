-- wrk script for benchmarks/load_wrk.sh: POST ~30-token prompts to /v1/classify (or chat), count status codes.
-- A C load generator: the Python one (load.py) is itself the bottleneck past ~32 connections on 2 cores.
-- HONOUR_RETRY_AFTER=1: after a 429 a connection waits the answer's Retry-After before it sends again, as the
-- OpenAI SDK does (wrk gives no connection identity, so each 429 delays the next request any connection sends:
-- the same number of waits, spread over the connections). Default: resend at once.
local endpoint = os.getenv("ENDPOINT") or "classify"
local honour = os.getenv("HONOUR_RETRY_AFTER") == "1"
local waits = {}
local words = {"please", "explain", "how", "the", "integral", "of", "x", "squared", "is", "computed", "step", "by",
               "for", "a", "first", "year", "calculus", "exam", "and", "call", "john", "at", "555-123-4567", "today"}
local counter = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, 23 do parts[i] = words[((counter + i * 7) % #words) + 1] end
  local text = table.concat(parts, " ") .. " " .. counter
  local body, path
  if endpoint == "chat" then
    path = "/v1/chat/completions"
    body = '{"model": "auto", "messages": [{"role": "user", "content": "' .. text .. '"}]}'
  else
    path = "/v1/classify"
    body = '{"text": "' .. text .. '"}'
  end
  return wrk.format("POST", path, {["content-type"] = "application/json"}, body)
end

response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if honour and status == 429 then
    table.insert(waits, 1000 * (tonumber(headers["Retry-After"] or headers["retry-after"] or "1") or 1))
  end
end

delay = function()
  return table.remove(waits) or 0
end

done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do total[status] = (total[status] or 0) + n end
  end
  local codes = {}
  for status, n in pairs(total) do table.insert(codes, string.format('"%d": %d', status, n)) end
  io.write(string.format(
    '{"requests": %d, "seconds": %.2f, "rps": %.1f, "p50_ms": %.2f, "p99_ms": %.2f, "status_codes": {%s}, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, table.concat(codes, ", "),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
