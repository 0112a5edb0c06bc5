// Long generations (issue: long generations) end to end, the real binary in front of the mock upstream: a stream
// that keeps making progress is never cut, whatever its length; heartbeats keep it alive while the model thinks; a
// silent upstream or a client that stops reading ends it properly (an error event in OpenAI's shape and [DONE], usage
// recorded) instead of leaving a truncated body. Limits are shortened where the behaviour is tested, except in the
// one test that streams for over two minutes with the defaults.

#include "tests/http/raw_client.hpp"
#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <sys/socket.h>

#include <memory>
#include <thread>

namespace troupe::testing {
namespace {

using namespace std::chrono_literals;

class LongGeneration : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(db_.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)"; }

  scratch_database db_;
  mock_upstream_process mock;
  std::unique_ptr<troupe_process> troupe;
  std::string token;
  std::string email = "long" + std::to_string(::getpid()) + "-"
                      + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "@example.com";

  void start(std::vector<std::string> sets = {}) {
    troupe_process::options opts;
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    opts.env["TROUPE_UPSTREAMS"] =
      R"([{"name":"a","base_url":")" + mock.base_url() + R"(/v1","models":["mock-1"]}])";
    opts.args = {"--set", "retry.base_ms=1"};
    for (const auto& s : sets) {
      opts.args.push_back("--set");
      opts.args.push_back(s);
    }
    troupe = std::make_unique<troupe_process>(opts);
    auto login = sign_up(*troupe, email);
    token = json_string(login, "access_token");
    ASSERT_FALSE(token.empty()) << login.body;
  }

  /// A streamed chat request whose user message carries mock directives ("[[mock drip_ms=...]]").
  http_response stream(http_connection& c, const std::string& directives, read_options options) {
    return c.request("POST", "/v1/chat/completions",
                     chat_body("tell a long story [[mock " + directives + "]]", true),
                     {"Authorization: Bearer " + token, "Content-Type: application/json"}, options);
  }

