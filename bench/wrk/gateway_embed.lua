-- wrk script of `make bench-gateway` (bench/gateway.sh): OpenAI embeddings requests through Troupe's gateway,
-- a batch of BENCH_EMBED_BATCH (8) inputs of BENCH_EMBED_DIMENSIONS (256) dimensions each, base64-encoded (the
-- OpenAI SDKs' default):
--   wrk -t2 -c4 -d10s --latency -s bench/wrk/gateway_embed.lua http://127.0.0.1:PORT/v1/embeddings
--
-- Environment:
--   BENCH_EMBED=hit    one batch, the same every time: every input a cache hit once it has been answered once.
--   BENCH_EMBED=miss   every request's inputs are new: "<BENCH_NONCE> t<thread> r<request> i<k>", so no input of
--                      the run (or of an earlier run with another nonce) is ever in the cache. The body is built per
--                      request (a string.format; cheap at the low concurrency this mode runs at).
--   BENCH_NONCE        distinguishes runs (the script passes the round and a random number).
--   BENCH_ACCESS_TOKEN sent as a bearer token.
--   BENCH_MODEL        the model (default mock-emb).

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_ACCESS_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local mode = os.getenv("BENCH_EMBED") or "hit"
if mode ~= "hit" and mode ~= "miss" then
  error("gateway_embed.lua: BENCH_EMBED must be hit or miss, not '" .. mode .. "'")
end
local model = os.getenv("BENCH_MODEL") or "mock-emb"
local batch = tonumber(os.getenv("BENCH_EMBED_BATCH") or "8")
local dimensions = tonumber(os.getenv("BENCH_EMBED_DIMENSIONS") or "256")
local nonce = os.getenv("BENCH_NONCE") or "0"

local function body(prefix)
  local inputs = {}
  for k = 1, batch do
    inputs[k] = string.format('"%s i%d: a paragraph of a document to embed for retrieval"', prefix, k)
  end
  return string.format('{"model":"%s","input":[%s],"dimensions":%d,"encoding_format":"base64"}', model,
    table.concat(inputs, ","), dimensions)
end

if mode == "hit" then
  wrk.body = body("fixed")
  return
end

local thread_count = 0
function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

local counter = 0

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, body(string.format("%s t%d r%d", nonce, thread_index or 0, counter)))
end
