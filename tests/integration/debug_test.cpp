// Debug mode on the real binary over loopback: the routes are 404 when off, open to a client on this machine and
// need an admin otherwise (a client behind a proxy, or debug.admin_only); the tree, an actor's mailbox and a trace;
// the page in headless Chromium; `troupe inspect top` in a terminal (tmux).

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <set>
#include <thread>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

troupe_process::options debug_on(std::vector<std::string> more = {}) {
  troupe_process::options opts;
  opts.args = {"--set", "debug.enabled=true"};
  opts.args.insert(opts.args.end(), more.begin(), more.end());
  return opts;
}

http_result get(const troupe_process& t, const std::string& path, const std::string& bearer = "") {
  std::vector<std::string> headers;
  if (!bearer.empty())
    headers.push_back("Authorization: Bearer " + bearer);
  return http({"GET", t.url(path), "", headers, 20000});
}

/// The actor named `name` in a GET /debug/actors body, or nullptr.
const rapidjson::Value* find_actor(const rapidjson::Document& doc, const std::string& name) {
  if (!doc.IsObject() || !doc.HasMember("actors"))
    return nullptr;
  for (const auto& a : doc["actors"].GetArray())
    if (a["name"].GetString() == name)
      return &a;
  return nullptr;
}

bool tool_available(const std::string& name) {
  std::string out;
  return run_command("command -v " + name, out) == 0;
}

} // namespace

// Without debug.enabled the debug routes do not exist: 404, whatever the path.
TEST(DebugRoutes, NotFoundWhenOff) {
  troupe_process troupe{{}};
  for (const char* path :
       {"/debug/actors", "/debug/actors/root", "/debug/actors/root/trace?seconds=1", "/debug/", "/debug"}) {
    auto res = get(troupe, path);
    EXPECT_EQ(res.status, 404) << path;
  }
  // The mailbox gauge is there without debug mode. A scrape leaves out an actor that does not answer within 250 ms
  // (busy, or still starting), so a loaded machine may need another scrape.
  bool gauge = false;
  for (auto deadline = std::chrono::steady_clock::now() + 10s; !gauge && std::chrono::steady_clock::now() < deadline;)
    gauge = get(troupe, "/metrics").body.find("troupe_actor_mailbox_size{actor=\"db.writer\"}") != std::string::npos;
  EXPECT_TRUE(gauge);
}

// On loopback the routes are open; the tree lists every supervised actor with its counters.
TEST(DebugRoutes, TreeListsSupervisedActorsWithCounters) {
  troupe_process troupe{debug_on()};
  auto res = get(troupe, "/debug/actors");
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.header("cache-control"), "no-store");
  auto doc = parse_json(res.body);
  ASSERT_FALSE(doc.HasParseError());
  std::set<std::string> names;
  for (const auto& a : doc["actors"].GetArray()) {
    names.insert(a["name"].GetString());
    for (const char* key : {"id", "name", "kind", "type", "supervisor", "state", "mailbox_size", "processed",
                            "restarts", "last_error", "last_error_at", "uptime_ms", "busy_ms"})
      EXPECT_TRUE(a.HasMember(key)) << key;
  }
  for (const char* name : {"root", "persistence", "db.writer", "sessions", "ops.metrics", "ops.mailboxes",
                           "http.bridge.0", "auth.hasher.0"})
    EXPECT_EQ(names.count(name), 1u) << name;
  const auto* writer = find_actor(doc, "db.writer");
  ASSERT_NE(writer, nullptr);
  EXPECT_STREQ((*writer)["supervisor"].GetString(), "persistence");
  EXPECT_STREQ((*writer)["state"].GetString(), "running");
  EXPECT_TRUE((*writer)["mailbox_size"].IsInt64());
  EXPECT_EQ((*writer)["restarts"].GetUint64(), 0u);
  EXPECT_TRUE((*writer)["last_error"].IsNull());
  EXPECT_GE((*writer)["uptime_ms"].GetInt64(), 0);
  const auto* root = find_actor(doc, "root");
  ASSERT_NE(root, nullptr);
  EXPECT_TRUE((*root)["supervisor"].IsNull());
}

// One actor by name or id, with its mailbox; unknown actors are 404 and a bad limit is 400.
TEST(DebugRoutes, OneActorWithItsMailbox) {
  troupe_process troupe{debug_on()};
  auto res = get(troupe, "/debug/actors/ops.metrics?limit=5");
  ASSERT_EQ(res.status, 200) << res.body;
  auto doc = parse_json(res.body);
  EXPECT_STREQ(doc["name"].GetString(), "ops.metrics");
  ASSERT_TRUE(doc["mailbox"].IsObject()) << res.body;
  EXPECT_TRUE(doc["mailbox"]["size"].IsUint64());
  EXPECT_TRUE(doc["mailbox"]["messages"].IsArray());
  EXPECT_TRUE(doc["mailbox"]["by_type"].IsArray());
  auto id = std::to_string(doc["id"].GetUint64());
  auto by_id = get(troupe, "/debug/actors/" + id);
  ASSERT_EQ(by_id.status, 200);
  EXPECT_STREQ(parse_json(by_id.body)["name"].GetString(), "ops.metrics");
  EXPECT_EQ(get(troupe, "/debug/actors/no.such.actor").status, 404);
  auto bad = get(troupe, "/debug/actors/root?limit=lots");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("\"param\":\"limit\""), std::string::npos) << bad.body;
}

