#pragma once
// The persistence subsystem's supervisor: PostgreSQL's connection actors, the query router and the DB writer.
//
// persistence (rest_for_one)
//   db.connection.<i>   i < db.pool_size: detached connection actors (persistence/database.hpp)
//   db.search.<i>       i < db.search_connections: the connections of repository searches
//   db.query            the query router (persistence/query_router.hpp) over the pool and the search connections
//   db.writer           the group-commit writer (persistence/writer.hpp) over the pool
//
// rest_for_one: whatever starts after a restarted child restarts with it (a connection restarts the router and the
// writer too). Every child finds the others by name, so none holds a dead handle.
//
// This file is in actors/ because persistence/ sits below the supervisor and the metrics registry (it knows no
// actor protocol but its own); the writer's collector (troupe_db_*) is here for the same reason.

#include "actors/directory.hpp"
#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"
#include "persistence/storage_epoch.hpp"
#include "persistence/writer.hpp"

#include <caf/actor.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace troupe {

/// Names in the directory.
inline const actor_name<db_query_actor> db_query_name{"db.query"};
inline const actor_name<db_writer_actor> db_writer_name{"db.writer"};
std::string db_connection_name(size_t i);        // "db.connection.<i>"
std::string db_search_connection_name(size_t i); // "db.search.<i>"

/// Finds the live query router / DB writer in `names` on each call (nullopt while it restarts): what the options of
/// other subsystems' actors take.
std::function<std::optional<db_query_actor>()> db_query_lookup(std::shared_ptr<directory> names);
std::function<std::optional<db_writer_actor>()> db_writer_lookup(std::shared_ptr<directory> names);

/// The "persistence" supervisor above, from the db.* and quota.*_storage_bytes settings. `writer` is the writer's
/// counters (shared with the load monitor); their collector goes into context.metrics. Every transaction that may
/// change storage use is counted in `storage_changes` (when given).
supervisor_config make_persistence_supervisor(const config::settings& settings, const supervision_context& context,
                                              std::shared_ptr<writer_counters> writer,
                                              std::shared_ptr<storage_epoch> storage_changes = nullptr);

/// Writes the troupe_db_* families from the writer's counters.
void add_writer_collector(metrics_registry& metrics, std::shared_ptr<writer_counters> counters);

} // namespace troupe
