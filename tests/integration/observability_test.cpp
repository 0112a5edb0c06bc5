// The operator's routes on the real binary against a real PostgreSQL (http/observability_routes.hpp): the history
// of GET /api/performance filled by the sampler, GET /api/status, GET /api/security/status, threshold alerts logged,
// counted, listed and POSTed to a webhook (with a retry), slow operations logged with their stages, and the
// dashboard drawn by headless Chromium (its screenshot kept under test-output/).
//
// The sampler runs every 200 ms here; tests wait for the samples they need by asking, never by sleeping.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

std::string field(const http_result& res, const char* name) {
  return json_string(res, name);
}

bool tool_available(const std::string& name) {
  std::string out;
  return run_command("command -v " + name, out) == 0;
}

/// Asks `probe` every 50 ms until it holds or `bound` passed.
bool eventually(const std::function<bool()>& probe, std::chrono::milliseconds bound = 15s) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < deadline) {
    if (probe())
      return true;
    std::this_thread::sleep_for(50ms);
  }
  return probe();
}

class Observability : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(db_.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)"; }

  void start(std::vector<std::string> args = {}, std::map<std::string, std::string> env = {}) {
    troupe_process::options opts;
    opts.args = {"--set", "ops.sample_ms=200", "--set", "limits.enabled=false"};
    opts.args.insert(opts.args.end(), args.begin(), args.end());
    opts.env = std::move(env);
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    t_ = std::make_unique<troupe_process>(opts);
  }

  http_result post(const std::string& path, const std::string& body, const std::string& bearer = "") {
    std::vector<std::string> headers{"Content-Type: application/json"};
    if (!bearer.empty())
      headers.push_back("Authorization: Bearer " + bearer);
    return http({"POST", t_->url(path), body, headers, 20000});
  }

  http_result get(const std::string& path, const std::string& bearer = "") {
    std::vector<std::string> headers;
    if (!bearer.empty())
      headers.push_back("Authorization: Bearer " + bearer);
    return http({"GET", t_->url(path), "", headers, 20000});
  }

  /// Registers and logs in; admin@example.com is made an admin first (as `troupe admin grant` does).
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

  /// GET /api/performance as the admin, parsed; a null document on any other status.
  rapidjson::Document performance(const std::string& admin, const std::string& query = "?window=1m") {
    auto res = get("/api/performance" + query, admin);
    rapidjson::Document doc;
    if (res.status == 200)
      doc.Parse(res.body.c_str());
    return doc;
  }

  scratch_database db_;
  std::unique_ptr<troupe_process> t_;
};

} // namespace

