#pragma once
// POST /v1/embeddings, /embeddings: OpenAI's embeddings request ({model, input, encoding_format?, dimensions?,
// user?}; input a string, strings, token ids or arrays of token ids) answered with deterministic vectors. Input i's
// vector has `dimensions` components (default 8), each in [-1, 1), drawn from an FNV-1a hash of the input's JSON
// text and the component's index: the same input always gets the same vector, whatever else the batch holds.
// encoding_format "base64" sends each vector as base64 of its float32 little-endian bytes; "float" (the default) as
// numbers. Usage: prompt_tokens = the sum over the inputs of ceil(bytes / 4), at least 1 each (a token array: its
// length). Knobs apply as to chat (latency, status, error_rate, drip); of the malformed modes, hangup closes the
// connection and json sends half of the body.

#include "tools/mock-upstream/chat.hpp"
#include "tools/mock-upstream/control.hpp"
#include "tools/mock-upstream/plan.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::mock {

struct embeddings_request {
  std::string model;
  std::vector<std::string> inputs; // each input's JSON text
  uint64_t prompt_tokens = 0;
  bool base64 = false;
  int64_t dimensions = 8;
};

/// Parses and validates a request body; false with `error` filled when it is not a valid embeddings request.
bool parse_embeddings_request(std::string_view body, embeddings_request& out, request_error& error);

/// The float32 vector the mock gives an input (by its JSON text).
std::vector<float> mock_vector(std::string_view input, int64_t dimensions);

/// Appends the answer to `p` as `admitted` decided.
void plan_embeddings_answer(const embeddings_request& request, const admission& admitted,
                            const answer_context& context, plan& p);

} // namespace troupe::mock
