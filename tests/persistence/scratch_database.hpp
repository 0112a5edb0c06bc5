#pragma once
// A fresh PostgreSQL database per test, created through the test PostgreSQL (TROUPE_DATABASE_URL, which
// `make test` provides) and dropped afterwards, so pg tests never disturb each other or the `troupe` database.

#include <pqxx/pqxx>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <thread>

namespace troupe::testing {

class scratch_database {
public:
  /// Creates the database; `available()` is false when no test PostgreSQL is configured.
  scratch_database() {
    const char* base = std::getenv("TROUPE_DATABASE_URL");
    if (!base || !*base)
      return;
    base_url_ = base;
    std::random_device rd;
    name_ = "scratch_" + std::to_string(rd()) + std::to_string(rd());
    pqxx::connection admin{base_url_};
    pqxx::nontransaction tx{admin};
    tx.exec("CREATE DATABASE " + name_);
    url_ = with_database(base_url_, name_);
  }

  ~scratch_database() {
    if (name_.empty())
      return;
    try {
      pqxx::connection admin{base_url_};
      pqxx::nontransaction tx{admin};
      tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception&) {
      // Best effort: a leftover scratch database is harmless.
    }
  }

  bool available() const { return !url_.empty(); }
  const std::string& url() const { return url_; }

  /// Runs a query and returns the first column of the first row as text ("" if no row).
  std::string scalar(const std::string& sql) const {
    pqxx::connection conn{url_};
    pqxx::nontransaction tx{conn};
    auto result = tx.exec(sql);
    return result.empty() || result[0][0].is_null() ? std::string{} : result[0][0].as<std::string>();
  }

  void execute(const std::string& sql) const { execute_on(url_, sql); }

  /// Runs `sql` in a transaction of its own on the database at `url`.
  static void execute_on(const std::string& url, const std::string& sql) {
    pqxx::connection conn{url};
    pqxx::work tx{conn};
    tx.exec(sql);
    tx.commit();
  }

  /// Waits (polling every 5 ms, at most `limit`) until at least `n` sessions of THIS database wait for a lock
  /// (pg_stat_activity.wait_event_type = 'Lock'); false if they never did. Concurrency tests use it to make sure the
  /// overlap they are about really happened, and assert on the result: other tests' databases never count.
  bool wait_for_lock_waiters(size_t n, std::chrono::milliseconds limit = std::chrono::seconds{20}) const {
    pqxx::connection conn{url_};
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      pqxx::nontransaction tx{conn};
      auto waiting = tx.exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                             "AND datname = current_database()")[0][0]
                       .as<size_t>();
      tx.commit();
      if (waiting >= n)
        return true;
      if (std::chrono::steady_clock::now() > deadline)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds{5}); // PostgreSQL's backends are other processes
    }
  }

  /// Replaces the database name (the URI path) of a libpq URI.
  static std::string with_database(const std::string& url, const std::string& db) {
    auto scheme = url.find("://");
    auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    auto query = url.find('?');
    std::string head = slash == std::string::npos ? url.substr(0, query) : url.substr(0, slash);
    std::string tail = query == std::string::npos ? "" : url.substr(query);
    return head + "/" + db + tail;
  }

private:
  std::string base_url_;
  std::string name_;
  std::string url_;
};

} // namespace troupe::testing
