// Fuzz target: a chat completion request as the gateway reads it (http/gateway.cpp): json::parse, then
// the gateway's chat_validator (the JSON Schema, then the image parts), which writes the canonical body forwarded upstream and the hash behind the cache key.
//
// Invariants, for every accepted request:
//   - the forwarded body is JSON that json::parse accepts (so an upstream reads what Troupe validated);
//   - normalising is idempotent: the forwarded body, validated again, is accepted and gives the same body, model,
//     stream flag, temperature, prompt size and cache key (nothing outside the allow-list survives, nothing the
//     allow-list keeps changes meaning);
//   - the cache key is the tenant and the deciding hash.

#include "tests/fuzz/fuzz_check.hpp"

#include "config/json.hpp"
#include "ai/openai.hpp"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using namespace troupe;
  using fuzz::check;
  auto parsed = json::parse(fuzz::text_of(data, size), json::default_max_depth);
  if (!parsed)
    return 0;
  static const openai::chat_validator validator{1000};
  openai::chat_request first;
  if (auto err = validator.validate(*parsed, first)) {
    check(!err->message.empty(), "a refusal has a message");
    return 0;
  }
  check(first.deciding_hash.size() == 64, "the deciding hash is a SHA-256 in hex");
  check(openai::cache_key(first, "t") == "gw:t:" + first.deciding_hash, "the cache key is tenant and hash");

  auto forwarded = json::parse(first.body, json::default_max_depth);
  check(forwarded.ok(), "the forwarded body is JSON within the limits");
  openai::chat_request second;
  check(!validator.validate(*forwarded, second), "the forwarded body is a valid request");
  check(second.body == first.body, "normalising is idempotent");
  check(second.deciding_hash == first.deciding_hash, "the cache key survives normalising");
  check(second.model == first.model && second.stream == first.stream && second.temperature == first.temperature
          && second.prompt_chars == first.prompt_chars,
        "normalising keeps what the gateway reads");
  return 0;
}
