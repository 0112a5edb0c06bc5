-- Counts the responses by status in each thread and prints them when the run ends ("statuses: 200=123 503=4"), so
-- a run with non-2xx answers says which. Bearer token: BENCH_ACCESS_TOKEN (kept out of the command line).
local threads = {}
local token = os.getenv("BENCH_ACCESS_TOKEN")

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  codes = {}
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("codes")) do
      total[status] = (total[status] or 0) + n
    end
  end
  io.write("statuses:")
  for status, n in pairs(total) do
    io.write(" " .. status .. "=" .. n)
  end
  io.write("\n")
end
