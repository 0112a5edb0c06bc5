// POST /api/events and /api/feedback on the real binary against a real PostgreSQL: 201 means committed, invalid
// input changes nothing, idempotent retries write once, and acknowledged events survive a database outage and a
// kill -9 of the server.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

/// A troupe process on its own scratch database.
class Events : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  }

  /// Starts troupe and signs up a user whose access token authenticates post().
  std::unique_ptr<troupe_process> start(std::vector<std::string> args = {}) {
    troupe_process::options opts;
    // Rate limits are not what these tests are about (tests/integration/traffic_test.cpp is).
    opts.args = {"--set", "limits.enabled=false"};
    opts.args.insert(opts.args.end(), args.begin(), args.end());
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    auto t = std::make_unique<troupe_process>(opts);
    auto login = sign_up(*t, "events@example.com");
    EXPECT_EQ(login.status, 200) << login.body;
    bearer_ = "Authorization: Bearer " + json_string(login, "access_token");
    return t;
  }

  http_result post(const troupe_process& t, const std::string& path, const std::string& body,
                   std::vector<std::string> headers = {}) const {
    headers.push_back("Content-Type: application/json");
    headers.push_back(bearer_);
    return http({"POST", t.url(path), body, headers, 20000});
  }

  std::string count(const std::string& table, const std::string& where = "true") {
    return db_.scalar("SELECT count(*) FROM " + table + " WHERE " + where);
  }

  scratch_database db_;
  std::string bearer_;
};

std::string param_of(const http_result& res) {
  rapidjson::Document doc;
  doc.Parse(res.body.c_str());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("error") || !doc["error"].HasMember("param"))
    return "<none>";
  return doc["error"]["param"].GetString();
}

/// Posts events with unique idempotency keys from several threads and records which were acknowledged.
class event_load {
public:
  event_load(const troupe_process& t, int threads, std::string bearer) {
    for (int i = 0; i < threads; ++i)
      workers_.emplace_back([this, &t, i, bearer] {
        for (int n = 0; !stop_; ++n) {
          auto key = "load-" + std::to_string(i) + "-" + std::to_string(n);
          auto res = http({"POST", t.url("/api/events"), R"({"event":"load","properties":{"k":")" + key + "\"}}",
                           {"Content-Type: application/json", "Idempotency-Key: " + key, bearer}, 20000});
          std::lock_guard<std::mutex> guard{mutex_};
          if (res.status == 201)
            acked_.insert(key);
          else if (res.status == 503 && !res.header("retry-after").empty())
            ++unavailable_;
          else if (other_.size() < 20)
            other_.push_back(std::to_string(res.status) + " " + res.error + " " + res.body.substr(0, 200));
        }
      });
  }
  ~event_load() { stop(); }

  void stop() {
    stop_ = true;
    for (auto& w : workers_)
      if (w.joinable())
        w.join();
  }
  size_t acked() {
    std::lock_guard<std::mutex> guard{mutex_};
    return acked_.size();
  }
  size_t unavailable() {
    std::lock_guard<std::mutex> guard{mutex_};
    return unavailable_;
  }
  /// Answers that were neither 201 nor 503 with Retry-After (the first 20): status, transfer error, body.
  std::vector<std::string> other() {
    std::lock_guard<std::mutex> guard{mutex_};
    return other_;
  }
  std::set<std::string> acked_keys() {
    std::lock_guard<std::mutex> guard{mutex_};
    return acked_;
  }

  /// Waits (bounded) until `predicate` holds.
  template <class Predicate>
  bool wait_until(Predicate predicate, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!predicate()) {
      if (std::chrono::steady_clock::now() > deadline)
        return false;
      // A pause, not a spin: on two cores a spinning waiter takes CPU from the server and PostgreSQL it waits for.
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    return true;
  }

private:
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::set<std::string> acked_;
  size_t unavailable_ = 0;
  std::vector<std::string> other_;
};

/// Every acknowledged key must have its event row.
void expect_all_present(scratch_database& db, const std::set<std::string>& keys) {
  pqxx::connection conn{db.url()};
  pqxx::nontransaction tx{conn};
  std::set<std::string> stored;
  for (const auto& row : tx.exec("SELECT properties->>'k' FROM funnel_events WHERE event = 'load'"))
    stored.insert(row[0].as<std::string>());
  size_t missing = 0;
  for (const auto& key : keys)
    missing += stored.count(key) == 0;
  EXPECT_EQ(missing, 0u) << missing << " of " << keys.size() << " acknowledged events are not in the table";
}

} // namespace

