// W3C Trace Context and the OTLP JSON of spans (ops/tracing.hpp): what a traceparent must look like, which
// tracestates are passed on, how a request's context is decided, the span another node's call opens, the bounded queue, and the export body's
// shape.

#include "ops/tracing.hpp"
#include "ops/span_queue.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

namespace troupe::tracing {
namespace {

constexpr const char* example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContext, ParsesTheSpecsExample) {
  auto p = parse_traceparent(example);
  ASSERT_TRUE(p);
  EXPECT_EQ(hex(p->trace), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(hex(p->parent), "00f067aa0ba902b7");
  EXPECT_TRUE(p->sampled);
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")->sampled);
  EXPECT_TRUE(parse_traceparent(std::string(" ") + example + " ")) << "surrounding whitespace";
}

TEST(TraceContext, RefusesWhatTheSpecRefuses) {
  for (const char* bad : {
         "",
         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      // no flags
         "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
         "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
         "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero parent
         "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // version ff
         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // version 00 with more
         "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // separator
         "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   // not hex
       })
    EXPECT_FALSE(parse_traceparent(bad)) << bad;
  // A later version may carry more fields after a '-'.
  EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever"));
  EXPECT_FALSE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01whatever"));
}

TEST(TraceContext, TracestateIsPassedOnOnlyWhenValid) {
  EXPECT_TRUE(valid_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
  EXPECT_TRUE(valid_tracestate("tenant@vendor=value , other=1"));
  EXPECT_TRUE(valid_tracestate("k=v,")) << "empty list members are allowed";
  EXPECT_TRUE(valid_tracestate("1tenant@vendor=x")) << "a tenant id may start with a digit";
  for (const char* bad : {"", ",", "novalue", "=x", "UPPER=1", "a=b=c", "k=v\x01", "1abc=x", "t@1vendor=x",
                          "@vendor=x", "t@abcdefghijklmnop=x", "t@v@w=x"})
    EXPECT_FALSE(valid_tracestate(bad)) << bad;
  std::string many;
  for (int i = 0; i < 33; ++i)
    many += (i ? "," : "") + std::string("k") + std::to_string(i) + "=v";
  EXPECT_FALSE(valid_tracestate(many)) << "33 members";
  EXPECT_FALSE(valid_tracestate(std::string(513, 'a'))) << "over 512 characters";
}

TEST(TraceContext, ARequestJoinsItsCallersTraceOrStartsOne) {
  auto joined = context_for(std::string{example}, std::string{"rojo=1"}, 0.0);
  EXPECT_EQ(joined.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(hex(joined.parent), "00f067aa0ba902b7");
  EXPECT_TRUE(joined.sampled) << "the caller decided, whatever our ratio";
  EXPECT_EQ(joined.tracestate, "rojo=1");
  EXPECT_NE(hex(joined.span), "00f067aa0ba902b7") << "a span of our own";
  auto child = new_span_id();
  EXPECT_EQ(joined.traceparent_for(child), "00-4bf92f3577b34da6a3ce929d0e0e4736-" + hex(child) + "-01");

  auto fresh = context_for(std::nullopt, std::string{"rojo=1"}, 1.0);
  EXPECT_FALSE(fresh.remote_parent());
  EXPECT_TRUE(fresh.sampled);
  EXPECT_EQ(fresh.tracestate, "") << "no traceparent: its tracestate means nothing";
  EXPECT_NE(fresh.trace_hex(), context_for(std::nullopt, std::nullopt, 1.0).trace_hex());
  EXPECT_FALSE(context_for(std::nullopt, std::nullopt, 0.0).sampled);
  EXPECT_FALSE(context_for(std::string{"garbage"}, std::nullopt, 0.0).remote_parent()) << "a bad header starts a trace";
  int sampled = 0;
  for (int i = 0; i < 2000; ++i)
    sampled += context_for(std::nullopt, std::nullopt, 0.25).sampled;
  EXPECT_GT(sampled, 350);
  EXPECT_LT(sampled, 650);
}

TEST(TraceContext, OtlpJsonIsUtf8WhateverTheRequestSent) {
  span s;
  s.trace = new_trace_id();
  s.id = new_span_id();
  s.name = "GET /caf\xc3\x28\xff";
  s.attributes = {{"url.path", "/caf\xc3\x28\xff"}};
  auto body = otlp_json({s}, "0.9.0", "node");
  EXPECT_EQ(body.find("\xff"), std::string::npos);
  EXPECT_NE(body.find("/caf\xEF\xBF\xBD(\xEF\xBF\xBD"), std::string::npos) << body;
}

TEST(TraceContext, OtlpJsonHasTheCollectorsShape) {
  span root;
  root.trace = new_trace_id();
  root.id = new_span_id();
  root.name = "GET /api/me";
  root.kind = span_kind::server;
  root.start_unix_ns = 1700000000000000000;
  root.end_unix_ns = 1700000000001000000;
  root.attributes = {{"http.route", "/api/me"}};
  root.int_attributes = {{"http.response.status_code", 500}};
  root.error = true;
  span child;
  child.trace = root.trace;
  child.id = new_span_id();
  child.parent = root.id;
  child.name = "auth";
  auto body = otlp_json({root, child}, "0.9.0", "node-a");
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  ASSERT_FALSE(doc.HasParseError()) << body;
  const auto& rs = doc["resourceSpans"][0];
  EXPECT_EQ(std::string{rs["resource"]["attributes"][0]["value"]["stringValue"].GetString()}, "troupe");
  const auto& spans = rs["scopeSpans"][0]["spans"];
  ASSERT_EQ(spans.Size(), 2u);
  EXPECT_EQ(std::string{spans[0]["traceId"].GetString()}, hex(root.trace));
  EXPECT_FALSE(spans[0].HasMember("parentSpanId")) << "a root span";
  EXPECT_EQ(spans[0]["kind"].GetInt(), 2);
  EXPECT_EQ(std::string{spans[0]["startTimeUnixNano"].GetString()}, "1700000000000000000");
  EXPECT_EQ(spans[0]["status"]["code"].GetInt(), 2);
  EXPECT_EQ(std::string{spans[0]["attributes"][1]["value"]["intValue"].GetString()}, "500");
  EXPECT_EQ(std::string{spans[1]["parentSpanId"].GetString()}, hex(root.id));
}

// Another node's call (its cluster_origin's traceparent): a SERVER span of that trace under the caller's span, only
// when the caller sampled it.
TEST(TraceContext, ARemoteCallersSampledTraceOpensAServerSpan) {
  auto before = unix_now_ns();
  auto s = server_span_for(example, "rojo=00f067aa0ba902b7", "cluster authorize");
  ASSERT_TRUE(s);
  EXPECT_EQ(hex(s->trace), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(hex(s->parent), "00f067aa0ba902b7");
  EXPECT_NE(hex(s->id), "00f067aa0ba902b7");
  EXPECT_FALSE(is_zero(s->id.data(), s->id.size()));
  EXPECT_EQ(s->kind, span_kind::server);
  EXPECT_EQ(s->name, "cluster authorize");
  EXPECT_EQ(s->tracestate, "rojo=00f067aa0ba902b7");
  EXPECT_GE(s->start_unix_ns, before);
  EXPECT_LE(s->start_unix_ns, unix_now_ns());
  EXPECT_FALSE(server_span_for("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "", "x")) << "not sampled";
  EXPECT_FALSE(server_span_for("", "", "x"));
  EXPECT_FALSE(server_span_for("garbage", "", "x"));
  EXPECT_EQ(server_span_for(example, "not a valid=tracestate,,==", "x")->tracestate, "") << "dropped when invalid";
}

// The queue takes a request's spans whole or not at all, hands them out oldest first, and counts what it dropped.
TEST(SpanQueue, IsBoundedAndKeepsOrder) {
  span_queue q{3};
  auto named = [](std::initializer_list<const char*> names) {
    std::vector<span> spans;
    for (const char* n : names) {
      span s;
      s.name = n;
      spans.push_back(s);
    }
    return spans;
  };
  q.push(named({"a", "b"}));
  q.push(named({"c", "d"})); // would not fit: all dropped
  q.push(named({"e"}));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.dropped.load(), 2u);
  span lone;
  lone.name = "f";
  q.push(lone); // a single span into a full queue: dropped too
  EXPECT_EQ(q.dropped.load(), 3u);
  auto first = q.take(2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].name, "a");
  EXPECT_EQ(first[1].name, "b");
  auto rest = q.take(10);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].name, "e");
  EXPECT_EQ(q.size(), 0u);
}

} // namespace
} // namespace troupe::tracing
