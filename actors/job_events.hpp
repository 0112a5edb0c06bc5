#pragma once
// The job event watcher ("jobs.events"): streams a job's progress to clients as it happens (the HTTP layer's
// GET /api/jobs/{id}/events writes what it is given as server-sent events).
//
//   (job_watch_atom, user_id, job_id, job_event_sink_ptr) -> bool
//       Starts watching: not_found unless the job is the user's; rate_limited when the user has max_per_user
//       watches open; overloaded when the node has max_watches. On success the sink has had its first update (the
//       job as it is), and, if that state was final, its close("") too.
//   (mailbox_atom) -> size_t
//
// Every `poll`, while anything is watched, one statement reads every watched job (job_states_atom: one query per
// node, whatever the number of clients), so a job running on another node is seen as soon as it commits. A watch
// gets update() when what a client sees changed (state, attempts, progress, detail, error; not the lease renewals),
// idle() when nothing was sent for `heartbeat`, and ends with close(""): after the update of a final state (done or
// failed), or close(why) when the job is deleted or the watcher stops (its clients reconnect). A sink whose client
// has gone is dropped at the next poll. Nothing blocks: the reads run on the database connection actors.

#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "persistence/queries.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace troupe {

/// Where one watch's events go. Called only from the watcher's thread, one call at a time.
class job_event_sink {
public:
  virtual ~job_event_sink() = default;
  /// The job as it is now: first when the watch starts, then each time it changed. false: the client has gone.
  virtual bool update(const job_record& job) = 0;
  /// Nothing was sent for a heartbeat. false: the client has gone.
  virtual bool idle() = 0;
  /// True once the client has gone.
  virtual bool gone() const = 0;
  /// The watch ends: `why` is empty after a final state, else what ended it. Called at most once, last.
  virtual void close(const std::string& why) = 0;
};

using job_event_sink_ptr = std::shared_ptr<job_event_sink>;

/// (job_watch_atom, user_id, job_id, job_event_sink_ptr) -> bool
using job_watch_atom = caf::atom_constant<caf::atom("jobwatch")>;

struct job_event_counters {
  std::atomic<int64_t> watching{0}; // watches open on this node
  std::atomic<uint64_t> refused{0}; // watches refused by a cap
  std::atomic<uint64_t> updates{0}; // updates sent
};

struct job_events_options {
  std::chrono::milliseconds poll{250};
  std::chrono::milliseconds heartbeat{15000};
  std::chrono::milliseconds read_timeout{5000};
  size_t max_watches = 1000;
  size_t max_per_user = 8;
  std::function<std::optional<db_query_actor>()> db_query;
  std::shared_ptr<job_event_counters> counters = std::make_shared<job_event_counters>();
};

caf::actor spawn_job_events(caf::actor_system& sys, job_events_options options);

/// Writes troupe_job_event_streams and troupe_job_event_streams_refused_total.
void add_job_events_collector(metrics_registry& metrics, std::shared_ptr<job_event_counters> counters);

} // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::job_event_sink_ptr)
