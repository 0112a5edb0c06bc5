// The pro wishlist end to end (issue 18 item 3): the real binary, PostgreSQL started by the harness (a scratch
// database per test, so row counts are exact). Anyone may list an email, once (idempotent per email, the first
// submission wins), within the address's sign-up limit; bad input is a 400 that writes nothing; admins page through
// the list as JSON or CSV.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <memory>
#include <set>

namespace troupe::testing {
namespace {

class Wishlist : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(db_.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)"; }

  scratch_database db_;
  std::unique_ptr<troupe_process> troupe;

  void start(std::vector<std::string> sets) {
    troupe_process::options opts;
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    for (const auto& s : sets) {
      opts.args.push_back("--set");
      opts.args.push_back(s);
    }
    troupe = std::make_unique<troupe_process>(opts);
  }

  http_result post(const std::string& body, std::vector<std::string> headers = {}) {
    headers.push_back("Content-Type: application/json");
    return http({"POST", troupe->url("/api/wishlist"), body, headers, 10000});
  }

  http_result list(const std::string& query, const std::string& token, bool csv = false) {
    std::vector<std::string> headers{"Authorization: Bearer " + token};
    if (csv)
      headers.push_back("Accept: text/csv");
    return http({"GET", troupe->url("/api/wishlist" + query), "", headers, 10000});
  }

  int64_t rows(const std::string& where = "true") {
    pqxx::connection conn{db_.url()};
    pqxx::work tx{conn};
    return tx.exec1("SELECT count(*) FROM pro_wishlist WHERE " + where)[0].as<int64_t>();
  }

  std::string column(const std::string& select, const std::string& email) {
    pqxx::connection conn{db_.url()};
    pqxx::work tx{conn};
    auto r = tx.exec_params1("SELECT COALESCE((" + select + ")::text, '') FROM pro_wishlist WHERE email = $1", email);
    return r[0].as<std::string>();
  }

  /// Registers `email`, makes it an admin with `troupe admin grant` (before its first sign-in), and signs in.
  std::string admin_token(const std::string& email) {
    auto body = R"({"email":")" + email + R"(","password":"correct horse battery"})";
    auto reg = http({"POST", troupe->url("/api/auth/register"), body, {"Content-Type: application/json"}, 20000});
    EXPECT_EQ(reg.status, 201) << reg.body;
    std::string out;
    EXPECT_EQ(run_command("TROUPE_DATABASE_URL='" + db_.url() + "' " TROUPE_BINARY " admin grant " + email, out), 0)
      << out;
    auto login = http({"POST", troupe->url("/api/auth/login"), body, {"Content-Type: application/json"}, 20000});
    EXPECT_EQ(login.status, 200) << login.body;
    return json_string(login, "access_token");
  }
};

// One row per email whatever the case and however often it is sent; the first submission's fields stay; a signed-in
// caller's user id is recorded; every bad request is a 400 (or 401) that writes nothing.
TEST_F(Wishlist, AnEmailIsListedOnceAndBadInputWritesNothing) {
  start({"limits.auth_burst=100"});
  auto first = post(R"({"email":"Ada@Example.com","lang":"pt-BR","source":"pricing","note":"teams plan"})");
  ASSERT_EQ(first.status, 201) << first.body;
  auto doc = parse_json(first.body);
  EXPECT_EQ(std::string(doc["email"].GetString()), "ada@example.com");
  EXPECT_TRUE(doc["listed"].GetBool());

  // Again, in other case and with another note: the same answer, and nothing changes.
  auto again = post(R"({"email":"  ADA@example.COM ","note":"overwritten?"})");
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(rows(), 1);
  EXPECT_EQ(column("note", "ada@example.com"), "teams plan");
  EXPECT_EQ(column("lang", "ada@example.com"), "pt-BR");
  EXPECT_EQ(column("source", "ada@example.com"), "pricing");
  EXPECT_EQ(column("host(ip)", "ada@example.com"), "127.0.0.1");
  EXPECT_EQ(column("user_id", "ada@example.com"), "");

  struct bad_case {
    const char* body;
    const char* param;
  };
  for (auto [body, param] : std::initializer_list<bad_case>{
         {R"({"email":"not-an-address"})", "email"},
         {R"({"email":"a@b"})", "email"},
         {R"({"lang":"en"})", "email"},
         {R"({"email":"x@example.com","lang":"english please"})", "lang"},
         {R"({"email":"x@example.com","note":""})", "note"},
         {R"({"email":"x@example.com","admin":true})", "admin"},
         {R"({"email":"x@example.com","note":"a\u0000b"})", "note"},
         {R"({"email":"x@example.com","email":"y@example.com"})", "email"}}) {
    auto res = post(body);
    EXPECT_EQ(res.status, 400) << body << ": " << res.body;
    auto err = parse_json(res.body);
    ASSERT_TRUE(err.IsObject() && err.HasMember("error")) << res.body;
    EXPECT_EQ(std::string(err["error"]["param"].GetString()), param) << body << ": " << res.body;
  }
  EXPECT_EQ(post("{not json").status, 400);
  EXPECT_EQ(post(std::string(R"({"email":"x@example.com","note":")") + std::string(2001, 'n') + "\"}").status, 400);
  // A credential, when sent, must be valid: a made-up one is a 401, not an anonymous entry.
  EXPECT_EQ(post(R"({"email":"x@example.com"})", {"Authorization: Bearer made.up.token"}).status, 401);
  EXPECT_EQ(rows(), 1);

  // A signed-in caller's entry carries its user id.
  auto login = sign_up(*troupe, "member@example.com");
  auto token = json_string(login, "access_token");
  auto mine = post(R"({"email":"member@example.com","source":"app"})", {"Authorization: Bearer " + token});
  ASSERT_EQ(mine.status, 201) << mine.body;
  EXPECT_EQ(rows(), 2);
  EXPECT_EQ(column("user_id", "member@example.com").size(), 36u);
}

// Anonymous submissions take the address's sign-up allowance: past the burst, 429 with Retry-After and no row.
TEST_F(Wishlist, AnonymousSubmissionsAreLimitedPerAddress) {
  start({"limits.auth_burst=3", "limits.auth_per_minute=0.001"});
  for (int i = 0; i < 3; ++i) {
    auto res = post(R"({"email":"n)" + std::to_string(i) + R"(@example.com"})");
    EXPECT_EQ(res.status, 201) << i << ": " << res.body;
  }
  auto refused = post(R"({"email":"n3@example.com"})");
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_FALSE(refused.header("retry-after").empty());
  EXPECT_EQ(rows(), 3);
  EXPECT_EQ(rows("email = 'n3@example.com'"), 0);
}

// Admins page through the list newest first, by cursor, as JSON or CSV; everyone else gets 401 or 403.
TEST_F(Wishlist, AdminsPageThroughTheListAsJsonOrCsv) {
  start({"limits.auth_burst=100"});
  for (const char* body : {R"({"email":"p1@example.com"})", R"({"email":"p2@example.com","lang":"en"})",
                           R"j({"email":"p3@example.com","note":"=HYPERLINK(\"http://evil\")"})j",
                           R"({"email":"p4@example.com","note":"line one\nline, two"})",
                           R"({"email":"p5@example.com","source":"blog"})"})
    ASSERT_EQ(post(body).status, 201) << body;

