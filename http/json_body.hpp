#pragma once
// Reading a JSON request body: the one place that answers 415 for a non-JSON Content-Type and 400 invalid_json
// (with RapidJSON's reason and byte offset) for a malformed body.

#include "http/server.hpp"

#include <rapidjson/document.h>

#include <memory>
#include <optional>
#include <string>

namespace troupe::http {

/// Parses the body of `r`'s request. On failure the responder has been answered and nullopt is returned.
std::optional<rapidjson::Document> parse_json_body(const std::shared_ptr<responder>& r);

/// Serialises a JSON value compactly.
std::string to_json(const rapidjson::Value& value);

/// A time for JSON bodies: RFC 3339 in UTC with milliseconds, "2026-11-21T10:00:00.123Z".
std::string rfc3339_from_ms(int64_t unix_ms);

} // namespace troupe::http
