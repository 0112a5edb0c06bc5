-- wrk script of `make bench-db` (bench/db.sh): single-event POST /api/events, one small JSON event per request.
--   BENCH_ACCESS_TOKEN=ACCESS_TOKEN wrk -t2 -c64 -d10s --latency -s bench/wrk/post_event.lua \
--     http://127.0.0.1:PORT/api/events
-- The bodies vary a little (session_id and properties.i cycle through 1000 values, offset per wrk thread). They
-- are formatted once at start-up and the request function only picks the next one, so wrk spends no CPU on Lua
-- string building while it shares the machine's cores with the server under test.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- Writes need a credential: bench/db.sh passes an access token in BENCH_ACCESS_TOKEN (kept out of the command line).
local token = os.getenv("BENCH_ACCESS_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local variants = 1000
local requests = {}
local next_index = 1

-- Called by wrk in every thread's Lua state; `thread` only exists in the setup phase, so the per-thread offset
-- comes from a global counter of the setup state copied into each thread.
local thread_count = 0
function setup(thread)
  thread:set("thread_offset", thread_count * 997)
  thread_count = thread_count + 1
end

function init(args)
  local offset = thread_offset or 0
  for i = 1, variants do
    local n = (offset + i) % variants
    local body = string.format('{"event":"bench","session_id":"bench-%04d","properties":{"i":%d}}', n, n)
    requests[i] = wrk.format(nil, nil, nil, body)
  end
  next_index = 1
end

function request()
  local r = requests[next_index]
  next_index = next_index % variants + 1
  return r
end
