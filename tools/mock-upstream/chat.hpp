#pragma once
// POST /v1/chat/completions: reading an OpenAI chat request and planning its answer: a chat.completion object,
// an SSE stream of chat.completion.chunk events, an OpenAI error, or one of the malformed answers, shaped by the
// knobs control.hpp resolved for the request.
//
// The reply content is "mock reply: " followed by the text of the last user message (at most 200 bytes, cut at a
// UTF-8 boundary); a plan request (mock_plan) is answered with a deterministic plan built from its prompt; with huge_bytes it is that many bytes of the filler pattern instead; with max_tokens
// (or max_completion_tokens) it stops after 4 * max_tokens bytes with finish_reason "length".
// Usage: prompt_tokens = ceil(bytes of all message text / 4), completion_tokens = ceil(content bytes / 4), each
// at least 1.

#include "tools/mock-upstream/control.hpp"
#include "tools/mock-upstream/knobs.hpp"
#include "tools/mock-upstream/plan.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::mock {

inline constexpr size_t echo_limit_bytes = 200;

struct chat_request {
  std::string model;
  bool stream = false;
  bool include_usage = false; // stream_options.include_usage
  int64_t max_tokens = 0;     // 0: no limit
  std::string last_user_text;
  uint64_t prompt_bytes = 0; // bytes of text over all messages
  knob_overrides directives; // from [[mock ...]] in message text, in message order
  // A plan request (Troupe's plan jobs: a system message naming troupe-plan-v1): the first user message, and how
  // many user messages there are (2 on a retry after an answer that did not fit).
  bool plan_prompt = false;
  std::string plan_text;
  int user_messages = 0;
};

/// Why a request is invalid, in OpenAI's terms (a 400 invalid_request_error).
struct request_error {
  std::string message;
  std::string param;
  std::string code;
};

/// Parses and validates a request body; false with `error` filled when it is not a valid chat request
/// (invalid JSON or UTF-8 as config/json.hpp reads it: also too deep or with a repeated key; missing model or
/// messages, wrongly typed fields, an invalid [[mock ...]] directive).
bool parse_chat_request(std::string_view body, chat_request& out, request_error& error);

/// The answer to a plan request: a JSON plan {title, overview, sections:[{title, files, steps}]} made from the
/// request line ("Request: ...") and the excerpts' paths ("--- path:first-last") of its first user message, one
/// section per distinct path (at most 8), or one section without files when there are none. A request line holding
/// "[invalid-plan]" gets an answer without sections every time; "[invalid-plan-once]" only to the first attempt
/// (a request with a single user message).
std::string mock_plan(const chat_request& request);

/// Appends to `directives` every [[mock name=value ...]] found in `text`; returns "" or an error sentence.
std::string scan_directives(std::string_view text, knob_overrides& directives);

struct answer_context {
  int64_t created = 0;    // unix seconds
  bool keep_alive = true; // the connection stays open after the answer
  bool chunked_ok = true; // the client speaks HTTP/1.1 (else a stream is delimited by closing)
};

/// Appends the answer to `p` as `admitted` decided: latency, then an error, a hang-up, a malformed answer, or a
/// completion (streamed when the request asked for it), dripped as the knobs say.
void plan_chat_answer(const chat_request& request, const admission& admitted, const answer_context& context, plan& p);

/// Appends the error answer `admitted.status` (OpenAI's shape, Retry-After when the knobs set one), dripped as the
/// knobs say. For every route whose requests are admitted (chat completions, embeddings).
void plan_error(const admission& admitted, const answer_context& context, plan& p);

/// The OpenAI error `type` and `code` the mock uses for a status.
std::string_view error_type_for(int status);
std::string_view error_code_for(int status);

} // namespace troupe::mock
