// Tests of persistence/migrations.cpp and the embedded persistence/migrations/*.sql: applying to an empty
// database, idempotence, two concurrent migrators (the advisory lock), the tables and constraints of the
// schema, rollback of a failing migration, a database newer than the binary, and error messages without
// secrets.
//
// Each PostgreSQL test runs in its own database, mig_<random>, created through TROUPE_DATABASE_URL and dropped
// afterwards, so tests never disturb each other or the shared database. Without TROUPE_DATABASE_URL they skip.

#include "persistence/migrations.hpp"
#include "persistence/migrations_internal.hpp"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

constexpr auto wait_limit = 10s;

/// The connection string `url` with its database replaced by `database` (libpq takes the last dbname given).
std::string with_database(const std::string& url, const std::string& database) {
  if (url.find("://") == std::string::npos)
    return url + " dbname=" + database;
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "dbname=" + database;
}

std::string random_suffix() {
  std::mt19937_64 random{std::random_device{}()};
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (auto bits = random(); out.size() < 16; bits >>= 4)
    out += digits[bits & 0xf];
  return out;
}

/// Runs `sql` in its own transaction and commits it.
void exec(pqxx::connection& conn, const std::string& sql) {
  pqxx::work tx{conn};
  tx.exec(sql);
  tx.commit();
}

/// The single value of a one-row, one-column query.
int64_t scalar(pqxx::connection& conn, const std::string& sql) {
  pqxx::read_transaction tx{conn};
  return tx.exec1(sql)[0].as<int64_t>();
}

bool table_exists(pqxx::connection& conn, const std::string& name) {
  pqxx::read_transaction tx{conn};
  return !tx.exec_params1("SELECT to_regclass($1)", name)[0].is_null();
}

std::vector<int> recorded_versions(pqxx::connection& conn) {
  pqxx::read_transaction tx{conn};
  std::vector<int> versions;
  for (const auto& row : tx.exec("SELECT version FROM schema_migrations ORDER BY version"))
    versions.push_back(row[0].as<int>());
  return versions;
}

std::vector<int> embedded_versions() {
  std::vector<int> versions;
  for (const auto& m : all_migrations())
    versions.push_back(m.version);
  return versions;
}

/// A fresh, empty database for one test: url_ points at it.
class Migrations : public ::testing::Test {
protected:
  void SetUp() override {
    const char* url = std::getenv("TROUPE_DATABASE_URL");
    if (url == nullptr || *url == '\0')
      GTEST_SKIP() << "TROUPE_DATABASE_URL is not set (make test starts a private PostgreSQL)";
    admin_url_ = url;
    auto name = "mig_" + random_suffix();
    pqxx::connection admin{admin_url_};
    pqxx::nontransaction tx{admin};
    tx.exec("CREATE DATABASE " + tx.quote_name(name));
    database_ = name;
    url_ = with_database(admin_url_, database_);
  }

  void TearDown() override {
    if (database_.empty())
      return;
    pqxx::connection admin{admin_url_};
    pqxx::nontransaction tx{admin};
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(database_) + " WITH (FORCE)");
  }

  std::string admin_url_;
  std::string database_;
  std::string url_;
};

// The embedded list is what the generator promises: versions strictly ascending from 1, names snake_case.
TEST(EmbeddedMigrations, VersionsAreStrictlyAscendingAndUnique) {
  const auto& migrations = all_migrations();
  ASSERT_FALSE(migrations.empty());
  EXPECT_EQ(migrations.front().version, 1);
  EXPECT_EQ(migrations.front().name, "initial_schema");
  for (size_t i = 0; i < migrations.size(); ++i) {
    const auto& m = migrations[i];
    EXPECT_GT(m.version, 0);
    EXPECT_LE(m.version, 9999);
    EXPECT_TRUE(std::regex_match(m.name, std::regex{"[a-z0-9_]+"})) << m.name;
    EXPECT_NE(m.sql.find_first_not_of(" \t\r\n"), std::string::npos) << m.version << " is empty";
    if (i > 0) {
      EXPECT_LT(migrations[i - 1].version, m.version) << "at index " << i;
    }
  }
}

