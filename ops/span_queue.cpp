#include "ops/span_queue.hpp"

#include <iterator>

namespace troupe::tracing {

void span_queue::push(std::vector<span> spans) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (spans_.size() + spans.size() > max_) {
    dropped.fetch_add(spans.size(), std::memory_order_relaxed);
    return;
  }
  for (auto& s : spans)
    spans_.push_back(std::move(s));
}

void span_queue::push(span one) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (spans_.size() >= max_) {
    dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  spans_.push_back(std::move(one));
}

std::vector<span> span_queue::take(size_t max) {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<span> out;
  if (spans_.size() <= max) {
    out.swap(spans_);
    return out;
  }
  out.assign(std::make_move_iterator(spans_.begin()), std::make_move_iterator(spans_.begin() + static_cast<ptrdiff_t>(max)));
  spans_.erase(spans_.begin(), spans_.begin() + static_cast<ptrdiff_t>(max));
  return out;
}

size_t span_queue::size() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return spans_.size();
}

} // namespace troupe::tracing