  EXPECT_EQ(http_get(troupe->url("/api/wishlist")).status, 401);
  auto user = json_string(sign_up(*troupe, "plain@example.com"), "access_token");
  EXPECT_EQ(list("", user).status, 403);

  auto admin = admin_token("boss@example.com");
  std::vector<std::string> seen;
  std::string query = "?limit=2";
  for (int page = 0; page < 4; ++page) {
    auto res = list(query, admin);
    ASSERT_EQ(res.status, 200) << res.body;
    auto doc = parse_json(res.body);
    for (const auto& e : doc["data"].GetArray())
      seen.emplace_back(e["email"].GetString());
    if (doc["next_cursor"].IsNull()) {
      EXPECT_TRUE(res.header("link").empty());
      break;
    }
    std::string cursor = doc["next_cursor"].GetString();
    EXPECT_EQ(res.header("link"), "</api/wishlist?limit=2&cursor=" + cursor + ">; rel=\"next\"");
    query = "?limit=2&cursor=" + cursor;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"p5@example.com", "p4@example.com", "p3@example.com", "p2@example.com",
                                            "p1@example.com"}));

  auto csv = list("?limit=10", admin, true);
  ASSERT_EQ(csv.status, 200) << csv.body;
  EXPECT_EQ(csv.header("content-type"), "text/csv; charset=utf-8");
  EXPECT_EQ(csv.body.rfind("email,lang,source,note,user_id,ip,created_at,id\r\n", 0), 0u) << csv.body;
  EXPECT_NE(csv.body.find("p3@example.com,,,\"'=HYPERLINK(\"\"http://evil\"\")\",,127.0.0.1,"), std::string::npos)
    << csv.body;
  EXPECT_NE(csv.body.find("p4@example.com,,,\"line one\nline, two\",,127.0.0.1,"), std::string::npos) << csv.body;
  EXPECT_NE(csv.body.find("p2@example.com,en,,,,127.0.0.1,"), std::string::npos) << csv.body;

  for (const char* bad : {"?cursor=garbage", "?cursor=12_not-a-uuid", "?limit=0", "?limit=1001"})
    EXPECT_EQ(list(bad, admin).status, 400) << bad;
  EXPECT_EQ(list("?limit=5000", admin, true).status, 200); // CSV pages may be larger
}

} // namespace
} // namespace troupe::testing
