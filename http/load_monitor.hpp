#pragma once
// The load monitor: decides what to shed, and keeps in-flight queues bounded in time.
//
// Every `interval` it reads the process RSS and asks each critical actor for its mailbox size (at high priority,
// so a backed-up actor still answers), then sets the shed_state that every request reads:
//   all     RSS above max_rss_bytes (0 = never)
//   writes  the DB writer's mailbox, or its queued rows, above the threshold
//   api     the session manager's or a limiter shard's mailbox above the threshold
// Shedding stops as soon as the next sample is back under the limits. It also expires gate waiters that have
// waited too long, so no queued request outlives max_wait even when nothing finishes.
//
// Protocol: (mailbox_atom) -> size_t; it drives itself with timers.
//
// The "http" supervisor (one_for_one) starts the bridge workers http.bridge.<i> (http/bridge.hpp), then the load
// monitor, named ops.load.

#include "http/traffic.hpp"

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/ops.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"
#include "persistence/writer.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace troupe::http {

struct load_monitor_options {
  std::chrono::milliseconds interval{100};
  uint64_t max_rss_bytes = 0;
  size_t mailbox_threshold = 10000;
  std::shared_ptr<directory> names;
  std::vector<std::string> write_actors;  // e.g. "db.writer"
  std::vector<std::string> api_actors;    // e.g. "sessions", "limits.shard.0", ...
  std::shared_ptr<writer_counters> writer;  // queued rows count as writer backlog
  size_t writer_max_rows = 0;               // writer backlog (rows) that sheds writes; 0 = not used
  std::shared_ptr<shed_state> shedding;
  std::vector<std::shared_ptr<inflight_gate>> gates;
};

caf::actor spawn_load_monitor(caf::actor_system& sys, load_monitor_options options);

/// A readiness check for GET /api/health: degraded while anything is shed.
health_check shedding_check(const shed_state& state);

/// The readiness check "load" (shedding_check of `state`), for the health actor.
health_probe shedding_probe(std::shared_ptr<shed_state> state);

/// What HTTP's load control shares between the routes, the load monitor and readiness: the shed state (set by the
/// monitor, read by every request) and the in-flight gates of debug routes and of generations (null: no cap), whose
/// overdue waiters the monitor expires.
struct load_control {
  std::shared_ptr<shed_state> shedding = std::make_shared<shed_state>();
  std::shared_ptr<inflight_gate> debug_gate;
  std::shared_ptr<inflight_gate> generate_gate;
};

/// The gates limits.debug_max_inflight and limits.generate_max_inflight ask for (0: none), queueing up to
/// limits.queue requests for at most limits.queue_wait_ms.
load_control make_load_control(const config::limits_settings& limits);

/// The "http" supervisor above: http.threads bridge workers (0 = cores), and the load monitor from the limits.*
/// settings watching the DB writer (`writer`: its counters, db.max_queue), the session manager and the limiter
/// shards, and setting `load`'s shed state.
supervisor_config make_http_supervisor(const config::settings& settings, const supervision_context& context,
                                       const load_control& load, std::shared_ptr<writer_counters> writer);

} // namespace troupe::http
