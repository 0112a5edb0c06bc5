// Fuzz target: Anthropic's Messages API both ways (ai/anthropic.hpp). The input is used as a client's Messages
// request, as an OpenAI answer and an Anthropic answer, and as an Anthropic upstream's event stream (whole and cut
// into chunks whose sizes come from the input's own bytes).
//
// Invariants:
//   - a translated request that passes OpenAI validation translates on to an Anthropic request that is JSON, or is
//     refused with a reason;
//   - every answer written is JSON; an Anthropic answer accepted becomes an OpenAI answer check_completion accepts;
//   - a stream's translation does not depend on how it was cut, and what it writes is a valid OpenAI stream for
//     sse_relay; those events, translated back for an Anthropic client, are events whose data is JSON.

#include "tests/fuzz/fuzz_check.hpp"

#include "config/json.hpp"
#include "ai/anthropic.hpp"

#include <string>

namespace {

using namespace troupe;
using fuzz::check;
namespace an = anthropic;
namespace oa = openai;

void events_are_json(const std::string& sse, const char* what) {
  for (size_t at = sse.find("data: "); at != std::string::npos; at = sse.find("data: ", at + 1)) {
    if (at > 0 && sse[at - 1] != '\n')
      continue; // inside a line (a JSON string holding "data: "), not a field
    auto end = sse.find('\n', at);
    auto data = sse.substr(at + 6, end - at - 6);
    check(data == "[DONE]" || json::parse(data).ok(), what);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* bytes, size_t size) {
  const auto text = fuzz::text_of(bytes, size);

  if (auto parsed = json::parse(text)) {
    rapidjson::Document chat;
    if (!an::to_openai_request(parsed.document(), chat)) {
      static const oa::chat_validator validator{64};
      oa::chat_request req;
      if (!validator.validate(chat, req)) {
        std::string why;
        auto body = an::from_openai_request(req.body, 100, why);
        check(body ? json::parse(*body).ok() : !why.empty(), "a validated request translates to JSON or says why");
      }
    }
  }

  check(json::parse(an::to_anthropic_answer(text)).ok(), "an Anthropic message is JSON");
  std::string why;
  if (auto answer = an::from_anthropic_answer(text, 0, why)) {
    std::string usage_why;
    check(oa::check_completion(*answer, 0, usage_why).has_value(), "a translated answer is an OpenAI answer");
  } else {
    check(!why.empty(), "a refused answer says why");
  }

  an::stream_from_anthropic whole{0};
  auto whole_out = whole.feed(text);
  an::stream_from_anthropic chunked{0};
  std::string chunked_out;
  for (size_t pos = 0, i = 0; pos < size; ++i) {
    size_t n = 1 + static_cast<unsigned char>(text[i % size]) % 23;
    chunked_out += chunked.feed(text.substr(pos, n));
    pos += n;
  }
  check(whole.failed() == chunked.failed(), "cutting does not change whether the stream fails");
  check(whole_out == chunked_out, "cutting does not change the translation");
  oa::sse_relay relay{0};
  auto relayed = relay.feed(whole_out);
  check(!relay.failed(), "the translation is a valid OpenAI stream");
  an::stream_to_anthropic back{1};
  events_are_json(back.feed(relayed), "events for an Anthropic client carry JSON");
  // Error messages are Troupe's own sentences, or JSON strings from an upstream: valid UTF-8.
  if (oa::valid_utf8(text))
    events_are_json(an::stream_to_anthropic::error_event("api_error", text), "an error event is JSON");
  return 0;
}
