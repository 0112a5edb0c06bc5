// The real troupe binary over loopback HTTP: error bodies and headers, limits, metrics, readiness, lifecycle.

#include "tests/integration/harness.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <future>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  EXPECT_FALSE(doc.HasParseError()) << body;
  return doc;
}

/// Checks the OpenAI-shaped error body the README documents and returns its "error" object's code.
std::string error_code(const http_result& res) {
  auto doc = parse(res.body);
  EXPECT_TRUE(doc.IsObject() && doc.HasMember("error")) << res.body;
  if (!doc.IsObject() || !doc.HasMember("error"))
    return {};
  const auto& err = doc["error"];
  EXPECT_TRUE(err["type"].IsString());
  EXPECT_TRUE(err["message"].IsString());
  EXPECT_GT(err["message"].GetStringLength(), 0u);
  EXPECT_EQ(std::string{err["request_id"].GetString()}, res.header("x-request-id"));
  return err["code"].GetString();
}

void expect_standard_headers(const http_result& res) {
  EXPECT_FALSE(res.header("x-request-id").empty());
  EXPECT_EQ(res.header("x-content-type-options"), "nosniff");
  EXPECT_EQ(res.header("referrer-policy"), "no-referrer");
}

troupe_process::options debug_on(std::vector<std::string> more = {}) {
  troupe_process::options opts;
  opts.args = {"--set", "debug.enabled=true"};
  opts.args.insert(opts.args.end(), more.begin(), more.end());
  return opts;
}

http_result post_json(const std::string& url, const std::string& body) {
  return http({"POST", url, body, {"Content-Type: application/json"}, 10000});
}

} // namespace

// Liveness answers 200 with the security headers, and keeps HTTP/1.1 connections open.
TEST(Server, HealthIsOkWithStandardHeaders) {
  troupe_process troupe{{}};
  auto res = http_get(troupe.url("/health"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, R"({"status":"ok"})");
  expect_standard_headers(res);
  EXPECT_EQ(res.header("content-security-policy"), "default-src 'none'");
  EXPECT_EQ(res.header("content-type"), "application/json");
  EXPECT_EQ(res.header("connection"), "keep-alive");
}

// A client that asks to close gets Connection: close.
TEST(Server, ConnectionCloseIsHonoured) {
  troupe_process troupe{{}};
  auto res = http({"GET", troupe.url("/health"), "", {"Connection: close"}, 10000});
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.header("connection"), "close");
}

// An unknown route is a 404 with the JSON error body.
TEST(Server, UnknownRouteIs404WithErrorBody) {
  troupe_process troupe{{}};
  auto res = http_get(troupe.url("/no/such/route"));
  EXPECT_EQ(res.status, 404);
  expect_standard_headers(res);
  EXPECT_EQ(error_code(res), "not_found");
}

// A known route with the wrong method is a 405 naming the allowed methods.
TEST(Server, WrongMethodIs405WithAllow) {
  troupe_process troupe{{}};
  auto res = http({"DELETE", troupe.url("/health"), "", {}, 10000});
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.header("allow"), "GET");
  EXPECT_EQ(error_code(res), "method_not_allowed");
}

