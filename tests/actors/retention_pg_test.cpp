// The retention sweeper (actors/retention.cpp) against a real PostgreSQL, with an injected clock and rows carrying
// explicit timestamps: rows past each table's period are deleted in bounded batches, the others and tables without a
// period are left alone, and expired token revocations are purged.

#include "tests/persistence/scratch_database.hpp"

#include "actors/messages.hpp"
#include "actors/retention.hpp"
#include "config/service_error.hpp"
#include "persistence/database.hpp"
#include "persistence/migrations.hpp"
#include "persistence/query_router.hpp"
#include "persistence/retention.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

constexpr int64_t day_ms = 24 * 3600 * 1000;
constexpr int64_t now_ms = 1893456000000; // 2030-01-01T00:00:00Z: the sweeper's clock, far from the real one

class Retention : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
    auto migrated = migrate_database(db_.url());
    ASSERT_TRUE(std::holds_alternative<std::vector<int>>(migrated)) << std::get<std::string>(migrated);
    cfg_ = std::make_unique<caf::actor_system_config>();
    register_message_types(*cfg_);
    sys_ = std::make_unique<caf::actor_system>(*cfg_);
    connection_ = caf::actor_cast<caf::actor>(spawn_database_connection(*sys_, database_options{db_.url(), 2000ms}));
    auto lookup = [c = connection_](size_t) -> std::optional<db_connection_actor> {
      return caf::actor_cast<db_connection_actor>(c);
    };
    query_ = caf::actor_cast<caf::actor>(spawn_query_router(*sys_, 1, lookup));
  }

  void TearDown() override {
    if (!sys_)
      return;
    for (auto& a : {sweeper_, query_, connection_})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::kill);
  }

  /// `days` before the sweeper's now, as SQL.
  static std::string days_ago(double days) {
    return "(to_timestamp(" + std::to_string(now_ms / 1000) + ") - interval '" + std::to_string(days) + " days')";
  }

  int count(const std::string& table) { return std::stoi(db_.scalar("SELECT count(*) FROM " + table)); }

  int64_t sweep() {
    caf::scoped_actor self{*sys_};
    int64_t deleted = -1;
    self->request(sweeper_, caf::duration{60s}, retention_sweep_atom::value)
      .receive([&](int64_t n) { deleted = n; }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
    return deleted;
  }

  troupe::testing::scratch_database db_;
  std::unique_ptr<caf::actor_system_config> cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::actor connection_, query_, sweeper_;
};

} // namespace

// Old rows go, in batches of 2; recent rows stay; a table without a period keeps everything; funnel events are aged
// by when we received them, not by the client's clock; expired token revocations are purged; a second sweep finds
// nothing.
TEST_F(Retention, DeletesRowsPastTheirPeriodInBatches) {
  for (int i = 0; i < 5; ++i)
    db_.execute("INSERT INTO security_events (type, severity, created_at) VALUES ('invalid_token', 'warning', "
                + days_ago(100 + i) + ")");
  db_.execute("INSERT INTO security_events (type, severity, created_at) VALUES ('invalid_token', 'warning', "
              + days_ago(1) + ")");
  for (int i = 0; i < 3; ++i)
    db_.execute("INSERT INTO idempotency_keys (scope, key, request_hash, result, created_at) VALUES ('ip:1', 'old"
                + std::to_string(i) + "', 'h', '{}', " + days_ago(2) + ")");
  db_.execute("INSERT INTO idempotency_keys (scope, key, request_hash, result, created_at) VALUES ('ip:1', 'new', 'h', "
              "'{}', "
              + days_ago(0.5) + ")");
  for (int i = 0; i < 3; ++i)
    db_.execute("INSERT INTO funnel_events (id, event, occurred_at, received_at) VALUES (gen_random_uuid(), 'view', "
                + days_ago(0) + ", " + days_ago(31) + ")");
  db_.execute("INSERT INTO funnel_events (id, event, occurred_at, received_at) VALUES (gen_random_uuid(), 'view', "
              + days_ago(400) + ", " + days_ago(1) + ")");
  db_.execute("INSERT INTO feedback (id, rating, created_at) VALUES (gen_random_uuid(), 5, " + days_ago(1000) + ")");
  db_.execute("INSERT INTO users (id, email, password_hash) VALUES ('00000000-0000-0000-0000-000000000001', "
              "'a@example.com', 'x')");
  db_.execute("INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ('gone', "
              "'00000000-0000-0000-0000-000000000001', now() - interval '1 hour'), ('live', "
              "'00000000-0000-0000-0000-000000000001', now() + interval '1 hour')");

  retention_options opts;
  opts.tables = {{"security_events", 90 * day_ms},
                 {"idempotency_keys", 1 * day_ms},
                 {"funnel_events", 30 * day_ms},
                 {"feedback", 0}};
  opts.batch_rows = 2;
  opts.first_delay = 1h; // only the sweeps the test asks for
  opts.db_query = [q = query_]() -> std::optional<db_query_actor> { return caf::actor_cast<db_query_actor>(q); };
  opts.now_unix_ms = [] { return now_ms; };
  opts.counters = make_retention_counters(opts);
  sweeper_ = spawn_retention_sweeper(*sys_, opts);

  EXPECT_EQ(sweep(), 5 + 3 + 3 + 1);
  EXPECT_EQ(count("security_events"), 1);
  EXPECT_EQ(count("idempotency_keys"), 1);
  EXPECT_EQ(db_.scalar("SELECT key FROM idempotency_keys"), "new");
  EXPECT_EQ(count("funnel_events"), 1);
  EXPECT_EQ(count("feedback"), 1);
  EXPECT_EQ(db_.scalar("SELECT string_agg(jti, ',') FROM revoked_tokens"), "live");
  EXPECT_EQ(opts.counters->deleted["security_events"].load(), 5u);
  EXPECT_EQ(opts.counters->deleted["idempotency_keys"].load(), 3u);
  EXPECT_EQ(opts.counters->deleted["funnel_events"].load(), 3u);
  EXPECT_EQ(opts.counters->deleted["feedback"].load(), 0u);
  EXPECT_EQ(opts.counters->deleted["auth_tokens"].load(), 1u);
  EXPECT_EQ(sweep(), 0);
}

// One step deletes at most max_rows; unknown tables and bad batch sizes are refused.
TEST_F(Retention, OneStepIsBounded) {
  for (int i = 0; i < 7; ++i)
    db_.execute("INSERT INTO security_events (type, severity, created_at) VALUES ('forbidden', 'warning', "
                + days_ago(10) + ")");
  caf::scoped_actor self{*sys_};
  auto step = [&](const std::string& table, int32_t max_rows) -> caf::expected<int64_t> {
    caf::expected<int64_t> out{int64_t{-1}};
    self->request(query_, caf::duration{30s}, retention_delete_atom::value, table, now_ms - day_ms, max_rows)
      .receive([&](int64_t n) { out = n; }, [&](caf::error& e) { out = std::move(e); });
    return out;
  };
  EXPECT_EQ(*step("security_events", 3), 3);
  EXPECT_EQ(*step("security_events", 3), 3);
  EXPECT_EQ(*step("security_events", 3), 1);
  EXPECT_EQ(*step("security_events", 3), 0);
  EXPECT_EQ(service_code(step("users", 3).error()), service_error::invalid_input);
  EXPECT_EQ(service_code(step("security_events", 0).error()), service_error::invalid_input);
}
