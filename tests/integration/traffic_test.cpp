// Traffic control on the real binary: exact bursts with RateLimit headers, in-flight caps that refuse quickly,
// X-Forwarded-For only from trusted proxies, load shedding, and the quota in GET /api/me.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <future>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

class Traffic : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  }

  std::unique_ptr<troupe_process> start(std::vector<std::string> args = {}) {
    troupe_process::options opts;
    opts.args = std::move(args);
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    return std::make_unique<troupe_process>(opts);
  }

  /// Signs up `email`; returns its access token.
  static std::string token(const troupe_process& t, const std::string& email) {
    auto login = sign_up(t, email);
    EXPECT_EQ(login.status, 200) << login.body;
    return json_string(login, "access_token");
  }

  scratch_database db_;
};

} // namespace

// A burst of 100 lets exactly `burst` through, and the headers count down to 0.
TEST_F(Traffic, BurstLetsExactlyBurstThroughWithCountdown) {
  auto t = start({"--set", "limits.default_per_minute=0.01", "--set", "limits.default_burst=40"});
  auto access = token(*t, "burst@example.com");
  int ok = 0;
  int limited = 0;
  for (int i = 0; i < 100; ++i) {
    auto res = http({"GET", t->url("/api/me"), "", {"Authorization: Bearer " + access}, 10000});
    EXPECT_EQ(res.header("ratelimit-policy"), R"("default";q=0.01;w=60)");
    if (res.status == 200) {
      EXPECT_EQ(res.header("ratelimit").rfind("\"default\";r=" + std::to_string(39 - ok) + ";t=", 0), 0u)
        << res.header("ratelimit");
      ++ok;
    } else {
      EXPECT_EQ(res.status, 429);
      EXPECT_EQ(res.header("ratelimit").rfind(R"("default";r=0;t=)", 0), 0u);
      EXPECT_GE(std::stoi(res.header("retry-after")), 1);
      ++limited;
    }
  }
  EXPECT_EQ(ok, 40);
  EXPECT_EQ(limited, 60);
  EXPECT_NE(http_get(t->url("/metrics")).body.find(R"(troupe_rate_limited_total{policy="default"} 60)"),
            std::string::npos);
}

// Auth routes are limited per client address; X-Forwarded-For counts only from a trusted proxy.
TEST_F(Traffic, ForwardedForIsBelievedOnlyFromTrustedProxies) {
  auto attempt = [](const troupe_process& t, const std::string& client) {
    return http({"POST", t.url("/api/auth/login"), R"({"email":"x@example.com","password":"nope"})",
                 {"Content-Type: application/json", "X-Forwarded-For: " + client}, 10000})
      .status;
  };
  {
    auto t = start({"--set", "limits.auth_per_minute=0.01", "--set", "limits.auth_burst=2"});
    EXPECT_EQ(attempt(*t, "198.51.100.1"), 401);
    EXPECT_EQ(attempt(*t, "198.51.100.2"), 401);
    EXPECT_EQ(attempt(*t, "198.51.100.3"), 429) << "an untrusted peer's X-Forwarded-For must be ignored";
  }
  auto t = start({"--set", "limits.auth_per_minute=0.01", "--set", "limits.auth_burst=2", "--set",
                  "http.trusted_proxies=127.0.0.1"});
  EXPECT_EQ(attempt(*t, "198.51.100.1"), 401);
  EXPECT_EQ(attempt(*t, "198.51.100.1"), 401);
  EXPECT_EQ(attempt(*t, "198.51.100.1"), 429);
  EXPECT_EQ(attempt(*t, "198.51.100.2"), 401) << "another client behind the proxy has its own bucket";
  EXPECT_EQ(attempt(*t, "198.51.100.1, 127.0.0.1"), 429) << "trusted hops are skipped";
}

// Beyond max_inflight + queue, requests get 503 with Retry-After at once; queued ones give up after the wait;
// admitted ones complete.
TEST_F(Traffic, InflightCapRefusesQuicklyBeyondTheQueue) {
  auto t = start({"--set", "debug.enabled=true", "--set", "limits.debug_max_inflight=2", "--set", "limits.queue=2",
                  "--set", "limits.queue_wait_ms=300"});
  std::vector<std::future<std::pair<http_result, double>>> calls;
  for (int i = 0; i < 8; ++i)
    calls.push_back(std::async(std::launch::async, [&] {
      auto start = std::chrono::steady_clock::now();
      auto res = http_get(t->url("/debug/sleep?ms=3000"));
      return std::make_pair(res, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                                   .count());
    }));
  int done = 0;
  int refused = 0;
  double slowest_refusal = 0;
  for (auto& c : calls) {
    auto [res, ms] = c.get();
    if (res.status == 200) {
      ++done;
      EXPECT_GE(ms, 2900);
    } else {
      EXPECT_EQ(res.status, 503) << res.body;
      EXPECT_EQ(res.header("retry-after"), "1");
      ++refused;
      slowest_refusal = std::max(slowest_refusal, ms);
    }
  }
  EXPECT_EQ(done, 2);
  EXPECT_EQ(refused, 6);
  // Queued ones give up after 300 ms (plus a load-monitor tick); the bound leaves room for a loaded machine and still
  // proves that no refusal waited for the 3 s requests.
  EXPECT_LT(slowest_refusal, 2500) << "refusals must not wait for the slow requests";
}

// Over the RSS limit, new API work is refused with 503 and readiness says degraded.
TEST_F(Traffic, LoadIsShedOverTheMemoryLimit) {
  auto t = start({"--set", "limits.max_rss_bytes=1000"});
  auto access = token(*t, "shed@example.com");
  bool degraded = false;
  for (auto deadline = std::chrono::steady_clock::now() + 10s; !degraded && std::chrono::steady_clock::now() < deadline;)
    degraded = http_get(t->url("/api/health")).body.find(R"("load":{"status":"degraded")") != std::string::npos;
  ASSERT_TRUE(degraded);
  auto res = http({"GET", t->url("/api/me"), "", {"Authorization: Bearer " + access}, 10000});
  EXPECT_EQ(res.status, 503);
  EXPECT_FALSE(res.header("retry-after").empty());
  EXPECT_EQ(http_get(t->url("/health")).status, 200) << "liveness is never shed";
}

// GET /api/me shows the daily quota and when it resets.
TEST_F(Traffic, MeShowsTheQuota) {
  auto t = start({"--set", "quota.free_per_day=7", "--set", "quota.reset_utc_hour=3"});
  auto res = http({"GET", t->url("/api/me"), "", {"Authorization: Bearer " + token(*t, "q@example.com")}, 10000});
  ASSERT_EQ(res.status, 200) << res.body;
  rapidjson::Document doc;
  doc.Parse(res.body.c_str());
  EXPECT_EQ(doc["quota"]["limit"].GetInt(), 7);
  EXPECT_EQ(doc["quota"]["remaining"].GetInt(), 7);
  std::string resets = doc["quota"]["resets_at"].GetString();
  EXPECT_EQ(resets.substr(10), "T03:00:00Z") << resets;
}
