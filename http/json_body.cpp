#include "http/json_body.hpp"

#include "http/error_mapping.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <strings.h>

#include <ctime>

namespace troupe::http {

std::optional<rapidjson::Document> parse_json_body(const std::shared_ptr<responder>& r) {
  const auto& req = r->req();
  auto content_type = req.header("Content-Type").value_or("");
  constexpr const char* json_type = "application/json";
  if (::strncasecmp(content_type.c_str(), json_type, std::char_traits<char>::length(json_type)) != 0) {
    r->send(error_response(service_error::unsupported_media_type,
                           "The body must be JSON, sent with Content-Type: application/json.", req.id));
    return std::nullopt;
  }
  rapidjson::Document doc;
  doc.Parse(req.body.data(), req.body.size());
  if (doc.HasParseError()) {
    r->send(error_response(service_error::invalid_json,
                           std::string{"The body is not valid JSON: "}
                             + rapidjson::GetParseError_En(doc.GetParseError()) + " (at byte "
                             + std::to_string(doc.GetErrorOffset()) + ").",
                           req.id));
    return std::nullopt;
  }
  return doc;
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
