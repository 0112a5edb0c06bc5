// Integration tests of tools/mock-upstream: each test runs the real binary on an ephemeral port and talks raw
// HTTP/1.1 to it over loopback, so what is asserted is what a gateway would receive on the wire.

#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace troupe::testing;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

const std::string chat_path = "/v1/chat/completions";

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  return doc;
}

bool is_json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  return !doc.HasParseError();
}

std::string content_of(const http_response& res) {
  auto doc = parse(res.body);
  if (doc.HasParseError() || !doc.HasMember("choices"))
    return "<no content>";
  return doc["choices"][0]["message"]["content"].GetString();
}

/// The text of every content delta of a stream, concatenated.
std::string stream_content(const std::vector<std::string>& events) {
  std::string text;
  for (const auto& e : events) {
    if (e == "[DONE]")
      continue;
    auto doc = parse(e);
    if (doc.HasParseError() || !doc.HasMember("choices") || doc["choices"].Empty())
      continue;
    const auto& delta = doc["choices"][0]["delta"];
    if (delta.HasMember("content"))
      text += delta["content"].GetString();
  }
  return text;
}

uint64_t tokens(uint64_t bytes) {
  return std::max<uint64_t>(1, (bytes + 3) / 4);
}

/// Runs a mock and keeps one control connection to it (reset, config, stats) separate from the test's traffic.
class MockUpstream : public ::testing::Test {
protected:
  void start(std::vector<std::string> args = {}) {
    mock_ = std::make_unique<mock_upstream_process>(std::move(args));
    control_ = std::make_unique<http_connection>(mock_->port());
  }
  uint16_t port() const { return mock_->port(); }

  http_response chat(const std::string& body, const std::vector<std::string>& headers = {}) {
    return http_once(port(), "POST", chat_path, body, headers);
  }
  rapidjson::Document stats() {
    auto res = control_->request("GET", "/mock/stats");
    EXPECT_EQ(res.status, 200) << res.error;
    return parse(res.body);
  }
  http_response configure(const std::string& json) { return control_->request("POST", "/mock/config", json); }
  void reset() { ASSERT_EQ(control_->request("POST", "/mock/reset").status, 200); }

  std::unique_ptr<mock_upstream_process> mock_;
  std::unique_ptr<http_connection> control_;
};

// ---- start-up and the plain protocol -------------------------------------------------------------------------

// The one stdout line names the port, --port-file holds the same port, and SIGTERM exits 0.
TEST_F(MockUpstream, AnnouncesItsPortAndExitsCleanlyOnSigterm) {
  auto port_file = ::testing::TempDir() + "mock-upstream-port-" + std::to_string(::getpid());
  start({"--port-file", port_file});
  EXPECT_EQ(mock_->listening_line(), "mock-upstream listening on 127.0.0.1:" + std::to_string(port()));
  std::ifstream in{port_file};
  int written = 0;
  in >> written;
  EXPECT_EQ(written, port());
  std::remove(port_file.c_str());
  EXPECT_EQ(mock_->stop(SIGTERM, 10s), std::optional<int>{0});
}

