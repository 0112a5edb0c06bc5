// Accounts, tokens, API keys and sessions on the real binary against a real PostgreSQL.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sodium.h>

#include <algorithm>
#include <ctime>
#include <thread>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

rapidjson::Document parse(const std::string& body) {
  return parse_json(body);
}

std::string field(const http_result& res, const char* name) {
  return json_string(res, name);
}

std::string error_code(const http_result& res) {
  auto doc = parse(res.body);
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("error"))
    return {};
  return doc["error"]["code"].GetString();
}

std::string error_param(const http_result& res) {
  auto doc = parse(res.body);
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("error") || !doc["error"].HasMember("param"))
    return {};
  return doc["error"]["param"].GetString();
}

std::string b64url(const std::string& raw) {
  std::string out(sodium_base64_encoded_len(raw.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()), raw.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.find('\0'));
  return out;
}

/// An HS256 JWT made by hand (not by the code under test).
std::string forge(const std::string& header, const std::string& payload, const std::string& key) {
  auto signing_input = b64url(header) + "." + b64url(payload);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(signing_input.data()),
                                signing_input.size());
  crypto_auth_hmacsha256_final(&st, mac);
  return signing_input + "." + b64url(std::string{reinterpret_cast<char*>(mac), sizeof(mac)});
}

class Auth : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
    ASSERT_GE(sodium_init(), 0);
  }

  std::unique_ptr<troupe_process> start(std::vector<std::string> args = {},
                                        std::map<std::string, std::string> env = {}) {
    troupe_process::options opts;
    // Many sign-ins from one address: the auth rate limit is tested in traffic_test.cpp, the login throttle here.
    opts.args = {"--set", "limits.auth_burst=1000"};
    opts.args.insert(opts.args.end(), args.begin(), args.end());
    opts.env = std::move(env);
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    return std::make_unique<troupe_process>(opts);
  }

  static http_result post(const troupe_process& t, const std::string& path, const std::string& body,
                          const std::string& bearer = "") {
    std::vector<std::string> headers{"Content-Type: application/json"};
    if (!bearer.empty())
      headers.push_back("Authorization: Bearer " + bearer);
    return http({"POST", t.url(path), body, headers, 20000});
  }

  static http_result get(const troupe_process& t, const std::string& path, const std::string& bearer) {
    return http({"GET", t.url(path), "", {"Authorization: Bearer " + bearer}, 20000});
  }

  static std::string credentials(const std::string& email, const std::string& password) {
    return R"({"email":")" + email + R"(","password":")" + password + "\"}";
  }

  /// Registers and logs in; returns the login response.
  http_result sign_up(const troupe_process& t, const std::string& email,
                      const std::string& password = "correct horse battery") {
    auto reg = post(t, "/api/auth/register", credentials(email, password));
    EXPECT_EQ(reg.status, 201) << reg.body;
    auto login = post(t, "/api/auth/login", credentials(email, password));
    EXPECT_EQ(login.status, 200) << login.body;
    return login;
  }

  std::string count(const std::string& sql) { return db_.scalar(sql); }

  scratch_database db_;
};

} // namespace

// Register, log in, and read the account with the access token; the email is normalised.
TEST_F(Auth, RegisterLoginAndMe) {
  auto t = start();
  auto reg = post(*t, "/api/auth/register", credentials("  Alice@Example.COM ", "correct horse battery"));
  ASSERT_EQ(reg.status, 201) << reg.body;
  auto user_id = field(reg, "user_id");
  EXPECT_EQ(user_id.size(), 36u);
  auto login = post(*t, "/api/auth/login", credentials("alice@example.com", "correct horse battery"));
  ASSERT_EQ(login.status, 200) << login.body;
  EXPECT_EQ(field(login, "token_type"), "Bearer");
  EXPECT_EQ(parse(login.body)["expires_in"].GetInt(), 900);
  EXPECT_FALSE(field(login, "refresh_token").empty());
  EXPECT_EQ(login.header("cache-control"), "no-store");
  auto me = get(*t, "/api/me", field(login, "access_token"));
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(field(me, "user_id"), user_id);
  EXPECT_EQ(field(me, "email"), "alice@example.com");
  EXPECT_EQ(field(me, "role"), "user");
  EXPECT_EQ(me.header("cache-control"), "private, no-cache");
  EXPECT_FALSE(me.header("etag").empty());
  // The password is stored as an argon2id hash only.
  EXPECT_EQ(count("SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$%'"), "1");
}

