#pragma once
// Threshold alerts over the history (pure: the alerts actor, ops/sampler.hpp, feeds it one sample at a time).
//
// A rule watches one figure of a sample, fires `warning` once the figure has been past `warn` for `hold` and
// `critical` once it has been past `critical` for `hold`, and resolves at the first sample back within `warn`.
// A sample without the figure (no requests, too few cache lookups, no commit in the interval) leaves the rule as it
// is. Each change is one alert_event: firing (at a severity; warning -> critical is a new firing) or resolved.

#include "ops/history.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace troupe::ops {

enum class alert_figure : uint8_t {
  cpu,           // the machine's CPU, %
  memory,        // the machine's memory in use, %
  cache_hit,     // gateway cache hit rate, % (fires below the thresholds)
  response_time, // p95 of HTTP requests (all families but ops), ms
  db_latency,    // mean commit time of the DB writer's batches, ms
  error_rate,    // share of HTTP requests answered 5xx, %
};
const char* to_string(alert_figure f);
/// The figure in a sample, in the rule's unit; nullopt when the sample does not have it.
std::optional<double> figure_of(const ops_sample& s, alert_figure f);

struct alert_rule {
  std::string name; // "cpu", "memory", ...: the label in /metrics and the key of GET /api/alerts
  alert_figure figure = alert_figure::cpu;
  bool below = false; // fires when the figure is under the thresholds (cache hit rate)
  double warn = 0;
  double critical = 0;
  int64_t hold_ms = 60000;
  std::string unit; // "%" or "ms", for messages
};

struct alert_event {
  std::string rule;
  std::string severity; // "warning" or "critical"; for "resolved", the severity that was firing
  std::string state;    // "firing" or "resolved"
  double value = 0;     // the figure at the event
  double threshold = 0; // the threshold crossed (firing) or the warn threshold (resolved)
  std::string unit;
  int64_t at_ms = 0;    // when the event happened (the sample's time)
  int64_t since_ms = 0; // since when the figure has been past the threshold (firing), or fired (resolved)
  std::string message;  // one line for people: "cpu at 93.1% (critical over 90%) for 60 s"
};

/// An alert firing now.
struct active_alert {
  std::string rule;
  std::string severity;
  double value = 0;
  double threshold = 0;
  std::string unit;
  int64_t since_ms = 0;
  int64_t updated_ms = 0;
};

class alert_evaluator {
public:
  explicit alert_evaluator(std::vector<alert_rule> rules);
  /// Evaluates every rule against a new sample; returns the events it causes (in rule order).
  std::vector<alert_event> observe(const ops_sample& s);
  std::vector<active_alert> active() const;
  const std::vector<alert_rule>& rules() const { return rules_; }

private:
  struct rule_state {
    int64_t warn_since = -1;     // first sample past warn in the current run, -1 none
    int64_t critical_since = -1; // same for critical
    int severity = 0;            // 0 none, 1 warning, 2 critical (firing)
    int64_t fired_at = 0;
    double value = 0;
    int64_t updated = 0;
  };
  std::vector<alert_rule> rules_;
  std::vector<rule_state> states_;
};

/// The default rules (the products' thresholds): cpu 70/90 %, memory 70/90 %, cache hit rate under 80/70 %,
/// response time 100/500 ms, database latency 500/2000 ms, errors 5/20 %; each held for `hold_ms`.
std::vector<alert_rule> default_alert_rules(int64_t hold_ms);

/// {"alerts": [event]} as the webhook's body, and an event as a JSON object.
std::string alert_event_json(const alert_event& e);
std::string webhook_body(const std::vector<alert_event>& events, const std::string& node_id);
/// The body of GET /api/alerts.
std::string alerts_json(const std::vector<active_alert>& active, const std::deque<alert_event>& recent,
                        const std::vector<alert_rule>& rules);

} // namespace troupe::ops
