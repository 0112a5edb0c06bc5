#pragma once
// Latency-aware choice between upstreams of the same priority (issue 16): each upstream's latency is tracked as a
// peak EWMA (as Finagle and Linkerd do), and of two upstreams drawn at random by weight the one whose latency times
// (calls in flight + 1) is lower goes first (power of two choices). Pure and thread-safe; the gateway feeds it.

#include <cstdint>
#include <mutex>

namespace troupe {

/// Peak EWMA of a latency: a sample above the average replaces it at once (a slowing upstream is avoided at its first
/// slow answer); a sample below pulls it down with weight 1 - e^(-dt/tau), dt the time since the previous sample.
/// Read at `now`, the value also decays with the time since the last sample, so an upstream that was slow is tried
/// again once it has been left alone for a while. 0 until the first sample.
class peak_ewma {
public:
  explicit peak_ewma(double tau_seconds = 10.0) : tau_ns_(tau_seconds * 1e9) {}

  void observe(double ms, int64_t now_ns);
  double value(int64_t now_ns) const;

private:
  mutable std::mutex mutex_;
  double tau_ns_;
  double ewma_ = 0;
  int64_t at_ns_ = 0;
  bool started_ = false;
};

/// What sending one more call to an upstream is expected to cost: its latency estimate times the calls it has in
/// flight plus this one. An upstream never measured costs 0 (it is tried first, then measured).
inline double expected_cost(double latency_ms, int64_t inflight) {
  return latency_ms * static_cast<double>(inflight + 1);
}

} // namespace troupe
