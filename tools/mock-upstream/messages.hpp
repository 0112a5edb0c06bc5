#pragma once
// POST /v1/messages, /messages: Anthropic's Messages API, so that gateway tests have an upstream of type anthropic.
// The request needs model, max_tokens and messages (content a string or blocks; the text blocks count), may have
// system and stream; [[mock ...]] directives in message text and the X-Mock header set knobs as for chat.
// The answer is an Anthropic message whose one text block is "mock reply: " followed by the last user message's text
// (at most 200 bytes, cut at a UTF-8 boundary), cut to 4 * max_tokens bytes (stop_reason "max_tokens", else
// "end_turn"); usage: input_tokens = ceil(bytes of all text / 4), output_tokens = ceil(content bytes / 4), each at
// least 1. With stream: message_start, content_block_start, `chunks` content_block_delta events (drip_ms apart),
// content_block_stop, message_delta (stop_reason, usage), message_stop. Errors (status, error_rate) have
// Anthropic's shape: {"type":"error","error":{"type","message"}}.

#include "tools/mock-upstream/chat.hpp"
#include "tools/mock-upstream/control.hpp"
#include "tools/mock-upstream/plan.hpp"

#include <string>
#include <string_view>

namespace troupe::mock {

/// Parses and validates a Messages request into the chat_request it stands for (model, stream, max_tokens, the last
/// user text, the prompt's bytes, directives); false with `error` filled when it is not one.
bool parse_messages_request(std::string_view body, chat_request& out, request_error& error);

/// Anthropic's error body for a status.
std::string anthropic_error_body(int status, std::string_view message);

/// Appends the answer to `p` as `admitted` decided.
void plan_messages_answer(const chat_request& request, const admission& admitted, const answer_context& context,
                          plan& p);

} // namespace troupe::mock
