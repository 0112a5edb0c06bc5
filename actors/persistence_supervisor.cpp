#include "actors/persistence_supervisor.hpp"

#include "persistence/database.hpp"
#include "persistence/query_router.hpp"

namespace troupe {

using std::chrono::milliseconds;

std::string db_connection_name(size_t i) {
  return "db.connection." + std::to_string(i);
}

std::string db_search_connection_name(size_t i) {
  return "db.search." + std::to_string(i);
}

std::function<std::optional<db_query_actor>()> db_query_lookup(std::shared_ptr<directory> names) {
  return [names = std::move(names)]() { return names->get(db_query_name); };
}

std::function<std::optional<db_writer_actor>()> db_writer_lookup(std::shared_ptr<directory> names) {
  return [names = std::move(names)]() { return names->get(db_writer_name); };
}

supervisor_config make_persistence_supervisor(const config::settings& s, const supervision_context& context,
                                              std::shared_ptr<writer_counters> counters,
                                              std::shared_ptr<storage_epoch> storage_changes) {
  if (context.metrics)
    add_writer_collector(*context.metrics, counters);
  const auto& names = context.names;
  // Connections first (the pool, then the search connections), the router and the writer after them.
  auto persistence = subsystem_supervisor("persistence", supervision_strategy::rest_for_one, context);
  database_options db{s.db.url, milliseconds{s.db.connect_timeout_ms}};
  db.storage.free_bytes = s.quota.free_storage_bytes;
  db.storage.pro_bytes = s.quota.pro_storage_bytes;
  db.search_timeout = milliseconds{s.db.search_timeout_ms};
  db.storage_changes = std::move(storage_changes);
  auto connection = [db](caf::actor_system& sys) {
    return caf::actor_cast<caf::actor>(spawn_database_connection(sys, db));
  };
  auto pool_size = static_cast<size_t>(s.db.pool_size);
  for (size_t i = 0; i < pool_size; ++i)
    persistence.children.push_back(worker_child(db_connection_name(i), connection, milliseconds{5000}));
  search_lane searches;
  searches.connections = static_cast<size_t>(s.db.search_connections);
  searches.connection = [names](size_t i) { return names->get_as<db_connection_actor>(db_search_connection_name(i)); };
  // A search ends within its statement_timeout; a connection re-established meanwhile adds its connect timeout.
  searches.answer_timeout = 2 * milliseconds{s.db.search_timeout_ms} + 2 * milliseconds{s.db.connect_timeout_ms};
  for (size_t i = 0; i < searches.connections; ++i)
    persistence.children.push_back(worker_child(db_search_connection_name(i), connection, milliseconds{5000}));
  auto pool = [names](size_t i) { return names->get_as<db_connection_actor>(db_connection_name(i)); };
  persistence.children.push_back(worker_child(
    db_query_name.value,
    [pool_size, pool, searches](caf::actor_system& sys) {
      return caf::actor_cast<caf::actor>(spawn_query_router(sys, pool_size, pool, searches));
    },
    milliseconds{5000}));
  writer_options writer;
  writer.batch_max_rows = static_cast<size_t>(s.db.batch_max_rows);
  writer.flush_interval = milliseconds{s.db.flush_ms};
  writer.background_flush_interval = milliseconds{s.db.background_flush_ms};
  writer.max_queue_rows = static_cast<size_t>(s.db.max_queue);
  writer.max_wait = milliseconds{s.db.max_wait_ms};
  writer.connections = pool_size;
  writer.connection = pool;
  writer.counters = std::move(counters);
  writer.slow = milliseconds{s.ops.slow_ms};
  if (context.metrics)
    writer.on_slow = [slow = &slow_operations(*context.metrics)] { slow->inc({"db_batch"}); };
  persistence.children.push_back(worker_child(
    db_writer_name.value,
    [writer](caf::actor_system& sys) { return caf::actor_cast<caf::actor>(spawn_db_writer(sys, writer)); },
    milliseconds{5000}));
  return persistence;
}

void add_writer_collector(metrics_registry& metrics, std::shared_ptr<writer_counters> counters) {
  metrics.add_collector([counters](prometheus_writer& out) {
    auto counter = [&](const char* name, const char* help, const std::atomic<uint64_t>& value) {
      out.family(name, "counter", help);
      out.sample(name, {}, static_cast<double>(value.load()));
    };
    counter("troupe_db_batches_total", "Transactions that committed a batch of writes.", counters->batches);
    counter("troupe_db_write_requests_total", "Write requests acknowledged after COMMIT (including replays).",
            counters->requests);
    counter("troupe_db_rows_total", "Rows committed by the DB writer.", counters->rows);
    counter("troupe_db_write_failures_total", "Write requests that failed alone (rejected data, key conflict).",
            counters->failed);
    counter("troupe_db_write_rejections_total", "Write requests refused: queue full or database unavailable.",
            counters->rejected);
    counter("troupe_db_batch_retries_total", "Batches sent again after a lost connection.", counters->retried_batches);
    out.family("troupe_db_commit_seconds_total", "counter",
               "Time from a batch sent to its COMMIT answered, summed (divide by troupe_db_batches_total).");
    out.sample("troupe_db_commit_seconds_total", {}, static_cast<double>(counters->commit_micros.load()) / 1e6);
    out.family("troupe_db_queue_rows", "gauge", "Rows waiting for, or in, a commit.");
    out.sample("troupe_db_queue_rows", {}, static_cast<double>(counters->queued_rows.load()));
  });
}

} // namespace troupe