// A body over http.max_body_bytes is a 413 that says the limit.
TEST(Server, OversizedBodyIs413) {
  troupe_process troupe{debug_on({"--set", "http.max_body_bytes=1024"})};
  auto res = post_json(troupe.url("/debug/echo"), "[" + std::string(2000, ' ') + "]");
  EXPECT_EQ(res.status, 413);
  EXPECT_EQ(error_code(res), "payload_too_large");
  EXPECT_NE(res.body.find("1024"), std::string::npos);
  // At the limit it is accepted.
  auto ok = post_json(troupe.url("/debug/echo"), "[" + std::string(1022, ' ') + "]");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

// Malformed JSON is a 400 that says where parsing failed.
TEST(Server, MalformedJsonIs400) {
  troupe_process troupe{debug_on()};
  for (std::string body : {R"({"a":)", "{]", R"({"a":1} trailing)", ""}) {
    auto res = post_json(troupe.url("/debug/echo"), body);
    EXPECT_EQ(res.status, 400) << body;
    EXPECT_EQ(error_code(res), "invalid_json") << body;
    EXPECT_NE(res.body.find("at byte"), std::string::npos) << res.body;
  }
}

// A body that is not declared as JSON is a 415.
TEST(Server, NonJsonContentTypeIs415) {
  troupe_process troupe{debug_on()};
  auto res =
    http({"POST", troupe.url("/debug/echo"), "a=1", {"Content-Type: application/x-www-form-urlencoded"}, 10000});
  EXPECT_EQ(res.status, 415);
  EXPECT_EQ(error_code(res), "unsupported_media_type");
}

// A JSON body travels to an actor and back unchanged.
TEST(Server, EchoRoundTripsThroughAnActor) {
  troupe_process troupe{debug_on()};
  auto res = post_json(troupe.url("/debug/echo"), R"({"x":[1,2,{"y":"z"}],"s":"\u00e9"})");
  EXPECT_EQ(res.status, 200);
  auto doc = parse(res.body);
  EXPECT_EQ(doc["echo"]["x"][2]["y"].GetString(), std::string{"z"});
}

// A sane client request id is echoed; an unsafe one is replaced.
TEST(Server, RequestIdIsEchoedOnlyWhenSane) {
  troupe_process troupe{{}};
  auto sane = http({"GET", troupe.url("/health"), "", {"X-Request-Id: client-42.a:b_c"}, 10000});
  EXPECT_EQ(sane.header("x-request-id"), "client-42.a:b_c");
  auto unsafe = http({"GET", troupe.url("/nope"), "", {"X-Request-Id: <script>alert(1)</script>"}, 10000});
  // Replaced by a generated id (hex and dashes), not dropped.
  auto generated = unsafe.header("x-request-id");
  EXPECT_FALSE(generated.empty());
  EXPECT_EQ(generated.find_first_not_of("0123456789abcdef-"), std::string::npos) << generated;
  EXPECT_EQ(error_code(unsafe), "not_found");
  EXPECT_EQ(unsafe.body.find("<script>"), std::string::npos);
}

// An actor that does not answer within http.request_timeout_ms turns into a 504.
TEST(Server, ActorTimeoutIs504) {
  troupe_process troupe{debug_on({"--set", "http.request_timeout_ms=100"})};
  auto res = http_get(troupe.url("/debug/sleep?ms=3000"));
  EXPECT_EQ(res.status, 504);
  EXPECT_EQ(error_code(res), "timeout");
}

// Invalid query parameters are a 400 naming the parameter.
TEST(Server, InvalidParameterIs400WithParam) {
  troupe_process troupe{debug_on()};
  auto res = http_get(troupe.url("/debug/sleep?ms=soon"));
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(error_code(res), "invalid_input");
  EXPECT_EQ(std::string{parse(res.body)["error"]["param"].GetString()}, "ms");
}

// Debug routes do not exist unless debug.enabled is set.
TEST(Server, DebugRoutesAre404WhenDebugIsOff) {
  troupe_process troupe{{}};
  EXPECT_EQ(http_get(troupe.url("/debug/sleep?ms=1")).status, 404);
  EXPECT_EQ(post_json(troupe.url("/debug/echo"), "{}").status, 404);
}

// /metrics is valid Prometheus text (promtool) and counts requests, mailboxes and process figures.
TEST(Server, MetricsArePrometheusTextWithRequestCounts) {
  troupe_process troupe{{}};
  for (int i = 0; i < 3; ++i)
    http_get(troupe.url("/health"));
  http_get(troupe.url("/missing"));
  // A scrape leaves out an actor that does not answer within 250 ms (busy, or still starting): on a loaded machine
  // the mailbox gauges may need another scrape. The counters asserted below do not change between scrapes.
  auto res = http_get(troupe.url("/metrics"));
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       (res.body.find(R"(troupe_actor_mailbox_size{actor="root"})") == std::string::npos
        || res.body.find(R"(troupe_actor_mailbox_size{actor="http.bridge.0"})") == std::string::npos)
       && std::chrono::steady_clock::now() < deadline;)
    res = http_get(troupe.url("/metrics"));
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const auto& text = res.body;
  EXPECT_NE(text.find(R"(troupe_http_requests_total{route="/health",method="GET",status="200"} 3)"), std::string::npos)
    << text;
  EXPECT_NE(text.find(R"(troupe_http_requests_total{route="unmatched",method="GET",status="404"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(troupe_http_request_duration_seconds_count{route="/health",status="200"} 3)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(troupe_actor_mailbox_size{actor="root"})"), std::string::npos);
  EXPECT_NE(text.find(R"(troupe_actor_mailbox_size{actor="http.bridge.0"})"), std::string::npos);
  EXPECT_NE(text.find("troupe_process_resident_memory_bytes "), std::string::npos);
  EXPECT_NE(text.find("troupe_process_open_fds "), std::string::npos);
  std::string out;
  if (run_command("command -v promtool", out) != 0)
    GTEST_SKIP() << "promtool is not installed (scripts/install-deps installs package prometheus)";
  char path[] = "/tmp/troupe-metrics-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  EXPECT_EQ(run_command(std::string{"promtool check metrics < "} + path, out), 0) << out;
  ::unlink(path);
}

