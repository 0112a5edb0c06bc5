#pragma once
// The OpenAI chat-completions protocol as the gateway needs it, as pure functions (no actors, no I/O):
// validating a client's request, the cache key of a deterministic request, checking an upstream's answer, and
// relaying an upstream's Server-Sent Events stream event by event.

#include "config/json.hpp"
#include "config/json_schema.hpp"

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::openai {

/// A client's chat completion request, validated.
struct chat_request {
  std::string model;
  bool stream = false;
  std::optional<double> temperature;
  /// A stream whose client asked for usage (stream_options.include_usage): its final usage chunk is relayed. The
  /// upstream is asked for usage in every stream either way (see `body`).
  bool include_usage = false;
  /// What is forwarded upstream: the canonical form of the validated request (see canonical form below), never the
  /// client's bytes.
  std::string body;
  /// Lower-case hex SHA-256 of the deciding part of the canonical form (the cache key without its tenant).
  std::string deciding_hash;
  size_t prompt_chars = 0; // text in the messages, for estimating tokens when an upstream reports none
  int64_t max_output_tokens = 0; // max_completion_tokens, else max_tokens; 0 when neither is set
  int64_t choices = 1;           // n
};

/// A validation failure: a sentence and the JSON path of the offending field ("messages[2].role").
struct request_error {
  std::string message;
  std::string param;
};

/// What the image parts of one request may carry (gateway.max_images, gateway.max_image_bytes,
/// gateway.max_image_request_bytes).
struct image_limits {
  size_t max_images = 32;
  size_t max_image_bytes = 20u << 20;         // decoded bytes of one inline (data: URL) image
  size_t max_request_image_bytes = 50u << 20; // decoded bytes of all inline images of the request
};

/// Validates parsed request bodies (from json::parse: no duplicate keys, bounded depth) against the JSON Schema of
/// OpenAI's chat-completion fields (chat_schema), each with its type and range: model (1-128 chars) and messages
/// (1..max_messages objects with a known role; content a string, null or an array of typed parts; name,
/// tool_calls, tool_call_id, function_call, refusal, audio), then temperature (0-2), top_p (0-1), max_tokens and
/// max_completion_tokens (>= 1), n (1-8), stop, presence_penalty and frequency_penalty (-2..2), seed, logit_bias,
/// logprobs, top_logprobs (0-20), tools, tool_choice, parallel_tool_calls, response_format, functions,
/// function_call, reasoning_effort, verbosity, modalities, audio, prediction, web_search_options, stream,
/// stream_options, user, metadata, store, service_tier. Any other field, at the top or in a message, is refused.
///
/// Image parts ({"type": "image_url", "image_url": {"url", "detail"?}}) are checked against `images`: at most
/// max_images of them; a URL is http(s) (at most 8 KiB; the upstream fetches it) or a base64 data URL of
/// image/png, image/jpeg, image/gif or image/webp whose decoded bytes start as that type does (magic bytes), each
/// at most max_image_bytes and all of them together at most max_request_image_bytes; `detail` is auto, low or high.
///
/// On success fills `out`, including its canonical form: the allowed fields that are present and not null, in the
/// order listed above (each message's fields in the order listed), deeper values as parsed, written compactly.
/// The fields up to and including web_search_options decide the answer; their canonical form, as one object, is
/// what deciding_hash hashes, and `body` is that same text continued with the other fields (stream, stream_options,
/// user, metadata, store, service_tier). In a stream's body, stream_options always has include_usage true (after the
/// client's other stream options), so the upstream reports the tokens it counted; `include_usage` says whether the
/// client asked, i.e. whether its usage chunk is relayed (sse_relay).
/// The JSON Schema (draft 4) of a chat request, as POST /v1/chat/completions takes it (and the chat request a
/// /v1/messages or /api/generate call stands for): OpenAI's fields, each with its type and range; null stands for an
/// absent optional field. `max_messages` is gateway.max_messages.
std::string chat_schema(size_t max_messages);

class chat_validator {
public:
  /// Compiles the schema with `max_messages` (gateway.max_messages). Built once; validate() is thread-safe.
  explicit chat_validator(size_t max_messages, image_limits images = {});

  std::optional<request_error> validate(const rapidjson::Document& doc, chat_request& out) const;

private:
  json_schema schema_;
  image_limits images_;
};

/// One validation with a validator made for it (tests, fuzzing; the gateway keeps its chat_validator).
std::optional<request_error> validate_chat_request(const rapidjson::Document& doc, size_t max_messages,
                                                   chat_request& out, const image_limits& images = {});

/// The cache key of a validated request for a tenant: "gw:<tenant>:<deciding_hash>". Whitespace, key order,
/// escapes and fields such as `user` or `stream_options` do not change it.
std::string cache_key(const chat_request& request, const std::string& tenant);

/// Token usage of one completion.
struct usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t total_tokens = 0;
  bool estimated = false;
};

