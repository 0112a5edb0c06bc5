// HTTP/1.1 request framing (http/http1.hpp): what a request is, where it ends, and every framing that is refused
// rather than guessed (request smuggling and desync start where two parsers disagree).

#include "http/http1.hpp"

#include <gtest/gtest.h>

#include <string>

namespace troupe::http {
namespace {

/// Feeds a whole text to a parser whose routes all accept `limit` body bytes.
struct fixture {
  explicit fixture(uint64_t limit = 1024, http1_limits limits = {})
    : parser(limits, [this, limit](const request_head& head) {
        ++decisions;
        seen = head;
        body_decision d;
        d.max_body_bytes = limit;
        if (refuse_with)
          d.refuse = framing_error{*refuse_with, "refused"};
        return d;
      }) {}

  http1_parser::result feed(const std::string& text) { return parser.feed(text.data(), text.size()); }

  http1_parser parser;
  int decisions = 0;
  request_head seen;
  std::optional<int> refuse_with;
};

// A GET is complete at its blank line, with method, target, headers and keep-alive as sent.
TEST(Http1Parser, ReadsARequestHead) {
  fixture f;
  auto r = f.feed("GET /api/me?x=1 HTTP/1.1\r\nHost: a\r\nX-Request-Id:  abc \r\n\r\n");
  ASSERT_EQ(r.what, http1_parser::status::complete);
  auto head = f.parser.take_head();
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/api/me?x=1");
  EXPECT_EQ(head.version_minor, 1);
  EXPECT_TRUE(head.keep_alive);
  ASSERT_NE(head.header("x-request-id"), nullptr);
  EXPECT_EQ(*head.header("X-REQUEST-ID"), "abc");
  EXPECT_FALSE(head.has_body());
}

// HTTP/1.0 closes unless asked to keep alive; HTTP/1.1 keeps alive unless asked to close.
TEST(Http1Parser, KeepAliveFollowsTheVersion) {
  fixture a;
  ASSERT_EQ(a.feed("GET / HTTP/1.0\r\n\r\n").what, http1_parser::status::complete);
  EXPECT_FALSE(a.parser.take_head().keep_alive);
  fixture b;
  ASSERT_EQ(b.feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").what, http1_parser::status::complete);
  EXPECT_TRUE(b.parser.take_head().keep_alive);
  fixture c;
  ASSERT_EQ(c.feed("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").what, http1_parser::status::complete);
  EXPECT_FALSE(c.parser.take_head().keep_alive);
}

// Two pipelined requests: the parser stops after the first, and the second parses after next().
TEST(Http1Parser, StopsAfterEachRequestOfAPipeline) {
  fixture f;
  std::string first = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
  std::string second = "GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
  auto both = first + second;
  auto r = f.feed(both);
  ASSERT_EQ(r.what, http1_parser::status::complete);
  EXPECT_EQ(r.consumed, first.size());
  EXPECT_EQ(f.parser.take_body(), "hello");
  EXPECT_EQ(f.parser.take_head().target, "/a");
  f.parser.next();
  auto rest = both.substr(r.consumed);
  r = f.feed(rest);
  ASSERT_EQ(r.what, http1_parser::status::complete);
  EXPECT_EQ(r.consumed, rest.size());
  EXPECT_EQ(f.parser.take_head().target, "/b");
}

// A request fed one byte at a time parses the same as at once (heads and bodies arrive in any pieces).
TEST(Http1Parser, AcceptsAnySplitOfTheInput) {
  std::string text = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
                     "{\"a\":12345}";
  fixture f;
  size_t fed = 0;
  http1_parser::result r{http1_parser::status::need_more, 0};
  while (fed < text.size()) {
    r = f.parser.feed(text.data() + fed, 1);
    ASSERT_EQ(r.consumed, 1u);
    ++fed;
    if (r.what != http1_parser::status::need_more)
      break;
  }
  ASSERT_EQ(r.what, http1_parser::status::complete);
  EXPECT_EQ(fed, text.size());
  EXPECT_EQ(f.parser.take_body(), "{\"a\":12345}");
  EXPECT_EQ(f.decisions, 1);
}

// A chunked body arrives decoded.
TEST(Http1Parser, DecodesChunkedBodies) {
  fixture f;
  auto r = f.feed("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  ASSERT_EQ(r.what, http1_parser::status::complete);
  EXPECT_TRUE(f.seen.chunked);
  EXPECT_EQ(f.parser.take_body(), "hello world");
}

// A Content-Length over the route's limit is refused from the head alone: no body byte has to arrive.
TEST(Http1Parser, RefusesALargeBodyBeforeReadingIt) {
  fixture f{100};
  auto r = f.feed("PATCH /x HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n");
  ASSERT_EQ(r.what, http1_parser::status::failed);
  EXPECT_EQ(f.parser.error().status, 413);
  EXPECT_NE(f.parser.error().message.find("100 bytes"), std::string::npos);
}

// A chunked body is refused as soon as it grows past the limit.
TEST(Http1Parser, RefusesAChunkedBodyOverTheLimit) {
  fixture f{8};
  auto r = f.feed("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n");
  ASSERT_EQ(r.what, http1_parser::status::failed);
  EXPECT_EQ(f.parser.error().status, 413);
}

// Framing that two parsers could read differently is refused: a second Content-Length (even equal), a malformed
// one, Content-Length with Transfer-Encoding, a coding other than chunked.
TEST(Http1Parser, RefusesAmbiguousFraming) {
  struct sample {
    const char* text;
    int status;
  };
  const sample samples[] = {
    {"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
    {"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
    {"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5abc\r\n\r\nhello", 400},
    {"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
    {"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
    {"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
    {"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
    {"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
    {"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
    {"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello", 400},
    {"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400},
    {"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\n\r\n", 400},                        // no Host
    {"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},  // two Hosts
    {"GET /x HTTP/2.0\r\nHost: a\r\n\r\n", 505},
    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417},
    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400}, // a TLS hello
    {"GET /x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400},
  };
  for (const auto& s : samples) {
    fixture f;
    auto r = f.feed(s.text);
    EXPECT_EQ(r.what, http1_parser::status::failed) << s.text;
    EXPECT_EQ(f.parser.error().status, s.status) << s.text << ": " << f.parser.error().message;
    // Once failed, nothing more is parsed.
    EXPECT_EQ(f.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n").what, http1_parser::status::failed);
  }
  // A NUL in a header value.
  fixture f;
  using namespace std::string_literals;
  EXPECT_EQ(f.feed("GET /x HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s).what, http1_parser::status::failed);
  EXPECT_EQ(f.parser.error().status, 400);
}

// Heads over their limits: a long target (414), a large head (431, also when it arrives in small pieces),
// too many header fields (431).
TEST(Http1Parser, BoundsTheHead) {
  http1_limits limits;
  limits.max_request_line = 100;
  limits.max_header_bytes = 1000;
  limits.max_headers = 10;
  {
    fixture f{1024, limits};
    EXPECT_EQ(f.feed("GET /" + std::string(200, 'a') + " HTTP/1.1\r\n").what, http1_parser::status::failed);
    EXPECT_EQ(f.parser.error().status, 414);
  }
  {
    fixture f{1024, limits};
    f.feed("GET / HTTP/1.1\r\nHost: a\r\n");
    http1_parser::result r{http1_parser::status::need_more, 0};
    for (int i = 0; i < 100 && r.what == http1_parser::status::need_more; ++i)
      r = f.feed("X-Long: " + std::string(50, 'v'));
    EXPECT_EQ(r.what, http1_parser::status::failed);
    EXPECT_EQ(f.parser.error().status, 431);
  }
  {
    fixture f{1024, limits};
    std::string text = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 11; ++i)
      text += "X-" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(f.feed(text + "\r\n").what, http1_parser::status::failed);
    EXPECT_EQ(f.parser.error().status, 431);
  }
  {
    // Blank lines before a request are tolerated (RFC 9112 2.2) but count for nothing.
    fixture f{1024, limits};
    EXPECT_EQ(f.feed("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").what, http1_parser::status::complete);
  }
}

// The owner's refusal of a head ends the parse with its status; Expect: 100-continue is reported.
TEST(Http1Parser, TheOwnerDecidesFromTheHead) {
  fixture f;
  f.refuse_with = 503;
  auto r = f.feed("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_EQ(r.what, http1_parser::status::failed);
  EXPECT_EQ(f.parser.error().status, 503);
  EXPECT_TRUE(f.seen.expect_continue);
  EXPECT_EQ(f.seen.content_length.value_or(0), 3u);
}

// Where the connection is: before a request, inside its head, inside its body.
TEST(Http1Parser, ReportsWhereItIs) {
  fixture f;
  EXPECT_FALSE(f.parser.in_message());
  f.feed("POST /x HT");
  EXPECT_TRUE(f.parser.in_message());
  EXPECT_FALSE(f.parser.reading_body());
  f.feed("TP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab");
  EXPECT_TRUE(f.parser.reading_body());
  EXPECT_FALSE(f.parser.at_message_boundary());
  EXPECT_EQ(f.feed("cd").what, http1_parser::status::complete);
  f.parser.next();
  EXPECT_TRUE(f.parser.at_message_boundary());
}

TEST(Http1Parser, NamesReasonPhrases) {
  EXPECT_STREQ(reason_phrase(200), "OK");
  EXPECT_STREQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_STREQ(reason_phrase(599), "Unknown");
}

} // namespace
} // namespace troupe::http