// Readiness checks the database: healthy with the test PostgreSQL, 503 without a database.
TEST(Server, ReadinessReportsTheDatabase) {
  {
    troupe_process::options opts;
    opts.with_database = false;
    troupe_process troupe{opts};
    auto res = http_get(troupe.url("/api/health"));
    EXPECT_EQ(res.status, 503);
    EXPECT_FALSE(res.header("retry-after").empty());
    auto doc = parse(res.body);
    EXPECT_EQ(std::string{doc["checks"]["database"]["status"].GetString()}, "unhealthy");
    EXPECT_EQ(std::string{doc["checks"]["actors"]["status"].GetString()}, "healthy");
  }
  if (!test_database_url())
    GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides one)";
  troupe_process troupe{{}};
  auto res = http_get(troupe.url("/api/health"));
  EXPECT_EQ(res.status, 200) << res.body;
  auto doc = parse(res.body);
  EXPECT_EQ(std::string{doc["status"].GetString()}, "healthy");
  EXPECT_EQ(std::string{doc["checks"]["database"]["status"].GetString()}, "healthy");
  // The database URL is a secret: it never appears in a response or the log.
  EXPECT_EQ(res.body.find(*test_database_url()), std::string::npos);
  EXPECT_EQ(troupe.output().find(*test_database_url()), std::string::npos);
}

