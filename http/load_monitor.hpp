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

#include "http/traffic.hpp"

#include "actors/directory.hpp"
#include "actors/messages.hpp"
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

} // namespace troupe::http
