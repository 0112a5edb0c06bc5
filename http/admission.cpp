#include "http/admission.hpp"

#include <algorithm>
#include <cmath>

namespace troupe::http {

namespace {

int64_t now_ns(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

} // namespace

admission_limit::admission_limit(admission_settings settings, std::chrono::steady_clock::time_point start)
  : settings_(settings), limit_(std::clamp(settings.initial_limit, settings.min_limit, settings.max_limit)),
    window_start_ns_(now_ns(start)) {}

bool admission_limit::try_acquire() {
  auto current = in_flight_.fetch_add(1, std::memory_order_acq_rel);
  if (current < limit_.load(std::memory_order_relaxed)) {
    if (current + 1 >= limit_.load(std::memory_order_relaxed))
      saturated_.store(true, std::memory_order_relaxed);
    return true;
  }
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  saturated_.store(true, std::memory_order_relaxed);
  refused_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void admission_limit::release(std::chrono::microseconds latency) {
  release(latency, std::chrono::steady_clock::now());
}

void admission_limit::release(std::chrono::microseconds latency, std::chrono::steady_clock::time_point now) {
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  samples_.fetch_add(1, std::memory_order_relaxed);
  latency_sum_us_.fetch_add(latency.count(), std::memory_order_relaxed);
  auto started = window_start_ns_.load(std::memory_order_relaxed);
  if (now_ns(now) - started >= std::chrono::duration_cast<std::chrono::nanoseconds>(settings_.window).count()
      && samples_.load(std::memory_order_relaxed) >= settings_.min_samples)
    adapt(now);
}

void admission_limit::adapt(std::chrono::steady_clock::time_point now) {
  std::unique_lock<std::mutex> guard{adapt_mutex_, std::try_to_lock};
  if (!guard.owns_lock())
    return; // another caller is adapting this window
  auto samples = samples_.exchange(0, std::memory_order_relaxed);
  auto sum = latency_sum_us_.exchange(0, std::memory_order_relaxed);
  bool saturated = saturated_.exchange(false, std::memory_order_relaxed);
  window_start_ns_.store(now_ns(now), std::memory_order_relaxed);
  if (samples <= 0)
    return;
  double mean = static_cast<double>(sum) / static_cast<double>(samples);
  if (best_us_ <= 0 || mean < best_us_)
    best_us_ = mean;
  else if (++windows_ % settings_.best_decay == 0)
    best_us_ += (mean - best_us_) * 0.1; // forget the best slowly
  auto limit = static_cast<double>(limit_.load(std::memory_order_relaxed));
  double threshold = settings_.tolerance * best_us_ + static_cast<double>(settings_.slack.count());
  if (mean > threshold)
    limit = std::floor(limit * settings_.backoff);
  else if (saturated)
    limit = std::ceil(limit + std::sqrt(limit));
  auto next = std::clamp(static_cast<int64_t>(limit), settings_.min_limit, settings_.max_limit);
  limit_.store(next, std::memory_order_relaxed);
}

} // namespace troupe::http