// Readiness details (latencies, errors that name hosts and ports) are for a client on this machine or an admin; a
// client behind a proxy sees statuses only, and a refused credential gets 401.
TEST(Server, ReadinessDetailsAreForLocalClientsAndAdmins) {
  auto behind_proxy = [](const troupe_process& t, const std::string& bearer = "") {
    std::vector<std::string> headers{"X-Forwarded-For: 203.0.113.80"};
    if (!bearer.empty())
      headers.push_back("Authorization: Bearer " + bearer);
    return http({"GET", t.url("/api/health"), "", headers, 20000});
  };
  {
    // A database that cannot be reached: its error names the host and port.
    troupe_process::options opts;
    opts.with_database = false;
    opts.env["TROUPE_DATABASE_URL"] = "postgresql://troupe@127.0.0.1:1/nowhere";
    opts.args = {"--set", "http.trusted_proxies=127.0.0.1"};
    troupe_process troupe{opts};
    auto local = http_get(troupe.url("/api/health"));
    EXPECT_EQ(local.status, 503);
    EXPECT_NE(local.body.find("\"detail\""), std::string::npos) << local.body;
    EXPECT_NE(local.body.find("port 1"), std::string::npos) << local.body;
    auto remote = behind_proxy(troupe);
    EXPECT_EQ(remote.status, 503);
    auto doc = parse(remote.body);
    EXPECT_EQ(std::string{doc["checks"]["database"]["status"].GetString()}, "unhealthy");
    EXPECT_FALSE(doc["checks"]["database"].HasMember("detail")) << remote.body;
    EXPECT_FALSE(doc["checks"]["database"].HasMember("latency_ms")) << remote.body;
    EXPECT_EQ(remote.body.find("127.0.0.1"), std::string::npos) << remote.body;
    EXPECT_EQ(behind_proxy(troupe, "not.a.jwt").status, 401);
  }
  auto url = test_database_url();
  if (!url)
    GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides one)";
  troupe_process::options proxied;
  proxied.args = {"--set", "http.trusted_proxies=127.0.0.1"};
  troupe_process troupe{proxied};
  auto email = "health-" + std::to_string(::getpid()) + "-" + std::to_string(::time(nullptr)) + "@example.com";
  auto token = json_string(sign_up(troupe, email), "access_token");
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(behind_proxy(troupe, token).body.find("\"detail\""), std::string::npos) << "a user sees statuses only";
  std::string out;
  ASSERT_EQ(run_command("TROUPE_DATABASE_URL='" + *url + "' " TROUPE_BINARY " admin grant " + email, out), 0) << out;
  // The session re-reads the role within a minute; a new process reads it at once.
  troupe_process again{proxied};
  token = json_string(sign_up(again, email), "access_token");
  auto admin = behind_proxy(again, token);
  EXPECT_EQ(admin.status, 200) << admin.body;
  EXPECT_NE(admin.body.find("\"detail\""), std::string::npos) << admin.body;
}

// SIGTERM: a request in flight still gets its answer, new ones get 503, and the process exits 0.
TEST(Server, SigtermDrainsInFlightRequests) {
  troupe_process troupe{debug_on()};
  auto slow = std::async(std::launch::async, [&] { return http_get(troupe.url("/debug/sleep?ms=1500")); });
  // Wait until the slow request is in flight (the scrape itself is the other one).
  bool in_flight = false;
  for (int i = 0; i < 2000 && !in_flight; ++i)
    in_flight = http_get(troupe.url("/metrics")).body.find("troupe_http_requests_in_flight 2") != std::string::npos;
  ASSERT_TRUE(in_flight);
  troupe.signal(SIGTERM);
  ASSERT_TRUE(troupe.wait_for_output("shutting down", 5s));
  // The promise (README): new requests during the drain get 503 with Retry-After, not a refused connection.
  auto refused = http_get(troupe.url("/health"));
  EXPECT_EQ(refused.status, 503) << refused.error;
  EXPECT_EQ(error_code(refused), "shutting_down");
  EXPECT_FALSE(refused.header("retry-after").empty());
  auto answer = slow.get();
  EXPECT_EQ(answer.status, 200) << answer.error;
  EXPECT_EQ(answer.body, R"({"slept_ms":1500})");
  EXPECT_EQ(troupe.wait_exit(10s), std::optional<int>{0}) << troupe.output();
  EXPECT_NE(troupe.output().find("\"msg\":\"stopped\""), std::string::npos);
}

