#pragma once
// Operational actors: readiness checks, the metrics collector and the debug sleeper.
//
// health actor     (check_atom)   -> std::vector<health_check>  every probe's result (a probe that does not
//                                                               answer in time is "unhealthy: timed out")
// metrics actor    (metrics_atom) -> std::string                 Prometheus text, including the mailbox size of
//                                                               every named actor (asked at high priority)
// mailbox watch    (mailbox_atom) -> size_t                      drives itself with a timer: every interval it reads
//                                                               the mailbox size of every named actor (from its
//                                                               probe in debug mode, else asked at high priority)
//                                                               and logs a warning once per episode when one stays
//                                                               above the threshold for warn_after, naming the actor
//                                                               and the most common message type waiting
// debug helper     (delay_atom, int64_t ms) -> int64_t           answers after ms without blocking a thread
//                  (echo_atom, std::string) -> std::string       answers with its argument

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "introspect/probe.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

/// One readiness check. `run` is called inside the health actor and must call `done` exactly once
/// (from a response handler, never blocking).
struct health_probe {
  std::string name;
  std::function<void(caf::event_based_actor* self, std::function<void(health_check)> done)> run;
};

/// Asks the actor named `actor_name` for (ping_atom) -> health_check.
health_probe ping_probe(std::string check_name, std::shared_ptr<directory> names, std::string actor_name,
                        std::chrono::milliseconds timeout);

/// Healthy while every permanent child of the supervisor named `supervisor_name` runs; degraded otherwise.
health_probe supervision_probe(std::shared_ptr<directory> names, std::string supervisor_name,
                               std::chrono::milliseconds timeout);

caf::actor spawn_health_actor(caf::actor_system& sys, std::vector<health_probe> probes);

caf::actor spawn_metrics_actor(caf::actor_system& sys, std::shared_ptr<metrics_registry> metrics,
                               std::shared_ptr<directory> names, std::chrono::milliseconds mailbox_timeout);

/// A mailbox that stayed above the threshold, as the watch logs it.
struct mailbox_warning {
  std::string actor;
  uint64_t size = 0;
  int64_t above_ms = 0;         // how long it has been above the threshold
  std::string most_common_type; // "" when the actor could not be asked (busy in a handler)
  uint64_t most_common_count = 0;
};

struct mailbox_watch_options {
  std::shared_ptr<directory> names;
  size_t threshold = 1000; // 0 = never warn
  std::chrono::milliseconds warn_after{5000};
  std::chrono::milliseconds interval{1000};
  std::shared_ptr<probe_registry> probes;                 // debug mode: sizes from probes, without asking the actors
  std::function<void(const mailbox_warning&)> on_warning; // called after the log line (tests)
};

caf::actor spawn_mailbox_watch(caf::actor_system& sys, mailbox_watch_options options);

/// Asks `target` at high priority for a count of its queued messages by type (debug_peek_atom with limit 0).
void peek_by_type(caf::event_based_actor* self, const caf::actor& target, std::chrono::milliseconds timeout,
                  std::function<void(caf::expected<mailbox_snapshot>)> done);

caf::actor spawn_debug_helper(caf::actor_system& sys);

} // namespace troupe