// Every operator route wants an admin: 401 without a credential, 403 for a user; the dashboard page and its
// library hold no data and are served to anyone, with a CSP that allows nothing from elsewhere.
TEST_F(Observability, RoutesAreForAdminsOnly) {
  start();
  auto [user_id, user] = sign_up("user@example.com");
  auto [admin_id, admin] = sign_up("admin@example.com");
  for (const char* path : {"/api/performance", "/api/status", "/api/security/status", "/api/alerts"}) {
    EXPECT_EQ(get(path).status, 401) << path;
    EXPECT_EQ(get(path, user).status, 403) << path;
    auto res = get(path, admin);
    EXPECT_EQ(res.status, 200) << path << ": " << res.body;
    EXPECT_EQ(res.header("cache-control"), "no-store") << path;
  }
  auto page = get("/dashboard");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.header("content-type").find("text/html"), std::string::npos);
  EXPECT_NE(page.header("content-security-policy").find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(page.body.find("http://"), std::string::npos) << "no external asset";
  EXPECT_EQ(page.body.find("https://"), std::string::npos) << "no external asset";
  auto chart = get("/dashboard/chart.js");
  EXPECT_EQ(chart.status, 200);
  EXPECT_NE(chart.body.find("Chart.js v3"), std::string::npos);
  EXPECT_GT(chart.body.size(), 100000u);
  EXPECT_EQ(chart.header("content-encoding"), "");
  // Asked with gzip: the copy compressed once at start, not compressed again per request (the server's counter of
  // compressed bytes stays where it was).
  auto compressed_in = [&] {
    auto metrics = get("/metrics").body;
    auto at = metrics.find("troupe_http_compressed_bytes_total{stage=\"in\"} ");
    return at == std::string::npos ? std::string{"0"} : metrics.substr(at, metrics.find('\n', at) - at);
  };
  auto before = compressed_in();
  std::string first;
  for (int i = 0; i < 2; ++i) {
    auto zipped = http({"GET", t_->url("/dashboard/chart.js"), "", {"Accept-Encoding: gzip, br"}, 5000});
    ASSERT_EQ(zipped.status, 200);
    EXPECT_EQ(zipped.header("content-encoding"), "gzip");
    EXPECT_EQ(zipped.header("vary"), "Accept-Encoding");
    ASSERT_GE(zipped.body.size(), 2u);
    EXPECT_EQ(static_cast<unsigned char>(zipped.body[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(zipped.body[1]), 0x8b);
    EXPECT_LT(zipped.body.size(), chart.body.size() / 2);
    if (i == 0)
      first = zipped.body;
    else
      EXPECT_EQ(zipped.body, first) << "the same bytes every time";
  }
  EXPECT_EQ(compressed_in(), before);
}

// Requests show up in the history: rates per family, latency quantiles, the process's CPU and memory, the
// network bytes; bad parameters are a 400 that names the parameter.
TEST_F(Observability, PerformanceHistoryReflectsTraffic) {
  start();
  auto [admin_id, admin] = sign_up("admin@example.com");
  for (int i = 0; i < 40; ++i)
    ASSERT_EQ(get("/api/me", admin).status, 200);
  rapidjson::Document doc;
  ASSERT_TRUE(eventually([&] {
    doc = performance(admin);
    if (!doc.IsObject())
      return false;
    for (const auto& v : doc["series"]["families"]["api"]["rps"].GetArray())
      if (v.IsNumber() && v.GetDouble() > 0)
        return true;
    return false;
  })) << "no sample counted the /api/me requests";
  EXPECT_EQ(doc["sample_ms"].GetInt(), 200);
  EXPECT_EQ(doc["window_ms"].GetInt(), 60000);
  const auto& series = doc["series"];
  auto points = series["t"].Size();
  EXPECT_GE(points, 1u);
  for (const char* name : {"cpu_process_pct", "cpu_machine_pct", "memory_pct", "rss_bytes", "net_in_bps",
                           "connections", "mailbox_total", "cache_hit_rate", "db_commit_ms"})
    EXPECT_EQ(series[name].Size(), points) << name << " is aligned with t";
  bool latency = false, bytes = false;
  for (rapidjson::SizeType i = 0; i < points; ++i) {
    latency = latency || series["families"]["api"]["p95_ms"][i].IsNumber();
    bytes = bytes || (series["net_in_bps"][i].IsNumber() && series["net_in_bps"][i].GetDouble() > 0);
  }
  EXPECT_TRUE(latency) << "a p95 for the interval of the requests";
  EXPECT_TRUE(bytes) << "the requests' bytes were counted";
  ASSERT_TRUE(doc["current"].IsObject());
  EXPECT_TRUE(doc["current"]["memory_pct"].IsNumber());
  EXPECT_GT(doc["current"]["rss_bytes"].GetUint64(), 1000000u);
  EXPECT_GE(doc["current"]["sessions"].GetUint(), 1u);
  EXPECT_TRUE(doc["top_mailboxes"].IsArray());
  // A window reduced to a few points
  auto few = performance(admin, "?window=1m&points=1");
  ASSERT_TRUE(few.IsObject());
  EXPECT_EQ(few["series"]["t"].Size(), 1u);
  for (const char* query : {"?window=abc", "?window=0m", "?window=30d", "?points=0", "?points=99999", "?points=x"}) {
    auto res = get(std::string("/api/performance") + query, admin);
    EXPECT_EQ(res.status, 400) << query << ": " << res.body;
  }
  auto metrics = get("/metrics").body;
  EXPECT_NE(metrics.find("troupe_ops_history_samples "), std::string::npos);
  EXPECT_NE(metrics.find("troupe_process_cpu_seconds_total "), std::string::npos);
  EXPECT_NE(metrics.find("troupe_http_network_bytes_total{direction=\"in\"}"), std::string::npos);
  EXPECT_NE(metrics.find("troupe_http_connections_open "), std::string::npos);
}

// Version, build, uptime, node, subsystems; the configuration with every secret hidden.
TEST_F(Observability, StatusNamesTheBuildAndHidesSecrets) {
  start();
  auto [admin_id, admin] = sign_up("admin@example.com");
  auto res = get("/api/status", admin);
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.body.find(db_.url()), std::string::npos) << "the database URL (with its credentials) never shows";
  EXPECT_EQ(res.body.find(test_jwt_secret), std::string::npos) << "the JWT secret never shows";
  auto doc = parse_json(res.body);
  ASSERT_TRUE(doc.IsObject());
  EXPECT_TRUE(std::regex_match(std::string{doc["version"].GetString()}, std::regex{R"(\d+\.\d+\.\d+)"}));
  EXPECT_GT(std::string{doc["build"]["commit"].GetString()}.size(), 0u);
  EXPECT_EQ(std::string{doc["build"]["caf"].GetString()}, "0.17.6");
  EXPECT_GE(doc["uptime_s"].GetInt64(), 0);
  EXPECT_GT(std::string{doc["node"]["node_id"].GetString()}.size(), 0u);
  EXPECT_FALSE(doc["node"]["cluster_enabled"].GetBool());
  EXPECT_EQ(std::string{doc["configuration"]["auth"]["jwt_secret"].GetString()}, "***");
  EXPECT_EQ(std::string{doc["configuration"]["db"]["url"].GetString()}, "***");
  EXPECT_EQ(doc["configuration"]["ops"]["sample_ms"].GetInt(), 200);
  bool database = false;
  for (const auto& s : doc["subsystems"].GetArray())
    if (std::string{s["name"].GetString()} == "database")
      database = std::string{s["status"].GetString()} == "healthy";
  EXPECT_TRUE(database) << res.body;
}

// Failed logins show by kind, address and account, the throttled account and address are listed while they wait,
// and a revoked API key is listed with the window's count.
TEST_F(Observability, SecurityStatusShowsEventsThrottlesAndRevocations) {
  start({"--set", "auth.login_max_failures=3"});
  auto [admin_id, admin] = sign_up("admin@example.com");
  auto [victim_id, victim] = sign_up("victim@example.com");
  for (int i = 0; i < 4; ++i)
    post("/api/auth/login", R"({"email":"victim@example.com","password":"wrong password here"})");
  auto key = post("/api/keys", R"({"name":"ci"})", victim);
  ASSERT_EQ(key.status, 201) << key.body;
  auto key_id = field(key, "id");
  ASSERT_EQ(http({"DELETE", t_->url("/api/keys/" + key_id), "", {"Authorization: Bearer " + victim}, 5000}).status, 204);
  rapidjson::Document doc;
  ASSERT_TRUE(eventually([&] {
    auto res = get("/api/security/status?window=1h", admin);
    if (res.status != 200)
      return false;
    doc = parse_json(res.body);
    for (const auto& t : doc["events"]["by_type"].GetArray())
      if (std::string{t["type"].GetString()} == "login_failed" && t["count"].GetInt64() >= 3)
        return true;
    return false; // the aggregator writes once a second
  })) << "login_failed never counted";
  bool by_address = false;
  for (const auto& a : doc["events"]["by_address"].GetArray())
    by_address = by_address
                 || (std::string{a["address"].GetString()} == "127.0.0.1"
                     && std::string{a["type"].GetString()} == "login_failed");
  EXPECT_TRUE(by_address);
  bool account = false;
  ASSERT_TRUE(doc["throttled"].IsArray());
  for (const auto& t : doc["throttled"].GetArray())
    account = account
              || (std::string{t["kind"].GetString()} == "account"
                  && std::string{t["email"].GetString()} == "victim@example.com" && t["wait_seconds"].GetInt64() > 0
                  && t["failures"].GetInt64() >= 3);
  EXPECT_TRUE(account) << "the throttled account from this address";
  EXPECT_EQ(doc["revoked_keys"]["in_window"].GetInt64(), 1);
  ASSERT_EQ(doc["revoked_keys"]["recent"].Size(), 1u);
  EXPECT_EQ(std::string{doc["revoked_keys"]["recent"][0]["id"].GetString()}, key_id);
  EXPECT_TRUE(doc["breakers"].IsArray());
  EXPECT_EQ(get("/api/security/status?window=forever", admin).status, 400);
}

// A threshold crossed fires an alert: logged, counted in /metrics, listed at /api/alerts, and POSTed to the
// webhook, which refuses the first attempt (500) and takes the retry.
TEST_F(Observability, AlertFiresAndReachesTheWebhookAfterARetry) {
  capture_server hook{{500}};
  // Memory in use is always over 0.01%: the memory rule's warning fires with the first sample (hold 0). Every other
  // rule is out of reach, so that the machine's load (or a slow sign-up) cannot fire one too.
  start({"--set", "ops.alert_hold_ms=0", "--set", "ops.memory_warn_pct=0.01", "--set", "ops.memory_critical_pct=100",
         "--set", "ops.cpu_warn_pct=100", "--set", "ops.cpu_critical_pct=100", "--set", "ops.latency_warn_ms=3600000",
         "--set", "ops.latency_critical_ms=3600000", "--set", "ops.db_latency_warn_ms=3600000", "--set",
         "ops.db_latency_critical_ms=3600000", "--set", "ops.error_warn_pct=100", "--set", "ops.error_critical_pct=100",
         "--set", "ops.cache_hit_warn_pct=0", "--set", "ops.cache_hit_critical_pct=0"},
        {{"TROUPE_OPS_ALERT_WEBHOOK", hook.url("/hooks/troupe")}});
  auto [admin_id, admin] = sign_up("admin@example.com");
  ASSERT_TRUE(hook.wait_for(2, 20s)) << "the webhook was not called twice: " << t_->output();
  auto requests = hook.requests();
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/hooks/troupe");
  EXPECT_EQ(requests[0].headers["content-type"], "application/json");
  EXPECT_EQ(requests[1].body, requests[0].body) << "the retry sends the same events";
  auto body = parse_json(requests[1].body);
  ASSERT_TRUE(body.IsObject()) << requests[1].body;
  EXPECT_EQ(std::string{body["source"].GetString()}, "troupe");
  ASSERT_GE(body["alerts"].Size(), 1u);
  EXPECT_EQ(std::string{body["alerts"][0]["rule"].GetString()}, "memory");
  EXPECT_EQ(std::string{body["alerts"][0]["state"].GetString()}, "firing");
  EXPECT_EQ(std::string{body["alerts"][0]["severity"].GetString()}, "warning");
  EXPECT_TRUE(t_->wait_for_output("alert firing: memory", 5s));
  auto alerts = parse_json(get("/api/alerts", admin).body);
  ASSERT_TRUE(alerts.IsObject());
  ASSERT_GE(alerts["active"].Size(), 1u);
  EXPECT_EQ(std::string{alerts["active"][0]["rule"].GetString()}, "memory");
  EXPECT_GE(alerts["recent"].Size(), 1u);
  std::string metrics;
  EXPECT_TRUE(eventually([&] {
    metrics = get("/metrics").body;
    return metrics.find("troupe_alert_webhook_total{outcome=\"delivered\"} 1\n") != std::string::npos;
  })) << metrics;
  EXPECT_NE(metrics.find("troupe_alerts_total{rule=\"memory\",severity=\"warning\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("troupe_alerts_firing{rule=\"memory\",severity=\"warning\"} 1\n"), std::string::npos);
  EXPECT_EQ(metrics.find("troupe_alerts_total{rule=\"cpu\""), std::string::npos) << "only the memory rule fired";
}

// A request over ops.slow_ms is logged once with its stages and counted per kind.
TEST_F(Observability, SlowRequestsAreLoggedWithTheirStages) {
  start({"--set", "ops.slow_ms=100", "--set", "debug.enabled=true"});
  ASSERT_EQ(get("/debug/sleep?ms=250").status, 200);
  ASSERT_TRUE(t_->wait_for_output(R"("msg":"slow operation","kind":"request")", 5s)) << t_->output();
  auto out = t_->output();
  EXPECT_NE(out.find(R"("route":"/debug/sleep")"), std::string::npos);
  EXPECT_NE(out.find(R"("stages_ms":"respond=)"), std::string::npos);
  auto metrics = get("/metrics").body;
  EXPECT_NE(metrics.find("troupe_slow_operations_total{kind=\"request\"} 1\n"), std::string::npos) << metrics;
  // Fast requests are not.
  ASSERT_EQ(get("/health").status, 200);
  EXPECT_NE(get("/metrics").body.find("troupe_slow_operations_total{kind=\"request\"} 1\n"), std::string::npos);
}

// A slow chat completion: the upstream call is logged with libcurl's stages, the request with its own (auth: the
// session vouching, its rate limit and reservations included; upstream), and each is counted by kind.
TEST_F(Observability, SlowGatewayCallsAreLoggedWithTheirStages) {
  mock_upstream_process mock;
  start({"--set", "ops.slow_ms=150", "--set", "quota.free_per_day=1000"},
        {{"TROUPE_UPSTREAMS", R"([{"name":"mock","base_url":")" + mock.base_url() + R"(/v1","models":["mock-1"]}])"}});
  auto [user_id, user] = sign_up("slow@example.com");
  // Sign-up may itself be slow (argon2): count from here.
  auto slow_requests = [&] {
    std::smatch m;
    auto text = get("/metrics").body;
    return std::regex_search(text, m, std::regex{R"re(troupe_slow_operations_total\{kind="request"\} (\d+))re"})
             ? std::stoi(m[1])
             : 0;
  };
  auto before = slow_requests();
  auto chat = post("/v1/chat/completions",
                   R"({"model":"mock-1","temperature":0.7,"messages":[{"role":"user","content":"[[mock latency_ms=300]] hi"}]})",
                   user);
  ASSERT_EQ(chat.status, 200) << chat.body;
  ASSERT_TRUE(t_->wait_for_output(R"("msg":"slow operation","kind":"upstream")", 5s)) << t_->output();
  ASSERT_TRUE(t_->wait_for_output(R"("route":"/v1/chat/completions")", 5s)) << t_->output();
  auto out = t_->output();
  std::smatch upstream;
  ASSERT_TRUE(std::regex_search(out, upstream, std::regex{R"re("kind":"upstream".*"upstream":"mock".*"stages_ms":"connect=\d+ first_byte=(\d+) body=\d+")re"}))
    << out;
  EXPECT_GE(std::stoi(upstream[1]), 250) << "the mock waited 300 ms before its headers";
  std::smatch request;
  ASSERT_TRUE(std::regex_search(out, request, std::regex{R"re("kind":"request".*"route":"/v1/chat/completions".*"stages_ms":"([^"]*)")re"}))
    << out;
  auto stages = request[1].str();
  for (const char* stage : {"auth=", "upstream=", "respond="})
    EXPECT_NE(stages.find(stage), std::string::npos) << stage << " in " << stages;
  EXPECT_NE(get("/metrics").body.find("troupe_slow_operations_total{kind=\"upstream\"} 1\n"), std::string::npos);
  EXPECT_EQ(slow_requests(), before + 1) << "the chat completion, once";
}

// Distributed tracing: a request with a caller's traceparent joins its trace; its chat completion reaches the
// upstream with a traceparent naming the upstream call's span; the spans (the request's, auth, upstream) reach the
// OTLP collector in batches; its log lines carry the trace id. A request without a traceparent starts a trace that
// tracing.sample_ratio=0 does not record.
TEST_F(Observability, TracesJoinTheCallersAndReachTheCollector) {
  capture_server collector;
  capture_server upstream{{}, R"({"id":"c1","object":"chat.completion","created":1,"model":"mock-1","choices":[{"index":0,)"
                              R"("message":{"role":"assistant","content":"traced"},"finish_reason":"stop"}],)"
                              R"("usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})"};
  start({"--set", "tracing.otlp_endpoint=" + collector.url("/v1/traces"), "--set", "tracing.export_ms=50", "--set",
         "tracing.sample_ratio=0", "--set", "log.request_sample=1", "--set", "quota.free_per_day=1000"},
        {{"TROUPE_UPSTREAMS", R"([{"name":"traced","base_url":")" + upstream.url("/v1") + R"(","models":["mock-1"]}])"}});
  auto [user_id, user] = sign_up("traced@example.com");
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string caller_span = "00f067aa0ba902b7";
  auto chat = http({"POST", t_->url("/v1/chat/completions"),
                    R"({"model":"mock-1","temperature":0.7,"messages":[{"role":"user","content":"trace me"}]})",
                    {"Content-Type: application/json", "Authorization: Bearer " + user,
                     "traceparent: 00-" + trace + "-" + caller_span + "-01", "tracestate: rojo=00f067aa0ba902b7"},
                    20000});
  ASSERT_EQ(chat.status, 200) << chat.body;
  // The upstream saw the trace, with the upstream call's span as its parent.
  auto after_call_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  ASSERT_TRUE(upstream.wait_for(1, 5s));
  auto sent = upstream.requests()[0].headers["traceparent"];
  std::smatch ids;
  ASSERT_TRUE(std::regex_match(sent, ids, std::regex{"00-" + trace + "-([0-9a-f]{16})-01"})) << sent;
  auto upstream_span = ids[1].str();
  EXPECT_EQ(upstream.requests()[0].headers["tracestate"], "rojo=00f067aa0ba902b7");
  // The collector receives the request's spans.
  std::map<std::string, const rapidjson::Value*> by_name;
  rapidjson::Document batch;
  ASSERT_TRUE(eventually([&] {
    for (const auto& request : collector.requests()) {
      batch.Parse(request.body.c_str());
      if (batch.HasParseError() || !batch.IsObject() || !batch.HasMember("resourceSpans")
          || !batch["resourceSpans"].IsArray() || batch["resourceSpans"].Empty())
        continue;
      const auto& resource = batch["resourceSpans"][0];
      if (!resource.HasMember("scopeSpans") || !resource["scopeSpans"].IsArray() || resource["scopeSpans"].Empty())
        continue;
      by_name.clear();
      for (const auto& span : resource["scopeSpans"][0]["spans"].GetArray())
        if (std::string{span["traceId"].GetString()} == trace)
          by_name[span["name"].GetString()] = &span;
      if (by_name.count("POST /v1/chat/completions"))
        return true;
    }
    return false;
  })) << "no span of the trace reached the collector";
  auto requests = collector.requests();
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/v1/traces");
  const auto& server = *by_name["POST /v1/chat/completions"];
  EXPECT_EQ(std::string{server["parentSpanId"].GetString()}, caller_span);
  EXPECT_EQ(server["kind"].GetInt(), 2);
  EXPECT_EQ(std::string{server["traceState"].GetString()}, "rojo=00f067aa0ba902b7");
  auto server_span = std::string{server["spanId"].GetString()};
  ASSERT_TRUE(by_name.count("auth") && by_name.count("upstream"));
  EXPECT_EQ(std::string{(*by_name["auth"])["parentSpanId"].GetString()}, server_span);
  EXPECT_EQ(std::string{(*by_name["upstream"])["spanId"].GetString()}, upstream_span)
    << "the span the upstream was told is its parent";
  EXPECT_EQ((*by_name["upstream"])["kind"].GetInt(), 3);
  // Times on the wall clock, each span within its parent, all before the answer came back.
  auto ns = [](const rapidjson::Value& span, const char* key) { return std::stoll(span[key].GetString()); };
  auto server_start = ns(server, "startTimeUnixNano"), server_end = ns(server, "endTimeUnixNano");
  EXPECT_GT(server_start, after_call_ns - 60'000'000'000LL);
  EXPECT_LE(server_start, server_end);
  EXPECT_LE(server_end, after_call_ns);
  for (const char* name : {"auth", "upstream"}) {
    const auto& child = *by_name[name];
    EXPECT_GE(ns(child, "startTimeUnixNano"), server_start) << name;
    EXPECT_LE(ns(child, "startTimeUnixNano"), ns(child, "endTimeUnixNano")) << name;
    EXPECT_LE(ns(child, "endTimeUnixNano"), server_end) << name;
  }
  // The access log line of the request names its trace.
  ASSERT_TRUE(t_->wait_for_output(R"("route":"/v1/chat/completions","status":200)", 5s));
  auto output = t_->output();
  std::smatch access;
  ASSERT_TRUE(std::regex_search(output, access, std::regex{R"re(\{[^\n]*"msg":"request"[^\n]*"route":"/v1/chat/completions"[^\n]*)re"}));
  EXPECT_NE(access[0].str().find(R"("trace_id":")" + trace + R"(")"), std::string::npos) << access[0];
  // Unsampled: a request without a traceparent, under tracing.sample_ratio=0, records nothing.
  auto me = http({"GET", t_->url("/api/me"), "", {"Authorization: Bearer " + user}, 5000});
  ASSERT_EQ(me.status, 200);
  // A sampled request after it: once its span has arrived, the unsampled one's would have too.
  ASSERT_EQ(http({"GET", t_->url("/health"), "", {"traceparent: 00-" + trace + "-" + caller_span + "-01"}, 5000}).status,
            200);
  ASSERT_TRUE(eventually([&] {
    for (const auto& request : collector.requests())
      if (request.body.find("\"GET /health\"") != std::string::npos)
        return true;
    return false;
  }));
  auto metrics = get("/metrics").body;
  EXPECT_NE(metrics.find("troupe_tracing_spans_total{outcome=\"dropped\"} 0\n"), std::string::npos) << metrics;
  for (const auto& request : collector.requests())
    EXPECT_EQ(request.body.find("\"GET /api/me\""), std::string::npos) << "an unsampled trace was exported";
}

// The dashboard in headless Chromium: its script reads the routes with the admin token of the #token= fragment,
// draws every chart with the history's samples, and the screenshot is kept.
TEST_F(Observability, DashboardDrawsItsChartsInHeadlessChromium) {
  if (!tool_available("chromium"))
    GTEST_SKIP() << "chromium is not installed (scripts/install-deps installs it)";
  mock_upstream_process mock;
  start({}, {{"TROUPE_UPSTREAMS", R"([{"name":"mock","base_url":")" + mock.base_url() + R"(/v1","models":["mock-1"]}])"}});
  auto [admin_id, admin] = sign_up("admin@example.com");
  for (int i = 0; i < 30; ++i)
    get("/api/me", admin);
  // Chat completions: upstream latency, the usage ledger's commits, cache lookups.
  for (int i = 0; i < 12; ++i)
    ASSERT_EQ(post("/v1/chat/completions",
                   R"({"model":"mock-1","temperature":0,"messages":[{"role":"user","content":"dashboard"}]})", admin)
                .status,
              200);
  ASSERT_TRUE(eventually([&] {
    auto doc = performance(admin);
    return doc.IsObject() && doc["points"].GetInt() >= 5;
  })) << "fewer than 5 samples";
  auto dir = std::filesystem::current_path() / "test-output";
  std::filesystem::create_directories(dir);
  auto png = (dir / "dashboard.png").string();
  std::filesystem::remove(png);
  std::string dom;
  auto status = chromium_screenshot(t_->url("/dashboard#token=" + admin), png, 1400, 2200, dom);
  ASSERT_EQ(status, 0) << dom;
  std::smatch ready;
  ASSERT_TRUE(std::regex_search(dom, ready, std::regex{R"re(data-charts-ready="(\d+)")re"})) << dom.substr(0, 4000);
  // Every chart but the cache hit rate must have values (the hit rate needs 10 lookups within one 200 ms interval).
  EXPECT_GE(std::stoi(ready[1]), 9) << "charts with values";
  std::smatch points;
  ASSERT_TRUE(std::regex_search(dom, points, std::regex{R"re(data-points="(\d+)")re"}));
  EXPECT_GE(std::stoi(points[1]), 5);
  std::smatch page_status;
  ASSERT_TRUE(std::regex_search(dom, page_status, std::regex{R"re(<p id="status"[^>]*>([^<]*)<)re"}));
  EXPECT_NE(page_status[1].str().find("samples in the last 15m"), std::string::npos)
    << "the page's status: " << page_status[1];
  EXPECT_NE(dom.find("<canvas"), std::string::npos);
  ASSERT_TRUE(std::filesystem::exists(png));
  EXPECT_GT(std::filesystem::file_size(png), 20000u) << "a page with charts, not a blank one";
  RecordProperty("screenshot", png);
  std::cout << "dashboard screenshot: " << png << "\n";
}