/// Roughly four characters per token, at least one.
int64_t estimate_tokens(size_t chars);

/// Why an upstream's answer (or one of its events), called `what`, was refused by json::parse, as a clause: "the
/// upstream's answer is not valid UTF-8".
std::string refusal(const json::parse_error& e, const char* what);

/// Checks a non-streamed upstream answer: valid UTF-8 JSON object with a non-empty `choices` array. Returns its
/// usage (reported, or estimated from the answer's text and `prompt_chars`), or nullopt with `why` set.
std::optional<usage> check_completion(std::string_view body, size_t prompt_chars, std::string& why);

/// The text of choices[0].message.content of a (checked) completion, "" if absent.
std::string completion_text(std::string_view body);

/// Whether `text` is well-formed UTF-8.
bool valid_utf8(std::string_view text);

/// Relays an upstream SSE stream: feed() the bytes as they arrive; it returns the complete events, each checked
/// (UTF-8; every event's data is a JSON object or [DONE]) and re-framed with LF line ends, one "data: " line per
/// line of the data (comments and other fields kept), so that a client reads exactly the data that was checked.
/// Lines may end with CRLF, LF or CR, as the SSE grammar allows (a CR as the last byte fed waits for the next bytes,
/// which may hold its LF). The first bad event stops the relay (failed() with why()). Linear in the bytes fed,
/// however they are cut.
class sse_relay {
public:
  /// `relay_usage`: whether the usage chunk (a chunk with an empty `choices` and a `usage` object, sent when the
  /// request had stream_options.include_usage) goes to the client; its usage is read either way.
  explicit sse_relay(size_t prompt_chars, bool relay_usage = true, size_t max_event_bytes = 1 << 20);

  /// The complete, valid events in `data` (with what was buffered before), ready to send.
  std::string feed(std::string_view data);
  bool failed() const { return !why_.empty(); }
  const std::string& why() const { return why_; }
  /// Whether `data: [DONE]` has been seen.
  bool done() const { return done_; }
  /// Whether anything is buffered that did not form a complete event.
  bool pending() const { return !buffer_.empty() || !lines_.empty(); }
  /// Usage from the stream (a chunk with `usage`), else estimated from the content deltas.
  usage totals() const;
  /// Whether a valid data event (other than [DONE]) has been read: the upstream produced something.
  bool produced() const { return produced_; }
  /// Stops the relay for a reason found outside it (a translation of the upstream's stream failed).
  void fail(std::string why) {
    if (why_.empty())
      why_ = why.empty() ? "the upstream's stream failed" : std::move(why);
  }

private:
  /// Checks and re-frames the event made of lines_ (then cleared) into `out`.
  void event(std::string& out);

  std::string buffer_;             // bytes after the last complete line
  size_t scanned_ = 0;             // buffer_ holds no line end before this offset
  std::vector<std::string> lines_; // the lines of the event being read
  size_t event_bytes_ = 0;         // their size
  std::string why_;
  bool done_ = false;
  size_t prompt_chars_;
  size_t max_event_bytes_;
  bool relay_usage_;
  bool produced_ = false;
  size_t completion_chars_ = 0;
  std::optional<usage> reported_;
};

/// An SSE event carrying an OpenAI-shaped error, sent when a stream fails after its first byte.
std::string sse_error_event(const std::string& type, const std::string& code, const std::string& message);

} // namespace troupe::openai
