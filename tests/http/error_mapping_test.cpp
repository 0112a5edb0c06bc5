// Tests of http/error_mapping.cpp: every service error maps to an error status and an OpenAI-shaped JSON body,
// Retry-After where a retry makes sense, and CAF's own errors map through troupe::service_code.

#include "http/error_mapping.hpp"

#include <caf/sec.hpp>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <map>
#include <set>
#include <string>

using namespace troupe;
using namespace troupe::http;

namespace {

constexpr auto last_code = static_cast<uint8_t>(last_service_error);

std::vector<service_error> every_error_code() {
  std::vector<service_error> result;
  for (uint8_t i = 1; i <= last_code; ++i)
    result.push_back(static_cast<service_error>(i));
  return result;
}

/// The value of header `name`, or "" if absent.
std::string header(const response& r, const std::string& name) {
  for (const auto& [key, value] : r.headers)
    if (key == name)
      return value;
  return {};
}

/// Parses the body and returns its "error" object (fails the test if the shape is wrong).
const rapidjson::Value& error_object(rapidjson::Document& doc, const response& r) {
  static const rapidjson::Value empty{rapidjson::kObjectType};
  doc.Parse(r.body.c_str(), r.body.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("error") || !doc["error"].IsObject()) {
    ADD_FAILURE() << "not an error body: " << r.body;
    return empty;
  }
  for (const char* key : {"type", "code", "message", "request_id"})
    EXPECT_TRUE(doc["error"].HasMember(key) && doc["error"][key].IsString()) << key << " in " << r.body;
  return doc["error"];
}

std::string member(const rapidjson::Value& obj, const char* key) {
  return obj.HasMember(key) && obj[key].IsString() ? obj[key].GetString() : "<missing>";
}

// Every code except none maps to a 4xx/5xx status, has its own name and a default message; the types follow
// OpenAI's (server_error exactly for 5xx).
TEST(ErrorMapping, EveryCodeHasAnErrorStatus) {
  EXPECT_EQ(status_of(service_error::none), 200);
  std::set<std::string> names;
  for (auto code : every_error_code()) {
    auto status = status_of(code);
    EXPECT_GE(status, 400) << to_string(code);
    EXPECT_LE(status, 599) << to_string(code);
    EXPECT_TRUE(names.insert(to_string(code)).second) << "duplicate name " << to_string(code);
    EXPECT_STRNE(default_message(code), "") << to_string(code);
    EXPECT_EQ(std::string{type_of(code)} == "server_error", status >= 500) << to_string(code);
  }
  EXPECT_EQ(names.size(), size_t{last_code});
}

// The statuses the API documents, code by code.
TEST(ErrorMapping, StatusesMatchTheirMeaning) {
  const std::map<service_error, int> expected{
    {service_error::invalid_input, 400},     {service_error::invalid_json, 400},
    {service_error::unauthenticated, 401},   {service_error::forbidden, 403},
    {service_error::not_found, 404},         {service_error::method_not_allowed, 405},
    {service_error::request_timeout, 408},   {service_error::conflict, 409},
    {service_error::payload_too_large, 413}, {service_error::unsupported_media_type, 415},
    {service_error::rate_limited, 429},      {service_error::internal, 500},
    {service_error::upstream_failed, 502},   {service_error::overloaded, 503},
    {service_error::shutting_down, 503},     {service_error::unavailable, 503},
    {service_error::timeout, 504},           {service_error::precondition_failed, 412},
    {service_error::locked, 423},            {service_error::checksum_mismatch, 460},
    {service_error::uri_too_long, 414},      {service_error::expectation_failed, 417},
    {service_error::headers_too_large, 431}, {service_error::not_implemented, 501},
    {service_error::version_not_supported, 505},
    {service_error::storage_quota_exceeded, 413},
    {service_error::json_too_deep, 400},     {service_error::duplicate_key, 400},
    {service_error::insufficient_quota, 402},
  };
  EXPECT_EQ(expected.size(), size_t{last_code});
  for (const auto& [code, status] : expected)
    EXPECT_EQ(status_of(code), status) << to_string(code);
  EXPECT_EQ(std::string{type_of(service_error::unauthenticated)}, "authentication_error");
  EXPECT_EQ(std::string{type_of(service_error::rate_limited)}, "rate_limit_error");
  EXPECT_EQ(std::string{type_of(service_error::invalid_input)}, "invalid_request_error");
  // OpenAI's shape for a spent budget: type and code insufficient_quota.
  EXPECT_EQ(std::string{type_of(service_error::insufficient_quota)}, "insufficient_quota");
  EXPECT_EQ(std::string{to_string(service_error::insufficient_quota)}, "insufficient_quota");
}

// Every body is valid JSON with type, code, message (the default when none is given) and request_id, and
// without param; the content type is JSON.
TEST(ErrorMapping, BodyIsJsonWithTypeCodeMessageAndRequestId) {
  for (auto code : every_error_code()) {
    auto r = error_response(code, "", "req-1");
    EXPECT_EQ(r.status, status_of(code));
    EXPECT_EQ(r.content_type, "application/json");
    rapidjson::Document doc;
    const auto& error = error_object(doc, r);
    EXPECT_EQ(member(error, "type"), type_of(code));
    EXPECT_EQ(member(error, "code"), to_string(code));
    EXPECT_EQ(member(error, "message"), default_message(code));
    EXPECT_EQ(member(error, "request_id"), "req-1");
    EXPECT_FALSE(error.HasMember("param")) << r.body;
  }
}

// param appears only when given; message, request_id and param survive quotes, backslashes and control
// characters.
TEST(ErrorMapping, ParamOnlyWhenGivenAndTextIsEscaped) {
  std::string message = "field \"model\" is\\bad\nline two\t\x01 caf\xc3\xa9";
  auto r = error_response(service_error::invalid_input, message, "id\"\\", "messages[0].content");
  EXPECT_EQ(r.status, 400);
  rapidjson::Document doc;
  const auto& error = error_object(doc, r);
  EXPECT_EQ(member(error, "message"), message);
  EXPECT_EQ(member(error, "request_id"), "id\"\\");
  EXPECT_EQ(member(error, "param"), "messages[0].content");
}

// Retry-After is set exactly for 429 and 503, the statuses where a later retry may succeed.
TEST(ErrorMapping, RetryAfterOnlyFor429And503) {
  for (auto code : every_error_code()) {
    auto r = error_response(code, "", "r");
    bool retryable = r.status == 429 || r.status == 503;
    auto retry_after = header(r, "Retry-After");
    if (retryable)
      EXPECT_GE(std::atoi(retry_after.c_str()), 1) << to_string(code) << ": '" << retry_after << "'";
    else
      EXPECT_EQ(retry_after, "") << to_string(code);
  }
}

// A CAF request timeout (an actor did not answer) becomes 504 timeout.
TEST(ErrorMapping, CafRequestTimeoutMapsTo504) {
  auto r = error_response(caf::make_error(caf::sec::request_timeout), "r7");
  EXPECT_EQ(r.status, 504);
  rapidjson::Document doc;
  const auto& error = error_object(doc, r);
  EXPECT_EQ(member(error, "code"), "timeout");
  EXPECT_EQ(member(error, "type"), "server_error");
  EXPECT_EQ(member(error, "request_id"), "r7");
}

// A service error keeps its code and sentence; any other CAF error is a 500 with the generic message (no
// internals leak to the client).
TEST(ErrorMapping, CafErrorsMapThroughServiceCode) {
  auto r = error_response(make_error(service_error::not_found, "No such repository."), "r1");
  EXPECT_EQ(r.status, 404);
  rapidjson::Document doc;
  EXPECT_EQ(member(error_object(doc, r), "message"), "No such repository.");

  auto bare = error_response(make_error(service_error::rate_limited), "r2");
  EXPECT_EQ(bare.status, 429);
  rapidjson::Document bare_doc;
  EXPECT_EQ(member(error_object(bare_doc, bare), "message"), default_message(service_error::rate_limited));

  auto other = error_response(caf::make_error(caf::sec::unexpected_message), "r3");
  EXPECT_EQ(other.status, 500);
  rapidjson::Document other_doc;
  const auto& error = error_object(other_doc, other);
  EXPECT_EQ(member(error, "code"), "internal");
  EXPECT_EQ(member(error, "message"), default_message(service_error::internal));
}

} // namespace