// Writes need a credential.
TEST_F(Events, WritesNeedACredential) {
  auto t = start();
  EXPECT_EQ(http({"POST", t->url("/api/events"), R"({"event":"a"})", {"Content-Type: application/json"}, 5000}).status,
            401);
  EXPECT_EQ(http({"POST", t->url("/api/feedback"), R"({"rating":5})", {"Content-Type: application/json"}, 5000}).status,
            401);
  EXPECT_EQ(count("funnel_events"), "0");
}

// A 201 means the row is committed: it is visible to another connection right away, owned by the caller.
TEST_F(Events, EventIsCommittedBefore201) {
  auto t = start();
  auto res = post(*t, "/api/events", R"({"event":"signup","session_id":"s1","source":"web","lang":"en",
                                       "properties":{"plan":"pro"},"occurred_at":"2026-11-21T10:00:00.5+01:00"})");
  ASSERT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(res.body, R"({"accepted":1})");
  EXPECT_EQ(count("funnel_events", "event = 'signup' AND properties->>'plan' = 'pro' AND session_id = 's1' "
                                   "AND occurred_at = '2026-11-21T09:00:00.5Z' AND ip = '127.0.0.1'"),
            "1");
  EXPECT_EQ(db_.scalar("SELECT request_id FROM funnel_events WHERE event = 'signup'"), res.header("x-request-id"));
  EXPECT_EQ(db_.scalar("SELECT u.email FROM funnel_events e JOIN users u ON u.id = e.user_id"), "events@example.com");
}

// A batch is accepted whole.
TEST_F(Events, BatchOfEventsIsAcceptedWhole) {
  auto t = start();
  auto res = post(*t, "/api/events", R"({"events":[{"event":"a"},{"event":"b"},{"event":"c"}]})");
  ASSERT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(res.body, R"({"accepted":3})");
  EXPECT_EQ(count("funnel_events"), "3");
}

// Every invalid field is a 400 naming it, and nothing is written.
TEST_F(Events, InvalidEventsAre400WithParamAndWriteNothing) {
  auto t = start();
  std::string many = R"({"events":[)";
  for (int i = 0; i < 1001; ++i)
    many += std::string{i ? "," : ""} + R"({"event":"e"})";
  many += "]}";
  std::vector<std::pair<std::string, std::string>> cases{
    {R"({})", "event"},
    {R"({"event":""})", "event"},
    {R"({"event":")" + std::string(65, 'x') + "\"}", "event"},
    {R"({"event":42})", "event"},
    {R"({"event":"a","user_id":"00000000-0000-0000-0000-000000000000"})", "user_id"},
    {R"({"event":"a","ip":"1.2.3.4"})", "ip"},
    {R"({"event":"a","properties":[1]})", "properties"},
    {R"({"event":"a","properties":{"big":")" + std::string(9000, 'x') + "\"}}", "properties"},
    {R"({"event":"a","occurred_at":"yesterday"})", "occurred_at"},
    {R"({"event":"a","occurred_at":"2026-02-30T10:00:00Z"})", "occurred_at"},
    {R"({"event":"a","session_id":")" + std::string(129, 's') + "\"}", "session_id"},
    {R"({"event":"a","source":7})", "source"},
    {R"({"event":"a","lang":")" + std::string(36, 'l') + "\"}", "lang"},
    {R"({"event":"a\u0000b"})", ""},
    {R"({"events":[]})", "events"},
    {R"({"events":{}})", "events"},
    {R"({"events":[{"event":"ok"},{"event":"ok"},{"evnt":"typo"}]})", "events[2].evnt"},
    {R"({"events":[{"event":"ok"},{"event":")" + std::string(65, 'x') + "\"}]}", "events[1].event"},
    {many, "events"},
  };
  for (const auto& [body, param] : cases) {
    auto res = post(*t, "/api/events", body);
    EXPECT_EQ(res.status, 400) << body.substr(0, 120);
    EXPECT_EQ(param_of(res), param.empty() ? "<none>" : param) << body.substr(0, 120) << " -> " << res.body;
  }
  EXPECT_EQ(post(*t, "/api/events", "[1,2").status, 400);
  EXPECT_EQ(http({"POST", t->url("/api/events"), R"({"event":"a"})", {"Content-Type: text/plain", bearer_}, 5000}).status,
            415);
  EXPECT_EQ(post(*t, "/api/events", R"({"event":"a"})", {"Idempotency-Key: has space"}).status, 400);
  EXPECT_EQ(count("funnel_events"), "0");
}