  /// Tokens recorded for the test's user, waiting for the batched writer (up to 15 s on a loaded machine).
  int64_t recorded_tokens() {
    pqxx::connection db{db_.url()};
    int64_t tokens = 0;
    for (int i = 0; i < 1500 && tokens == 0; ++i) {
      pqxx::work tx{db};
      tokens = tx.exec("SELECT coalesce(sum(u.tokens),0) FROM usage u JOIN users s ON s.id = u.user_id WHERE s.email = "
                       + tx.quote(email))[0][0]
                 .as<int64_t>();
      if (tokens == 0)
        std::this_thread::sleep_for(10ms);
    }
    return tokens;
  }
};

// A stream of over two minutes, one chunk every 2 s, with every default limit: it completes with [DONE] (it used to
// be cut at 60 s, the connection's age limit).
TEST_F(LongGeneration, AStreamOfOverTwoMinutesCompletesWithTheDefaults) {
  start();
  http_connection c{troupe->port()};
  read_options options;
  options.timeout = 200s;
  auto started = std::chrono::steady_clock::now();
  auto res = stream(c, "drip_ms=2000 chunks=64", options);
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(res.status, 200) << res.error;
  EXPECT_TRUE(res.complete) << res.error;
  EXPECT_GT(took, 120s);
  auto events = sse_data(res.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(res.body.find("\"error\""), std::string::npos) << res.body.substr(0, 2000);
  EXPECT_GE(events.size(), 64u);
}

// While the upstream thinks before its first token, SSE comments arrive every gateway.stream_heartbeat_ms; the
// answer then follows on the same stream.
TEST_F(LongGeneration, HeartbeatsArriveBeforeTheFirstToken) {
  start({"gateway.stream_heartbeat_ms=300"});
  http_connection c{troupe->port()};
  auto res = stream(c, "think_ms=2000 chunks=3", {});
  ASSERT_EQ(res.status, 200) << res.error;
  EXPECT_TRUE(res.complete) << res.error;
  auto first_event = res.body.find("data: ");
  ASSERT_NE(first_event, std::string::npos) << res.body;
  auto before = res.body.substr(0, first_event);
  size_t beats = 0;
  for (auto at = before.find(": keep-alive"); at != std::string::npos; at = before.find(": keep-alive", at + 1))
    ++beats;
  EXPECT_GE(beats, 3u) << before; // 2 s of thinking at one every 300 ms
  EXPECT_EQ(sse_data(res.body).back(), "[DONE]");
}

// An upstream that goes silent mid-stream for longer than gateway.stream_idle_ms: the stream ends with an error event
// in OpenAI's shape and [DONE] (not a truncated body), and usage is recorded for what was produced.
TEST_F(LongGeneration, ASilentUpstreamEndsTheStreamWithAnErrorEvent) {
  start({"gateway.stream_idle_ms=500", "gateway.stream_heartbeat_ms=100000"});
  http_connection c{troupe->port()};
  auto started = std::chrono::steady_clock::now();
  auto res = stream(c, "chunks=6 pause_after=3 pause_ms=20000", {});
  ASSERT_EQ(res.status, 200) << res.error;
  EXPECT_TRUE(res.complete) << res.error;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  auto events = sse_data(res.body);
  ASSERT_GE(events.size(), 2u) << res.body;
  EXPECT_EQ(events.back(), "[DONE]");
  const auto& error = events[events.size() - 2];
  auto doc = parse_json(error);
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("error")) << error;
  EXPECT_EQ(std::string{doc["error"]["code"].GetString()}, "timeout") << error;
  EXPECT_GT(recorded_tokens(), 0);
  troupe->expect_output("stream failed after its first byte");
}

// A client that stops reading a stream is disconnected after gateway.stream_idle_ms of a full send buffer; the
// upstream call is dropped with it (the stream never ends normally) and the server stays responsive.
TEST_F(LongGeneration, AClientThatStopsReadingIsDisconnected) {
  start({"gateway.stream_idle_ms=500", "upstream.max_response_bytes=67108864"});
  http::testing::raw_client c{troupe->port(), 20s};
  // 14 MB: more than the sockets' buffers on both ends hold, less than the 16 MiB a connection may queue, so what
  // ends the stream is the stall (nothing written for gateway.stream_idle_ms), not the queue bound.
  auto body = chat_body("tell a long story [[mock huge_bytes=14000000]]", true);
  c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token
         + "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  ASSERT_NE(c.read_until("\r\n\r\n").find("200 OK"), std::string::npos) << c.received();
  std::this_thread::sleep_for(1500ms); // reads nothing: the server's send buffer fills and stays full
  EXPECT_TRUE(c.read_to_close()); // what was in flight drains, then the server's close
  EXPECT_EQ(c.received().find("data: [DONE]"), std::string::npos) << "the stream was not cut";
  EXPECT_LT(c.received().size(), size_t{14000000});
  EXPECT_EQ(http_get(troupe->url("/health")).status, 200);
  troupe->expect_output("stream failed after its first byte");
}

// A generation route has gateway.request_timeout_ms to start its answer: a plain answer slower than that, or a
// stream with nothing to send yet (no token, no heartbeat due), gets 504 at the limit, not when the upstream is done.
// A stream that has started is not cut by it (the other tests of this file run with the default limit of 60 s).
TEST_F(LongGeneration, AnAnswerNotStartedWithinTheRoutesTimeLimitIs504) {
  start({"gateway.request_timeout_ms=1000", "gateway.stream_heartbeat_ms=10000"});
  auto ask = [&](const std::string& directives, bool stream) {
    auto started = std::chrono::steady_clock::now();
    auto res = http({"POST", troupe->url("/v1/chat/completions"), chat_body("wait [[mock " + directives + "]]", stream),
                     {"Authorization: Bearer " + token, "Content-Type: application/json"}, 20000});
    return std::make_pair(res, std::chrono::steady_clock::now() - started);
  };
  auto [plain, plain_took] = ask("latency_ms=4000", false);
  EXPECT_EQ(plain.status, 504) << plain.body;
  EXPECT_LT(plain_took, 3s);
  auto [silent, silent_took] = ask("think_ms=4000", true);
  EXPECT_EQ(silent.status, 504) << silent.body;
  EXPECT_NE(silent.body.find("time limit of 1000 ms"), std::string::npos) << silent.body;
  EXPECT_LT(silent_took, 3s);
  // Started within the limit and going on past it: whole.
  auto [flowing, flowing_took] = ask("chunks=6 drip_ms=400", true);
  EXPECT_EQ(flowing.status, 200) << flowing.body;
  EXPECT_EQ(flowing.body.substr(flowing.body.size() - 14), "data: [DONE]\n\n");
  EXPECT_GT(flowing_took, 1500ms);
}

} // namespace
} // namespace troupe::testing
