// Fuzz target: a request body as the routes read it (http/json_body.cpp): json::parse with the default depth limit,
// then every route's JSON Schema (http/body_schemas.hpp) and the chat-completion validation (ai/openai.hpp).
//
// Invariants:
//   - a refused text is refused for a reason the offset points into, with a param only for depth and duplicates;
//   - differential: RapidJSON's own iterative parser (same UTF-8 check, no limits) agrees on every syntax and
//     encoding error (same code, same offset), and on every accepted text (same serialisation);
//   - an accepted document re-serialises to text that parses again to the same text (nothing lost or added);
//   - schema validation and chat validation of any accepted document terminate without a sanitizer finding.

#include "tests/fuzz/fuzz_check.hpp"

#include "config/json.hpp"
#include "http/body_schemas.hpp"
#include "config/json_schema.hpp"
#include "ai/openai.hpp"

#include <rapidjson/document.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace troupe;

std::string serialised(const rapidjson::Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w{buffer};
  v.Accept(w); // bounded: only documents within the depth limit get here
  return {buffer.GetString(), buffer.GetSize()};
}

/// Whether `ours` holds what `reference` (numbers as text) holds: same structure, keys, order and strings; each
/// number the correctly rounded value of its text (strtod), an integer staying an integer. Recursive: `ours` is
/// within the depth limit, and so is `reference` where it matches.
bool same(const rapidjson::Value& ours, const rapidjson::Value& reference) {
  if (ours.IsNumber()) {
    if (!reference.IsString())
      return false;
    const char* text = reference.GetString();
    if (ours.IsDouble())
      return std::strtod(text, nullptr) == ours.GetDouble(); // glibc strtod is correctly rounded
    return ours.IsInt64() ? std::strtoll(text, nullptr, 10) == ours.GetInt64()
                          : std::strtoull(text, nullptr, 10) == ours.GetUint64();
  }
  if (ours.GetType() != reference.GetType())
    return false;
  if (ours.IsString())
    return std::string_view{ours.GetString(), ours.GetStringLength()}
           == std::string_view{reference.GetString(), reference.GetStringLength()};
  if (ours.IsArray()) {
    if (ours.Size() != reference.Size())
      return false;
    for (rapidjson::SizeType i = 0; i < ours.Size(); ++i)
      if (!same(ours[i], reference[i]))
        return false;
    return true;
  }
  if (ours.IsObject()) {
    if (ours.MemberCount() != reference.MemberCount())
      return false;
    for (auto a = ours.MemberBegin(), b = reference.MemberBegin(); a != ours.MemberEnd(); ++a, ++b)
      if (!same(a->name, b->name) || !same(a->value, b->value))
        return false;
    return true;
  }
  return ours == reference; // null, true, false
}

/// How many bytes at the start of `text` RapidJSON 1.1's UTF-8 MemoryStream skips as a BOM: each of EF, BB and BF, in
/// that order, when present, whether or not the others are.
size_t bom_bytes_rapidjson_skips(std::string_view text) {
  size_t n = 0;
  for (unsigned char b : {0xEF, 0xBB, 0xBF})
    if (n < text.size() && static_cast<unsigned char>(text[n]) == b)
      ++n;
  return n;
}

/// Whether the first `n` bytes of `text` are well-formed UTF-8 (RapidJSON's own check, as an independent reference).
bool valid_utf8_prefix(std::string_view text, size_t n) {
  rapidjson::MemoryStream in{text.data(), n};
  rapidjson::StringBuffer sink;
  while (in.Tell() < n)
    if (!rapidjson::UTF8<>::Validate(in, sink))
      return false;
  return true;
}