// Bad registrations are refused and change nothing; role and other fields cannot be set through the body.
TEST_F(Auth, RegistrationIsValidated) {
  auto t = start();
  ASSERT_EQ(post(*t, "/api/auth/register", credentials("bob@example.com", "long enough pw")).status, 201);
  auto dup = post(*t, "/api/auth/register", credentials("BOB@example.com", "another long pw"));
  EXPECT_EQ(dup.status, 409);
  std::vector<std::pair<std::string, std::string>> cases{
    {credentials("carol@example.com", "short"), "password"},
    {credentials("carol@example.com", std::string(257, 'p')), "password"},
    {credentials("not-an-email", "long enough pw"), "email"},
    {credentials("a@b", "long enough pw"), "email"},
    {R"({"email":"carol@example.com","password":"long enough pw","role":"admin"})", "role"},
    {R"({"email":"carol@example.com","password":"long enough pw","user_id":"x"})", "user_id"},
    {R"({"email":"carol@example.com"})", "password"},
  };
  for (const auto& [body, param] : cases) {
    auto res = post(*t, "/api/auth/register", body);
    EXPECT_EQ(res.status, 400) << body.substr(0, 80);
    EXPECT_EQ(error_param(res), param) << body.substr(0, 80) << " -> " << res.body;
  }
  EXPECT_EQ(count("SELECT count(*) FROM users"), "1");
}

// A wrong password and an unknown email get the same 401, in about the same time (two tries each: five failures
// from one address would be throttled).
TEST_F(Auth, WrongPasswordAndUnknownEmailLookTheSame) {
  auto t = start();
  sign_up(*t, "dave@example.com");
  auto timed = [&](const std::string& body) {
    std::vector<double> ms;
    http_result last;
    for (int i = 0; i < 2; ++i) {
      auto start = std::chrono::steady_clock::now();
      last = post(*t, "/api/auth/login", body);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    return std::make_pair(last, *std::min_element(ms.begin(), ms.end()));
  };
  auto [wrong, wrong_ms] = timed(credentials("dave@example.com", "not the password"));
  auto [unknown, unknown_ms] = timed(credentials("nobody@example.com", "not the password"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(unknown.status, 401);
  auto message = [](const http_result& r) { return std::string{parse(r.body)["error"]["message"].GetString()}; };
  EXPECT_EQ(message(wrong), message(unknown));
  EXPECT_EQ(wrong.header("www-authenticate"), unknown.header("www-authenticate"));
  // Both verify an argon2id hash (tens of ms): neither answers in a small fraction of the other's time. A skipped hash
  // would answer in ~1 ms, 50x faster; the bound of 10x leaves room for a loaded machine slowing one pair of samples
  // (only 2 per case: a third failure per account, or a fifth from this IP, would be throttled).
  EXPECT_GT(unknown_ms, wrong_ms / 10) << wrong_ms << " ms vs " << unknown_ms << " ms";
  EXPECT_GT(wrong_ms, unknown_ms / 10) << wrong_ms << " ms vs " << unknown_ms << " ms";
  int recorded = 0;
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       recorded < 1 && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(20ms))
    recorded = std::stoi(count("SELECT count(*) FROM security_events WHERE type = 'login_failed'"));
  EXPECT_GE(recorded, 1);
}

// After 5 failures in 15 minutes an account is throttled with 429 and Retry-After, even with the right password.
TEST_F(Auth, RepeatedFailuresAreThrottled) {
  auto t = start();
  sign_up(*t, "erin@example.com");
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(post(*t, "/api/auth/login", credentials("erin@example.com", "wrong password")).status, 401);
  auto limited = post(*t, "/api/auth/login", credentials("erin@example.com", "correct horse battery"));
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(error_code(limited), "rate_limited");
  auto retry_after = std::stoi(limited.header("retry-after"));
  EXPECT_GT(retry_after, 800);
  EXPECT_LE(retry_after, 901);
}

// Refresh rotates the token; presenting a rotated one again revokes the whole family.
TEST_F(Auth, RefreshRotatesAndReuseRevokesTheFamily) {
  auto t = start();
  auto login = sign_up(*t, "frank@example.com");
  auto first = field(login, "refresh_token");
  auto second_res = post(*t, "/api/auth/refresh", R"({"refresh_token":")" + first + "\"}");
  ASSERT_EQ(second_res.status, 200) << second_res.body;
  auto second = field(second_res, "refresh_token");
  EXPECT_NE(first, second);
  EXPECT_EQ(get(*t, "/api/me", field(second_res, "access_token")).status, 200);
  auto reuse = post(*t, "/api/auth/refresh", R"({"refresh_token":")" + first + "\"}");
  EXPECT_EQ(reuse.status, 401);
  // The family is revoked: the newest token no longer works either.
  EXPECT_EQ(post(*t, "/api/auth/refresh", R"({"refresh_token":")" + second + "\"}").status, 401);
  EXPECT_EQ(post(*t, "/api/auth/refresh", R"({"refresh_token":"made-up"})").status, 401);
  int recorded = 0;
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       recorded < 1 && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(20ms))
    recorded = std::stoi(
      count("SELECT count(*) FROM security_events WHERE type = 'refresh_reuse' AND severity = 'critical'"));
  EXPECT_EQ(recorded, 1);
}

