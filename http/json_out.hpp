#pragma once
// Writing JSON bodies with RapidJSON's Writer: the small helpers every route file needs.

#include "config/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>
#include <string_view>

namespace troupe::http {

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

/// "key": "value" (the value may hold any bytes RapidJSON escapes, NULs included).
inline void write_string(json_writer& w, const char* key, std::string_view value) {
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

/// "key": "value", or "key": null when the value is empty.
inline void write_string_or_null(json_writer& w, const char* key, std::string_view value) {
  w.Key(key);
  if (value.empty())
    w.Null();
  else
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

/// "key": a JSON document the server stored itself (a job's result, a plan's sections), parsed again with the depth
/// limit before the writer walks it; an empty array or object (as `array` says) if it is not one.
inline void write_stored_json(json_writer& w, const char* key, const std::string& text, bool array) {
  w.Key(key);
  auto parsed = json::parse(text);
  if (parsed && (array ? parsed->IsArray() : parsed->IsObject())) {
    parsed->Accept(w);
  } else if (array) {
    w.StartArray();
    w.EndArray();
  } else {
    w.StartObject();
    w.EndObject();
  }
}

/// The JSON text `write(json_writer&)` writes.
template <class Write>
std::string json_of(Write write) {
  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  write(w);
  return {buffer.GetString(), buffer.GetSize()};
}

} // namespace troupe::http
