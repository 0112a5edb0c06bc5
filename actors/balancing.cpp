#include "actors/balancing.hpp"

#include <algorithm>
#include <cmath>

namespace troupe {

void peak_ewma::observe(double ms, int64_t now_ns) {
  std::lock_guard<std::mutex> guard{mutex_};
  ms = std::max(0.0, ms);
  if (!started_ || ms > ewma_) {
    ewma_ = ms;
  } else {
    auto dt = static_cast<double>(std::max<int64_t>(0, now_ns - at_ns_));
    auto weight = 1.0 - std::exp(-dt / tau_ns_);
    ewma_ += (ms - ewma_) * weight;
  }
  started_ = true;
  at_ns_ = std::max(at_ns_, now_ns);
}

double peak_ewma::value(int64_t now_ns) const {
  std::lock_guard<std::mutex> guard{mutex_};
  if (!started_)
    return 0;
  auto dt = static_cast<double>(std::max<int64_t>(0, now_ns - at_ns_));
  return ewma_ * std::exp(-dt / tau_ns_);
}

} // namespace troupe