// Logout revokes the access token at once and the refresh family.
TEST_F(Auth, LogoutRevokesAccessAndRefresh) {
  auto t = start();
  auto login = sign_up(*t, "gina@example.com");
  auto access = field(login, "access_token");
  auto refresh = field(login, "refresh_token");
  ASSERT_EQ(get(*t, "/api/me", access).status, 200);
  auto out = post(*t, "/api/auth/logout", R"({"refresh_token":")" + refresh + "\"}", access);
  ASSERT_EQ(out.status, 200) << out.body;
  EXPECT_EQ(get(*t, "/api/me", access).status, 401);
  EXPECT_EQ(post(*t, "/api/auth/refresh", R"({"refresh_token":")" + refresh + "\"}").status, 401);
}

// Revocation survives a restart: the revoked token id is in PostgreSQL and the new session loads it.
TEST_F(Auth, RevokedTokenStaysRevokedAfterRestart) {
  std::string access;
  {
    auto t = start();
    access = field(sign_up(*t, "hank@example.com"), "access_token");
    ASSERT_EQ(post(*t, "/api/auth/logout", "", access).status, 200);
  }
  auto t = start();
  EXPECT_EQ(get(*t, "/api/me", access).status, 401);
}

// Every protected route needs a credential.
TEST_F(Auth, ProtectedRoutesNeedACredential) {
  auto t = start();
  for (auto path : {"/api/me", "/api/keys"}) {
    auto res = http_get(t->url(path));
    EXPECT_EQ(res.status, 401) << path;
    EXPECT_EQ(res.header("www-authenticate"), R"(Bearer realm="troupe")");
    EXPECT_EQ(http({"GET", t->url(path), "", {"Authorization: Basic dXNlcjpwdw=="}, 5000}).status, 401);
  }
  EXPECT_EQ(http({"DELETE", t->url("/api/keys/abc"), "", {}, 5000}).status, 401);
}

// Forged and expired tokens are refused over HTTP and recorded as security events.
TEST_F(Auth, ForgedTokensAreRefused) {
  auto t = start();
  auto login = sign_up(*t, "ivy@example.com");
  auto user_id = field(get(*t, "/api/me", field(login, "access_token")), "user_id");
  auto now = static_cast<int64_t>(std::time(nullptr));
  auto claims = [&](int64_t exp) {
    return R"({"iss":"troupe","aud":"troupe-api","sub":")" + user_id + R"(","jti":"j1","role":"admin","iat":)"
           + std::to_string(now) + R"(,"exp":)" + std::to_string(exp) + "}";
  };
  std::vector<std::string> forged{
    forge(R"({"alg":"HS256","typ":"JWT"})", claims(now + 600), "another secret of at least 32 bytes!!"),
    b64url(R"({"alg":"none","typ":"JWT"})") + "." + b64url(claims(now + 600)) + ".",
    forge(R"({"alg":"HS256","typ":"JWT"})", claims(now - 120), test_jwt_secret),  // expired
    forge(R"({"alg":"HS512","typ":"JWT"})", claims(now + 600), test_jwt_secret),
    "not.a.token",
  };
  for (const auto& token : forged)
    EXPECT_EQ(get(*t, "/api/me", token).status, 401) << token;
  // The right key and claims are accepted (the token is ours in all but who made it).
  EXPECT_EQ(get(*t, "/api/me", forge(R"({"alg":"HS256","typ":"JWT"})", claims(now + 600), test_jwt_secret)).status,
            200);
  // Security events are written without holding up the request: wait (bounded) for them to be committed. Events of
  // one type from one address within a minute share a row that counts them.
  int recorded = 0;
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       recorded < 5 && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(20ms))
    recorded = std::stoi(count("SELECT coalesce(sum(count), 0) FROM security_events WHERE type = 'invalid_token'"));
  EXPECT_EQ(recorded, 5);
  EXPECT_LE(std::stoi(count("SELECT count(*) FROM security_events WHERE type = 'invalid_token'")), 2);
}

