#pragma once
// Spans on their way to an OTLP/HTTP collector (tracing.otlp_endpoint): what HTTP and the cluster endpoint record
// waits in a span_queue (ops/span_queue.hpp); the exporter sends them
// ("tracing.exporter", detached: libcurl blocks): every tracing.export_ms, batches of up to 512 spans POSTed as
// OTLP JSON (ops/tracing.hpp: otlp_json) to the endpoint one after the other, 5 s per POST, and one last batch when
// it stops; a batch the collector refuses is dropped and counted, a warning logged at most once a minute.
// troupe_tracing_spans_total{outcome=exported|dropped|failed}.

#include "ops/span_queue.hpp"

#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace troupe::tracing {

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

} // namespace troupe::tracing
