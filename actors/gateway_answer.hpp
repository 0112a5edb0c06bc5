#pragma once
// What the gateway caches and shares between identical calls: who answered (the upstream's configured name) and
// the OpenAI-shaped answer's body, as one typed value. The cache keeps strings: an answer is encoded by CAF's binary
// serializer behind a format tag, so no separator can be confused with the answer's bytes, and a damaged or foreign
// value decodes as an error (the gateway takes it for a miss), never as a wrong answer.

#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>

#include <string>
#include <string_view>

namespace troupe {

struct gateway_answer {
  std::string upstream;
  std::string body;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gateway_answer& x) {
  return f(caf::meta::type_name("gateway_answer"), x.upstream, x.body);
}

inline bool operator==(const gateway_answer& a, const gateway_answer& b) {
  return a.upstream == b.upstream && a.body == b.body;
}

/// The format encode() writes. It is part of every key an answer is kept under (gateway_calls: "a1:gw:<user>:..."),
/// so nodes that write another format (during a rolling upgrade) never read each other's entries: they miss instead.
inline constexpr const char* gateway_answer_format = "a1";

/// The cache's string value of an answer.
std::string encode(const gateway_answer& answer);

/// The answer a cache value holds; an error for anything encode() did not write whole (a truncated, damaged or
/// foreign value).
caf::expected<gateway_answer> decode_gateway_answer(std::string_view value);

} // namespace troupe