// API keys: shown once, listed masked, usable as a bearer credential, revoked at once; another user's key is 404.
TEST_F(Auth, ApiKeyLifecycle) {
  auto t = start();
  auto alice = field(sign_up(*t, "jane@example.com"), "access_token");
  auto mallory = field(sign_up(*t, "mallory@example.com"), "access_token");
  auto created = post(*t, "/api/keys", R"({"name":"ci"})", alice);
  ASSERT_EQ(created.status, 201) << created.body;
  auto key = field(created, "key");
  auto id = field(created, "id");
  ASSERT_EQ(key.rfind("trp_", 0), 0u);
  EXPECT_EQ(count("SELECT count(*) FROM api_keys WHERE key_hash = sha256('" + key + "'::bytea)"), "1");
  auto me = get(*t, "/api/me", key);
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(field(me, "email"), "jane@example.com");
  auto list = get(*t, "/api/keys", alice);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body.find(key), std::string::npos) << "a listing must not show the key";
  EXPECT_NE(list.body.find(key.substr(key.size() - 4)), std::string::npos);
  EXPECT_EQ(parse(get(*t, "/api/keys", mallory).body)["keys"].Size(), 0u);
  // Another user cannot see or revoke it.
  EXPECT_EQ(http({"DELETE", t->url("/api/keys/" + id), "", {"Authorization: Bearer " + mallory}, 5000}).status, 404);
  EXPECT_EQ(get(*t, "/api/me", key).status, 200);
  // Its owner revokes it: refused on the next request.
  EXPECT_EQ(http({"DELETE", t->url("/api/keys/" + id), "", {"Authorization: Bearer " + alice}, 5000}).status, 204);
  EXPECT_EQ(get(*t, "/api/me", key).status, 401);
  EXPECT_EQ(get(*t, "/api/me", "trp_" + std::string(43, 'x')).status, 401);
  EXPECT_EQ(http({"DELETE", t->url("/api/keys/not-a-uuid"), "", {"Authorization: Bearer " + alice}, 5000}).status,
            404);
}

