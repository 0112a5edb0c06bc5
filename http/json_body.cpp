#include "http/json_body.hpp"

#include "http/error_mapping.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <strings.h>

#include <atomic>
#include <charconv>
#include <ctime>

namespace troupe::http {

namespace {

std::atomic<size_t> body_depth{json::default_max_depth};

} // namespace

void set_max_body_depth(size_t depth) {
  body_depth.store(depth, std::memory_order_relaxed);
}

size_t max_body_depth() {
  return body_depth.load(std::memory_order_relaxed);
}

response json_body_error(const json::parse_error& error, const std::string& request_id) {
  const std::string at = std::to_string(error.offset);
  switch (error.code) {
  case json::parse_errc::too_deep:
    return error_response(service_error::json_too_deep,
                          "The body is refused at byte " + at + ": " + error.reason + " (http.max_json_depth).",
                          request_id, error.param);
  case json::parse_errc::duplicate_key:
    return error_response(service_error::duplicate_key, "The body is refused at byte " + at + ": " + error.reason + ".",
                          request_id, error.param);
  case json::parse_errc::invalid_utf8:
    return error_response(service_error::invalid_json,
                          "The body is not valid UTF-8: " + error.reason + " (at byte " + at + ").", request_id,
                          error.param);
  case json::parse_errc::syntax:
    break;
  }
  return error_response(service_error::invalid_json,
                        "The body is not valid JSON: " + error.reason + " (at byte " + at + ").", request_id);
}

std::optional<rapidjson::Document> parse_json_body(const std::shared_ptr<responder>& r) {
  const auto& req = r->req();
  auto content_type = req.header("Content-Type").value_or("");
  constexpr const char* json_type = "application/json";
  if (::strncasecmp(content_type.c_str(), json_type, std::char_traits<char>::length(json_type)) != 0) {
    r->send(error_response(service_error::unsupported_media_type,
                           "The body must be JSON, sent with Content-Type: application/json.", req.id));
    return std::nullopt;
  }
  auto parsed = json::parse(req.body, max_body_depth());
  if (!parsed) {
    r->send(json_body_error(parsed.error(), req.id));
    return std::nullopt;
  }
  return std::move(parsed.document());
}

std::optional<rapidjson::Document> validated_json_body(const std::shared_ptr<responder>& r, const json_schema& schema) {
  auto doc = parse_json_body(r);
  if (!doc)
    return std::nullopt;
  if (auto bad = schema.validate(*doc)) {
    r->send(error_response(service_error::invalid_input, bad->message, r->req().id, bad->param));
    return std::nullopt;
  }
  return doc;
}

std::string string_member(const rapidjson::Value& object, const char* name) {
  auto m = object.FindMember(name);
  return m == object.MemberEnd() || !m->value.IsString()
           ? std::string{}
           : std::string{m->value.GetString(), m->value.GetStringLength()};
}

std::optional<int32_t> int_query_param(const std::shared_ptr<responder>& r, const char* name, int32_t fallback,
                                       int32_t min, int32_t max) {
  auto raw = r->req().query_param(name);
  if (!raw)
    return fallback;
  int32_t value = 0;
  auto [end, ec] = std::from_chars(raw->data(), raw->data() + raw->size(), value);
  if (ec != std::errc{} || end != raw->data() + raw->size() || value < min || value > max) {
    r->send(error_response(service_error::invalid_input,
                           std::string{name} + " must be an integer from " + std::to_string(min) + " to "
                             + std::to_string(max) + ".",
                           r->req().id, name));
    return std::nullopt;
  }
  return value;
}

std::string to_json(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer{buffer};
  value.Accept(writer);
  return {buffer.GetString(), buffer.GetSize()};
}

std::string rfc3339_from_ms(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(unix_ms % 1000));
  return buf;
}

} // namespace troupe::http