// --help prints the reference; a bad flag or knob value exits 2 with one line naming it.
TEST(MockUpstreamCommandLine, PrintsHelpAndRefusesBadFlags) {
  std::string out;
  auto run = [&out](const std::string& args) {
    out.clear();
    FILE* pipe = ::popen((std::string{MOCK_UPSTREAM_BINARY} + " " + args + " 2>&1").c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0)
      out.append(buf, n);
    int status = ::pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(run("--help"), 0);
  EXPECT_NE(out.find("malformed=MODE"), std::string::npos);
  EXPECT_NE(out.find("GET  /mock/stats"), std::string::npos);
  EXPECT_EQ(run("--status 302"), 2);
  EXPECT_NE(out.find("status=302"), std::string::npos) << out;
  EXPECT_EQ(run("--colour blue"), 2);
  EXPECT_NE(out.find("unknown flag --colour"), std::string::npos) << out;
  EXPECT_EQ(run("--port"), 2);
}

// A normal completion has OpenAI's shape: id, object, model echoed, one assistant choice and exact usage.
TEST_F(MockUpstream, CompletionHasOpenAIShapeAndUsage) {
  start();
  auto res = chat(chat_body("hello world", false, "gpt-4o-mini"));
  ASSERT_EQ(res.status, 200) << res.error;
  EXPECT_EQ(res.header("content-type"), "application/json");
  auto doc = parse(res.body);
  ASSERT_FALSE(doc.HasParseError()) << res.body;
  EXPECT_STREQ(doc["id"].GetString(), "chatcmpl-mock-1");
  EXPECT_STREQ(doc["object"].GetString(), "chat.completion");
  EXPECT_GT(doc["created"].GetInt64(), 1'600'000'000);
  EXPECT_STREQ(doc["model"].GetString(), "gpt-4o-mini");
  ASSERT_EQ(doc["choices"].Size(), 1u);
  const auto& choice = doc["choices"][0];
  EXPECT_EQ(choice["index"].GetInt(), 0);
  EXPECT_STREQ(choice["message"]["role"].GetString(), "assistant");
  EXPECT_STREQ(choice["message"]["content"].GetString(), "mock reply: hello world");
  EXPECT_STREQ(choice["finish_reason"].GetString(), "stop");
  // "Be brief." (9 bytes) + "hello world" (11 bytes) = 20 bytes -> 5 tokens; the reply's 23 bytes -> 6.
  EXPECT_EQ(doc["usage"]["prompt_tokens"].GetUint64(), tokens(20));
  EXPECT_EQ(doc["usage"]["completion_tokens"].GetUint64(), tokens(23));
  EXPECT_EQ(doc["usage"]["total_tokens"].GetUint64(), tokens(20) + tokens(23));
  EXPECT_EQ(res.header("x-request-id"), "req_mock_1");
}

// The echo takes the last user message, reads content parts, and stops at 200 bytes on a UTF-8 boundary.
TEST_F(MockUpstream, EchoesTheLastUserMessageCutAtAUtf8Boundary) {
  start();
  auto parts = chat(R"({"model":"m","messages":[{"role":"user","content":"first"},{"role":"assistant","content":null},
    {"role":"user","content":[{"type":"text","text":"part one, "},{"type":"image_url","image_url":{"url":"x"}},
    {"type":"text","text":"part two"}]}]})");
  ASSERT_EQ(parts.status, 200) << parts.body;
  EXPECT_EQ(content_of(parts), "mock reply: part one, part two");

  std::string long_text = "a";
  for (int i = 0; i < 150; ++i)
    long_text += "\xC3\xA9"; // é: two bytes each, so byte 200 falls inside one
  auto res = chat(chat_body(long_text));
  ASSERT_EQ(res.status, 200);
  rapidjson::Document strict;
  strict.Parse<rapidjson::kParseValidateEncodingFlag>(res.body.data(), res.body.size());
  ASSERT_FALSE(strict.HasParseError()) << "the cut split a UTF-8 sequence";
  EXPECT_EQ(content_of(res), "mock reply: " + long_text.substr(0, 199));
}

// Invalid requests get 400 with OpenAI's error shape, count as chat requests and use no scripted knobs.
TEST_F(MockUpstream, InvalidRequestsGet400WithOpenAIErrorShape) {
  start();
  ASSERT_EQ(configure(R"({"status":503,"count":1})").status, 200);
  const std::vector<std::pair<std::string, std::string>> cases{
    {"{not json", "invalid_json"},
    {R"({"model":"m"})", "missing_required_parameter"},
    {R"({"model":"m","messages":[]})", "empty_array"},
    {R"({"messages":[{"role":"user","content":"x"}]})", "missing_required_parameter"},
    {R"({"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]})", "invalid_type"},
    {R"({"model":"m","messages":[{"content":"x"}]})", "invalid_type"},
    {R"({"model":"m","messages":[{"role":"user","content":"x [[mock status=99]]"}]})", "invalid_mock_directive"},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xFF\"}]}", "invalid_json"},
  };
  for (const auto& [body, code] : cases) {
    auto res = chat(body);
    EXPECT_EQ(res.status, 400) << body;
    auto doc = parse(res.body);
    ASSERT_FALSE(doc.HasParseError()) << res.body;
    EXPECT_STREQ(doc["error"]["type"].GetString(), "invalid_request_error") << body;
    EXPECT_EQ(std::string{doc["error"]["code"].GetString()}, code) << body;
    EXPECT_GT(doc["error"]["message"].GetStringLength(), 0u);
  }
  auto bad_header = chat(chat_body("x"), {"X-Mock: colour=blue"});
  EXPECT_EQ(bad_header.status, 400);
  EXPECT_NE(bad_header.body.find("unknown mock knob 'colour'"), std::string::npos) << bad_header.body;

  auto s = stats();
  EXPECT_EQ(s["requests"].GetUint64(), cases.size() + 1);
  EXPECT_EQ(s["by_status"]["400"].GetUint64(), cases.size() + 1);
  EXPECT_EQ(chat(chat_body("x")).status, 503) << "a rejected request must not use up a scripted knob";
}