// Registering with an email of TROUPE_ADMIN_EMAILS grants nothing (whoever registers first would get it); the list
// applies at start-up to accounts that exist, logging each grant, and `troupe admin grant|revoke` does the rest.
TEST_F(Auth, RegistrationNeverGrantsAdmin) {
  std::map<std::string, std::string> admins{{"TROUPE_ADMIN_EMAILS", "boss@example.com, other@example.com"}};
  {
    auto t = start({}, admins);
    auto boss = field(sign_up(*t, "Boss@Example.com"), "access_token");
    EXPECT_EQ(field(get(*t, "/api/me", boss), "role"), "user") << "an attacker registering first must not be admin";
    EXPECT_NE(t->output().find(R"("msg":"admin email has no account)"), std::string::npos) << t->output();
    sign_up(*t, "kim@example.com");
  }
  {
    // At the next start the account exists: it is made admin, and the log says so.
    auto t = start({}, admins);
    EXPECT_TRUE(t->wait_for_output(R"("msg":"admin granted at start-up")", 5s)) << t->output();
    EXPECT_NE(t->output().find(R"("email":"boss@example.com")"), std::string::npos);
    auto boss = post(*t, "/api/auth/login", credentials("boss@example.com", "correct horse battery"));
    EXPECT_EQ(field(get(*t, "/api/me", field(boss, "access_token")), "role"), "admin");
  }
  std::string out;
  auto cli = [&](const std::string& args) {
    return run_command("TROUPE_DATABASE_URL='" + db_.url() + "' " TROUPE_BINARY " admin " + args, out);
  };
  ASSERT_EQ(cli("grant KIM@example.com"), 0) << out;
  EXPECT_NE(out.find("kim@example.com is now an admin"), std::string::npos) << out;
  EXPECT_EQ(cli("grant kim@example.com"), 0) << out;
  EXPECT_NE(out.find("already an admin"), std::string::npos) << out;
  EXPECT_EQ(cli("grant nobody@example.com"), 1);
  EXPECT_EQ(cli("frobnicate kim@example.com"), 2);
  {
    auto t = start();
    auto kim = post(*t, "/api/auth/login", credentials("kim@example.com", "correct horse battery"));
    EXPECT_EQ(field(get(*t, "/api/me", field(kim, "access_token")), "role"), "admin");
  }
  ASSERT_EQ(cli("revoke kim@example.com"), 0) << out;
  EXPECT_NE(out.find("kim@example.com is no longer an admin"), std::string::npos) << out;
  auto t = start();
  auto kim = post(*t, "/api/auth/login", credentials("kim@example.com", "correct horse battery"));
  EXPECT_EQ(field(get(*t, "/api/me", field(kim, "access_token")), "role"), "user");
}

// Five wrong passwords from one address (behind a trusted proxy) hold back that address for the account, not the
// owner signing in from another address; a success elsewhere does not clear the first address's failures.
TEST_F(Auth, FailuresFromOneAddressDoNotLockOutTheOwner) {
  auto t = start({"--set", "http.trusted_proxies=127.0.0.1"});
  sign_up(*t, "owner@example.com");
  auto login_from = [&](const std::string& client, const std::string& password) {
    return http({"POST",
                 t->url("/api/auth/login"),
                 credentials("owner@example.com", password),
                 {"Content-Type: application/json", "X-Forwarded-For: " + client},
                 20000});
  };
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(login_from("203.0.113.66", "wrong password").status, 401);
  auto attacker = login_from("203.0.113.66", "correct horse battery");
  EXPECT_EQ(attacker.status, 429) << "the failing address waits, even with the right password";
  EXPECT_EQ(error_code(attacker), "rate_limited");
  EXPECT_GT(std::stoi(attacker.header("retry-after")), 800);
  auto owner = login_from("198.51.100.20", "correct horse battery");
  EXPECT_EQ(owner.status, 200) << owner.body;
  EXPECT_FALSE(field(owner, "access_token").empty());
  EXPECT_EQ(login_from("203.0.113.66", "correct horse battery").status, 429);
}

// An address failing across many accounts (credential stuffing) is held back for every account, including ones it
// has not tried yet; other addresses are not.
TEST_F(Auth, AnAddressFailingAcrossAccountsIsThrottled) {
  auto t = start({"--set", "http.trusted_proxies=127.0.0.1"});
  sign_up(*t, "victim@example.com");
  auto login_from = [&](const std::string& client, const std::string& email, const std::string& password) {
    return http({"POST",
                 t->url("/api/auth/login"),
                 credentials(email, password),
                 {"Content-Type: application/json", "X-Forwarded-For: " + client},
                 20000})
      .status;
  };
  for (int i = 0; i < 20; ++i) // auth.login_max_address_failures
    EXPECT_EQ(login_from("203.0.113.77", "user" + std::to_string(i) + "@example.com", "guess"), 401);
  EXPECT_EQ(login_from("203.0.113.77", "victim@example.com", "correct horse battery"), 429);
  EXPECT_EQ(login_from("198.51.100.21", "victim@example.com", "correct horse battery"), 200);
}

// An idle session actor is passivated, and the next request rebuilds it from PostgreSQL.
TEST_F(Auth, IdleSessionsArePassivatedAndRebuilt) {
  // Idle for 3 s: long enough for the first scrape to see the session on a loaded machine.
  auto t = start({"--set", "session.idle_ms=3000"});
  auto access = field(sign_up(*t, "lee@example.com"), "access_token");
  ASSERT_EQ(get(*t, "/api/me", access).status, 200);
  EXPECT_NE(http_get(t->url("/metrics")).body.find("troupe_sessions_active 1"), std::string::npos);
  ASSERT_TRUE(t->wait_for_output("\"msg\":\"request\"", 5s));
  bool passivated = false;
  for (auto deadline = std::chrono::steady_clock::now() + 15s; !passivated && std::chrono::steady_clock::now() < deadline;) {
    passivated = http_get(t->url("/metrics")).body.find("troupe_sessions_active 0") != std::string::npos;
    if (!passivated)
      std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(passivated);
  EXPECT_EQ(get(*t, "/api/me", access).status, 200);
}

// Serving refuses to start without a strong token key.
TEST(AuthConfig, WeakJwtSecretRefusesToStart) {
  std::string out;
  EXPECT_EQ(run_command("TROUPE_JWT_SECRET=short " TROUPE_BINARY " --set http.port=0", out), 2);
  EXPECT_NE(out.find("TROUPE_JWT_SECRET"), std::string::npos);
  EXPECT_EQ(out.find("short"), std::string::npos) << "the secret must not be echoed";
}
