// Guest access end to end (issue 18 item 4): the real binary in front of the mock upstream, PostgreSQL started by
// the harness. Off by default. With guest.enabled, POST /api/guest/token gives a client address its guest (one per
// address, whatever the number of tokens) and a token bound to that address: it generates within the guest's daily
// quota, counted like a user's; it is refused from another address and on every route but generation. Client
// addresses come from X-Forwarded-For, the test's loopback being a trusted proxy.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <signal.h>

#include <chrono>
#include <memory>
#include <thread>

namespace troupe::testing {
namespace {

class Guests : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(db_.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)"; }

  scratch_database db_;
  mock_upstream_process mock;
  std::unique_ptr<troupe_process> troupe;

  void start(std::vector<std::string> sets) {
    troupe_process::options opts;
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    opts.env["TROUPE_UPSTREAMS"] = R"([{"name":"a","base_url":")" + mock.base_url() + R"(/v1","models":["mock-1"]}])";
    opts.args = {"--set", "http.trusted_proxies=127.0.0.1", "--set", "limits.auth_burst=100"};
    for (const auto& s : sets) {
      opts.args.push_back("--set");
      opts.args.push_back(s);
    }
    troupe = std::make_unique<troupe_process>(opts);
  }

  http_result token_for(const std::string& address) {
    return http({"POST", troupe->url("/api/guest/token"), "", {"X-Forwarded-For: " + address}, 10000});
  }

  http_result call(const std::string& method, const std::string& path, const std::string& token,
                   const std::string& address, const std::string& body = "") {
    std::vector<std::string> headers{"Authorization: Bearer " + token, "X-Forwarded-For: " + address};
    if (!body.empty())
      headers.emplace_back("Content-Type: application/json");
    return http({method, troupe->url(path), body, headers, 10000});
  }

  http_result chat(const std::string& token, const std::string& address, int n) {
    return call("POST", "/v1/chat/completions", token, address,
                R"({"model":"mock-1","messages":[{"role":"user","content":"guest question )" + std::to_string(n)
                  + "\"}]}");
  }

  std::string scalar(const std::string& sql) {
    pqxx::connection conn{db_.url()};
    pqxx::work tx{conn};
    return tx.exec1(sql)[0].as<std::string>();
  }

  /// `sql`'s value once it is `expected` (usage is written behind the answers), or its last value after 10 s.
  std::string eventually(const std::string& sql, const std::string& expected) {
    auto value = scalar(sql);
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
         value != expected && std::chrono::steady_clock::now() < deadline; value = scalar(sql))
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    return value;
  }
};

TEST_F(Guests, AreOffByDefault) {
  start({});
  auto res = token_for("203.0.113.5");
  EXPECT_EQ(res.status, 404) << res.body;
  EXPECT_EQ(scalar("SELECT count(*) FROM users"), "0");
}

TEST_F(Guests, AGuestGeneratesWithinItsDailyQuotaFromItsOwnAddressOnly) {
  start({"guest.enabled=true", "guest.per_day=2"});
  auto first = token_for("203.0.113.5");
  ASSERT_EQ(first.status, 201) << first.body;
  auto token = json_string(first, "access_token");
  auto guest = json_string(first, "user_id");
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(guest.size(), 36u);
  EXPECT_EQ(guest[14], '8'); // a version 8 UUID

  EXPECT_EQ(chat(token, "203.0.113.5", 1).status, 200);
  // Another token for the same address is the same guest, with the same quota.
  auto second = token_for("203.0.113.5");
  ASSERT_EQ(second.status, 201);
  EXPECT_EQ(json_string(second, "user_id"), guest);
  auto token2 = json_string(second, "access_token");
  EXPECT_EQ(chat(token2, "203.0.113.5", 2).status, 200);
  auto over = chat(token2, "203.0.113.5", 3);
  EXPECT_EQ(over.status, 429) << over.body;
  EXPECT_FALSE(over.header("retry-after").empty());
  auto me = call("GET", "/api/me", token, "203.0.113.5");
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(json_string(me, "plan"), "guest");

  // From another address the token is refused; that address has a guest of its own, with its own quota.
  EXPECT_EQ(chat(token, "198.51.100.7", 4).status, 401);
  auto other = token_for("198.51.100.7");
  ASSERT_EQ(other.status, 201);
  EXPECT_NE(json_string(other, "user_id"), guest);
  EXPECT_EQ(chat(json_string(other, "access_token"), "198.51.100.7", 5).status, 200);

  // Every X-Forwarded-For line is one list: a line the client sent before the proxy's own does not decide.
  auto spoofed = http({"POST", troupe->url("/api/guest/token"), "",
                       {"X-Forwarded-For: 198.51.100.99", "X-Forwarded-For: 203.0.113.5"}, 10000});
  ASSERT_EQ(spoofed.status, 201) << spoofed.body;
  EXPECT_EQ(json_string(spoofed, "user_id"), guest);

  // A guest only generates; an upload is refused before its body is read.
  auto upload = http({"POST", troupe->url("/api/uploads/"), std::string(1000, 'x'),
                      {"Authorization: Bearer " + token, "X-Forwarded-For: 203.0.113.5", "Tus-Resumable: 1.0.0",
                       "Upload-Length: 1000", "Content-Type: application/offset+octet-stream"},
                      10000});
  EXPECT_EQ(upload.status, 403) << upload.body;
  EXPECT_EQ(call("GET", "/api/keys", token, "203.0.113.5").status, 403);
  EXPECT_EQ(call("POST", "/api/keys", token, "203.0.113.5", R"({"name":"mine"})").status, 403);
  EXPECT_EQ(call("POST", "/api/repositories", token, "203.0.113.5", R"({"name":"mine"})").status, 403);
  EXPECT_EQ(call("GET", "/v1/models", token, "203.0.113.5").status, 200);

  // Two guests, the usage counted like users' (the mock saw three calls); nobody can sign in as one.
  EXPECT_EQ(scalar("SELECT count(*) FROM users WHERE role = 'guest' AND plan = 'guest'"), "2");
  EXPECT_EQ(eventually("SELECT COALESCE(sum(requests), 0) FROM usage u JOIN users s ON s.id = u.user_id "
                       "WHERE s.role = 'guest'",
                       "3"),
            "3");
  auto login = http({"POST", troupe->url("/api/auth/login"),
                     R"({"email":"guest-)" + guest + R"(@guest.invalid","password":"!guest"})",
                     {"Content-Type: application/json"}, 10000});
  EXPECT_EQ(login.status, 401);
  // Nobody registers a guest's email.
  auto taken = http({"POST", troupe->url("/api/auth/register"),
                     R"({"email":"guest-)" + guest + R"(@guest.invalid","password":"correct horse battery"})",
                     {"Content-Type: application/json"}, 10000});
  EXPECT_EQ(taken.status, 400) << taken.body;
}

TEST_F(Guests, TokensAreLimitedPerAddressAndRefusedOnceGuestsAreOff) {
  start({"guest.enabled=true", "limits.auth_burst=2", "limits.auth_per_minute=0.001"});
  auto token = json_string(token_for("203.0.113.9"), "access_token");
  EXPECT_EQ(token_for("203.0.113.9").status, 201);
  auto limited = token_for("203.0.113.9");
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_EQ(scalar("SELECT count(*) FROM users"), "1");
  // Guests turned off: their tokens no longer pass.
  troupe->signal(SIGTERM);
  ASSERT_EQ(troupe->wait_exit(std::chrono::seconds{30}), 0);
  start({});
  EXPECT_EQ(chat(token, "203.0.113.9", 1).status, 401);
}

} // namespace
} // namespace troupe::testing
