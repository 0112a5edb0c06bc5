#pragma once
// The OpenAI chat-completions protocol as the gateway needs it, as pure functions (no actors, no I/O):
// validating a client's request, the cache key of a deterministic request, checking an upstream's answer, and
// relaying an upstream's Server-Sent Events stream event by event.

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::http::openai {

/// A client's chat completion request, validated. `body` is what is forwarded upstream (the client's JSON as it
/// came; the caller sets it).
struct chat_request {
  std::string model;
  bool stream = false;
  std::optional<double> temperature;
  std::string body;
  size_t prompt_chars = 0; // text in the messages, for estimating tokens when an upstream reports none
};

/// A validation failure: a sentence and the JSON path of the offending field ("messages[2].role").
struct request_error {
  std::string message;
  std::string param;
};

/// Validates a parsed request body: model (1-128 chars), messages (1..max_messages objects with a known role and
/// string / array / null content), stream (bool), temperature (0-2), max_tokens and max_completion_tokens (>= 1),
/// n (1..8 — only 1 when streaming is irrelevant here). Other fields are passed through untouched.
std::optional<request_error> validate_chat_request(const rapidjson::Document& doc, size_t max_messages,
                                                   chat_request& out);

/// The cache key of a request for a tenant: SHA-256 over the canonical JSON (keys sorted recursively) of what
/// decides the answer: model, messages, sampling parameters, tools, response format. Whitespace, key order and
/// fields like `user` or `stream_options` do not change it.
std::string cache_key(const rapidjson::Document& doc, const std::string& tenant);

/// Token usage of one completion.
struct usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t total_tokens = 0;
  bool estimated = false;
};

/// Roughly four characters per token, at least one.
int64_t estimate_tokens(size_t chars);

/// Checks a non-streamed upstream answer: valid UTF-8 JSON object with a non-empty `choices` array. Returns its
/// usage (reported, or estimated from the answer's text and `prompt_chars`), or nullopt with `why` set.
std::optional<usage> check_completion(std::string_view body, size_t prompt_chars, std::string& why);

/// The text of choices[0].message.content of a (checked) completion, "" if absent.
std::string completion_text(std::string_view body);

/// Whether `text` is well-formed UTF-8.
bool valid_utf8(std::string_view text);

/// Relays an upstream SSE stream: feed() the bytes as they arrive; it returns the complete events, each checked
/// (UTF-8; every `data:` payload is JSON or [DONE]) and re-framed as "data: ...\n\n" (comments kept). The first
/// bad event stops the relay (failed() with why()).
class sse_relay {
public:
  explicit sse_relay(size_t prompt_chars, size_t max_event_bytes = 1 << 20);

  /// The complete, valid events in `data` (with what was buffered before), ready to send.
  std::string feed(std::string_view data);
  bool failed() const { return !why_.empty(); }
  const std::string& why() const { return why_; }
  /// Whether `data: [DONE]` has been seen.
  bool done() const { return done_; }
  /// Whether anything is buffered that did not form a complete event.
  bool pending() const { return !buffer_.empty(); }
  /// Usage from the stream (a chunk with `usage`), else estimated from the content deltas.
  usage totals() const;

private:
  void event(std::string_view block, std::string& out);

  std::string buffer_;
  std::string why_;
  bool done_ = false;
  size_t prompt_chars_;
  size_t max_event_bytes_;
  size_t completion_chars_ = 0;
  std::optional<usage> reported_;
};

/// An SSE event carrying an OpenAI-shaped error, sent when a stream fails after its first byte.
std::string sse_error_event(const std::string& type, const std::string& code, const std::string& message);

} // namespace troupe::http::openai
