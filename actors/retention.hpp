#pragma once
// The retention sweeper ("ops.retention"): keeps append-only tables bounded. It deletes rows older than each
// table's retention period in bounded batches through db.query (persistence/retention.hpp; the blocking work runs on
// the detached connection actors, never here), and purges expired access-token revocations and refresh tokens
// (auth_purge_atom).
//
//   (retention_sweep_atom) -> int64_t   sweeps now (or joins the sweep under way) and answers, once it has ended,
//                                       with the number of rows it deleted
//   (mailbox_atom) -> size_t
//
// A sweep runs `first_delay` after start, then `interval` after the end of the previous one (sweeps never overlap).
// Per table with a period: delete at most `batch_rows` rows older than now - period, again and again until a step
// deletes fewer; every step is a message of its own, so a large backlog never holds the actor (or one transaction)
// for long. A failed step ends that table's turn (logged); the next sweep tries again.

#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "persistence/queries.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

/// (retention_sweep_atom) -> int64_t rows deleted.
using retention_sweep_atom = caf::atom_constant<caf::atom("retsweep")>;

struct retention_period {
  std::string table;     // one of persistence/retention.hpp's retention_tables()
  int64_t period_ms = 0; // rows older than this are deleted; 0 = kept forever
};

/// Rows deleted so far, by table ("auth_tokens" for the purge of expired token rows). Every table of the options
/// must be present before the sweeper starts: it only updates the counters.
struct retention_counters {
  std::map<std::string, std::atomic<uint64_t>> deleted;
};

struct retention_options {
  std::vector<retention_period> tables;
  std::chrono::milliseconds interval{3600000};
  std::chrono::milliseconds first_delay{10000};
  int32_t batch_rows = 5000;
  bool purge_auth_tokens = true;
  std::function<std::optional<db_query_actor>()> db_query; // the live "db.query"
  std::function<int64_t()> now_unix_ms;                    // system clock when empty (tests inject their own)
  std::shared_ptr<retention_counters> counters;            // optional
};

/// A counters object with an entry for every table of `options` and for "auth_tokens".
std::shared_ptr<retention_counters> make_retention_counters(const retention_options& options);

caf::actor spawn_retention_sweeper(caf::actor_system& sys, retention_options options);

/// Writes troupe_retention_deleted_rows_total{table} from the sweeper's counters.
void add_retention_collector(metrics_registry& metrics, std::shared_ptr<retention_counters> counters);

} // namespace troupe
