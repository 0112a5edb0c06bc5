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
//
// The "ops" supervisor (one_for_one) starts ops.health, ops.metrics, ops.mailboxes, ops.retention (the retention
// sweeper, actors/retention.hpp), ops.sampler, ops.alerts and, with ops.alert_webhook, ops.webhook
// (actors/ops_history.hpp), and in debug mode debug.helper. (ops.load, the load monitor, is HTTP's: it runs under
// the "http" supervisor.)

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/ops_history.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"
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

/// What the ops subsystem gets from the rest of the process.
struct ops_inputs {
  /// Readiness checks of other layers (load shedding, upstreams), run after the tree's ("root", the root supervisor
  /// in context.names) and the database's, in this order.
  std::vector<health_probe> checks;
  /// Debug mode's probes: the mailbox watch reads sizes from them instead of asking the actors. Null otherwise.
  std::shared_ptr<probe_registry> probes;
  /// This node's id (alert webhooks name it); empty function = "".
  std::function<std::string()> node_id;
  /// The history ring (GET /api/performance); made here from ops.history_ms when null.
  std::shared_ptr<history_store> history;
};

/// The threshold rules of ops.* (defaults: ops/alerts.hpp's default_alert_rules).
std::vector<ops::alert_rule> alert_rules_from(const config::ops_settings& o);

/// The "ops" supervisor above, from the debug.* and retention.* settings. Its collectors (the retention sweeper's
/// deleted rows, the process's RSS and open files) go into context.metrics, which ops.metrics renders.
supervisor_config make_ops_supervisor(const config::settings& settings, const supervision_context& context,
                                      ops_inputs inputs);

/// Writes troupe_process_resident_memory_bytes and troupe_process_open_fds (read_process_stats, at scrape time).
void add_process_collector(metrics_registry& metrics);

} // namespace troupe
