#pragma once
// Anthropic's Messages API as the gateway needs it, as pure functions (no actors, no I/O), in both directions:
//
//   inbound   a client speaks Anthropic (POST /v1/messages) to OpenAI-compatible upstreams: its request becomes the
//             OpenAI chat request it stands for (then validated like any other: openai.hpp), the answer becomes an
//             Anthropic message, and a stream's chat.completion.chunk events become Anthropic's events
//             (message_start, content_block_start/delta/stop, message_delta, message_stop);
//   outbound  an upstream of type "anthropic" serves OpenAI-shaped calls: the canonical OpenAI request becomes an
//             Anthropic request, its message an OpenAI chat.completion, its events chat.completion.chunk events.
//
// Translated: text, images (base64 or URL), system prompts, tools and tool choice, tool calls and their results,
// stop sequences, temperature, top_p, max_tokens, the user id, streaming, usage. What one side cannot express is
// refused with a sentence naming the field, never dropped: e.g. top_k or thinking inbound, n > 1, seed or
// response_format outbound.

#include "ai/openai.hpp"

#include <rapidjson/document.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::anthropic {

/// The anthropic-version header sent to upstreams of type anthropic.
inline constexpr const char* api_version = "2023-06-01";

// --- Inbound: an Anthropic client, OpenAI-compatible upstreams ---

/// Translates a parsed Messages request (from json::parse: no duplicate keys, bounded depth) into the OpenAI chat
/// request it stands for, in `out`. Checks Anthropic's own rules on the way: model and max_tokens required,
/// messages alternating from a user turn, content strings or blocks of a known type (text, image, tool_use in an
/// assistant turn, tool_result in a user turn), system a string or text blocks; any other field is refused
/// (`param` names it). `cache_control` on blocks is accepted and dropped (a caching hint).
std::optional<openai::request_error> to_openai_request(const rapidjson::Document& doc, rapidjson::Document& out);

/// An OpenAI chat.completion (checked by openai::check_completion) as an Anthropic message: {"id":"msg_...",
/// "type":"message","role":"assistant","model","content":[text and tool_use blocks],"stop_reason","stop_sequence":null,
/// "usage":{"input_tokens","output_tokens"}}.
std::string to_anthropic_answer(std::string_view openai_body);

/// Anthropic's error body, {"type":"error","error":{"type","message"}}, for an HTTP status and a message.
std::string error_body(int status, std::string_view message);

/// Turns the events sse_relay lets through (chat.completion.chunk data, the usage chunk, [DONE]) into Anthropic's
/// stream events. Text goes out as it comes, in one text block; tool calls are gathered (OpenAI may interleave the
/// argument pieces of parallel calls, and servers differ in how they number them) and sent when the message ends,
/// each as a tool_use block with its whole input in one input_json_delta. Every block is stopped before the next
/// starts. The usage chunk is read, never passed on; [DONE] closes the message.
class stream_to_anthropic {
public:
  /// `prompt_tokens`: the estimate message_start reports before the upstream's count arrives at the end.
  explicit stream_to_anthropic(int64_t prompt_tokens) : input_tokens_(prompt_tokens) {}

  /// The Anthropic events for complete relayed events `events` (LF-framed, as sse_relay::feed returns them).
  std::string feed(std::string_view events);
  /// An error event (event: error), closing the stream after a failure past its first byte.
  static std::string error_event(std::string_view type, std::string_view message);
  bool finished() const { return finished_; }

private:
  void chunk(const rapidjson::Value& chunk, std::string& out);
  void start(std::string& out);
  /// Starts content block number blocks_ (then counts it) with `block_json`; returns its index.
  int open(std::string& out, const std::string& block_json);
  void stop(std::string& out, int index);
  void finish(std::string& out);

  std::string id_;
  std::string model_;
  bool started_ = false;
  bool finished_ = false;
  int blocks_ = 0;      // content blocks started
  int text_block_ = -1; // the open text block, -1: none
  // The tool calls, in the order they began; `current_`: the call each OpenAI tool_calls index is writing (a new id
  // at a known index begins a new call).
  struct tool_call {
    std::string id;
    std::string name;
    std::string arguments;
  };
  std::vector<tool_call> calls_;
  std::map<int64_t, size_t> current_;
  std::string stop_reason_ = "end_turn";
  int64_t input_tokens_ = 0;
  int64_t output_tokens_ = 0;
};

// --- Outbound: OpenAI-shaped calls, an upstream of type anthropic ---

/// The Anthropic request for a canonical OpenAI request body (openai::chat_request::body). max_tokens, required by
/// Anthropic, is the request's max_completion_tokens or max_tokens, else `default_max_tokens`. nullopt with `why`
/// when the request uses what Anthropic cannot do (n > 1, seed, logit_bias, penalties, logprobs, response_format
/// other than text, audio, prediction, web search, a temperature above 1).
std::optional<std::string> from_openai_request(std::string_view openai_body, int64_t default_max_tokens,
                                               std::string& why);

/// An Anthropic message as an OpenAI chat.completion (created at `created`, unix seconds); nullopt with `why` when
/// the body is not an Anthropic message.
std::optional<std::string> from_anthropic_answer(std::string_view body, int64_t created, std::string& why);

/// Turns an Anthropic upstream's event stream into chat.completion.chunk events, ending with the usage chunk and
/// [DONE] after message_stop; an error event or an unknown shape fails it.
class stream_from_anthropic {
public:
  explicit stream_from_anthropic(int64_t created, size_t max_event_bytes = 1 << 20);

  /// The OpenAI events (SSE text) for the bytes `data`, with what was buffered before.
  std::string feed(std::string_view data);
  bool failed() const { return !why_.empty(); }
  const std::string& why() const { return why_; }

private:
  void event(const rapidjson::Value& e, std::string& out);
  std::string chunk(const std::string& delta_json, const char* finish_reason);

  openai::sse_relay framer_; // splits and checks the events (each data a JSON object)
  int64_t created_;
  std::string id_;
  std::string model_;
  std::string why_;
  bool done_ = false;
  int64_t input_tokens_ = 0;
  int64_t output_tokens_ = 0;
  std::vector<int> tool_of_block_; // content block index -> OpenAI tool_calls index (-1: not a tool_use block)
  int tools_ = 0;
};

} // namespace troupe::anthropic