// A stream is chunked SSE: a role delta, `chunks` content deltas that add up to the reply, a stop, [DONE].
TEST_F(MockUpstream, StreamEndsWithDoneAndConcatenatesToTheReply) {
  start();
  auto res = chat(chat_body("stream this, please", true));
  ASSERT_EQ(res.status, 200) << res.error;
  EXPECT_TRUE(res.complete);
  EXPECT_EQ(res.header("transfer-encoding"), "chunked");
  EXPECT_EQ(res.header("content-type").rfind("text/event-stream", 0), 0u);
  auto events = sse_data(res.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(res.chunks.size(), events.size()) << "one HTTP chunk per event";

  auto first = parse(events.front());
  EXPECT_STREQ(first["object"].GetString(), "chat.completion.chunk");
  EXPECT_STREQ(first["id"].GetString(), "chatcmpl-mock-1");
  EXPECT_STREQ(first["choices"][0]["delta"]["role"].GetString(), "assistant");
  auto last = parse(events[events.size() - 2]);
  EXPECT_STREQ(last["choices"][0]["finish_reason"].GetString(), "stop");
  EXPECT_EQ(events.size(), 1 + 8 + 1 + 1) << "role, 8 content chunks (the default), stop, [DONE]";
  EXPECT_EQ(stream_content(events), "mock reply: stream this, please");
  EXPECT_FALSE(last.HasMember("usage"));
}

// stream_options.include_usage adds OpenAI's usage chunk (empty choices) before [DONE].
TEST_F(MockUpstream, StreamCarriesUsageWhenAsked) {
  start();
  auto res = chat(chat_body("count me", true, "mock-1", R"("stream_options":{"include_usage":true})"));
  auto events = sse_data(res.body);
  ASSERT_GE(events.size(), 3u);
  auto usage = parse(events[events.size() - 2]);
  ASSERT_TRUE(usage.HasMember("usage")) << events[events.size() - 2];
  EXPECT_EQ(usage["choices"].Size(), 0u);
  EXPECT_EQ(usage["usage"]["prompt_tokens"].GetUint64(), tokens(9 + 8));
  EXPECT_EQ(usage["usage"]["completion_tokens"].GetUint64(), tokens(std::string{"mock reply: count me"}.size()));
}

// max_tokens cuts the content to 4 bytes a token and says finish_reason "length".
TEST_F(MockUpstream, MaxTokensCutsTheReply) {
  start();
  auto res = chat(chat_body("a fairly long question", false, "m", R"("max_tokens":3)"));
  auto doc = parse(res.body);
  EXPECT_STREQ(doc["choices"][0]["message"]["content"].GetString(), "mock reply: ");
  EXPECT_STREQ(doc["choices"][0]["finish_reason"].GetString(), "length");
  EXPECT_EQ(doc["usage"]["completion_tokens"].GetUint64(), 3u);
}

// GET /v1/models lists --models; unknown paths get 404, wrong methods 405 with Allow.
TEST_F(MockUpstream, ListsModelsAndRejectsUnknownRoutes) {
  start({"--models", "alpha,beta,gamma"});
  auto models = http_once(port(), "GET", "/v1/models");
  auto doc = parse(models.body);
  ASSERT_EQ(doc["data"].Size(), 3u);
  EXPECT_STREQ(doc["object"].GetString(), "list");
  EXPECT_STREQ(doc["data"][1]["id"].GetString(), "beta");
  EXPECT_STREQ(doc["data"][1]["owned_by"].GetString(), "mock");
  EXPECT_EQ(http_once(port(), "GET", "/v2/nothing").status, 404);
  auto wrong = http_once(port(), "GET", chat_path);
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.header("allow"), "POST");
  EXPECT_EQ(http_once(port(), "POST", "/chat/completions", chat_body("x")).status, 200);
}

