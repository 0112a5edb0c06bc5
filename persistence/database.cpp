#include "persistence/database.hpp"

#include "persistence/batch_commit.hpp"
#include "persistence/messages.hpp"
#include "persistence/migrations_internal.hpp"

#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>
#include <pqxx/pqxx>

#include <algorithm>
#include <memory>
#include <random>

namespace troupe {

std::string with_connect_timeout(const std::string& url, std::chrono::milliseconds timeout) {
  auto seconds = std::max<int64_t>(1, (timeout.count() + 999) / 1000);
  auto param = "connect_timeout=" + std::to_string(seconds);
  if (url.find("://") == std::string::npos)
    return url + " " + param;
  return url + (url.find('?') == std::string::npos ? "?" : "&") + param;
}

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::chrono::milliseconds backoff_base{100};
constexpr std::chrono::milliseconds backoff_cap{5000};

struct database_state {
  database_options options;
  std::unique_ptr<pqxx::connection> connection;
  clock_type::time_point next_attempt{};
  std::chrono::milliseconds backoff{0};
  std::string last_error;
  std::minstd_rand random{std::random_device{}()};

  static inline const char* name = "database_connection";
};

using database_actor = caf::stateful_actor<database_state>;

double elapsed_ms(clock_type::time_point since) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - since).count();
}

/// Opens the connection unless the backoff says to wait; returns whether one is open.
bool ensure_connected(database_actor* self) {
  auto& st = self->state;
  if (st.connection && st.connection->is_open())
    return true;
  st.connection.reset();
  if (clock_type::now() < st.next_attempt)
    return false;
  try {
    st.connection =
      std::make_unique<pqxx::connection>(with_connect_timeout(st.options.url, st.options.connect_timeout));
    // Every connection brings the schema up to date (under an advisory lock, so concurrent connections and nodes
    // apply each migration once) before it serves anything.
    apply_migrations(*st.connection);
    prepare_write_statements(*st.connection);
    if (st.backoff.count() > 0)
      log::info("database connection restored");
    st.backoff = std::chrono::milliseconds{0};
    st.last_error.clear();
    return true;
  } catch (const std::exception& e) {
    st.connection.reset();
    // Full jitter over a capped exponential delay.
    st.backoff = std::min(backoff_cap, st.backoff.count() == 0 ? backoff_base : st.backoff * 2);
    std::uniform_int_distribution<int64_t> jitter{st.backoff.count() / 2, st.backoff.count()};
    st.next_attempt = clock_type::now() + std::chrono::milliseconds{jitter(st.random)};
    st.last_error = e.what();
    while (!st.last_error.empty() && (st.last_error.back() == '\n' || st.last_error.back() == ' '))
      st.last_error.pop_back();
    log::warn("database connection failed",
              log::fields{}.add("error", st.last_error).add("retry_in_ms", st.backoff.count()));
    return false;
  }
}

health_check ping(database_actor* self) {
  auto& st = self->state;
  auto start = clock_type::now();
  if (st.options.url.empty())
    return {"database", "unhealthy", 0, "no database configured (set TROUPE_DATABASE_URL)"};
  if (!ensure_connected(self))
    return {"database", "unhealthy", elapsed_ms(start), "unreachable: " + st.last_error};
  try {
    pqxx::nontransaction tx{*st.connection};
    tx.exec("SELECT 1");
    return {"database", "healthy", elapsed_ms(start), "SELECT 1 succeeded"};
  } catch (const std::exception& e) {
    st.last_error = e.what();
    st.connection.reset();
    return {"database", "unhealthy", elapsed_ms(start), "query failed: " + st.last_error};
  }
}

caf::result<std::vector<write_outcome>> commit(database_actor* self, const std::vector<write_request>& batch) {
  auto& st = self->state;
  if (st.options.url.empty())
    return make_error(service_error::unavailable, "No database is configured.");
  if (!ensure_connected(self))
    return make_error(service_error::unavailable, "The database is unreachable; retry shortly.");
  try {
    return commit_batch(*st.connection, batch);
  } catch (const pqxx::broken_connection& e) {
    st.last_error = e.what();
  } catch (const pqxx::in_doubt_error& e) {
    st.last_error = e.what();
  } catch (const std::exception& e) {
    st.last_error = e.what();
    log::error("database batch failed", log::fields{}.add("error", st.last_error));
  }
  // Whatever happened, this connection's state is unknown: start from a fresh one.
  st.connection.reset();
  return make_error(service_error::unavailable, "The database connection was lost; retry shortly.");
}

caf::behavior database_impl(database_actor* self, database_options options) {
  self->state.options = std::move(options);
  if (!self->state.options.url.empty())
    ensure_connected(self);
  return {
    [self](ping_atom) { return ping(self); },
    [self](commit_atom, const std::vector<write_request>& batch) { return commit(self, batch); },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

caf::actor spawn_database_connection(caf::actor_system& sys, database_options options) {
  return sys.spawn<caf::detached>(database_impl, std::move(options));
}

} // namespace troupe
