-- wrk script of `make bench-db` (bench/db.sh): batch POST /api/events, N events per request (default 1000, the
-- API's limit; ~65 KB):
--   BENCH_ACCESS_TOKEN=ACCESS_TOKEN wrk -t2 -c8 -d10s --latency -s bench/wrk/post_batch.lua \
--     http://127.0.0.1:PORT/api/events [-- N]
-- The body is built once per wrk thread at start-up; its events have the shape of post_event.lua's (and of the
-- rows build/bench/bench_copy COPYs): event "bench", session_id "bench-NNNN", properties {"i":N}.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- Writes need a credential: bench/db.sh passes an access token in BENCH_ACCESS_TOKEN (kept out of the command line).
local token = os.getenv("BENCH_ACCESS_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function init(args)
  local n = tonumber(args[1] or "1000")
  if n == nil or n < 1 or n ~= math.floor(n) then
    error("post_batch.lua: the argument must be a positive number of events, not '" .. tostring(args[1]) .. "'")
  end
  local parts = {}
  for i = 0, n - 1 do
    parts[#parts + 1] =
      string.format('{"event":"bench","session_id":"bench-%04d","properties":{"i":%d}}', i % 1000, i)
  end
  -- wrk formats its one request after init, with this body.
  wrk.body = '{"events":[' .. table.concat(parts, ",") .. ']}'
end
