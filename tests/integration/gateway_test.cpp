// The AI gateway end to end: the real troupe binary in front of real mock upstreams (tools/mock-upstream), over
// loopback. The mocks count what reaches them, so these tests see retries, fallbacks, breaker isolation and
// single flight from the upstream's side.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

namespace troupe::testing {
namespace {

constexpr const char* key_a = "sk-test-upstream-a-0123456789";
constexpr const char* key_b = "sk-test-upstream-b-9876543210";

struct upstream_spec {
  std::string name;
  const mock_upstream_process* mock;
  int priority = 1;
  std::string key;   // "" = none
  std::string extra; // more JSON fields, e.g. ,"timeout_ms":500
};

class Gateway : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(db_.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)"; }

  scratch_database db_; // each test's own: usage and accounts never meet another test's
  std::unique_ptr<mock_upstream_process> mock_a = std::make_unique<mock_upstream_process>();
  std::unique_ptr<mock_upstream_process> mock_b;
  std::unique_ptr<troupe_process> troupe;
  std::string token;
  // Unique per test run even if a pid comes back: the database outlives the test process.
  std::string email = "gw" + std::to_string(::getpid()) + "-"
                      + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "@example.com";

  void start(std::vector<upstream_spec> upstreams, std::vector<std::string> sets = {}) {
    std::string list = "[";
    for (const auto& u : upstreams) {
      list += (list.size() > 1 ? "," : "");
      list += R"({"name":")" + u.name + R"(","base_url":")" + u.mock->base_url() + R"(/v1","models":["mock-1"],)"
              + R"("priority":)" + std::to_string(u.priority);
      if (!u.key.empty())
        list += R"(,"api_key_env":"KEY_)" + u.name + "\"";
      list += u.extra + "}";
    }
    list += "]";
    troupe_process::options opts;
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    opts.env["TROUPE_UPSTREAMS"] = list;
    for (const auto& u : upstreams)
      if (!u.key.empty())
        opts.env["KEY_" + u.name] = u.key;
    opts.args = {"--set", "retry.base_ms=1",
                 "--set", "limits.generate_burst=10000",
                 "--set", "limits.generate_per_minute=1000000",
                 "--set", "quota.free_per_day=100000",
                 "--set", "limits.generate_max_inflight=200"};
    for (const auto& s : sets) {
      opts.args.push_back("--set");
      opts.args.push_back(s);
    }
    troupe = std::make_unique<troupe_process>(opts);
    auto login = sign_up(*troupe, email);
    token = json_string(login, "access_token");
    ASSERT_FALSE(token.empty()) << login.body;
  }

  void start_one(std::vector<std::string> sets = {}) { start({{"a", mock_a.get(), 1, key_a, ""}}, std::move(sets)); }

  http_result chat(const std::string& body, std::vector<std::string> headers = {}, long timeout_ms = 20000) {
    headers.push_back("Authorization: Bearer " + token);
    headers.push_back("Content-Type: application/json");
    return http({"POST", troupe->url("/v1/chat/completions"), body, headers, timeout_ms});
  }

  static std::string body(const std::string& content, const std::string& extra = "") {
    return R"({"model":"mock-1","messages":[{"role":"user","content":")" + content + "\"}]" + extra + "}";
  }

  static rapidjson::Document mock_json(const mock_upstream_process& m, const std::string& path) {
    return parse_json(http_get(m.base_url() + path).body);
  }
  static int64_t hits(const mock_upstream_process& m) {
    auto doc = mock_json(m, "/mock/stats");
    return doc.IsObject() && doc.HasMember("requests") ? doc["requests"].GetInt64() : -1;
  }
  static void configure(const mock_upstream_process& m, const std::string& json) {
    auto res = http({"POST", m.base_url() + "/mock/config", json, {"Content-Type: application/json"}, 5000});
    ASSERT_EQ(res.status, 200) << res.body;
  }

  std::string health() { return http_get(troupe->url("/api/health")).body; }
};

