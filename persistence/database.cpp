#include "persistence/database.hpp"
#include "introspect/messages.hpp"
#include "introspect/observed_actor.hpp"

#include "persistence/accounts.hpp"
#include "persistence/accounts_sql.hpp"
#include "persistence/batch_commit.hpp"
#include "persistence/content_sql.hpp"
#include "persistence/messages.hpp"
#include "persistence/migrations_internal.hpp"
#include "persistence/plans_sql.hpp"
#include "persistence/retention_sql.hpp"
#include "persistence/security_status_sql.hpp"
#include "persistence/usage_sql.hpp"
#include "persistence/wishlist_sql.hpp"

#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>
#include <optional>
#include <pqxx/pqxx>

#include <algorithm>
#include <memory>
#include <random>
#include <type_traits>

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

using database_actor = observed_typed_stateful_actor<db_connection_actor, database_state>;

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
    accounts_sql::prepare_statements(*st.connection);
    content_sql::prepare_statements(*st.connection);
    retention_sql::prepare_statements(*st.connection);
    wishlist_sql::prepare_statements(*st.connection);
    security_status_sql::prepare_statements(*st.connection);
    plans_sql::prepare_statements(*st.connection);
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

/// Runs `query` (pqxx::work& -> caf::expected<T>) in a transaction of its own and commits it, unless its answer is
/// an error: then whatever it wrote is rolled back (an error changes nothing). Never throws:
/// unique_violation -> conflict, a missing user (foreign key) -> not_found, other refused data -> invalid_input,
/// a lost connection -> unavailable (and a fresh connection next time), anything else -> internal. A deadlock or
/// serialization failure is retried twice.
template <class Query>
auto run_query(database_actor* self, const char* what, Query query)
  -> caf::result<typename std::invoke_result_t<Query, pqxx::work&>::value_type> {
  auto& st = self->state;
  if (st.options.url.empty())
    return make_error(service_error::unavailable, "No database is configured.");
  if (!ensure_connected(self))
    return make_error(service_error::unavailable, "The database is unreachable; retry shortly.");
  for (int attempt = 1;; ++attempt) {
    try {
      pqxx::work tx{*st.connection};
      auto answer = query(tx);
      if (answer)
        tx.commit();
      return answer; // an error: the transaction rolls back as it goes out of scope
    } catch (const pqxx::unique_violation&) {
      return make_error(service_error::conflict, "It already exists.");
    } catch (const pqxx::foreign_key_violation&) {
      return make_error(service_error::not_found, "No such user.");
    } catch (const pqxx::integrity_constraint_violation&) {
      return make_error(service_error::invalid_input, "The database refused the value.");
    } catch (const pqxx::data_exception&) {
      return make_error(service_error::invalid_input, "The database refused the value.");
    } catch (const pqxx::deadlock_detected&) {
      if (attempt < 3)
        continue;
      return make_error(service_error::unavailable, "The database is busy; retry shortly.");
    } catch (const pqxx::serialization_failure&) {
      if (attempt < 3)
        continue;
      return make_error(service_error::unavailable, "The database is busy; retry shortly.");
    } catch (const pqxx::broken_connection& e) {
      st.last_error = e.what();
      st.connection.reset();
      return make_error(service_error::unavailable, "The database connection was lost; retry shortly.");
    } catch (const pqxx::in_doubt_error& e) {
      st.last_error = e.what();
      st.connection.reset();
      return make_error(service_error::unavailable, "The database connection was lost; retry shortly.");
    } catch (const std::exception& e) {
      log::error("database query failed", log::fields{}.add("query", what).add("error", e.what()));
    } catch (...) {
      log::error("database query failed", log::fields{}.add("query", what));
    }
    if (st.connection && !st.connection->is_open())
      st.connection.reset();
    return make_error(service_error::internal, "The database query failed.");
  }
}

/// run_query for a transaction that may change storage_usage: counted in the storage epoch from before it starts
/// until it committed or rolled back, so no reader keeps a value it may have changed.
template <class Query>
auto run_storage_query(database_actor* self, const char* what, Query query) {
  storage_epoch::change changing{self->state.options.storage_changes.get()};
  return run_query(self, what, std::move(query));
}

