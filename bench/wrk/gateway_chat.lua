-- wrk script of `make bench-gateway` (bench/gateway.sh): non-streamed OpenAI chat completions, for the mock upstream
-- (tools/mock-upstream), Troupe's gateway in front of it, or another gateway (extra headers with wrk -H):
--   wrk -t2 -c64 -d10s --latency -s bench/wrk/gateway_chat.lua http://127.0.0.1:PORT/v1/chat/completions
--
-- Environment:
--   BENCH_CHAT=vary (default)  every request differs from the ones in flight: temperature 0.7 (never cached) and a
--                              user message numbered per wrk thread, so Troupe's single flight (which merges identical
--                              concurrent requests, cached or not) cannot answer two requests with one upstream call.
--                              Each thread cycles through 10000 numbers of its own (thread t uses t*10000 ...
--                              t*10000+9999): a number comes back only after 9999 others, never while it is in flight.
--   BENCH_CHAT=fixed           one deterministic request (temperature 0), the same every time: a cache hit on Troupe
--                              once it has been answered once.
--   BENCH_ACCESS_TOKEN         sent as a bearer token when set (kept out of the command line).
--   BENCH_MODEL                the model (default mock-1).
-- The requests are formatted once per thread at start-up and request() only picks the next one, so wrk spends no
-- CPU on Lua string building while it shares the machine's cores with the servers under test.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_ACCESS_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local mode = os.getenv("BENCH_CHAT") or "vary"
if mode ~= "vary" and mode ~= "fixed" then
  error("gateway_chat.lua: BENCH_CHAT must be vary or fixed, not '" .. mode .. "'")
end
local model = os.getenv("BENCH_MODEL") or "mock-1"
local variants = 10000

local function body(temperature, content)
  return string.format(
    '{"model":"%s","temperature":%s,"messages":[{"role":"system","content":"You are a terse benchmark assistant."},' ..
    '{"role":"user","content":"%s"}]}', model, temperature, content)
end

if mode == "fixed" then
  wrk.body = body("0", "Summarise the benefits of keep-alive connections in one sentence.")
  return
end

-- setup runs in the main Lua state, once per thread, before the threads start: it hands each thread its number.
local thread_count = 0
function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

local requests = {}
local next_index = 1

function init(args)
  local base = (thread_index or 0) * variants
  for i = 1, variants do
    requests[i] = wrk.format(nil, nil, nil, body("0.7", string.format(
      "Request %d: summarise the benefits of keep-alive connections in one sentence.", base + i - 1)))
  end
  next_index = 1
end

function request()
  local r = requests[next_index]
  next_index = next_index % variants + 1
  return r
end