// ---- connections ---------------------------------------------------------------------------------------------

// Two requests on one connection, sequential and then pipelined, are answered in order on that connection.
TEST_F(MockUpstream, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  reset();
  http_connection connection{port()};
  auto first = connection.request("POST", chat_path, chat_body("one"));
  auto second = connection.request("POST", chat_path, chat_body("two"));
  EXPECT_EQ(content_of(first), "mock reply: one");
  EXPECT_EQ(content_of(second), "mock reply: two");
  EXPECT_EQ(first.header("connection"), "keep-alive");

  ASSERT_TRUE(connection.send_raw(format_request("POST", chat_path, chat_body("three"), {})
                                  + format_request("POST", chat_path, chat_body("four"), {})));
  EXPECT_EQ(content_of(connection.read_response()), "mock reply: three");
  EXPECT_EQ(content_of(connection.read_response()), "mock reply: four");
  EXPECT_EQ(stats()["connections_accepted"].GetUint64(), 1u) << "only the test's connection since the reset";
}

// Connection: close is answered with Connection: close, then the server closes.
TEST_F(MockUpstream, ConnectionCloseIsHonoured) {
  start();
  http_connection connection{port()};
  auto res = connection.request("POST", chat_path, chat_body("bye"), {"Connection: close"});
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.header("connection"), "close");
  EXPECT_TRUE(connection.wait_closed(10s));
}