db_connection_actor::behavior_type database_impl(database_actor* self, database_options options) {
  self->state.options = std::move(options);
  if (!self->state.options.url.empty())
    ensure_connected(self);
  return {
    [self](ping_atom) { return ping(self); },
    [self](commit_atom, const std::vector<write_request>& batch) { return commit(self, batch); },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
    // Accounts (persistence/accounts.hpp)
    [self](user_create_atom, const std::string& email, const std::string& password_hash, const std::string& role) {
      return run_query(self, "user_create",
                       [&](pqxx::work& tx) { return accounts_sql::user_create(tx, email, password_hash, role); });
    },
    [self](user_guest_atom, const std::string& user_id, const std::string& email) {
      return run_query(self, "user_guest",
                       [&](pqxx::work& tx) { return accounts_sql::user_guest(tx, user_id, email); });
    },
    [self](user_by_email_atom, const std::string& email) {
      return run_query(self, "user_by_email", [&](pqxx::work& tx) { return accounts_sql::user_by_email(tx, email); });
    },
    [self](user_by_id_atom, const std::string& user_id) {
      return run_query(self, "user_by_id", [&](pqxx::work& tx) { return accounts_sql::user_by_id(tx, user_id); });
    },
    [self](user_set_role_atom, const std::string& email, const std::string& role) {
      return run_query(self, "user_set_role",
                       [&](pqxx::work& tx) { return accounts_sql::user_set_role(tx, email, role); });
    },
    [self](usage_load_atom, const std::string& user_id, const std::string& day) {
      return run_query(self, "usage_load", [&](pqxx::work& tx) -> caf::expected<int64_t> {
        auto rows =
          tx.exec_params("SELECT requests FROM usage WHERE user_id = $1::uuid AND day = $2::date", user_id, day);
        return rows.empty() ? int64_t{0} : rows[0][0].as<int64_t>();
      });
    },
    [self](usage_report_atom, const std::string& user_id, const std::string& from_day, const std::string& to_day,
           uint8_t grouping) {
      return run_query(self, "usage_report", [&](pqxx::work& tx) {
        return usage_sql::report(tx, user_id, from_day, to_day, static_cast<usage_grouping>(grouping));
      });
    },
    [self](spend_load_atom, const std::string& user_id, int64_t day_start, int64_t month_start) {
      return run_query(self, "spend_load",
                       [&](pqxx::work& tx) { return usage_sql::spend(tx, user_id, day_start, month_start); });
    },
    [self](session_load_atom, const std::string& user_id) {
      return run_query(self, "session_load", [&](pqxx::work& tx) { return accounts_sql::session_load(tx, user_id); });
    },
    [self](refresh_issue_atom, const std::string& user_id, const std::string& family_id, const std::string& hash,
           int64_t expires_at) {
      return run_query(self, "refresh_issue", [&](pqxx::work& tx) {
        return accounts_sql::refresh_issue(tx, user_id, family_id, hash, expires_at);
      });
    },
    [self](refresh_rotate_atom, const std::string& old_hash, const std::string& new_hash, int64_t new_expires_at) {
      return run_query(self, "refresh_rotate", [&](pqxx::work& tx) {
        return accounts_sql::refresh_rotate(tx, old_hash, new_hash, new_expires_at);
      });
    },
    [self](refresh_revoke_atom, const std::string& hash) {
      return run_query(self, "refresh_revoke", [&](pqxx::work& tx) { return accounts_sql::refresh_revoke(tx, hash); });
    },
    [self](refresh_revoke_user_atom, const std::string& user_id) {
      return run_query(self, "refresh_revoke_user",
                       [&](pqxx::work& tx) { return accounts_sql::refresh_revoke_user(tx, user_id); });
    },
    [self](jti_revoke_atom, const std::string& user_id, const std::string& jti, int64_t expires_at) {
      return run_query(self, "jti_revoke",
                       [&](pqxx::work& tx) { return accounts_sql::jti_revoke(tx, user_id, jti, expires_at); });
    },
    [self](api_key_create_atom, const std::string& user_id, const std::string& name, const std::string& hash,
           const std::string& last4, const api_key_limits& limits) {
      return run_query(self, "api_key_create", [&](pqxx::work& tx) {
        return accounts_sql::api_key_create(tx, user_id, name, hash, last4, limits);
      });
    },
    [self](api_key_list_atom, const std::string& user_id) {
      return run_query(self, "api_key_list", [&](pqxx::work& tx) { return accounts_sql::api_key_list(tx, user_id); });
    },
    [self](api_key_revoke_atom, const std::string& user_id, const std::string& key_id) {
      return run_query(self, "api_key_revoke",
                       [&](pqxx::work& tx) { return accounts_sql::api_key_revoke(tx, user_id, key_id); });
    },
    [self](api_key_lookup_atom, const std::string& hash) {
      return run_query(self, "api_key_lookup", [&](pqxx::work& tx) { return accounts_sql::api_key_lookup(tx, hash); });
    },
    [self](api_key_touch_atom, const std::string& key_id, int64_t used_at) {
      return run_query(self, "api_key_touch",
                       [&](pqxx::work& tx) { return accounts_sql::api_key_touch(tx, key_id, used_at); });
    },
    [self](auth_purge_atom) {
      return run_query(self, "auth_purge", [&](pqxx::work& tx) { return accounts_sql::auth_purge(tx); });
    },
    // The wishlist (persistence/wishlist.hpp)
    [self](wishlist_add_atom, const wishlist_entry& entry) {
      return run_query(self, "wishlist_add", [&](pqxx::work& tx) { return wishlist_sql::add(tx, entry); });
    },
    [self](wishlist_list_atom, const wishlist_cursor& after, int32_t limit) {
      return run_query(self, "wishlist_list", [&](pqxx::work& tx) { return wishlist_sql::list(tx, after, limit); });
    },
    // Plans (persistence/plans.hpp)
    [self](plan_request_atom, const std::string& user_id, const std::string& repository_id, const job_draft& job,
           int32_t max_active) {
      return run_query(self, "plan_request",
                       [&](pqxx::work& tx) { return plans_sql::request(tx, user_id, repository_id, job, max_active); });
    },
    [self](plan_store_atom, const plan_record& plan) {
      return run_query(self, "plan_store", [&](pqxx::work& tx) { return plans_sql::store(tx, plan); });
    },
    [self](plan_get_atom, const std::string& user_id, const std::string& id) {
      return run_query(self, "plan_get", [&](pqxx::work& tx) { return plans_sql::get(tx, user_id, id); });
    },
    [self](plan_list_atom, const std::string& user_id, const std::string& repository_id, int32_t limit) {
      return run_query(self, "plan_list",
                       [&](pqxx::work& tx) { return plans_sql::list(tx, user_id, repository_id, limit); });
    },
    [self](plan_delete_atom, const std::string& user_id, const std::string& id) {
      return run_query(self, "plan_delete", [&](pqxx::work& tx) { return plans_sql::remove(tx, user_id, id); });
    },
    // GET /api/security/status (persistence/security_status.hpp)
    [self](security_report_atom, int64_t since_unix_ms, int32_t limit) {
      return run_query(self, "security_report",
                       [&](pqxx::work& tx) { return security_status_sql::report(tx, since_unix_ms, limit); });
    },
    // Retention (persistence/retention.hpp)
    [self](retention_delete_atom, const std::string& table, int64_t cutoff_unix_ms, int32_t max_rows) {
      return run_query(self, "retention_delete",
                       [&](pqxx::work& tx) { return retention_sql::delete_old(tx, table, cutoff_unix_ms, max_rows); });
    },
    // Uploads, jobs and repositories (persistence/uploads.hpp, jobs.hpp, repositories.hpp)
    [self](upload_create_atom, const upload_record& draft, int64_t expire_ms) {
      return run_storage_query(self, "upload_create", [&](pqxx::work& tx) {
        return uploads_sql::create(tx, draft, expire_ms, self->state.options.storage);
      });
    },
    [self](upload_load_atom, const std::string& id) {
      return run_query(self, "upload_load", [&](pqxx::work& tx) { return uploads_sql::load(tx, id); });
    },
    [self](upload_advance_atom, const std::string& id, int64_t from, int64_t to, int64_t expire_ms) {
      return run_query(self, "upload_advance",
                       [&](pqxx::work& tx) { return uploads_sql::advance(tx, id, from, to, expire_ms); });
    },
    [self](upload_complete_atom, const std::string& id, int64_t from, const job_draft& job) {
      return run_storage_query(self, "upload_complete",
                               [&](pqxx::work& tx) { return uploads_sql::complete(tx, id, from, job); });
    },
    [self](upload_empty_atom, const std::string& id, bool as_file, const std::string& language) {
      return run_storage_query(self, "upload_empty",
                               [&](pqxx::work& tx) { return uploads_sql::complete_empty(tx, id, as_file, language); });
    },
    [self](upload_terminate_atom, const std::string& id) {
      return run_storage_query(self, "upload_terminate",
                               [&](pqxx::work& tx) { return uploads_sql::terminate(tx, id); });
    },
    [self](upload_expire_atom, int32_t max) {
      return run_storage_query(self, "upload_expire", [&](pqxx::work& tx) { return uploads_sql::expire(tx, max); });
    },
    [self](storage_get_atom, const std::string& user_id) {
      return run_query(self, "storage_get",
                       [&](pqxx::work& tx) { return uploads_sql::storage(tx, user_id, self->state.options.storage); });
    },
    [self](storage_room_atom, const std::string& upload_id) {
      return run_query(self, "storage_room", [&](pqxx::work& tx) {
        return uploads_sql::storage_room(tx, upload_id, self->state.options.storage);
      });
    },
    [self](job_enqueue_atom, const std::string& user_id, const job_draft& draft) {
      return run_query(self, "job_enqueue", [&](pqxx::work& tx) { return jobs_sql::enqueue(tx, user_id, draft); });
    },
    [self](job_claim_atom, const std::string& owner, int64_t lease_ms, int32_t max) {
      // A claim changes storage only when a lapsed last attempt releases its upload's reservation: counted from
      // then (before the commit) until after the transaction, not on every poll.
      std::optional<storage_epoch::change> changing;
      auto lapsed = [&] {
        if (!changing)
          changing.emplace(self->state.options.storage_changes.get());
      };
      return run_query(self, "job_claim",
                       [&](pqxx::work& tx) { return jobs_sql::claim(tx, owner, lease_ms, max, lapsed); });
    },
    [self](job_renew_atom, const std::string& owner, const std::vector<std::string>& ids, int64_t lease_ms) {
      return run_query(self, "job_renew", [&](pqxx::work& tx) { return jobs_sql::renew(tx, owner, ids, lease_ms); });
    },
    [self](job_finish_atom, const std::string& id, const std::string& owner, int32_t attempt,
           const std::string& result) {
      return run_storage_query(self, "job_finish",
                               [&](pqxx::work& tx) { return jobs_sql::finish(tx, id, owner, attempt, result); });
    },
    [self](job_fail_atom, const std::string& id, const std::string& owner, int32_t attempt, const std::string& error,
           bool permanent, int64_t backoff_base_ms) {
      return run_storage_query(self, "job_fail", [&](pqxx::work& tx) {
        return jobs_sql::fail(tx, id, owner, attempt, error, permanent, backoff_base_ms);
      });
    },
    [self](job_release_atom, const std::string& owner, const std::vector<std::string>& ids) {
      return run_query(self, "job_release", [&](pqxx::work& tx) { return jobs_sql::release(tx, owner, ids); });
    },
    [self](job_get_atom, const std::string& user_id, const std::string& id) {
      return run_query(self, "job_get", [&](pqxx::work& tx) { return jobs_sql::get(tx, user_id, id); });
    },
    [self](job_progress_atom, const std::string& id, const std::string& owner, double progress,
           const std::string& detail) {
      return run_query(self, "job_progress",
                       [&](pqxx::work& tx) { return jobs_sql::progress(tx, id, owner, progress, detail); });
    },
    [self](job_states_atom, const std::vector<std::string>& ids) {
      return run_query(self, "job_states", [&](pqxx::work& tx) { return jobs_sql::states(tx, ids); });
    },
    [self](job_attempts_atom, const std::string& id) {
      return run_query(self, "job_attempts", [&](pqxx::work& tx) { return jobs_sql::attempts(tx, id); });
    },
    [self](repo_create_atom, const std::string& user_id, const std::string& name) {
      return run_query(self, "repo_create",
                       [&](pqxx::work& tx) { return repositories_sql::create(tx, user_id, name); });
    },
    [self](repo_list_atom, const std::string& user_id) {
      return run_query(self, "repo_list", [&](pqxx::work& tx) { return repositories_sql::list(tx, user_id); });
    },
    [self](repo_get_atom, const std::string& user_id, const std::string& id) {
      return run_query(self, "repo_get", [&](pqxx::work& tx) { return repositories_sql::get(tx, user_id, id); });
    },
    [self](repo_files_atom, const std::string& user_id, const std::string& id, const std::string& after,
           int32_t limit) {
      return run_query(self, "repo_files",
                       [&](pqxx::work& tx) { return repositories_sql::files(tx, user_id, id, after, limit); });
    },
    [self](repo_search_atom, const std::string& user_id, const std::string& id, const std::string& query,
           int32_t limit) {
      return run_query(self, "repo_search", [&](pqxx::work& tx) {
        return repositories_sql::search(tx, user_id, id, query, limit, self->state.options.search_timeout.count());
      });
    },
    [self](files_register_atom, const std::string& job_id, const std::string& repository_id,
           const std::vector<file_entry>& entries) {
      return run_storage_query(self, "files_register", [&](pqxx::work& tx) {
        return repositories_sql::register_files(tx, job_id, repository_id, entries, self->state.options.storage);
      });
    },
    [self](files_resume_atom, const std::string& job_id) {
      return run_storage_query(self, "files_resume",
                               [&](pqxx::work& tx) { return repositories_sql::resume_files(tx, job_id); });
    },
    [self](files_commit_atom, const file_batch& batch) {
      return run_storage_query(self, "files_commit",
                               [&](pqxx::work& tx) { return repositories_sql::commit_batch(tx, batch); });
    },
  };
}

} // namespace

db_connection_actor spawn_database_connection(caf::actor_system& sys, database_options options) {
  return sys.spawn<caf::detached>(database_impl, std::move(options));
}

} // namespace troupe
