#pragma once
// Operational actors: readiness checks, the metrics collector and the debug sleeper.
//
// health actor     (check_atom)   -> std::vector<health_check>  every probe's result (a probe that does not
//                                                               answer in time is "unhealthy: timed out")
// metrics actor    (metrics_atom) -> std::string                 Prometheus text, including the mailbox size of
//                                                               every named actor (asked at high priority)
// debug helper     (delay_atom, int64_t ms) -> int64_t           answers after ms without blocking a thread
//                  (echo_atom, std::string) -> std::string       answers with its argument

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"

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

caf::actor spawn_debug_helper(caf::actor_system& sys);

} // namespace troupe
