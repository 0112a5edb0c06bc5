#include "actors/gateway_answer.hpp"

#include "config/service_error.hpp"

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <vector>

namespace troupe {

namespace {

/// The first byte of every encoded answer: a value without it (an entry of an older format, or another writer's)
/// is not read as an answer.
constexpr char format_tag = 'A';

} // namespace

std::string encode(const gateway_answer& answer) {
  std::vector<char> buf;
  buf.reserve(1 + answer.upstream.size() + answer.body.size() + 16);
  buf.push_back(format_tag);
  caf::binary_serializer sink{nullptr, buf};
  auto copy = answer; // the inspector takes non-const references
  if (auto err = sink(copy))
    return {}; // cannot happen for two strings; an empty value decodes as damaged (a miss)
  return std::string(buf.begin(), buf.end());
}

caf::expected<gateway_answer> decode_gateway_answer(std::string_view value) {
  if (value.empty() || value.front() != format_tag)
    return make_error(service_error::internal, "A cached gateway answer has an unknown format.");
  caf::binary_deserializer source{nullptr, value.data() + 1, value.size() - 1};
  gateway_answer answer;
  if (auto err = source(answer))
    return make_error(service_error::internal, "A cached gateway answer is damaged.");
  if (source.remaining() != 0)
    return make_error(service_error::internal, "A cached gateway answer has bytes after its end.");
  return answer;
}

} // namespace troupe
