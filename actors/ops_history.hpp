#pragma once
// The process's history and its alerts (ops/history.hpp, ops/alerts.hpp hold the pure parts):
//
// ops.sampler   every `interval` asks ops.metrics for the /metrics text (so it sees every figure the collectors
//               write) and reads /proc (CPU of the process and the machine, memory), derives one ops_sample from the
//               difference to the previous reading, adds it to the ring and hands it to ops.alerts.
//     (perf_atom, int64_t window_ms, int64_t max_points) -> std::string   the body of GET /api/performance
//     (sample_now_atom) -> int64_t                                        samples now (tests); the ring's size
//     (mailbox_atom) -> size_t
// ops.alerts    evaluates the threshold rules on each sample; logs firing (warn) and resolved (info) alerts,
//               counts them (troupe_alerts_total{rule,severity}, troupe_alerts_firing), keeps the last 100 events
//               and sends each batch of events to ops.webhook when ops.alert_webhook is set.
//     (alert_sample_atom, ops_sample)                                     no reply
//     (alerts_atom) -> std::string                                        the body of GET /api/alerts
// ops.webhook   (detached: it blocks in libcurl) POSTs {"source","node","alerts":[...]} to the URL, 5 s per attempt,
//               up to 3 attempts 1 s and 4 s apart; at most 32 bodies wait, the rest are dropped
//               (troupe_alert_webhook_total{outcome=delivered|failed|dropped}).
//
// The ring is owned by the supervisor's factory, not by the actor: a restarted sampler keeps the history.

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "ops/alerts.hpp"
#include "ops/history.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace troupe {

using perf_atom = caf::atom_constant<caf::atom("perf")>;
using sample_now_atom = caf::atom_constant<caf::atom("samplenow")>;
using alert_sample_atom = caf::atom_constant<caf::atom("alertsmpl")>;
using alerts_atom = caf::atom_constant<caf::atom("alerts")>;
using webhook_atom = caf::atom_constant<caf::atom("webhook")>;

/// The ring and what the sampler read last, shared by every incarnation of the sampler.
struct history_store {
  explicit history_store(size_t capacity) : ring(capacity) {}
  std::mutex mutex;
  ops::history ring;
  std::optional<ops::totals> last; // the previous reading
  std::atomic<uint64_t> bad_scrapes{0}; // readings without the metrics text (troupe_ops_sample_failures_total)
  // What the collector reports, published by the sampler after each sample: a scrape never waits for the mutex.
  std::atomic<uint64_t> ring_size{0}, ring_bytes{0};
};

/// The most samples a history holds, whatever ops.history_ms / ops.sample_ms asks for (about 30 MiB of samples:
/// 24 h at 1 s); more is refused with a warning at start-up.
inline constexpr size_t max_history_samples = 100000;

struct sampler_options {
  std::shared_ptr<directory> names;
  std::chrono::milliseconds interval{5000};
  std::shared_ptr<history_store> store;
  std::chrono::milliseconds sample_period{5000}; // what GET /api/performance reports as sample_ms
  std::string metrics_actor = "ops.metrics";
  std::string alerts_actor = "ops.alerts";
  /// Reads CPU and memory figures; /proc by default (tests inject their own).
  std::function<ops::proc_figures()> read_proc;
};

caf::actor spawn_sampler(caf::actor_system& sys, sampler_options options);

/// Reads /proc/self/stat, /proc/stat and /proc/meminfo.
ops::proc_figures read_proc_figures();

struct alert_board {
  std::mutex mutex;
  std::vector<ops::active_alert> firing; // for the gauge
  std::atomic<uint64_t> webhook_delivered{0}, webhook_failed{0}, webhook_dropped{0};
  std::atomic<int64_t> webhook_waiting{0};
};

struct alerts_options {
  std::vector<ops::alert_rule> rules;
  std::shared_ptr<directory> names;
  std::string webhook_actor = "ops.webhook"; // "" = no webhook
  std::function<std::string()> node_id;
  std::shared_ptr<alert_board> board = std::make_shared<alert_board>();
  counter_family* fired = nullptr; // troupe_alerts_total{rule,severity}
  size_t max_waiting_webhooks = 32;
};

caf::actor spawn_alerts(caf::actor_system& sys, alerts_options options);

struct webhook_options {
  std::string url;
  std::shared_ptr<alert_board> board;
  std::chrono::milliseconds attempt_timeout{5000};
  std::vector<std::chrono::milliseconds> backoff{std::chrono::milliseconds{1000}, std::chrono::milliseconds{4000}};
};

caf::actor spawn_webhook_sender(caf::actor_system& sys, webhook_options options);

/// troupe_alerts_firing{rule,severity} and troupe_alert_webhook_total{outcome}, troupe_ops_history_samples,
/// troupe_ops_history_bytes and troupe_ops_sample_failures_total.
void add_ops_history_collector(metrics_registry& metrics, std::shared_ptr<alert_board> board,
                               std::shared_ptr<history_store> store);

} // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::ops::ops_sample)