// A trace of the metrics actor while /metrics is scraped: message events with type, sender and times, then end.
TEST(DebugRoutes, TraceStreamsProcessedMessages) {
  troupe_process troupe{debug_on()};
  auto trace = std::async(std::launch::async, [&] { return get(troupe, "/debug/actors/ops.metrics/trace?seconds=2"); });
  // Scrape until the trace ends (2 s after it attached, however late that was), so it sees scrapes; bounded.
  for (auto deadline = std::chrono::steady_clock::now() + 20s;
       trace.wait_for(50ms) != std::future_status::ready && std::chrono::steady_clock::now() < deadline;)
    EXPECT_EQ(get(troupe, "/metrics").status, 200);
  ASSERT_EQ(trace.wait_for(0s), std::future_status::ready);
  auto res = trace.get();
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.header("content-type"), "text/event-stream");
  EXPECT_NE(res.body.find("event: start"), std::string::npos) << res.body;
  EXPECT_NE(res.body.find(R"("type":"metrics")"), std::string::npos) << res.body;
  EXPECT_NE(res.body.find(R"("processing_ms":)"), std::string::npos);
  EXPECT_NE(res.body.find(R"("waited_ms":)"), std::string::npos);
  EXPECT_NE(res.body.find("event: end\ndata: {\"reason\":\"time is up\""), std::string::npos) << res.body;
  EXPECT_EQ(get(troupe, "/debug/actors/root/trace?seconds=61").status, 400);
}

// With debug.admin_only (the rule for clients elsewhere): 401 without a credential, 403 for a user, 200 for an
// admin. The page itself holds no data and still loads.
TEST(DebugRoutes, AdminOnlyRefusesOthers) {
  scratch_database db;
  if (!db.available())
    GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  auto opts = debug_on({"--set", "debug.admin_only=true"});
  opts.env["TROUPE_DATABASE_URL"] = db.url();
  troupe_process troupe{opts};
  EXPECT_EQ(get(troupe, "/debug/actors").status, 401);
  EXPECT_EQ(get(troupe, "/debug/actors/root").status, 401);
  EXPECT_EQ(get(troupe, "/debug/actors/root/trace?seconds=1").status, 401);
  auto user = json_string(sign_up(troupe, "user@example.com"), "access_token");
  ASSERT_FALSE(user.empty());
  EXPECT_EQ(get(troupe, "/debug/actors", user).status, 403);
  auto admin = json_string(sign_up(troupe, "boss@example.com"), "access_token");
  ASSERT_FALSE(admin.empty());
  // Made an admin before its first authenticated request (as `troupe admin grant` does).
  db.execute("UPDATE users SET role = 'admin' WHERE email = 'boss@example.com'");
  EXPECT_EQ(get(troupe, "/debug/actors", admin).status, 200);
  EXPECT_EQ(get(troupe, "/debug/").status, 200);
  // The terminal client takes the token too.
  std::string out;
  EXPECT_EQ(run_command(std::string{TROUPE_BINARY} + " inspect --url " + troupe.url("") + " actors", out), 1) << out;
  EXPECT_NE(out.find("admin token"), std::string::npos) << out;
  EXPECT_EQ(
    run_command(std::string{TROUPE_BINARY} + " inspect --url " + troupe.url("") + " --token " + admin + " actors", out),
    0)
    << out;
  EXPECT_NE(out.find("db.writer"), std::string::npos) << out;
}