// Feedback is stored after commit; every invalid field is a 400 naming it.
TEST_F(Events, FeedbackIsValidatedAndStored) {
  auto t = start();
  std::vector<std::pair<std::string, std::string>> cases{
    {R"({})", "rating"},
    {R"({"rating":0})", "rating"},
    {R"({"rating":6})", "rating"},
    {R"({"rating":"5"})", "rating"},
    {R"({"rating":4.5})", "rating"},
    {R"({"rating":5,"comment":")" + std::string(4001, 'c') + "\"}", "comment"},
    {R"({"rating":5,"lang":5})", "lang"},
    {R"({"rating":5,"user_id":"x"})", "user_id"},
  };
  for (const auto& [body, param] : cases) {
    auto res = post(*t, "/api/feedback", body);
    EXPECT_EQ(res.status, 400) << body.substr(0, 80);
    EXPECT_EQ(param_of(res), param) << body.substr(0, 80);
  }
  EXPECT_EQ(count("feedback"), "0");
  auto res = post(*t, "/api/feedback", R"({"rating":5,"comment":")" + std::string(4000, 'c') + R"(","lang":"de"})");
  ASSERT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(count("feedback", "rating = 5 AND length(comment) = 4000 AND lang = 'de'"), "1");
}

// A retry with the same Idempotency-Key replays the first result and writes nothing; a different body is a 409.
TEST_F(Events, IdempotentRetryWritesOnce) {
  auto t = start();
  auto first = post(*t, "/api/events", R"({"event":"paid"})", {"Idempotency-Key: order-17"});
  ASSERT_EQ(first.status, 201);
  EXPECT_TRUE(first.header("idempotent-replayed").empty());
  for (int i = 0; i < 3; ++i) {
    auto again = post(*t, "/api/events", R"({"event":"paid"})", {"Idempotency-Key: order-17"});
    EXPECT_EQ(again.status, 201);
    EXPECT_EQ(again.header("idempotent-replayed"), "true");
  }
  EXPECT_EQ(count("funnel_events", "event = 'paid'"), "1");
  auto changed = post(*t, "/api/events", R"({"event":"refunded"})", {"Idempotency-Key: order-17"});
  EXPECT_EQ(changed.status, 409);
  EXPECT_EQ(count("funnel_events", "event = 'refunded'"), "0");
}

// PostgreSQL stops mid-load: clients get 503 with Retry-After, the service recovers by itself when it is back,
// and every acknowledged event is in the table.
TEST_F(Events, DatabaseOutageGives503AndRecovers) {
  const char* pg_script = std::getenv("TROUPE_PG_SCRIPT");
  const char* pg_dir = std::getenv("TROUPE_TEST_PG_DIR");
  const char* pg_port = std::getenv("TROUPE_TEST_PG_PORT");
  if (!pg_script || !pg_dir || !pg_port)
    GTEST_SKIP() << "needs the private PostgreSQL of make test (TROUPE_PG_SCRIPT, TROUPE_TEST_PG_DIR, ...)";
  auto t = start({"--set", "db.max_wait_ms=500"});
  std::string stop_cmd = std::string{pg_script} + " stop " + pg_dir;
  std::string start_cmd = std::string{pg_script} + " start " + pg_dir + " " + pg_port;
  std::string out;
  {
    event_load load{*t, 4, bearer_};
    ASSERT_TRUE(load.wait_until([&] { return load.acked() >= 50; }, 30s));
    ASSERT_EQ(run_command(stop_cmd, out), 0) << out;
    struct restart_guard {  // PostgreSQL comes back even if an assertion fails
      std::string cmd;
      ~restart_guard() {
        std::string ignored;
        run_command(cmd, ignored);
      }
    } guard{start_cmd};
    EXPECT_TRUE(load.wait_until([&] { return load.unavailable() >= 3; }, 30s)) << "no 503 during the outage";
    EXPECT_EQ(http_get(t->url("/api/health")).status, 503);
    ASSERT_EQ(run_command(start_cmd, out), 0) << out;
    auto before = load.acked();
    EXPECT_TRUE(load.wait_until([&] { return load.acked() >= before + 50; }, 60s)) << "no recovery";
    load.stop();
    expect_all_present(db_, load.acked_keys());
    // Through the outage every answer was a 201 or a 503 with Retry-After: no 500, no 504, no dropped connection.
    auto other = load.other();
    EXPECT_TRUE(other.empty()) << other.size() << " other answers, the first: " << other.front();
  }
  EXPECT_EQ(http_get(t->url("/api/health")).status, 200);
}

// kill -9 of the server during load loses no acknowledged event.
TEST_F(Events, KillDashNineLosesNoAcknowledgedEvent) {
  auto t = start();
  event_load load{*t, 8, bearer_};
  ASSERT_TRUE(load.wait_until([&] { return load.acked() >= 300; }, 60s));
  t->signal(SIGKILL);
  ASSERT_TRUE(t->wait_exit(10s).has_value());
  load.stop();
  auto keys = load.acked_keys();
  EXPECT_GE(keys.size(), 300u);
  expect_all_present(db_, keys);
}
