#pragma once
// A database connection actor: one PostgreSQL connection owned by one detached actor (libpqxx blocks, so it
// must never run on a CAF scheduler thread). Nothing outside persistence/ sees libpqxx.
//
// Its interface is db_connection_actor (persistence/queries.hpp): every typed query; (ping_atom) -> health_check runs
// SELECT 1 ("unhealthy" with a reason when the database is unreachable); (commit_atom, batch) commits a batch of the
// DB writer (batch_commit.hpp), service_error::unavailable when the connection is down or was lost during the batch.
//
// On every (re)connection it applies pending migrations and prepares its statements.
//
// When the connection is lost it is re-established on demand with capped exponential backoff and jitter
// (100 ms doubling to 5 s), so a flood of pings does not become a flood of connection attempts.

#include "persistence/queries.hpp"
#include "persistence/storage_epoch.hpp"
#include "persistence/uploads.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace troupe {

struct database_options {
  database_options() = default;
  explicit database_options(std::string url_,
                            std::chrono::milliseconds connect_timeout_ = std::chrono::milliseconds{2000})
    : url(std::move(url_)), connect_timeout(connect_timeout_) {}

  std::string url; // libpq URI or key=value string; empty = no database configured. A secret: never logged.
  std::chrono::milliseconds connect_timeout{2000};
  /// Each plan's storage quota, checked by the queries that add stored bytes (persistence/uploads.hpp).
  storage_limits storage;
  /// statement_timeout of a repository search (repo_search_atom); 0 = none.
  std::chrono::milliseconds search_timeout{5000};
  /// Bracketed around every transaction that may change storage_usage (persistence/storage_epoch.hpp); none: not
  /// counted.
  std::shared_ptr<storage_epoch> storage_changes;
};

db_connection_actor spawn_database_connection(caf::actor_system& sys, database_options options);

/// Adds libpq's connect_timeout (whole seconds, at least 1) to a URI or key=value connection string.
std::string with_connect_timeout(const std::string& url, std::chrono::milliseconds timeout);

} // namespace troupe
