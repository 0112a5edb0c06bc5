#pragma once
// Reading a JSON request body: the one place that answers 415 for a non-JSON Content-Type and 400 for a body
// json::parse refuses (config/json.hpp): invalid_json (RapidJSON's reason, or invalid UTF-8, with the byte offset),
// json_too_deep (nested deeper than http.max_json_depth) and duplicate_key (an object with the same key twice),
// the last two with `param` naming where.

#include "config/json_schema.hpp"
#include "http/server.hpp"

#include "config/json.hpp"

#include <rapidjson/document.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace troupe::http {

/// The depth limit of request bodies (http.max_json_depth). Set once at start-up, before the server takes requests;
/// json::default_max_depth until then.
void set_max_body_depth(size_t depth);
size_t max_body_depth();

/// Parses the body of `r`'s request. On failure the responder has been answered and nullopt is returned.
std::optional<rapidjson::Document> parse_json_body(const std::shared_ptr<responder>& r);

/// parse_json_body, then `schema`'s validation (400 naming the field). On failure the responder has been answered.
std::optional<rapidjson::Document> validated_json_body(const std::shared_ptr<responder>& r, const json_schema& schema);

/// An integer query parameter within [min, max], `fallback` when absent; nullopt (answered 400 naming it) when
/// malformed or out of range.
std::optional<int32_t> int_query_param(const std::shared_ptr<responder>& r, const char* name, int32_t fallback,
                                       int32_t min, int32_t max);

/// A string member of a validated object ("" when absent: the schema said which members are strings).
std::string string_member(const rapidjson::Value& object, const char* name);

/// The 400 answer for a body json::parse refused (what parse_json_body sends).
response json_body_error(const json::parse_error& error, const std::string& request_id);

/// Serialises a JSON value compactly. Only for values that are bounded: built by the code, or parsed by json::parse.
std::string to_json(const rapidjson::Value& value);

/// A time for JSON bodies: RFC 3339 in UTC with milliseconds, "2026-11-21T10:00:00.123Z".
std::string rfc3339_from_ms(int64_t unix_ms);

} // namespace troupe::http
