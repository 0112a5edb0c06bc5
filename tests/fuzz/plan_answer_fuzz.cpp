// Fuzz target: the plan protocol (http/plans.hpp). The input is used three ways: as a model's answer
// (check_plan_answer), as a chat completion body (completion_of), and as a user's prompt (plan_search_query,
// plan_request, retry_request).
//
// Invariants:
//   - an accepted answer has a title and an overview, and its sections, put back into a plan with them, are
//     accepted again (what is stored is exactly what was checked); a refused one says why;
//   - a search query has at most 16 words of at least 3 characters, joined by " or ";
//   - the requests a prompt becomes are chat requests the gateway accepts (chat_validator), the retry with
//     two more messages, both at temperature 0 (so they can be served from the cache).

#include "tests/fuzz/fuzz_check.hpp"

#include "config/json.hpp"
#include "ai/openai.hpp"
#include "http/plans.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>

namespace {

using namespace troupe;
using fuzz::check;

std::string json_string(const std::string& text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w{buffer};
  w.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
  return {buffer.GetString(), buffer.GetSize()};
}

void as_answer(const std::string& text) {
  std::string problem;
  auto plan = http::check_plan_answer(text, problem);
  if (!plan) {
    check(!problem.empty(), "a refused answer says why");
    return;
  }
  check(!plan->title.empty() && !plan->overview.empty(), "an accepted plan has a title and an overview");
  check(plan->section_count >= 1 && plan->section_count <= 20, "an accepted plan has 1 to 20 sections");
  auto again = "{\"title\":" + json_string(plan->title) + ",\"overview\":" + json_string(plan->overview)
               + ",\"sections\":" + plan->sections + "}";
  std::string problem_again;
  auto back = http::check_plan_answer(again, problem_again);
  check(back.has_value(), "an accepted plan is accepted again as stored");
  check(back && back->sections == plan->sections, "the stored sections read back the same");
}

void as_completion(const std::string& text) {
  auto parts = http::completion_of(text);
  if (parts)
    check(openai::valid_utf8(parts->content), "the content read is UTF-8 (json::parse refuses anything else)");
}

void as_prompt(const std::string& text) {
  auto query = http::plan_search_query(text);
  size_t words = query.empty() ? 0 : 1;
  for (size_t at = query.find(" or "); at != std::string::npos; at = query.find(" or ", at + 4))
    ++words;
  check(words <= 16, "a search query has at most 16 words");
  if (text.empty() || !openai::valid_utf8(text) || text.find('\0') != std::string::npos)
    return; // the route refuses such prompts before a job exists
  http::plan_prompt p;
  p.model = "mock-1";
  p.prompt = text;
  for (const auto& body : {http::plan_request(p), http::retry_request(p, text, "x")}) {
    auto parsed = json::parse(body);
    check(parsed.ok(), "a plan request is JSON");
    static const openai::chat_validator chat{64};
    openai::chat_request req;
    auto refused = chat.validate(parsed.document(), req);
    check(!refused, "a plan request is one the gateway accepts");
    check(req.temperature && *req.temperature == 0, "a plan request asks for temperature 0");
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  std::string text{fuzz::text_of(data, size)};
  as_answer(text);
  as_completion(text);
  as_prompt(text);
  return 0;
}