// A reverse proxy on this host connects from loopback for clients anywhere: what decides is the client's address.
// Through a trusted proxy (127.0.0.1 in http.trusted_proxies) a public X-Forwarded-For needs an admin, a local one
// does not; through a proxy Troupe does not trust, any forwarding header means the client is elsewhere.
TEST(DebugRoutes, ClientsBehindAProxyNeedAnAdmin) {
  scratch_database db;
  if (!db.available())
    GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  auto proxied = [](const troupe_process& t, const std::string& header, const std::string& bearer = "") {
    std::vector<std::string> headers{header};
    if (!bearer.empty())
      headers.push_back("Authorization: Bearer " + bearer);
    return http({"GET", t.url("/debug/actors"), "", headers, 20000});
  };
  {
    auto opts = debug_on({"--set", "http.trusted_proxies=127.0.0.1"});
    opts.env["TROUPE_DATABASE_URL"] = db.url();
    troupe_process troupe{opts};
    EXPECT_EQ(proxied(troupe, "X-Forwarded-For: 203.0.113.50").status, 401);
    EXPECT_EQ(proxied(troupe, "X-Forwarded-For: 203.0.113.50, 127.0.0.1").status, 401);
    auto user = json_string(sign_up(troupe, "dev@example.com"), "access_token");
    EXPECT_EQ(proxied(troupe, "X-Forwarded-For: 203.0.113.50", user).status, 403);
    EXPECT_EQ(proxied(troupe, "X-Forwarded-For: 127.0.0.1").status, 200) << "a client on this host, via the proxy";
    EXPECT_EQ(get(troupe, "/debug/actors").status, 200) << "a client on this host, directly";
  }
  std::string out;
  ASSERT_EQ(run_command("TROUPE_DATABASE_URL='" + db.url() + "' " TROUPE_BINARY " admin grant dev@example.com", out), 0)
    << out;
  auto opts = debug_on(); // no trusted proxy
  opts.env["TROUPE_DATABASE_URL"] = db.url();
  troupe_process troupe{opts};
  for (const char* header : {"X-Forwarded-For: 203.0.113.50", "Forwarded: for=203.0.113.50", "X-Real-IP: 203.0.113.50"})
    EXPECT_EQ(proxied(troupe, header).status, 401) << header;
  auto admin = json_string(sign_up(troupe, "dev@example.com"), "access_token");
  EXPECT_EQ(proxied(troupe, "X-Forwarded-For: 203.0.113.50", admin).status, 200);
}

// The page: self-contained (no external URL), its own CSP with a nonce; headless Chromium runs its script, which
// fetches the tree and renders it.
TEST(DebugPage, LoadsInHeadlessChromiumAndShowsTheTree) {
  troupe_process troupe{debug_on()};
  auto page = get(troupe, "/debug/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type"), "text/html; charset=utf-8");
  auto csp = page.header("content-security-policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("script-src 'nonce-"), std::string::npos) << csp;
  EXPECT_EQ(page.body.find("http://"), std::string::npos);
  EXPECT_EQ(page.body.find("https://"), std::string::npos);
  if (!tool_available("chromium"))
    GTEST_SKIP() << "chromium is not installed (scripts/install-deps installs it)";
  std::string dom;
  auto status = chromium_dump_dom(troupe.url("/debug/"), dom);
  ASSERT_EQ(status, 0) << dom;
  EXPECT_NE(dom.find("data-actor=\"db.writer\""), std::string::npos) << dom.substr(0, 4000);
  EXPECT_NE(dom.find("data-actor=\"root\""), std::string::npos);
  EXPECT_NE(dom.find("messages queued, at"), std::string::npos);
  EXPECT_EQ(dom.find("class=\"error\""), std::string::npos) << dom.substr(0, 4000);
}

// `troupe inspect top` in a real terminal: tmux runs it, capture-pane reads the screen.
TEST(DebugInspect, TopRendersInATerminal) {
  troupe_process troupe{debug_on()};
  if (!tool_available("tmux"))
    GTEST_SKIP() << "tmux is not installed (scripts/install-deps installs it)";
  auto session = "troupe-top-" + std::to_string(::getpid());
  std::string out;
  auto command = std::string{TROUPE_BINARY} + " inspect --url " + troupe.url("")
                 + " top --iterations 2 --interval-ms 200; echo TOP-EXITED-$?; sleep 30";
  ASSERT_EQ(run_command("tmux new-session -d -s " + session + " -x 150 -y 40 \"" + command + "\"", out), 0) << out;
  std::string screen;
  for (int i = 0; i < 100 && screen.find("TOP-EXITED-") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    run_command("tmux capture-pane -p -t " + session, screen);
  }
  run_command("tmux kill-session -t " + session, out);
  EXPECT_NE(screen.find("TOP-EXITED-0"), std::string::npos) << screen;
  EXPECT_NE(screen.find("troupe top"), std::string::npos) << screen;
  EXPECT_NE(screen.find("MAILBOX"), std::string::npos) << screen;
  EXPECT_NE(screen.find("db.writer"), std::string::npos) << screen;
  // The screen was cleared between refreshes: one header, not two.
  EXPECT_EQ(screen.find("troupe top"), screen.rfind("troupe top")) << screen;
  // --json prints one JSON array per refresh.
  ASSERT_EQ(run_command(std::string{TROUPE_BINARY} + " inspect --url " + troupe.url("")
                          + " --json top --iterations 2 --interval-ms 100",
                        out),
            0);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_EQ(out.rfind("[{", 0), 0u) << out;
}