// Bodies must have a Content-Length (chunked: 411), be at most --max-body-bytes (413); Expect gets 100 Continue.
TEST_F(MockUpstream, EnforcesRequestFramingAndSize) {
  start({"--max-body-bytes", "1000"});
  http_connection chunked{port()};
  ASSERT_TRUE(chunked.send_raw("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "5\r\nhello\r\n0\r\n\r\n"));
  auto res = chunked.read_response();
  EXPECT_EQ(res.status, 411);
  EXPECT_TRUE(chunked.wait_closed(10s));

  auto big = http_once(port(), "POST", chat_path, chat_body(std::string(2000, 'x')));
  EXPECT_EQ(big.status, 413);
  EXPECT_TRUE(is_json(big.body));

  http_connection expecting{port()};
  auto body = chat_body("after continue");
  ASSERT_TRUE(expecting.send_raw("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                 "Content-Length: "
                                 + std::to_string(body.size()) + "\r\n\r\n"));
  read_options interim_only;
  interim_only.return_interim = true;
  EXPECT_EQ(expecting.read_response(interim_only).status, 100) << "before any byte of the body was sent";
  ASSERT_TRUE(expecting.send_raw(body));
  auto answered = expecting.read_response();
  EXPECT_EQ(answered.status, 200);
  EXPECT_EQ(content_of(answered), "mock reply: after continue");
}

// Beyond --max-connections a new connection is closed at once; the others keep working.
TEST_F(MockUpstream, ClosesConnectionsBeyondTheCap) {
  start({"--max-connections", "2"});
  stats(); // now the fixture's control connection surely holds one of the two
  http_connection held{port()};
  ASSERT_EQ(held.request("GET", "/health").status, 200); // accepted and counted
  http_connection extra{port()};
  EXPECT_TRUE(extra.wait_closed(10s));
  EXPECT_EQ(held.request("GET", "/health").status, 200);
}

// --idle-timeout-ms closes a connection between requests, and one whose client stopped reading its answer.
TEST_F(MockUpstream, ClosesIdleAndStalledConnections) {
  start({"--idle-timeout-ms", "100"});
  http_connection idle{port()};
  ASSERT_EQ(idle.request("GET", "/health").status, 200);
  EXPECT_TRUE(idle.wait_closed(10s));

  // 64 MiB cannot fit in loopback socket buffers: the mock's writes stall on a client that reads nothing.
  http_connection stalled{port()};
  ASSERT_TRUE(stalled.send_raw(format_request("POST", chat_path, chat_body("x"), {"X-Mock: huge_bytes=67108864"})));
  // The mock is another process and looks for idle connections periodically: wait (bounded) for its count to change.
  // Stats come over fresh connections, since the idle timeout also closes the fixture's control connection.
  auto fresh_stats = [&] { return parse(http_once(port(), "GET", "/mock/stats").body); };
  auto deadline = clock_type::now() + 10s;
  while (fresh_stats()["aborted"].GetUint64() != 1 && clock_type::now() < deadline) {
  }
  auto s = fresh_stats();
  EXPECT_EQ(s["aborted"].GetUint64(), 1u);
  EXPECT_EQ(s["in_flight"].GetInt64(), 0);
}

// ---- knobs ----------------------------------------------------------------------------------------------------

// status and retry_after work from the X-Mock header and from a [[mock ...]] directive in a message.
TEST_F(MockUpstream, StatusKnobFromHeaderAndDirective) {
  start();
  auto limited = chat(chat_body("x"), {"X-Mock: status=429,retry_after=3"});
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.header("retry-after"), "3");
  auto doc = parse(limited.body);
  EXPECT_STREQ(doc["error"]["type"].GetString(), "rate_limit_error");
  EXPECT_STREQ(doc["error"]["code"].GetString(), "rate_limit_exceeded");

  auto unavailable = chat(chat_body("please fail [[mock status=503 retry_after=7]] thanks"));
  EXPECT_EQ(unavailable.status, 503);
  EXPECT_EQ(unavailable.header("retry-after"), "7");
  EXPECT_STREQ(parse(unavailable.body)["error"]["type"].GetString(), "server_error");

  // A directive wins over the header; a stream request gets a JSON error, not a stream.
  auto both = chat(chat_body("[[mock status=500]]", true), {"X-Mock: status=429"});
  EXPECT_EQ(both.status, 500);
  EXPECT_EQ(both.header("content-type"), "application/json");
  EXPECT_TRUE(both.header("retry-after").empty());
}

// latency_ms holds the response headers back at least that long (header and directive).
TEST_F(MockUpstream, LatencyDelaysTheAnswer) {
  start();
  auto started = clock_type::now();
  auto res = chat(chat_body("x"), {"X-Mock: latency_ms=200"});
  EXPECT_EQ(res.status, 200);
  EXPECT_GE(clock_type::now() - started, 200ms);
  started = clock_type::now();
  EXPECT_EQ(chat(chat_body("[[mock latency_ms=150]]")).status, 200);
  EXPECT_GE(clock_type::now() - started, 150ms);
}

// drip_ms: each SSE event is flushed on its own (the first arrives although the next is a minute away) and the
// events are spaced by at least drip_ms.
TEST_F(MockUpstream, DripSpacesStreamEventsAndFlushesEachOne) {
  start();
  http_connection slow{port()};
  auto first = slow.request("POST", chat_path, chat_body("drip", true), {"X-Mock: drip_ms=60000"}, {10s, 1});
  ASSERT_EQ(first.status, 200) << first.error;
  ASSERT_EQ(first.chunks.size(), 1u);
  EXPECT_NE(first.chunks[0].data.find("\"role\":\"assistant\""), std::string::npos);
  EXPECT_FALSE(first.complete);

  auto started = clock_type::now();
  auto res = chat(chat_body("[[mock drip_ms=40 chunks=3]]", true));
  auto elapsed = clock_type::now() - started;
  auto events = sse_data(res.body);
  ASSERT_EQ(events.size(), 1 + 3 + 1 + 1u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_GE(elapsed, 40ms * (events.size() - 1)) << "a pause between every two events";
  EXPECT_EQ(stream_content(events), "mock reply: [[mock drip_ms=40 chunks=3]]");
}

// drip_ms on a non-streaming answer sends the body in `chunks` pieces: the first piece arrives alone.
TEST_F(MockUpstream, DripSendsANonStreamingBodyInPieces) {
  start();
  http_connection slow{port()};
  auto partial = slow.request("POST", chat_path, chat_body("slow"), {"X-Mock: drip_ms=60000,chunks=4"}, {10s, 1});
  ASSERT_EQ(partial.status, 200) << partial.error;
  EXPECT_FALSE(partial.complete);
  EXPECT_LT(partial.body.size(), std::stoul(partial.header("content-length")));

  auto started = clock_type::now();
  auto whole = chat(chat_body("slow"), {"X-Mock: drip_ms=30,chunks=4"});
  EXPECT_GE(clock_type::now() - started, 90ms);
  EXPECT_EQ(content_of(whole), "mock reply: slow");
}

// error_rate draws from a seeded PRNG: both outcomes occur, the sequence repeats after a reset, and 1 always fails.
TEST_F(MockUpstream, ErrorRateIsSeededAndRepeatable) {
  start({"--error-rate", "0.5", "--error-status", "502", "--seed", "7"});
  auto run = [&] {
    std::string statuses;
    for (int i = 0; i < 24; ++i)
      statuses += chat(chat_body("x")).status == 200 ? '.' : 'E';
    return statuses;
  };
  auto first = run();
  EXPECT_NE(first.find('.'), std::string::npos) << first;
  EXPECT_NE(first.find('E'), std::string::npos) << first;
  auto s = stats();
  EXPECT_EQ(s["by_status"]["502"].GetUint64(), static_cast<uint64_t>(std::count(first.begin(), first.end(), 'E')));
  reset();
  EXPECT_EQ(run(), first);
  EXPECT_EQ(chat(chat_body("x"), {"X-Mock: error_rate=1,error_status=500"}).status, 500);
  EXPECT_EQ(chat(chat_body("x"), {"X-Mock: error_rate=0"}).status, 200);
}

// POST /mock/config with count scripts the next requests (queued in order); without count it holds until reset.
TEST_F(MockUpstream, ConfigScriptsTheNextRequests) {
  start();
  ASSERT_EQ(configure(R"({"status":500,"count":2})").status, 200);
  auto config = configure(R"({"malformed":"hangup","count":1})");
  auto doc = parse(config.body);
  ASSERT_EQ(doc["scripted"].Size(), 2u) << config.body;
  EXPECT_EQ(doc["scripted"][0]["remaining"].GetInt(), 2);

  EXPECT_EQ(chat(chat_body("1")).status, 500);
  EXPECT_EQ(chat(chat_body("2")).status, 500);
  auto hung = chat(chat_body("3"));
  EXPECT_EQ(hung.status, 0);
  EXPECT_TRUE(hung.closed);
  EXPECT_EQ(chat(chat_body("4")).status, 200);

  ASSERT_EQ(configure(R"({"status":503,"retry_after":2})").status, 200);
  for (int i = 0; i < 3; ++i) {
    auto res = chat(chat_body("x"));
    EXPECT_EQ(res.status, 503);
    EXPECT_EQ(res.header("retry-after"), "2");
  }
  reset();
  EXPECT_EQ(chat(chat_body("x")).status, 200);
  auto after = parse(control_->request("GET", "/mock/config").body);
  EXPECT_EQ(after["defaults"]["status"].GetInt(), 0);
  EXPECT_EQ(after["scripted"].Size(), 0u);
}

// A bad config is refused with 400 and changes nothing.
TEST_F(MockUpstream, ConfigRejectsUnknownKnobsAndBadValues) {
  start();
  for (const char* body : {R"({"latency":5})", R"({"status":700})", R"({"error_rate":2})", R"({"malformed":"odd"})",
                           R"({"status":500,"count":0})", "[1]", "nope"}) {
    auto res = configure(body);
    EXPECT_EQ(res.status, 400) << body;
    EXPECT_TRUE(is_json(res.body));
  }
  EXPECT_EQ(chat(chat_body("x")).status, 200);
  EXPECT_EQ(parse(control_->request("GET", "/mock/config").body)["scripted"].Size(), 0u);
}

// /mock/stats counts chat requests by status and model, streams, distinct Authorization values; control
// endpoints are not counted.
TEST_F(MockUpstream, StatsCountChatRequests) {
  start();
  chat(chat_body("a", false, "m1"), {"Authorization: Bearer one"});
  chat(chat_body("b", true, "m2"), {"Authorization: Bearer two"});
  chat(chat_body("c", false, "m1"), {"Authorization: Bearer one", "X-Mock: status=500"});
  chat(chat_body("d", false, "m1"), {"X-Mock: malformed=hangup"});
  http_once(port(), "GET", "/v1/models");
  auto s = stats();
  EXPECT_EQ(s["requests"].GetUint64(), 4u);
  EXPECT_EQ(s["streams"].GetUint64(), 1u);
  EXPECT_EQ(s["by_status"]["200"].GetUint64(), 2u);
  EXPECT_EQ(s["by_status"]["500"].GetUint64(), 1u);
  EXPECT_EQ(s["by_status"]["hangup"].GetUint64(), 1u);
  EXPECT_EQ(s["by_model"]["m1"].GetUint64(), 3u);
  EXPECT_EQ(s["by_model"]["m2"].GetUint64(), 1u);
  EXPECT_EQ(s["in_flight"].GetInt64(), 0);
  ASSERT_EQ(s["authorization"].Size(), 2u);
  EXPECT_STREQ(s["authorization"][0].GetString(), "Bearer one");
  EXPECT_STREQ(s["authorization"][1].GetString(), "Bearer two");
  reset();
  auto zero = stats();
  EXPECT_EQ(zero["requests"].GetUint64(), 0u);
  EXPECT_EQ(zero["by_status"].MemberCount(), 0u);
  EXPECT_EQ(zero["authorization"].Size(), 0u);
}

// A client leaving during latency ends the answer: in_flight returns to 0 and the answer counts as aborted.
TEST_F(MockUpstream, ClientLeavingMidAnswerIsCountedAsAborted) {
  start();
  {
    http_connection leaving{port()};
    ASSERT_TRUE(leaving.send_raw(format_request("POST", chat_path, chat_body("x"), {"X-Mock: latency_ms=60000"})));
    // The mock is another process: wait (bounded) until it has admitted the request.
    auto deadline = clock_type::now() + 10s;
    while (stats()["in_flight"].GetInt64() != 1 && clock_type::now() < deadline) {
    }
    ASSERT_EQ(stats()["in_flight"].GetInt64(), 1);
  }
  // It notices the close through epoll, not a timer: wait (bounded) for its count to change.
  auto deadline = clock_type::now() + 10s;
  while (stats()["aborted"].GetUint64() != 1 && clock_type::now() < deadline) {
  }
  auto s = stats();
  EXPECT_EQ(s["aborted"].GetUint64(), 1u);
  EXPECT_EQ(s["in_flight"].GetInt64(), 0);
}

// huge_bytes: the content is exactly that many pattern bytes, as JSON or as a stream of at most 64 KiB events.
TEST_F(MockUpstream, HugeBytesMakesAContentOfThatSize) {
  start();
  const size_t huge = 300'000;
  auto res = chat(chat_body("x"), {"X-Mock: huge_bytes=300000"});
  ASSERT_EQ(res.status, 200) << res.error;
  auto content = content_of(res);
  ASSERT_EQ(content.size(), huge);
  const std::string pattern = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  EXPECT_EQ(content.substr(0, 64), pattern);
  EXPECT_EQ(content[huge - 1], pattern[(huge - 1) % 64]);
  EXPECT_EQ(parse(res.body)["usage"]["completion_tokens"].GetUint64(), huge / 4);

  // chunks=2 asks for two content events, but no event carries more than 64 KiB of content.
  auto streamed = chat(chat_body("[[mock huge_bytes=300000 chunks=2]]", true));
  auto events = sse_data(streamed.body);
  EXPECT_EQ(stream_content(events), content);
  EXPECT_EQ(events.size(), 1 + 5 + 1 + 1u) << "ceil(300000 / 65536) = 5 content events";
}

// ---- malformed output: each mode produces what it claims ------------------------------------------------------

TEST_F(MockUpstream, MalformedJsonIsNotJson) {
  start();
  auto res = chat(chat_body("x"), {"X-Mock: malformed=json"});
  EXPECT_EQ(res.status, 200);
  EXPECT_TRUE(res.complete) << "the Content-Length matches the broken body";
  EXPECT_FALSE(res.body.empty());
  EXPECT_FALSE(is_json(res.body)) << res.body;
}

TEST_F(MockUpstream, MalformedSseHasANonJsonDataLine) {
  start();
  auto res = chat(chat_body("x [[mock malformed=sse]]", true));
  EXPECT_EQ(res.status, 200);
  auto events = sse_data(res.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]");
  auto broken = std::count_if(events.begin(), events.end() - 1, [](const std::string& e) { return !is_json(e); });
  EXPECT_EQ(broken, 1) << res.body;
}

TEST_F(MockUpstream, MalformedUtf8HasInvalidBytesInTheContent) {
  start();
  for (bool stream : {false, true}) { // one content event, so that the whole content is in events[1]
    auto res = chat(chat_body("x", stream), {"X-Mock: malformed=utf8,chunks=1"});
    EXPECT_EQ(res.status, 200);
    EXPECT_NE(res.body.find("\xC3\x28\xFF\xFE"), std::string::npos);
    std::string json = stream ? sse_data(res.body)[1] : res.body;
    rapidjson::Document strict;
    strict.Parse<rapidjson::kParseValidateEncodingFlag>(json.data(), json.size());
    EXPECT_TRUE(strict.HasParseError()) << "invalid UTF-8 must fail a validating parser";
    EXPECT_TRUE(is_json(json)) << "but it is JSON otherwise";
  }
}

TEST_F(MockUpstream, MalformedTruncatedClosesEarly) {
  start();
  auto res = chat(chat_body("x"), {"X-Mock: malformed=truncated"});
  EXPECT_EQ(res.status, 200);
  EXPECT_TRUE(res.closed);
  EXPECT_FALSE(res.complete);
  EXPECT_LT(res.body.size(), std::stoul(res.header("content-length")));
  EXPECT_FALSE(res.body.empty());

  auto stream = chat(chat_body("x", true), {"X-Mock: malformed=truncated"});
  EXPECT_EQ(stream.status, 200);
  EXPECT_TRUE(stream.closed);
  EXPECT_FALSE(stream.complete) << "no last chunk";
  auto events = sse_data(stream.body);
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events.back(), "[DONE]");
}

TEST_F(MockUpstream, MalformedNoChoicesIsValidJsonWithoutChoices) {
  start();
  auto res = chat(chat_body("x"), {"X-Mock: malformed=no_choices"});
  auto doc = parse(res.body);
  ASSERT_FALSE(doc.HasParseError());
  EXPECT_FALSE(doc.HasMember("choices"));
  EXPECT_TRUE(doc.HasMember("usage"));
  auto stream = chat(chat_body("x", true), {"X-Mock: malformed=no_choices"});
  auto events = sse_data(stream.body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  for (size_t i = 0; i + 1 < events.size(); ++i)
    EXPECT_FALSE(parse(events[i]).HasMember("choices")) << events[i];
}

TEST_F(MockUpstream, MalformedHangupClosesWithoutAnAnswer) {
  start();
  http_connection connection{port()};
  ASSERT_TRUE(connection.send_raw(format_request("POST", chat_path, chat_body("x [[mock malformed=hangup]]"), {})));
  EXPECT_TRUE(connection.wait_closed(10s));
}

// HTTP/1.0 clients get a stream that ends by closing the connection (no chunked coding).
TEST_F(MockUpstream, Http10StreamEndsByClosing) {
  start();
  http_connection connection{port()};
  auto body = chat_body("old client", true);
  ASSERT_TRUE(connection.send_raw("POST /v1/chat/completions HTTP/1.0\r\nContent-Length: " + std::to_string(body.size())
                                  + "\r\n\r\n" + body));
  auto res = connection.read_response();
  EXPECT_EQ(res.status, 200);
  EXPECT_TRUE(res.header("transfer-encoding").empty());
  EXPECT_TRUE(res.closed);
  auto events = sse_data(res.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(stream_content(events), "mock reply: old client");
}

} // namespace
