#pragma once
// Spans on their way to an OTLP/HTTP collector (tracing.otlp_endpoint): a bounded queue the HTTP threads push a
// finished request's spans into without waiting (a full queue drops them and counts), and the exporter that sends
// them ("tracing.exporter", detached: libcurl blocks): every tracing.export_ms, batches of up to 512 spans POSTed as
// OTLP JSON (http/tracing.hpp: otlp_json) to the endpoint one after the other, 5 s per POST, and one last batch when
// it stops; a batch the collector refuses is dropped and counted, a warning logged at most once a minute.
// troupe_tracing_spans_total{outcome=exported|dropped|failed}.

#include "http/tracing.hpp"

#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace troupe::http::tracing {

class span_queue {
public:
  explicit span_queue(size_t max_spans) : max_(max_spans) {}
  /// Adds the spans of one request, or none of them when they do not fit (counted as dropped).
  void push(std::vector<span> spans);
  /// Takes up to `max` spans, oldest first.
  std::vector<span> take(size_t max);
  size_t size() const;

  std::atomic<uint64_t> exported{0}, dropped{0}, failed{0};

private:
  mutable std::mutex mutex_;
  std::vector<span> spans_;
  size_t max_;
};

struct exporter_options {
  std::string url;
  std::shared_ptr<span_queue> queue;
  std::chrono::milliseconds interval{1000};
  size_t batch = 512;
  std::string service_version;
  std::function<std::string()> instance; // the node id
};

/// The exporter as a supervised child named "tracing.exporter".
child_spec exporter_child(exporter_options options);

/// troupe_tracing_spans_total{outcome} and troupe_tracing_queue_spans.
void add_tracing_collector(metrics_registry& metrics, std::shared_ptr<span_queue> queue);

} // namespace troupe::http::tracing
