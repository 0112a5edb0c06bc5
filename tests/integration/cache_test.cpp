// The cache over HTTP on the real binary against a real PostgreSQL: GET /api/cache/stats, POST /api/cache/clear,
// profiles served from the cache (GET /api/users/{id}) and invalidated by tag, /metrics, and ETag/304 revalidation.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

rapidjson::Document parse(const std::string& body) {
  return parse_json(body);
}

std::string field(const http_result& res, const char* name) {
  return json_string(res, name);
}

/// A number of GET /api/cache/stats's "total" object.
uint64_t total(const http_result& stats, const char* name) {
  auto doc = parse(stats.body);
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("total") || !doc["total"].HasMember(name))
    return ~uint64_t{0};
  return doc["total"][name].GetUint64();
}

class CacheHttp : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
    troupe_process::options opts;
    opts.args = {"--set", "cache.shards=3"};
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    t_ = std::make_unique<troupe_process>(opts);
  }

  http_result post(const std::string& path, const std::string& body, const std::string& bearer = "",
                   const std::string& content_type = "application/json") {
    std::vector<std::string> headers{"Content-Type: " + content_type};
    if (!bearer.empty())
      headers.push_back("Authorization: Bearer " + bearer);
    return http({"POST", t_->url(path), body, headers, 20000});
  }

  http_result get(const std::string& path, const std::string& bearer, std::vector<std::string> headers = {}) {
    headers.push_back("Authorization: Bearer " + bearer);
    return http({"GET", t_->url(path), "", headers, 20000});
  }

  /// Registers and logs in; returns {user id, access token}. admin@example.com is made an admin once registered
  /// (as `troupe admin grant` does; registration never grants it), before its first authenticated request.
  std::pair<std::string, std::string> sign_up(const std::string& email) {
    auto credentials = R"({"email":")" + email + R"(","password":"correct horse battery"})";
    auto reg = post("/api/auth/register", credentials);
    EXPECT_EQ(reg.status, 201) << reg.body;
    if (email == "admin@example.com")
      db_.execute("UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'");
    auto login = post("/api/auth/login", credentials);
    EXPECT_EQ(login.status, 200) << login.body;
    return {field(reg, "user_id"), field(login, "access_token")};
  }

  scratch_database db_;
  std::unique_ptr<troupe_process> t_;
};

} // namespace

// Stats need a credential and report every counter in total and for each configured shard.
TEST_F(CacheHttp, StatsReportTotalsAndShards) {
  EXPECT_EQ(http_get(t_->url("/api/cache/stats")).status, 401);
  auto [id, token] = sign_up("stats@example.com");
  auto stats = get("/api/cache/stats", token);
  ASSERT_EQ(stats.status, 200) << stats.body;
  auto doc = parse(stats.body);
  ASSERT_TRUE(doc.IsObject()) << stats.body;
  EXPECT_EQ(doc["shards"].GetUint64(), 3u);
  EXPECT_EQ(doc["max_bytes"].GetUint64(), 268435456u);
  ASSERT_EQ(doc["per_shard"].Size(), 3u);
  for (const char* name : {"hits", "misses", "evictions", "expirations", "bytes", "entries"}) {
    EXPECT_TRUE(doc["total"].HasMember(name)) << name;
    EXPECT_TRUE(doc["per_shard"][0].HasMember(name)) << name;
  }
  EXPECT_EQ(stats.header("cache-control"), "private, no-cache");
  EXPECT_EQ(stats.header("etag").size(), 66u) << "a quoted SHA-256 in hex";
}

// A profile is looked up in PostgreSQL once, then served from the cache until its tag is invalidated; only the
// user (or an admin) can read it.
TEST_F(CacheHttp, ProfilesAreServedFromTheCacheUntilInvalidated) {
  auto [alice, alice_token] = sign_up("alice@example.com");
  auto [admin, admin_token] = sign_up("admin@example.com");
  auto first = get("/api/users/" + alice, alice_token);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(field(first, "user_id"), alice);
  EXPECT_EQ(field(first, "email"), "alice@example.com");
  EXPECT_EQ(field(first, "role"), "user");
  EXPECT_EQ(first.body.find("password"), std::string::npos);
  EXPECT_EQ(first.header("cache-control"), "private, no-cache");
  auto before = get("/api/cache/stats", alice_token);
  // The change is made behind Troupe's back: the cached profile stays until it is invalidated.
  db_.execute("UPDATE users SET plan = 'pro' WHERE id = '" + alice + "'");
  auto second = get("/api/users/" + alice, alice_token);
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(second.body, first.body);
  auto after = get("/api/cache/stats", alice_token);
  EXPECT_EQ(total(after, "hits"), total(before, "hits") + 1);
  EXPECT_EQ(total(after, "misses"), total(before, "misses"));
  EXPECT_GE(total(after, "entries"), 1u);

  // Other users' profiles are not found; an admin reads any, and an unknown id is 404 for everyone.
  EXPECT_EQ(get("/api/users/" + admin, alice_token).status, 404);
  EXPECT_EQ(get("/api/users/" + alice, admin_token).status, 200);
  EXPECT_EQ(get("/api/users/00000000-0000-0000-0000-000000000000", admin_token).status, 404);

  // Invalidating the user's tag makes the next read go to PostgreSQL again.
  auto cleared = post("/api/cache/clear", R"({"tag":"user:)" + alice + "\"}", admin_token);
  ASSERT_EQ(cleared.status, 200) << cleared.body;
  EXPECT_EQ(parse(cleared.body)["removed"].GetUint64(), 1u);
  EXPECT_EQ(field(cleared, "scope"), "tag");
  auto fresh = get("/api/users/" + alice, alice_token);
  ASSERT_EQ(fresh.status, 200);
  EXPECT_EQ(field(fresh, "plan"), "pro");
}