TEST_F(Gateway, ChatCompletionGoesThroughWithTheServerKeyOnly) {
  start_one();
  auto res = chat(body("hello there"));
  ASSERT_EQ(res.status, 200) << res.body;
  auto doc = parse_json(res.body);
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(std::string(doc["choices"][0]["message"]["content"].GetString()), "mock reply: hello there");
  EXPECT_EQ(res.header("x-troupe-upstream"), "a");
  EXPECT_EQ(res.header("x-cache"), "MISS");
  EXPECT_EQ(hits(*mock_a), 1);
  // The mock saw the server's key, not the client's token.
  auto stats = mock_json(*mock_a, "/mock/stats");
  ASSERT_EQ(stats["authorization"].Size(), 1u);
  EXPECT_EQ(std::string(stats["authorization"][0].GetString()), std::string("Bearer ") + key_a);
  // The key never leaves: not in answers, config dumps or logs.
  EXPECT_EQ(res.body.find(key_a), std::string::npos);
  for (const auto& [name, value] : res.headers)
    EXPECT_EQ(value.find(key_a), std::string::npos) << name;
  EXPECT_EQ(health().find(key_a), std::string::npos);
  EXPECT_EQ(http_get(troupe->url("/metrics")).body.find(key_a), std::string::npos);
  EXPECT_EQ(troupe->output().find(key_a), std::string::npos);
}

TEST_F(Gateway, RejectsBadRequestsBeforeAnyUpstream) {
  start_one();
  EXPECT_EQ(
    http({"POST", troupe->url("/v1/chat/completions"), body("x"), {"Content-Type: application/json"}, 5000}).status,
    401);
  auto bad = chat(R"({"model":"mock-1","messages":[{"role":"robot","content":"x"}]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(parse_json(bad.body)["error"]["param"].GetString(), std::string("messages[0].role"));
  auto unknown = chat(R"({"model":"gpt-nope","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(chat("{not json").status, 400);
  EXPECT_EQ(hits(*mock_a), 0);
}

TEST_F(Gateway, ModelsAndGenerate) {
  start_one();
  auto models = http({"GET", troupe->url("/v1/models"), "", {"Authorization: Bearer " + token}, 5000});
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(std::string(parse_json(models.body)["data"][0]["id"].GetString()), "mock-1");
  auto generate = [&] {
    return http({"POST",
                 troupe->url("/api/generate"),
                 R"({"prompt":"write a haiku","system":"be brief","max_tokens":50})",
                 {"Authorization: Bearer " + token, "Content-Type: application/json"},
                 10000});
  };
  auto first = generate();
  ASSERT_EQ(first.status, 200) << first.body;
  auto doc = parse_json(first.body);
  EXPECT_EQ(std::string(doc["text"].GetString()), "mock reply: write a haiku");
  EXPECT_EQ(std::string(doc["upstream"].GetString()), "a");
  EXPECT_FALSE(doc["cached"].GetBool());
  EXPECT_GT(doc["usage"]["total_tokens"].GetInt64(), 0);
  auto second = parse_json(generate().body);
  EXPECT_TRUE(second["cached"].GetBool());
  EXPECT_EQ(hits(*mock_a), 1);
  // The route's schema: each field named when it is wrong, nothing called.
  for (auto [bad, param] : {std::pair{R"({"prompt":"x","max_tokens":0})", "max_tokens"},
                            std::pair{R"({"prompt":"x","temperature":1})", "temperature"},
                            std::pair{R"({"prompt":""})", "prompt"}, std::pair{R"({"model":"mock-1"})", "prompt"}}) {
    auto res = http({"POST", troupe->url("/api/generate"), bad,
                     {"Authorization: Bearer " + token, "Content-Type: application/json"}, 10000});
    EXPECT_EQ(res.status, 400) << bad << ": " << res.body;
    EXPECT_EQ(std::string(parse_json(res.body)["error"]["param"].GetString()), param) << res.body;
  }
  EXPECT_EQ(hits(*mock_a), 1);
}

TEST_F(Gateway, DeterministicRequestsAreServedFromTheCache) {
  start_one();
  auto request = body("cache me", R"(,"temperature":0)");
  EXPECT_EQ(chat(request).header("x-cache"), "MISS");
  auto again = chat(request);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.header("x-cache"), "HIT");
  EXPECT_EQ(again.header("x-troupe-upstream"), "a");
  EXPECT_EQ(hits(*mock_a), 1);
  EXPECT_EQ(chat(request, {"X-Troupe-Cache: off"}).header("x-cache"), "MISS");
  EXPECT_EQ(hits(*mock_a), 2);
  // Not deterministic: not cached unless asked.
  chat(body("warm", R"(,"temperature":0.7)"));
  chat(body("warm", R"(,"temperature":0.7)"));
  EXPECT_EQ(hits(*mock_a), 4);
  chat(body("asked", R"(,"temperature":0.7)"), {"X-Troupe-Cache: on"});
  EXPECT_EQ(chat(body("asked", R"(,"temperature":0.7)"), {"X-Troupe-Cache: on"}).header("x-cache"), "HIT");
  EXPECT_EQ(hits(*mock_a), 5);
}

TEST_F(Gateway, IdenticalConcurrentRequestsReachTheUpstreamOnce) {
  start_one();
  // Not cacheable (temperature 0.7): only the single flight can merge them. The mock holds each answer 6 s, time for
  // all 50 to arrive even on a loaded machine (the test takes as long only if the merge works).
  auto request = body("[[mock latency_ms=6000]] same question", R"(,"temperature":0.7)");
  std::vector<std::future<http_result>> calls;
  for (int i = 0; i < 50; ++i)
    calls.push_back(std::async(std::launch::async, [&] { return chat(request); }));
  int ok = 0, hit = 0;
  std::string first_failure;
  for (auto& f : calls) {
    auto res = f.get();
    ok += res.status == 200;
    hit += res.header("x-cache") == "HIT";
    if (res.status != 200 && first_failure.empty())
      first_failure = std::to_string(res.status) + " " + res.error + " " + res.body;
  }
  EXPECT_EQ(ok, 50) << first_failure;
  EXPECT_EQ(hit, 49);
  EXPECT_EQ(hits(*mock_a), 1);
}

TEST_F(Gateway, RetriesRetryableFailuresOnTheSameUpstream) {
  start_one({"retry.max_attempts=3"});
  configure(*mock_a, R"({"status":503,"count":2})");
  auto res = chat(body("retry me"));
  EXPECT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(hits(*mock_a), 3);
  // A client error is the caller's: no retry.
  configure(*mock_a, R"({"status":400,"count":1})");
  EXPECT_EQ(chat(body("bad")).status, 400);
  EXPECT_EQ(hits(*mock_a), 4);
}

TEST_F(Gateway, FallsBackToTheNextUpstream) {
  mock_b = std::make_unique<mock_upstream_process>();
  start({{"a", mock_a.get(), 1, key_a, ""}, {"b", mock_b.get(), 2, key_b, ""}}, {"retry.max_attempts=2"});
  configure(*mock_a, R"({"status":500})");
  auto res = chat(body("fall back"));
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.header("x-troupe-upstream"), "b");
  EXPECT_EQ(hits(*mock_a), 2);
  EXPECT_EQ(hits(*mock_b), 1);
  // Each upstream got its own key only.
  auto stats_b = mock_json(*mock_b, "/mock/stats");
  EXPECT_EQ(std::string(stats_b["authorization"][0].GetString()), std::string("Bearer ") + key_b);
}

