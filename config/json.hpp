#pragma once
// The one way Troupe reads JSON text it did not build itself: request bodies, upstream answers and their SSE
// events, bearer tokens' header and claims (http/jwt.cpp), the config file and TROUPE_UPSTREAMS, stored job results,
// the debug API's answers (`troupe inspect`) and the mock upstream's requests.
//
// RapidJSON's Document::Parse recurses once per nesting level (a megabyte of '[' overflows a thread's stack and
// kills the process) and keeps duplicate keys (FindMember returns the first; Python, JavaScript and Go parsers take
// the last, so two readers of the same bytes disagree). json::parse instead
//   - reads iteratively (constant stack, whatever the input),
//   - refuses arrays and objects nested deeper than `max_depth`,
//   - refuses an object holding the same key twice, at any level (keys compared after unescaping: "a" and
//     "\u0061" are the same key),
//   - refuses strings that are not UTF-8 (raw, or a lone surrogate escape RapidJSON 1.1 lets through),
//   - refuses a raw NUL byte anywhere (RapidJSON would take it for the end of the text and ignore what follows),
// and returns the failure as a value naming the byte offset and the JSON path of the offending key or container.
//
// Contract for the rest of the code: every rapidjson::Document made from outside bytes comes from here, so every
// recursive walk of one (Writer via Accept, the schema validator, canonical writers, conversions) is bounded by
// max_depth. Documents the code builds itself are bounded by construction. A CTest (tests/config/
// no_raw_json_parse.cmake) fails if any other source file calls Document::Parse.

#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::json {

/// Depth is the number of arrays and objects around a value: `1` has depth 0, `[]` depth 1, `{"a":[1]}` depth 2.
/// The default limit for request bodies (http.max_json_depth) and for everything else Troupe reads.
inline constexpr size_t default_max_depth = 64;

/// Longest `param` path reported; longer ones are cut (at a UTF-8 boundary) and end in "...".
inline constexpr size_t max_param_bytes = 512;

enum class parse_errc : uint8_t {
  syntax,        // not JSON: RapidJSON's reason (also a raw control character inside a string), or a NUL byte
  invalid_utf8,  // the text holds bytes that are not UTF-8, or a string escapes a lone surrogate (\uDC00-\uDFFF)
  too_deep,      // arrays and objects nest deeper than the limit
  duplicate_key, // an object has the same key twice
};

/// "syntax", "invalid_utf8", "too_deep", "duplicate_key".
const char* to_string(parse_errc code);

/// Why a text was refused.
struct parse_error {
  parse_errc code = parse_errc::syntax;
  /// What is wrong, as a clause without a final period: "Missing a comma or ']' after an array element",
  /// "arrays and objects nest deeper than 64 levels", "the key \"model\" appears twice in one object".
  std::string reason;
  /// Byte offset in the text where reading stopped: at the offending character for syntax and encoding errors, at
  /// the opening bracket of the container one level too deep, just after the closing quote of a repeated key or of
  /// a string that escapes a lone surrogate.
  size_t offset = 0;
  /// JSON path of the offending value, in the syntax of the error body's `param` ("messages[2].content",
  /// "[0].a"): the container one level too deep, the repeated key, the string with a lone surrogate. "" for other
  /// syntax and encoding errors (and for the whole document).
  std::string param;
};

/// A parsed document, or why there is none. Cheap to move.
class parse_result {
public:
  bool ok() const { return !error_; }
  explicit operator bool() const { return ok(); }

  /// The document; only meaningful when ok().
  rapidjson::Document& document() { return doc_; }
  const rapidjson::Document& document() const { return doc_; }
  rapidjson::Document& operator*() { return doc_; }
  const rapidjson::Document& operator*() const { return doc_; }
  rapidjson::Document* operator->() { return &doc_; }
  const rapidjson::Document* operator->() const { return &doc_; }

  /// The failure; only meaningful when !ok().
  const parse_error& error() const { return *error_; }

private:
  friend parse_result parse(std::string_view text, size_t max_depth);
  rapidjson::Document doc_;
  std::optional<parse_error> error_;
};

/// Parses `text` (UTF-8; a leading BOM is skipped). Never throws on bad input and never recurses per nesting level;
/// its memory is bounded by a small multiple of the text's size. `max_depth` 0 accepts a lone scalar only.
parse_result parse(std::string_view text, size_t max_depth = default_max_depth);

} // namespace troupe::json
