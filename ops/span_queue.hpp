#pragma once
// Finished spans waiting for the exporter (actors/span_export.hpp): bounded, pushed into without waiting by whatever
// records spans (a finished HTTP request, the cluster endpoint answering another node), a full queue drops them and
// counts.

#include "ops/tracing.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace troupe::tracing {

class span_queue {
public:
  explicit span_queue(size_t max_spans) : max_(max_spans) {}
  /// Adds the spans of one request, or none of them when they do not fit (counted as dropped).
  void push(std::vector<span> spans);
  /// Adds one span (counted as dropped when the queue is full).
  void push(span one);
  /// Takes up to `max` spans, oldest first.
  std::vector<span> take(size_t max);
  size_t size() const;

  std::atomic<uint64_t> exported{0}, dropped{0}, failed{0};

private:
  mutable std::mutex mutex_;
  std::vector<span> spans_;
  size_t max_;
};

} // namespace troupe::tracing
