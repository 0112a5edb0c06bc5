// Unit tests of the mock upstream's parsers: knob lists, [[mock ...]] directives, request heads, chat requests,
// and bodies cut into byte ranges (what drip and truncation rely on).

#include "tools/mock-upstream/chat.hpp"
#include "tools/mock-upstream/http_request.hpp"
#include "tools/mock-upstream/knobs.hpp"
#include "tools/mock-upstream/plan.hpp"

#include <gtest/gtest.h>

namespace {

using namespace troupe::mock;

// Pairs may be separated by commas, semicolons or spaces; every knob is set from its text form.
TEST(MockKnobs, ParsesAListWithAnySeparator) {
  knob_overrides k;
  ASSERT_EQ(parse_knob_list("status=429, retry_after=3;drip_ms=5 malformed=no_choices error_rate=0.25", k), "");
  EXPECT_EQ(k.status, 429);
  EXPECT_EQ(k.retry_after, 3);
  EXPECT_EQ(k.drip_ms, 5);
  EXPECT_EQ(k.malformed, malformed_mode::no_choices);
  EXPECT_EQ(k.error_rate, 0.25);
  EXPECT_FALSE(k.latency_ms.has_value());
}

// Unknown names, values out of range and `count` outside /mock/config are refused, and nothing is set.
TEST(MockKnobs, RefusesUnknownNamesAndBadValues) {
  for (const char* text : {"colour=1", "status=302", "status=600", "error_rate=1.5", "error_rate=x", "chunks=0",
                           "latency_ms=-1", "huge_bytes=99999999999", "count=1", "status", "=5"}) {
    knob_overrides k;
    k.latency_ms = 7;
    EXPECT_NE(parse_knob_list(std::string{"drip_ms=1 "} + text, k), "") << text;
    EXPECT_FALSE(k.drip_ms.has_value()) << "a refused list sets nothing: " << text;
    EXPECT_EQ(k.latency_ms, 7);
  }
}

// Later sources win knob by knob; apply_to leaves unnamed knobs alone.
TEST(MockKnobs, LaterSourcesWin) {
  knob_overrides header, directive;
  ASSERT_EQ(parse_knob_list("status=429,latency_ms=10", header), "");
  ASSERT_EQ(parse_knob_list("status=500", directive), "");
  header.merge(directive);
  knobs resolved;
  resolved.chunks = 3;
  header.apply_to(resolved);
  EXPECT_EQ(resolved.status, 500);
  EXPECT_EQ(resolved.latency_ms, 10);
  EXPECT_EQ(resolved.chunks, 3);
}

// Directives are found anywhere in text, in order; look-alikes are ignored and an unterminated one is an error.
TEST(MockDirectives, FindsDirectivesInText) {
  knob_overrides k;
  ASSERT_EQ(scan_directives("a [[mocking]] b [[mock status=500]] c [[mock status=503 retry_after=1]]", k), "");
  EXPECT_EQ(k.status, 503);
  EXPECT_EQ(k.retry_after, 1);
  knob_overrides none;
  EXPECT_EQ(scan_directives("no directive [[mock]] here", none), "");
  EXPECT_FALSE(none.status.has_value());
  EXPECT_NE(scan_directives("[[mock status=500", none), "");
}

/// Parses a head that must be complete; the views in the result point into `text` (a literal here).
request_head parse_ok(std::string_view text) {
  request_head head;
  std::string error;
  EXPECT_EQ(parse_request_head(text, 65536, head, error), head_parse::complete) << text << error;
  return head;
}

// Keep-alive is HTTP/1.1's default and HTTP/1.0's exception; the query string is not part of the path.
TEST(MockRequestHead, AppliesKeepAliveRules) {
  EXPECT_TRUE(parse_ok("GET /v1/models?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
  EXPECT_EQ(parse_ok("GET /v1/models?x=1 HTTP/1.1\r\n\r\n").path, "/v1/models");
  EXPECT_FALSE(parse_ok("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
  EXPECT_FALSE(parse_ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
  EXPECT_TRUE(parse_ok("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").keep_alive);
}

// The headers the mock acts on are read case-insensitively.
TEST(MockRequestHead, ReadsTheHeadersItUses) {
  auto head = parse_ok("POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 12\r\nEXPECT: 100-continue\r\n"
                       "Authorization: Bearer k\r\nX-Mock:  status=500 \r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.content_length, 12u);
  EXPECT_TRUE(head.expect_continue);
  EXPECT_EQ(head.authorization, "Bearer k");
  EXPECT_EQ(head.x_mock, "status=500");
  EXPECT_TRUE(head.has_transfer_encoding);
}

// Incomplete heads wait, oversized ones and malformed ones are refused.
TEST(MockRequestHead, RefusesBadAndOversizedHeads) {
  request_head head;
  std::string error;
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nHost: a\r\n", 65536, head, error), head_parse::incomplete);
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nX: " + std::string(100, 'a'), 64, head, error),
            head_parse::too_large);
  for (const char* bad : {"GET / HTTP/2.0\r\n\r\n", "GET\r\n\r\n", "GET nopath HTTP/1.1\r\n\r\n",
                          "GET / HTTP/1.1\r\nno colon\r\n\r\n", "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
                          "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"})
    EXPECT_EQ(parse_request_head(bad, 65536, head, error), head_parse::bad) << bad;
}

// A chat request yields its model, options, the last user text, prompt bytes over all messages and directives.
TEST(MockChatRequest, ReadsTheFieldsTheAnswerNeeds) {
  chat_request req;
  request_error error;
  ASSERT_TRUE(parse_chat_request(R"({"model":"m","stream":true,"stream_options":{"include_usage":true},
    "max_completion_tokens":9,"temperature":0.2,"messages":[{"role":"system","content":"abc"},
    {"role":"user","content":"first"},{"role":"user","content":[{"type":"text","text":"xy [[mock chunks=2]]"}]},
    {"role":"assistant","content":"zz"}]})",
                                 req, error))
    << error.message;
  EXPECT_EQ(req.model, "m");
  EXPECT_TRUE(req.stream);
  EXPECT_TRUE(req.include_usage);
  EXPECT_EQ(req.max_tokens, 9);
  EXPECT_EQ(req.last_user_text, "xy [[mock chunks=2]]");
  EXPECT_EQ(req.prompt_bytes, 3u + 5u + 20u + 2u);
  EXPECT_EQ(req.directives.chunks, 2);
}

// A body cut into any byte ranges writes exactly its bytes, text and filler alike.
TEST(MockPlan, BodyRangesCoverTheBodyExactly) {
  body b;
  b.text("head:");
  b.filler(60, 10);
  b.text(":tail");
  std::string whole;
  b.append_to(whole);
  EXPECT_EQ(whole, "head:" + std::string{"89-_abcdef"} + ":tail");
  for (uint64_t cut = 0; cut <= b.size(); ++cut) {
    plan p;
    b.emit(0, cut, p);
    b.emit(cut, b.size(), p);
    std::string written;
    for (const auto& s : p.steps) {
      if (s.what == step::kind::bytes) {
        written += s.bytes;
      } else {
        std::string filler(s.filler_length, '?');
        copy_filler(s.filler_offset, filler.data(), filler.size());
        written += filler;
      }
    }
    EXPECT_EQ(written, whole) << "cut at " << cut;
  }
}

} // namespace
