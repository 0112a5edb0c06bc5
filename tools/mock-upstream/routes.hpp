#pragma once
// The mock's routes: a complete request (head and body) in, a response plan out. Runs on a server thread and
// never blocks: waits are steps of the plan.
//
//   POST /v1/chat/completions, /chat/completions   chat.hpp
//   POST /v1/embeddings, /embeddings             embeddings.hpp
//   POST /v1/messages, /messages                 messages.hpp (Anthropic's Messages API)
//   GET  /v1/models, /models                      the --models list
//   GET  /mock/stats                              counters (control.hpp)
//   POST /mock/reset                              counters, scripted knobs and defaults back to the start
//   GET  /mock/config, POST /mock/config          the default and scripted knobs; POST changes them
//   GET  /health                                  200 {"status":"ok"}
// Unknown paths get 404, known paths with another method 405 with Allow; every error body has OpenAI's shape.

#include "tools/mock-upstream/control.hpp"
#include "tools/mock-upstream/http_request.hpp"
#include "tools/mock-upstream/plan.hpp"

#include <string_view>

namespace troupe::mock {

plan route_request(const request_head& head, std::string_view body, mock_state& state);

/// A request the server cannot read to its end (bad head, Transfer-Encoding, too large): an error answer after
/// which the connection closes.
plan reject_request(int status, std::string_view message);

} // namespace troupe::mock
