// Tests of http/revalidation.cpp: strong ETags, If-None-Match matching (lists, *, weak comparison, malformed
// values) and the 304 rewrite of cacheable GET responses.

#include "http/revalidation.hpp"

#include <gtest/gtest.h>

using namespace troupe::http;

namespace {

std::string header_of(const response& res, const std::string& name) {
  for (const auto& [n, v] : res.headers)
    if (n == name)
      return v;
  return {};
}

request get_with(std::vector<std::pair<std::string, std::string>> headers, std::string method = "GET") {
  request req;
  req.method = std::move(method);
  req.headers = std::move(headers);
  return req;
}

response cacheable(std::string body) {
  auto res = json_response(200, std::move(body));
  return private_revalidated(res);
}

// The tag is the quoted hex SHA-256 of the body: equal bodies, equal tags; different bodies, different tags.
TEST(Revalidation, StrongEtagIsTheQuotedSha256OfTheBody) {
  EXPECT_EQ(strong_etag(""), "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"");
  EXPECT_EQ(strong_etag("{\"a\":1}"), strong_etag("{\"a\":1}"));
  EXPECT_NE(strong_etag("{\"a\":1}"), strong_etag("{\"a\":2}"));
}

// If-None-Match uses the weak comparison: W/ on either side is ignored; lists and * match; anything else does not.
TEST(Revalidation, IfNoneMatchUsesWeakComparison) {
  const std::string tag = "\"abc\"";
  EXPECT_TRUE(if_none_match_matches("\"abc\"", tag));
  EXPECT_TRUE(if_none_match_matches("W/\"abc\"", tag));
  EXPECT_TRUE(if_none_match_matches("\"abc\"", "W/\"abc\""));
  EXPECT_TRUE(if_none_match_matches("\"x\", \"abc\"", tag));
  EXPECT_TRUE(if_none_match_matches(" \"x\" ,W/\"y\",  \"abc\" ", tag));
  EXPECT_TRUE(if_none_match_matches("*", tag));
  EXPECT_TRUE(if_none_match_matches("\"with,comma\", \"abc\"", tag)) << "commas inside a tag are part of it";
  EXPECT_FALSE(if_none_match_matches("\"abcd\"", tag));
  EXPECT_FALSE(if_none_match_matches("abc", tag)) << "an unquoted tag is malformed";
  EXPECT_FALSE(if_none_match_matches("\"abc", tag));
  EXPECT_FALSE(if_none_match_matches("", tag));
  EXPECT_FALSE(if_none_match_matches("w/\"abc\"", tag)) << "the weak indicator is case-sensitive";
  EXPECT_FALSE(if_none_match_matches("\"x\", junk, \"abc\"", tag)) << "nothing after a malformed element";
}

// A cacheable 200 gets an ETag; a matching If-None-Match (in any of several fields, any name case) turns it into a
// 304 without body or content type that keeps ETag and Cache-Control.
TEST(Revalidation, MatchingRequestGets304WithoutBody) {
  auto res = cacheable("{\"user\":1}");
  apply_revalidation(get_with({}), res);
  EXPECT_EQ(res.status, 200);
  auto etag = header_of(res, "ETag");
  EXPECT_EQ(etag, strong_etag("{\"user\":1}"));

  auto again = cacheable("{\"user\":1}");
  apply_revalidation(get_with({{"If-None-Match", "\"other\""}, {"if-none-match", etag}}), again);
  EXPECT_EQ(again.status, 304);
  EXPECT_EQ(again.body, "");
  EXPECT_EQ(again.content_type, "");
  EXPECT_EQ(header_of(again, "ETag"), etag);
  EXPECT_EQ(header_of(again, "Cache-Control"), "private, no-cache");

  auto changed = cacheable("{\"user\":2}");
  apply_revalidation(get_with({{"If-None-Match", etag}}), changed);
  EXPECT_EQ(changed.status, 200);
  EXPECT_EQ(changed.body, "{\"user\":2}");
}

// Only opted-in 200 answers to GET or HEAD are touched.
TEST(Revalidation, LeavesOtherResponsesAlone) {
  auto plain = json_response(200, "{}");
  apply_revalidation(get_with({{"If-None-Match", "*"}}), plain);
  EXPECT_EQ(plain.status, 200);
  EXPECT_EQ(header_of(plain, "ETag"), "");

  auto error = cacheable("{}");
  error.status = 404;
  apply_revalidation(get_with({{"If-None-Match", "*"}}), error);
  EXPECT_EQ(error.status, 404);
  EXPECT_EQ(header_of(error, "ETag"), "");

  auto post = cacheable("{}");
  apply_revalidation(get_with({{"If-None-Match", "*"}}, "POST"), post);
  EXPECT_EQ(post.status, 200);
  EXPECT_EQ(header_of(post, "ETag"), "");

  auto head = cacheable("{}");
  apply_revalidation(get_with({{"If-None-Match", "*"}}, "HEAD"), head);
  EXPECT_EQ(head.status, 304);
}

} // namespace
