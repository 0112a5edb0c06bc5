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

} // namespace troupe::http