// Clearing is for admins; it takes nothing, {}, a tag or a prefix, and refuses anything else.
TEST_F(CacheHttp, ClearIsForAdminsAndValidated) {
  auto [user, user_token] = sign_up("user@example.com");
  auto [admin, admin_token] = sign_up("admin@example.com");
  EXPECT_EQ(post("/api/cache/clear", "").status, 401);
  EXPECT_EQ(post("/api/cache/clear", "", user_token).status, 403);
  ASSERT_EQ(get("/api/users/" + user, user_token).status, 200);
  ASSERT_EQ(get("/api/users/" + admin, admin_token).status, 200);
  auto by_prefix = post("/api/cache/clear", R"({"prefix":"user:"})", admin_token);
  ASSERT_EQ(by_prefix.status, 200) << by_prefix.body;
  EXPECT_EQ(parse(by_prefix.body)["removed"].GetUint64(), 2u);
  EXPECT_EQ(field(by_prefix, "prefix"), "user:");
  ASSERT_EQ(get("/api/users/" + user, user_token).status, 200);
  auto all = post("/api/cache/clear", "", admin_token);
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(parse(all.body)["removed"].GetUint64(), 1u);
  EXPECT_EQ(field(all, "scope"), "all");
  EXPECT_EQ(post("/api/cache/clear", "{}", admin_token).status, 200);
  auto both = post("/api/cache/clear", R"({"tag":"a","prefix":"b"})", admin_token);
  EXPECT_EQ(both.status, 400);
  auto unknown = post("/api/cache/clear", R"({"key":"a"})", admin_token);
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("\"param\":\"key\""), std::string::npos) << unknown.body;
  EXPECT_EQ(post("/api/cache/clear", R"({"tag":""})", admin_token).status, 400);
  EXPECT_EQ(post("/api/cache/clear", "tag=a", admin_token, "text/plain").status, 415);
  auto stats = get("/api/cache/stats", admin_token);
  EXPECT_EQ(total(stats, "entries"), 0u);
  EXPECT_EQ(total(stats, "invalidations"), 3u);
}

// A cacheable GET carries a strong ETag; If-None-Match with it (alone, in a list, weak, or *) gets 304 with no body
// but the same ETag and Cache-Control; another tag gets the full 200.
TEST_F(CacheHttp, MatchingIfNoneMatchGets304) {
  auto [id, token] = sign_up("etag@example.com");
  auto path = "/api/users/" + id;
  auto full = get(path, token);
  ASSERT_EQ(full.status, 200);
  auto etag = full.header("etag");
  ASSERT_EQ(etag.size(), 66u) << etag;
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(get(path, token).header("etag"), etag) << "the same body has the same tag";
  for (const std::string& condition : {etag, "\"nope\", " + etag, "W/" + etag, std::string{"*"}}) {
    auto res = get(path, token, {"If-None-Match: " + condition});
    EXPECT_EQ(res.status, 304) << condition;
    EXPECT_EQ(res.body, "") << condition;
    EXPECT_EQ(res.header("etag"), etag) << condition;
    EXPECT_EQ(res.header("cache-control"), "private, no-cache") << condition;
    EXPECT_FALSE(res.header("x-request-id").empty());
  }
  auto other = get(path, token, {"If-None-Match: \"something-else\""});
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.body, full.body);
  // Errors and uncacheable routes never get an ETag.
  auto missing = get("/api/users/someone-else", token);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.header("etag"), "");
  EXPECT_EQ(http_get(t_->url("/health")).header("etag"), "");
  // Stats that did not change revalidate too.
  auto stats = get("/api/cache/stats", token);
  EXPECT_EQ(get("/api/cache/stats", token, {"If-None-Match: " + stats.header("etag")}).status, 304);
}

// /metrics carries the cache families, in total and per shard.
TEST_F(CacheHttp, MetricsCarryTheCacheCounters) {
  auto [id, token] = sign_up("metrics@example.com");
  ASSERT_EQ(get("/api/users/" + id, token).status, 200);
  ASSERT_EQ(get("/api/users/" + id, token).status, 200);
  auto metrics = http_get(t_->url("/metrics"));
  ASSERT_EQ(metrics.status, 200);
  for (const char* sample :
       {"\ntroupe_cache_hits_total ", "\ntroupe_cache_misses_total ", "\ntroupe_cache_bytes ",
        "\ntroupe_cache_entries 1\n", "\ntroupe_cache_evictions_total 0\n", "\ntroupe_cache_expirations_total 0\n",
        "\ntroupe_cache_shard_entries{shard=\"2\"} ", "\ntroupe_cache_max_bytes 268435456\n"})
    EXPECT_NE(metrics.body.find(sample), std::string::npos) << sample;
}
