-- wrk script posting an OpenAI chat-completions request, for the mock upstream (tools/mock-upstream) or Troupe's
-- gateway in front of it:
--   wrk -t2 -c64 -d5s --latency -s bench/wrk/mock_chat.lua http://127.0.0.1:PORT/v1/chat/completions
-- Environment: MOCK_STREAM=1 asks for an SSE stream; MOCK_MODEL (default mock-1); BENCH_ACCESS_TOKEN, when set, is
-- sent as a bearer token (kept out of the command line). The body is built once, so wrk spends no CPU on Lua
-- while it shares the machine's cores with the server under test.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_ACCESS_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local stream = os.getenv("MOCK_STREAM") == "1"
local model = os.getenv("MOCK_MODEL") or "mock-1"
wrk.body = string.format(
  '{"model":"%s","stream":%s,"messages":[{"role":"system","content":"You are a terse benchmark assistant."},' ..
  '{"role":"user","content":"Summarise the benefits of keep-alive connections in one sentence."}]}',
  model, stream and "true" or "false")
