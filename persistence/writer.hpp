#pragma once
// The DB writer: group commit for durable writes.
//
// Its interface is db_writer_actor, below.
//
// Requests from many HTTP requests are gathered into batches: a batch is handed to a free connection actor when it
// holds batch_max_rows rows, or flush_interval after its first request arrived. While every connection is busy,
// requests keep gathering, so batches grow with load and each COMMIT (one fsync) acknowledges many requests.
// Background writes (write_later_atom: usage and quota rows, which nobody awaits) wait up to
// background_flush_interval instead, riding along with any batch that goes earlier: under a steady load of gateway
// calls the database sees a few transactions a second for metering, not one per call.
//
// Bounded: a request that would take the queue (waiting plus in flight) past max_queue_rows is refused at once
// with service_error::overloaded. When a batch fails because the connection is down, its requests go back to the
// head of the queue and are retried; any request waiting longer than max_wait gets service_error::unavailable, and
// while the database has been unreachable for longer than max_wait new requests are refused at once (a probe keeps
// checking and lifts the refusal as soon as a connection works again). Nothing is acknowledged before COMMIT.

#include "introspect/messages.hpp"
#include "persistence/messages.hpp"
#include "persistence/queries.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

namespace troupe {

/// The DB writer's interface.
using db_writer_actor = caf::typed_actor<
  /// Answered only after the request's rows are COMMITted (errors: see write_atom).
  caf::replies_to<write_atom, write_request>::with<write_result>,
  /// Not answered; waits up to background_flush_interval (see write_later_atom).
  caf::reacts_to<write_later_atom, write_request>, mailbox_size_request>;

/// Counters the writer keeps, readable from any thread (for metrics and tests).
struct writer_counters {
  std::atomic<uint64_t> batches{0};         // transactions that committed a batch
  std::atomic<uint64_t> requests{0};        // requests acknowledged (committed or replayed)
  std::atomic<uint64_t> rows{0};            // rows committed
  std::atomic<uint64_t> failed{0};          // requests that failed alone (bad data, conflict)
  std::atomic<uint64_t> rejected{0};        // requests refused: queue full or database unavailable
  std::atomic<uint64_t> retried_batches{0}; // batches sent again after a lost connection
  std::atomic<uint64_t> commit_micros{0};   // time from a batch sent to its COMMIT answered, summed
  std::atomic<int64_t> queued_rows{0};      // rows waiting or in flight right now
};

struct writer_options {
  size_t batch_max_rows = 1000;
  std::chrono::milliseconds flush_interval{2};
  /// The longest a background write (write_later_atom) waits for a batch.
  std::chrono::milliseconds background_flush_interval{20};
  size_t max_queue_rows = 100000;
  std::chrono::milliseconds max_wait{2000};
  /// How long a connection may take for one batch before it counts as lost.
  std::chrono::milliseconds commit_timeout{30000};
  /// Number of connection actors, and how to find the live incarnation of connection i (nullopt while it restarts).
  size_t connections = 1;
  std::function<std::optional<db_connection_actor>(size_t)> connection;
  std::shared_ptr<writer_counters> counters = std::make_shared<writer_counters>();
  /// A batch whose oldest write waited longer than this before its COMMIT was answered is logged once ("slow
  /// operation", kind db_batch, with its stages: queued and commit) and `on_slow` is called. 0 = never.
  std::chrono::milliseconds slow{0};
  std::function<void()> on_slow;
};

db_writer_actor spawn_db_writer(caf::actor_system& sys, writer_options options);

} // namespace troupe
