// Quota usage is durable: reserved through a session, committed by the DB writer, reloaded by a new session after
// a restart (a new manager, as after a crash or a redeploy). Against a real PostgreSQL.

#include "tests/persistence/scratch_database.hpp"

#include "actors/messages.hpp"
#include "actors/sessions.hpp"
#include "persistence/database.hpp"
#include "persistence/query_router.hpp"
#include "persistence/writer.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

TEST(SessionQuota, UsageSurvivesARestart) {
  troupe::testing::scratch_database db;
  if (!db.available())
    GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  caf::actor_system_config cfg;
  register_message_types(cfg);
  caf::actor_system sys{cfg};
  auto connection = caf::actor_cast<caf::actor>(spawn_database_connection(sys, database_options{db.url(), 2000ms}));
  auto lookup = [connection](size_t) -> std::optional<db_connection_actor> {
    return caf::actor_cast<db_connection_actor>(connection);
  };
  auto query = caf::actor_cast<caf::actor>(spawn_query_router(sys, 1, lookup));
  writer_options wo;
  wo.connection = lookup;
  auto writer = spawn_db_writer(sys, wo);
  caf::scoped_actor self{sys};
  std::string user_id;
  self
    ->request(query, caf::infinite, user_create_atom::value, std::string{"quota@example.com"}, std::string{"x"},
              std::string{"user"})
    .receive([&](user_record& u) { user_id = u.id; }, [](caf::error& e) { FAIL() << to_string(e); });

  auto manager_options = [&] {
    session_manager_options opts;
    opts.session.db_query = [query]() -> std::optional<db_query_actor> {
      return caf::actor_cast<db_query_actor>(query);
    };
    opts.session.writer = [writer]() -> std::optional<db_writer_actor> { return writer; };
    opts.session.daily_quota = [](const std::string&) { return int64_t{50}; };
    return opts;
  };
  auto used_now = [&](const session_manager_actor& manager, int64_t reserve) {
    caf::actor session;
    self->request(manager, caf::infinite, session_atom::value, user_id)
      .receive([&](caf::actor& a) { session = a; }, [](caf::error& e) { FAIL() << to_string(e); });
    quota_status q;
    self->request(session, caf::infinite, quota_atom::value, reserve)
      .receive([&](quota_status& r) { q = r; }, [](caf::error& e) { FAIL() << to_string(e); });
    return q.used;
  };

  auto first = spawn_session_manager(sys, manager_options());
  EXPECT_EQ(used_now(first, 3), 3);
  EXPECT_EQ(used_now(first, 4), 7);
  caf::anon_send_exit(first, caf::exit_reason::user_shutdown);
  // Usage rows are batched: wait (bounded) until they are committed.
  std::string stored;
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       stored != "7" && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(20ms))
    stored = db.scalar("SELECT coalesce(sum(requests), 0) FROM usage");
  ASSERT_EQ(stored, "7");

  auto second = spawn_session_manager(sys, manager_options());
  EXPECT_EQ(used_now(second, 0), 7);
  for (auto& a : {caf::actor_cast<caf::actor>(second), caf::actor_cast<caf::actor>(writer), query, connection})
    caf::anon_send_exit(a, caf::exit_reason::kill);
}