// A second signal during the drain exits at once.
TEST(Server, SecondSignalExitsAtOnce) {
  troupe_process troupe{debug_on({"--set", "shutdown.grace_ms=60000"})};
  auto slow = std::async(std::launch::async, [&] { return http_get(troupe.url("/debug/sleep?ms=30000")); });
  bool in_flight = false;
  for (int i = 0; i < 2000 && !in_flight; ++i)
    in_flight = http_get(troupe.url("/metrics")).body.find("troupe_http_requests_in_flight 2") != std::string::npos;
  ASSERT_TRUE(in_flight);
  troupe.signal(SIGTERM);
  ASSERT_TRUE(troupe.wait_for_output("shutting down", 5s));
  troupe.signal(SIGTERM);
  auto status = troupe.wait_exit(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_NE(*status, 0);
  slow.get();
}

// A client that never finishes its headers gets 408 after http.header_timeout_ms and cannot hold a thread.
TEST(Server, SlowHeadersGet408) {
  troupe_process::options opts;
  opts.args = {"--set", "http.header_timeout_ms=200"};
  troupe_process troupe{opts};
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(troupe.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string partial = "GET /health HTTP/1.1\r\nHost: localhost\r\n";
  ASSERT_EQ(::send(fd, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
  char buf[2048];
  auto n = ::recv(fd, buf, sizeof(buf), 0);
  ::close(fd);
  ASSERT_GT(n, 0);
  std::string response{buf, static_cast<size_t>(n)};
  EXPECT_EQ(response.rfind("HTTP/1.1 408", 0), 0u) << response;
  // The server still serves others.
  EXPECT_EQ(http_get(troupe.url("/health")).status, 200);
}

// An answer that takes longer than http.header_timeout_ms still arrives (Pistache's idle check used to cut such a
// request off with a 408 once its headers were older than the header timeout), on a connection that stays usable.
TEST(Server, SlowAnswersOutliveTheHeaderTimeout) {
  troupe_process troupe{debug_on({"--set", "http.header_timeout_ms=300"})};
  auto res = http_get(troupe.url("/debug/sleep?ms=1500"));
  EXPECT_EQ(res.status, 200) << res.error;
  EXPECT_EQ(res.body, R"({"slept_ms":1500})");
  EXPECT_EQ(http_get(troupe.url("/health")).status, 200);
}

// A bad option exits with status 2 and one line naming the option, the value and the expected form.
TEST(Cli, BadOptionExits2WithOneLine) {
  std::string out;
  EXPECT_EQ(run_command(std::string{TROUPE_BINARY} + " --set http.port=99999", out), 2);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_NE(out.find("http.port"), std::string::npos);
  EXPECT_NE(out.find("99999"), std::string::npos);
  EXPECT_NE(out.find("65535"), std::string::npos);
  EXPECT_EQ(run_command("TROUPE_HTTP_THREADS=many " + std::string{TROUPE_BINARY}, out), 2);
  EXPECT_NE(out.find("http.threads"), std::string::npos);
  EXPECT_EQ(run_command(std::string{TROUPE_BINARY} + " --bogus", out), 2);
}

// --print-config shows the effective configuration with secrets redacted.
TEST(Cli, PrintConfigRedactsSecrets) {
  std::string out;
  ASSERT_EQ(run_command("TROUPE_DATABASE_URL=postgresql://u:hunter2@db/x TROUPE_HTTP_PORT=9999 "
                          + std::string{TROUPE_BINARY} + " --print-config",
                        out),
            0);
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
  EXPECT_NE(out.find("***"), std::string::npos);
  EXPECT_NE(out.find("9999"), std::string::npos);
}

// --help lists every option from the one table.
TEST(Cli, HelpListsOptions) {
  std::string out;
  ASSERT_EQ(run_command(std::string{TROUPE_BINARY} + " --help", out), 0);
  for (auto key : {"http.port", "http.max_body_bytes", "shutdown.grace_ms", "db.url", "debug.enabled"})
    EXPECT_NE(out.find(key), std::string::npos) << key;
}

// The README's option table is the one the binary generates, so docs cannot drift.
TEST(Cli, ReadmeOptionTableIsGenerated) {
  std::string table;
  ASSERT_EQ(run_command(std::string{TROUPE_BINARY} + " options-markdown", table), 0);
  std::string readme;
  ASSERT_EQ(run_command("cat " TROUPE_SOURCE_DIR "/README.md", readme), 0);
  EXPECT_NE(readme.find(table), std::string::npos)
    << "README.md's option table is stale: regenerate it with `build/troupe options-markdown`";
}