// A malformed or unreachable URL comes back as one line that contains neither the URL nor its password.
TEST(MigrateDatabase, ErrorsNeverContainTheUrlOrPassword) {
  const std::vector<std::string> urls{
    "postgresql://troupe:s3cr%zzet@127.0.0.1/troupe",           // libpq quotes the bad token: the password
    "postgresql://troupe:s3cret@/troupe?host=/nonexistent/dir", // no such socket directory
    "postgresql://troupe@/troupe?host=/nonexistent/dir&password=s3cret",
    "host=/nonexistent/dir password=s3cret garbage", // libpq quotes "garbage"
    "host=/nonexistent/dir password='s3cret' dbname=troupe",
  };
  for (const auto& url : urls) {
    auto result = migrate_database(url);
    ASSERT_TRUE(std::holds_alternative<std::string>(result)) << url;
    const auto& error = std::get<std::string>(result);
    EXPECT_FALSE(error.empty()) << url;
    EXPECT_EQ(error.find("s3cr"), std::string::npos) << error;
    EXPECT_EQ(error.find(url), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
  EXPECT_TRUE(std::holds_alternative<std::string>(migrate_database("")));
}

// On an empty database every embedded migration is applied, in order, and recorded with its name.
TEST_F(Migrations, AppliesAllToAnEmptyDatabaseAndRecordsEachVersion) {
  pqxx::connection conn{url_};
  EXPECT_EQ(apply_migrations(conn), embedded_versions());
  EXPECT_EQ(recorded_versions(conn), embedded_versions());
  pqxx::read_transaction tx{conn};
  for (const auto& m : all_migrations()) {
    auto row = tx.exec_params1("SELECT name, applied_at <= now() FROM schema_migrations WHERE version = $1", m.version);
    EXPECT_EQ(row[0].as<std::string>(), m.name);
    EXPECT_TRUE(row[1].as<bool>());
  }
}

// Migrating an up-to-date database applies nothing and changes no record.
TEST_F(Migrations, SecondRunAppliesNothing) {
  auto first = migrate_database(url_);
  ASSERT_TRUE(std::holds_alternative<std::vector<int>>(first)) << std::get<std::string>(first);
  EXPECT_EQ(std::get<std::vector<int>>(first), embedded_versions());

  auto second = migrate_database(url_);
  ASSERT_TRUE(std::holds_alternative<std::vector<int>>(second)) << std::get<std::string>(second);
  EXPECT_TRUE(std::get<std::vector<int>>(second).empty());

  pqxx::connection conn{url_};
  EXPECT_EQ(recorded_versions(conn), embedded_versions());
}

// Two migrators that start while the advisory lock is taken both succeed once it is released, and between
// them apply every migration exactly once.
TEST_F(Migrations, ConcurrentMigratorsApplyEachMigrationExactlyOnce) {
  pqxx::connection holder{url_};
  pqxx::connection observer{url_};
  {
    pqxx::nontransaction tx{holder};
    tx.exec_params("SELECT pg_advisory_lock($1)", migration_lock_key);
  }

  std::variant<std::vector<int>, std::string> via_url;
  std::vector<int> via_connection;
  std::string via_connection_error;
  std::thread first{[&] { via_url = migrate_database(url_); }};
  std::thread second{[&] {
    try {
      pqxx::connection conn{url_};
      via_connection = apply_migrations(conn);
    } catch (const std::exception& e) {
      via_connection_error = e.what();
    }
  }};

  // Both migrators queue on the lock: two ungranted advisory locks in this test's database.
  const std::string waiting = "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                              "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()";
  auto deadline = std::chrono::steady_clock::now() + wait_limit;
  while (scalar(observer, waiting) < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);  // PostgreSQL (another process) must reach its lock wait: poll, bounded
  EXPECT_EQ(scalar(observer, waiting), 2) << "the migrators did not both wait for the advisory lock";

  {
    pqxx::nontransaction tx{holder};
    tx.exec_params("SELECT pg_advisory_unlock($1)", migration_lock_key);
  }
  first.join();
  second.join();

  ASSERT_TRUE(std::holds_alternative<std::vector<int>>(via_url)) << std::get<std::string>(via_url);
  ASSERT_EQ(via_connection_error, "");
  auto applied = std::get<std::vector<int>>(via_url);
  applied.insert(applied.end(), via_connection.begin(), via_connection.end());
  std::sort(applied.begin(), applied.end());
  EXPECT_EQ(applied, embedded_versions()); // each exactly once, split between the two in any way
  EXPECT_EQ(recorded_versions(observer), embedded_versions());
}

// Every table the other subsystems rely on exists, with the indexes the workload needs.
TEST_F(Migrations, CreatesEveryTableAndTheWorkloadIndexes) {
  pqxx::connection conn{url_};
  apply_migrations(conn);
  for (const char* table : {"schema_migrations", "tiers", "plans", "pro_wishlist", "users", "api_keys", "refresh_tokens", "repositories",
                            "files", "file_segments", "uploads", "jobs", "usage", "feedback", "funnel_events",
                            "security_events", "cluster_members", "idempotency_keys", "storage_usage", "job_turns"})
    EXPECT_TRUE(table_exists(conn, table)) << table;
  for (const char* index :
       {"api_keys_user_id_idx", "refresh_tokens_family_id_idx", "refresh_tokens_expires_at_idx",
        "file_segments_tsv_idx", "uploads_expires_at_pending_idx", "jobs_owner_dispatch_idx", "jobs_lease_until_idx",
        "funnel_events_event_occurred_at_idx", "security_events_ip_created_at_idx", "idempotency_keys_created_at_idx",
        "plans_repository_idx", "plans_created_at_idx", "pro_wishlist_email_idx", "pro_wishlist_created_at_idx"})
    EXPECT_TRUE(table_exists(conn, index)) << index;
}

// The constraints that guard data the application trusts hold.
TEST_F(Migrations, ConstraintsRejectInvalidRows) {
  pqxx::connection conn{url_};
  apply_migrations(conn);

  // Tiers (called plans before migration 0012, which renamed them with their rows) are seeded; users default to
  // 'free' and must name an existing tier.
  EXPECT_EQ(scalar(conn, "SELECT daily_generation_quota FROM tiers WHERE name = 'free'"), 50);
  EXPECT_EQ(scalar(conn, "SELECT daily_generation_quota FROM tiers WHERE name = 'pro'"), 1000);
  exec(conn, "INSERT INTO users (email, password_hash) VALUES ('ada@example.com', 'h')");
  EXPECT_EQ(scalar(conn, "SELECT count(*) FROM users WHERE plan = 'free' AND role = 'user'"), 1);
  EXPECT_THROW(exec(conn, "INSERT INTO users (email, password_hash, plan) VALUES ('b@example.com', 'h', 'gold')"),
               pqxx::foreign_key_violation);

  // One account per (lower-case) address.
  EXPECT_THROW(exec(conn, "INSERT INTO users (email, password_hash) VALUES ('ada@example.com', 'h')"),
               pqxx::unique_violation);
  EXPECT_THROW(exec(conn, "INSERT INTO users (email, password_hash) VALUES ('Ada@example.com', 'h')"),
               pqxx::check_violation);
  EXPECT_THROW(exec(conn, "INSERT INTO users (email, password_hash, role) VALUES ('c@example.com', 'h', 'root')"),
               pqxx::check_violation);

  // Feedback ratings are 1..5.
  EXPECT_THROW(exec(conn, "INSERT INTO feedback (rating) VALUES (0)"), pqxx::check_violation);
  EXPECT_THROW(exec(conn, "INSERT INTO feedback (rating) VALUES (6)"), pqxx::check_violation);
  exec(conn, "INSERT INTO feedback (rating) VALUES (1), (5)");

  // Funnel event names are 1..64 characters; ids are unique, so a retried batch can skip what it wrote.
  EXPECT_THROW(exec(conn, "INSERT INTO funnel_events (id, event, occurred_at) VALUES (gen_random_uuid(), '', now())"),
               pqxx::check_violation);
  EXPECT_THROW(exec(conn, "INSERT INTO funnel_events (id, event, occurred_at) "
                          "VALUES (gen_random_uuid(), repeat('e', 65), now())"),
               pqxx::check_violation);
  const std::string event = "INSERT INTO funnel_events (id, event, occurred_at) "
                            "VALUES ('00000000-0000-0000-0000-000000000001', repeat('e', 64), now()) "
                            "ON CONFLICT (id) DO NOTHING";
  exec(conn, event);
  exec(conn, event);
  EXPECT_EQ(scalar(conn, "SELECT count(*) FROM funnel_events"), 1);

  // An upload's offset stays within its length.
  EXPECT_THROW(exec(conn, "INSERT INTO uploads (user_id, filename, upload_length, upload_offset, storage_path, "
                          "expires_at) SELECT id, 'a.zip', 10, 11, '/tmp/a', now() + interval '1 day' FROM users"),
               pqxx::check_violation);

  // Segments are searchable through the generated tsvector.
  exec(conn, "INSERT INTO repositories (user_id, name) SELECT id, 'r' FROM users;"
             "INSERT INTO files (repository_id, path) SELECT id, 'main.cpp' FROM repositories;"
             "INSERT INTO file_segments (file_id, seq, start_line, end_line, content) "
             "SELECT id, 0, 1, 2, 'int spawn_actor() { return 0; }' FROM files");
  EXPECT_EQ(scalar(conn, "SELECT count(*) FROM file_segments WHERE tsv @@ to_tsquery('simple', 'spawn_actor')"), 1);

  // Deleting a user cascades to what it owns.
  exec(conn, "INSERT INTO api_keys (user_id, name, key_hash, key_last4) "
             "SELECT id, 'ci', sha256('secret'), 'cret' FROM users");
  exec(conn, "DELETE FROM users");
  EXPECT_EQ(scalar(conn, "SELECT count(*) FROM api_keys"), 0);
  EXPECT_EQ(scalar(conn, "SELECT count(*) FROM file_segments"), 0);
}

// A failing migration is rolled back as a whole (its DDL and its record); earlier ones stay applied, and a
// corrected run picks up where it stopped.
TEST_F(Migrations, RollsBackAFailingMigrationAndKeepsEarlierOnes) {
  pqxx::connection conn{url_};
  std::vector<migration> broken{{1, "first", "CREATE TABLE first_table (id int)"},
                                {2, "second", "CREATE TABLE second_table (id int); SELECT 1 / 0"}};
  EXPECT_THROW(apply_migrations(conn, broken), pqxx::sql_error);
  EXPECT_TRUE(table_exists(conn, "first_table"));
  EXPECT_FALSE(table_exists(conn, "second_table"));
  EXPECT_EQ(recorded_versions(conn), std::vector<int>{1});
  EXPECT_EQ(scalar(conn, "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                         "WHERE l.locktype = 'advisory' AND d.datname = current_database()"),
            0)
    << "the advisory lock was not released";

  std::vector<migration> fixed{broken[0], {2, "second", "CREATE TABLE second_table (id int)"}};
  EXPECT_EQ(apply_migrations(conn, fixed), std::vector<int>{2});
  EXPECT_TRUE(table_exists(conn, "second_table"));
  EXPECT_EQ(recorded_versions(conn), (std::vector<int>{1, 2}));
}

// A database that records a version this binary does not know (a newer release migrated it) is left as it
// is: nothing applied, nothing removed, and no error.
TEST_F(Migrations, LeavesADatabaseWithAnUnknownVersionAlone) {
  pqxx::connection conn{url_};
  exec(conn, "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
             "applied_at timestamptz NOT NULL DEFAULT now());"
             "INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_a_newer_release')");

  auto result = migrate_database(url_);
  ASSERT_TRUE(std::holds_alternative<std::vector<int>>(result)) << std::get<std::string>(result);
  EXPECT_TRUE(std::get<std::vector<int>>(result).empty());
  EXPECT_FALSE(table_exists(conn, "users"));
  EXPECT_EQ(recorded_versions(conn), std::vector<int>{9999});
}

} // namespace
