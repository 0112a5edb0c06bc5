#pragma once
// A fresh PostgreSQL database per test, created through the test PostgreSQL (TROUPE_DATABASE_URL, which
// `make test` provides) and dropped afterwards, so pg tests never disturb each other or the `troupe` database.

#include <pqxx/pqxx>

#include <cstdlib>
#include <optional>
#include <random>
#include <string>

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

  void execute(const std::string& sql) const {
    pqxx::connection conn{url_};
    pqxx::work tx{conn};
    tx.exec(sql);
    tx.commit();
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
