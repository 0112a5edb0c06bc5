#pragma once
// Admission control: how many requests of one route may be in flight at once, adapted to the latency they see.
//
// Under overload a server that admits everything serves everything late: queues grow in mailboxes and sockets, and
// every request waits behind them. Admitting only as many as the route completes promptly keeps the admitted
// requests fast and refuses the rest at once (503 + Retry-After, answered on the connection's thread without
// touching an actor), so clients can back off or go to another node.
//
// The limit follows the route's own latency, AIMD on queueing delay (the idea of TCP Vegas and of Netflix's
// concurrency-limits): every window (at least `window` long and `min_samples` requests) the mean latency of the
// window is compared with the best latency seen recently (the route's latency without a queue). Above
// `tolerance` x best + `slack`, requests are queueing: the limit shrinks by `backoff`. Otherwise, when the limit was
// actually reached in the window, it grows by its square root. It stays within [min_limit, max_limit]. The best
// latency is forgotten slowly (raised towards the window mean every `best_decay` windows), so a route whose work
// became slower for good (a bigger database) finds its new floor.
//
// Thread-safe: acquire/release are a few atomics; one caller per window takes a mutex to adapt the limit.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

namespace troupe::http {

struct admission_settings {
  int64_t initial_limit = 256;
  int64_t min_limit = 16;
  int64_t max_limit = 4096;
  std::chrono::microseconds window{100000};
  int64_t min_samples = 50;
  double tolerance = 2.0;
  std::chrono::microseconds slack{1000};
  double backoff = 0.9;
  int best_decay = 100;
};

class admission_limit {
public:
  explicit admission_limit(admission_settings settings = {},
                           std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now());

  /// Takes a slot if fewer than limit() requests are in flight; false: refuse the request.
  bool try_acquire();
  /// Gives the slot back with the request's latency (from arrival to its answer being handed over).
  void release(std::chrono::microseconds latency);
  /// Same, at a given time (tests drive windows with their own clock).
  void release(std::chrono::microseconds latency, std::chrono::steady_clock::time_point now);

  int64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

private:
  void adapt(std::chrono::steady_clock::time_point now);

  admission_settings settings_;
  std::atomic<int64_t> limit_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint64_t> refused_{0};
  // The current window.
  std::atomic<int64_t> samples_{0};
  std::atomic<int64_t> latency_sum_us_{0};
  std::atomic<bool> saturated_{false}; // the limit was reached in this window
  std::atomic<int64_t> window_start_ns_;
  std::mutex adapt_mutex_;
  double best_us_ = 0; // guarded by adapt_mutex_
  int windows_ = 0;    // guarded by adapt_mutex_
};

} // namespace troupe::http