// Among upstreams of the same priority and weight the faster one gets the traffic: each upstream's latency is a
// peak EWMA, and of the two the one expected to answer sooner goes first (a weighted random order would send half of
// the calls to each).
TEST_F(Gateway, PrefersTheFasterUpstreamOfTheSamePriority) {
  mock_b = std::make_unique<mock_upstream_process>();
  start({{"a", mock_a.get(), 1, key_a, ""}, {"b", mock_b.get(), 1, key_b, ""}});
  configure(*mock_a, R"({"latency_ms":150})");
  for (int i = 0; i < 30; ++i)
    ASSERT_EQ(chat(body("question " + std::to_string(i), R"(,"temperature":0.7)")).status, 200);
  // Each is measured once at most by chance before the faster one takes over.
  EXPECT_LE(hits(*mock_a), 3);
  EXPECT_GE(hits(*mock_b), 27);
}

// An upstream whose health check fails is skipped before any user's request finds it dead: its breaker opens at the
// first failed check (b's path answers 404), so every call goes to a, whose check passes; /api/health says why.
TEST_F(Gateway, AnUpstreamFailingItsHealthCheckGetsNoTraffic) {
  mock_b = std::make_unique<mock_upstream_process>();
  start({{"a", mock_a.get(), 1, key_a, R"(,"health_check_path":"/models","health_check_interval_ms":200)"},
         {"b", mock_b.get(), 1, key_b, R"(,"health_check_path":"/no-such-path","health_check_interval_ms":200)"}});
  troupe->expect_output("the health check failed");
  bool open = false;
  for (int i = 0; i < 500 && !open; ++i) {
    open = health().find("b: breaker open") != std::string::npos;
    if (!open)
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  ASSERT_TRUE(open) << health();
  EXPECT_NE(health().find("health check: GET /no-such-path answered 404"), std::string::npos) << health();
  EXPECT_NE(health().find("a: breaker closed"), std::string::npos) << health();
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(chat(body("question " + std::to_string(i), R"(,"temperature":0.7)")).status, 200);
  EXPECT_EQ(hits(*mock_a), 20);
  EXPECT_EQ(hits(*mock_b), 0);
}

TEST_F(Gateway, BreakerOpensAfterFiveFailuresAndKeepsTrafficAway) {
  start_one({"retry.max_attempts=1", "breaker.failures=5", "breaker.open_ms=60000"});
  configure(*mock_a, R"({"status":500})");
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(chat(body("fail " + std::to_string(i))).status, 502);
  EXPECT_EQ(hits(*mock_a), 5);
  // A call's result reaches its breaker as a message after the answer went out: wait for the fifth to be counted
  // (on a loaded machine the next call could otherwise be admitted before it is).
  bool open = false;
  for (int i = 0; i < 500 && !open; ++i) {
    open = health().find("a: breaker open") != std::string::npos;
    if (!open)
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  ASSERT_TRUE(open) << health();
  auto refused = chat(body("fast fail"));
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_FALSE(refused.header("retry-after").empty());
  EXPECT_GE(std::stoi(refused.header("retry-after")), 50);
  EXPECT_EQ(hits(*mock_a), 5); // never reached the upstream
  EXPECT_NE(health().find("a: breaker open"), std::string::npos) << health();
  EXPECT_NE(http_get(troupe->url("/metrics")).body.find("troupe_upstream_breaker_state{upstream=\"a\"} 1"),
            std::string::npos);
}

TEST_F(Gateway, HalfOpenBreakerAdmitsProbesThenCloses) {
  // open_ms leaves room for a slow machine: the "refused" request must reach the breaker while it is still open, and
  // readiness must ask it before it turns half-open again.
  start_one({"retry.max_attempts=1", "breaker.failures=2", "breaker.open_ms=2000", "breaker.half_open_probes=2"});
  configure(*mock_a, R"({"status":502,"count":2})");
  chat(body("f1"));
  chat(body("f2"));
  EXPECT_EQ(chat(body("refused")).status, 503);
  // Wait (bounded) for the open time to pass: the breaker reports half-open in readiness.
  bool half_open = false;
  for (int i = 0; i < 750 && !half_open; ++i) { // up to 15 s
    half_open = health().find("a: breaker half_open") != std::string::npos;
    if (!half_open)
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  ASSERT_TRUE(half_open) << health();
  // A failing probe opens it again.
  configure(*mock_a, R"({"status":500,"count":1})");
  EXPECT_EQ(chat(body("probe fails")).status, 502);
  EXPECT_NE(health().find("a: breaker open"), std::string::npos);
  half_open = false;
  for (int i = 0; i < 750 && !half_open; ++i) { // up to 15 s
    half_open = health().find("a: breaker half_open") != std::string::npos;
    if (!half_open)
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  ASSERT_TRUE(half_open);
  EXPECT_EQ(chat(body("probe 1")).status, 200);
  EXPECT_EQ(chat(body("probe 2")).status, 200);
  EXPECT_NE(health().find("a: breaker closed"), std::string::npos) << health();
}

TEST_F(Gateway, StreamsEventsThroughAndEndsWithDone) {
  start_one();
  auto res = chat(body("[[mock chunks=5]] stream this please", R"(,"stream":true)"));
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.header("content-type"), "text/event-stream");
  EXPECT_EQ(res.header("x-troupe-upstream"), "a");
  std::string text;
  size_t events = 0;
  for (size_t at = res.body.find("data: "); at != std::string::npos; at = res.body.find("data: ", at + 1)) {
    auto end = res.body.find("\n\n", at);
    auto payload = res.body.substr(at + 6, end - at - 6);
    ++events;
    if (payload == "[DONE]")
      break;
    auto chunk = parse_json(payload);
    ASSERT_TRUE(chunk.IsObject()) << payload;
    const auto& delta = chunk["choices"][0]["delta"];
    if (delta.HasMember("content"))
      text += delta["content"].GetString();
  }
  EXPECT_EQ(text, "mock reply: [[mock chunks=5]] stream this please"); // the mock echoes the prompt
  EXPECT_GE(events, 7u);
  EXPECT_EQ(res.body.substr(res.body.size() - 14), "data: [DONE]\n\n");
}

TEST_F(Gateway, NoRetryAfterTheFirstStreamedByte) {
  start({{"a", mock_a.get(), 1, key_a, R"(,"timeout_ms":2000)"}},
        {"retry.max_attempts=3", "gateway.stream_idle_ms=1000"});
  // Three events reach the client, then the upstream falls silent for longer than the stream may idle (1 s): the
  // stream ends with an error event and [DONE], and the upstream is not called again.
  auto res = chat(body("[[mock drip_ms=50 chunks=8 pause_after=3 pause_ms=5000]] stalling stream", R"(,"stream":true)"));
  ASSERT_EQ(res.status, 200);
  EXPECT_NE(res.body.find("\"delta\""), std::string::npos) << res.body;
  EXPECT_NE(res.body.find("data: {\"error\""), std::string::npos) << res.body;
  EXPECT_EQ(res.body.substr(res.body.size() - 14), "data: [DONE]\n\n");
  EXPECT_EQ(hits(*mock_a), 1);
}

TEST_F(Gateway, MalformedUpstreamsEndInBoundedErrors) {
  start({{"a", mock_a.get(), 1, key_a, R"(,"timeout_ms":1000,"first_byte_timeout_ms":300)"}},
        {"retry.max_attempts=1", "breaker.failures=1000", "upstream.max_response_bytes=100000"});
  struct expectation {
    const char* directive;
    long status;
  };
  for (auto e :
       {expectation{"malformed=json", 502}, expectation{"malformed=utf8", 502}, expectation{"malformed=truncated", 502},
        expectation{"malformed=no_choices", 502}, expectation{"malformed=hangup", 502},
        expectation{"huge_bytes=500000", 502}, expectation{"latency_ms=2000", 504}, expectation{"drip_ms=400", 504},
        expectation{"status=429 retry_after=2", 503}}) {
    auto started = std::chrono::steady_clock::now();
    auto res = chat(body(std::string("[[mock ") + e.directive + "]] x"), {}, 10000);
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(res.status, e.status) << e.directive << ": " << res.body;
    EXPECT_TRUE(parse_json(res.body).HasMember("error")) << e.directive;
    // Bounded by the upstream's timeouts (1 s), with room for a loaded machine; the client would give up at 10 s.
    EXPECT_LT(took, std::chrono::seconds{8}) << e.directive;
  }
  // Streams too, before their first byte: a broken event is a 502, not a hung client.
  auto res = chat(body("[[mock malformed=sse]] x", R"(,"stream":true)"));
  EXPECT_TRUE(res.status == 502 || res.body.find("data: {\"error\"") != std::string::npos) << res.body;
  // The node is still healthy and serving.
  EXPECT_EQ(chat(body("still fine")).status, 200);
}

TEST_F(Gateway, UsageIsMeteredAndTheQuotaHolds) {
  start_one({"quota.free_per_day=3"});
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(chat(body("q" + std::to_string(i))).status, 200);
  auto over = chat(body("one too many"));
  EXPECT_EQ(over.status, 429) << over.body;
  EXPECT_FALSE(over.header("retry-after").empty());
  EXPECT_EQ(hits(*mock_a), 3);
  pqxx::connection db{db_.url()};
  int64_t tokens = 0, requests = 0;
  // The writer commits within milliseconds; up to 15 s for a loaded machine.
  for (int i = 0; i < 1500 && (tokens == 0 || requests < 3); ++i) {
    pqxx::work tx{db};
    auto row = tx.exec(
      "SELECT coalesce(sum(u.tokens),0), coalesce(sum(u.requests),0) FROM usage u JOIN users s ON s.id = u.user_id "
      "WHERE s.email = "
      + tx.quote(email));
    tokens = row[0][0].as<int64_t>();
    requests = row[0][1].as<int64_t>();
    if (tokens == 0 || requests < 3)
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  EXPECT_EQ(requests, 3);
  EXPECT_GT(tokens, 0);
}

// A request whose fields two parsers could read differently never reaches an upstream: a repeated "model", "n" or
// "stream" (validated on the first occurrence while Python, JS and Go upstreams take the last), at the top or in a
// message, is refused with 400 duplicate_key naming it; nothing is called, nothing is metered, no quota is used.
TEST_F(Gateway, DuplicateKeysNeverReachTheUpstream) {
  start_one({"quota.free_per_day=1"});
  struct expectation {
    std::string body;
    const char* param;
  };
  for (const auto& e : {
         expectation{R"({"model":"mock-1","messages":[{"role":"user","content":"x"}],"model":"mock-2"})", "model"},
         expectation{R"({"model":"mock-1","n":1,"messages":[{"role":"user","content":"x"}],"n":8})", "n"},
         expectation{R"({"model":"mock-1","stream":false,"messages":[{"role":"user","content":"x"}],"stream":true})",
                     "stream"},
         expectation{R"({"model":"mock-1","messages":[{"role":"user","content":"a","content":"b"}]})",
                     "messages[0].content"},
       }) {
    auto res = chat(e.body);
    EXPECT_EQ(res.status, 400) << e.body << ": " << res.body;
    auto doc = parse_json(res.body);
    ASSERT_TRUE(doc.IsObject() && doc.HasMember("error")) << res.body;
    EXPECT_EQ(std::string(doc["error"]["code"].GetString()), "duplicate_key") << e.body;
    EXPECT_EQ(std::string(doc["error"]["param"].GetString()), e.param) << e.body;
  }
  EXPECT_EQ(hits(*mock_a), 0);
  EXPECT_EQ(http_get(mock_a->base_url() + "/mock/last_request").status, 404); // no request ever arrived
  // The one generation of the day was never taken.
  EXPECT_EQ(chat(body("the only one")).status, 200);
}

// The upstream receives the request re-serialised from what Troupe validated (the allowed fields, canonical order,
// no client whitespace or escapes), never the client's bytes; fields outside the allow-list are refused by name.
TEST_F(Gateway, ForwardsTheValidatedRequestNotTheClientsBytes) {
  start_one();
  auto res =
    chat(R"( { "temperature" : 0.5, "user" : "u-7", "messages" : [ { "content" : "h\u0069", "role" : "user" } ],
                      "max_tokens" : null, "model" : "mock-1" } )");
  ASSERT_EQ(res.status, 200) << res.body;
  auto seen = http_get(mock_a->base_url() + "/mock/last_request");
  ASSERT_EQ(seen.status, 200);
  EXPECT_EQ(seen.body,
            R"({"model":"mock-1","messages":[{"role":"user","content":"hi"}],"temperature":0.5,"user":"u-7"})");
  auto unknown = chat(body("x", R"(,"vendor_extension":{"model":"other"})"));
  EXPECT_EQ(unknown.status, 400) << unknown.body;
  EXPECT_EQ(std::string(parse_json(unknown.body)["error"]["param"].GetString()), "vendor_extension");
  EXPECT_EQ(hits(*mock_a), 1);
}

// Image parts are checked before anything is called: an inline image whose bytes are not the type it declares, or
// one over gateway.max_image_bytes, is 400 naming its URL's path, with no upstream call and no generation used; a
// valid inline image and an https URL are forwarded as sent.
TEST_F(Gateway, ImagePartsAreCheckedBeforeTheUpstream) {
  start_one({"quota.free_per_day=1", "gateway.max_image_bytes=64"});
  auto with_image = [](const std::string& url) {
    return R"({"model":"mock-1","messages":[{"role":"user","content":[{"type":"text","text":"what is it?"},)"
           R"({"type":"image_url","image_url":{"url":")"
           + url + R"("}}]}]})";
  };
  // "\xff\xd8\xff\xe0JFIF" (JPEG) declared as PNG; 66 bytes of GIF; then a 9-byte GIF and a URL.
  const std::string jpeg_as_png = "data:image/png;base64,/9j/4EpGSUY=";
  const std::string big_gif = "data:image/gif;base64,R0lGODlh" + std::string(80, 'A');
  const std::string small_gif = "data:image/gif;base64,R0lGODlhAQABAA==";
  for (const auto& url : {jpeg_as_png, big_gif}) {
    auto res = chat(with_image(url));
    EXPECT_EQ(res.status, 400) << url << ": " << res.body;
    auto doc = parse_json(res.body);
    ASSERT_TRUE(doc.IsObject() && doc.HasMember("error")) << res.body;
    EXPECT_EQ(std::string(doc["error"]["param"].GetString()), "messages[0].content[1].image_url.url") << res.body;
  }
  EXPECT_EQ(hits(*mock_a), 0);
  // The generation of the day was not used by the refusals: this one takes it.
  auto ok = chat(R"({"model":"mock-1","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":")"
                 + small_gif + R"("}},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  auto seen = http_get(mock_a->base_url() + "/mock/last_request");
  ASSERT_EQ(seen.status, 200);
  EXPECT_NE(seen.body.find(small_gif), std::string::npos) << seen.body;
  EXPECT_NE(seen.body.find("https://example.com/a.png"), std::string::npos) << seen.body;
}

} // namespace
} // namespace troupe::testing