const std::vector<std::unique_ptr<json_schema>>& route_schemas() {
  static const auto compiled = [] {
    std::vector<std::unique_ptr<json_schema>> all;
    for (const auto& [route, text] : http::schemas::all())
      all.push_back(std::make_unique<json_schema>(text));
    return all;
  }();
  return compiled;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using fuzz::check;
  const auto text = fuzz::text_of(data, size);
  auto parsed = json::parse(text, json::default_max_depth);

  // RapidJSON alone, iteratively (no recursion whatever the depth), with the same strictness but no limits; its
  // numbers as text, to be compared with a correctly rounded conversion.
  rapidjson::Document reference;
  reference.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag
                  | rapidjson::kParseNumbersAsStringsFlag>(text.data(), text.size());

  if (!parsed) {
    const auto& e = parsed.error();
    check(e.offset <= size, "the error offset lies within the text");
    check(!e.reason.empty(), "a refusal has a reason");
    switch (e.code) {
    case json::parse_errc::invalid_utf8:
      if (e.reason.find("surrogate") != std::string::npos) { // an escape RapidJSON 1.1 decodes into non-UTF-8
        check(text.find("\\u") != std::string_view::npos, "a lone surrogate comes from an escape");
        break;
      }
      // The whole text is checked before it is read, so the first bad byte is reported wherever it is, even after
      // a syntax error RapidJSON stops at (found by the json_body fuzzer: regression-number-too-big.bin).
      check(e.offset < size, "invalid UTF-8 is reported at a byte of the text");
      check(text.substr(0, e.offset).find('\0') == std::string_view::npos, "no NUL byte comes before it");
      check(valid_utf8_prefix(text, e.offset), "the bytes before the reported one are UTF-8");
      // RapidJSON 1.1 skips each byte of a BOM (EF, BB, BF) at the start on its own, unread, so it reads "\xEF99"
      // as 99 (regression-partial-bom.bin); json::parse refuses such a text for its first byte.
      check(reference.HasParseError() || e.offset < bom_bytes_rapidjson_skips(text),
            "RapidJSON refuses what is not UTF-8");
      if (reference.GetParseError() == rapidjson::kParseErrorStringInvalidEncoding)
        check(reference.GetErrorOffset() >= e.offset, "RapidJSON sees no bad UTF-8 before the first bad byte");
      break;
    case json::parse_errc::syntax:
      if (e.reason.rfind("a NUL byte", 0) == 0) { // RapidJSON takes a NUL for the end of the text
        check(e.offset < size && text.find('\0') == e.offset, "a NUL byte is reported at the first one");
        break;
      }
      if (e.reason == "Number too big to be stored in double") { // converted here; RapidJSON only saw its text
        check(e.offset < size && (text[e.offset] == '-' || (text[e.offset] >= '0' && text[e.offset] <= '9')),
              "a number too big is reported at its first byte");
        break;
      }
      check(e.param.empty(), "syntax and encoding errors RapidJSON sees name no param");
      check(reference.HasParseError(), "RapidJSON refuses what json::parse calls a syntax or encoding error");
      check(reference.GetErrorOffset() == e.offset, "RapidJSON and json::parse agree on the offset");
      check(reference.GetParseError() != rapidjson::kParseErrorStringInvalidEncoding,
            "what RapidJSON calls invalid UTF-8 json::parse does too");
      break;
    case json::parse_errc::duplicate_key:
      check(!e.param.empty() || e.reason.find("key \"\" appears") != std::string::npos, // "" at the top
            "a duplicate key is named");
      break;
    case json::parse_errc::too_deep:
      break;
    }
    return 0;
  }

  const auto once = serialised(*parsed);
  check(!reference.HasParseError(), "RapidJSON accepts what json::parse accepts");
  check(same(*parsed, reference), "RapidJSON and json::parse build the same document");
  auto again = json::parse(once, json::default_max_depth);
  check(again.ok(), "a serialised document parses again");
  check(serialised(*again) == once, "serialising is stable");

  for (const auto& schema : route_schemas())
    if (auto violation = schema->validate(*parsed))
      check(!violation->message.empty(), "a schema violation has a message");
  static const openai::chat_validator chat{1000};
  openai::chat_request request;
  if (auto err = chat.validate(*parsed, request))
    check(!err->message.empty(), "a refused chat request has a message");
  return 0;
}
