// Admission control (http/admission.hpp): a hard limit on requests in flight, which shrinks when the route's latency
// shows a queue and grows back when the route keeps up, driven by a test clock.

#include "http/admission.hpp"

#include <gtest/gtest.h>

namespace troupe::http {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

admission_settings small() {
  admission_settings s;
  s.initial_limit = 16;
  s.min_limit = 4;
  s.max_limit = 64;
  s.window = 100ms;
  s.min_samples = 10;
  s.slack = 100us;
  return s;
}

/// Runs one window: `n` requests admitted (as many at once as the limit allows) and released with `latency`, the
/// window then closed at `t + 100 ms`.
void window(admission_limit& limit, clock_type::time_point& t, int n, std::chrono::microseconds latency) {
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(limit.try_acquire());
    limit.release(latency, t);
  }
  // Saturate: take every slot once, so the window counts as limited.
  int64_t taken = 0;
  while (limit.try_acquire())
    ++taken;
  for (int64_t i = 0; i < taken; ++i)
    limit.release(latency, t);
  t += 101ms;
  ASSERT_TRUE(limit.try_acquire());
  limit.release(latency, t); // closes the window
}

// At most limit() requests are in flight; a released slot can be taken again; refusals are counted.
TEST(AdmissionLimit, BoundsRequestsInFlight) {
  auto t = clock_type::now();
  admission_limit limit{small(), t};
  for (int i = 0; i < 16; ++i)
    EXPECT_TRUE(limit.try_acquire());
  EXPECT_FALSE(limit.try_acquire());
  EXPECT_EQ(limit.in_flight(), 16);
  EXPECT_EQ(limit.refused(), 1u);
  limit.release(100us, t);
  EXPECT_TRUE(limit.try_acquire());
}

// Latency far above the route's best means a queue: the limit shrinks, down to min_limit and no further.
TEST(AdmissionLimit, ShrinksWhenLatencyShowsAQueue) {
  auto t = clock_type::now();
  admission_limit limit{small(), t};
  window(limit, t, 20, 100us); // the best: 0.1 ms
  auto before = limit.limit();
  window(limit, t, 20, 5000us);
  EXPECT_LT(limit.limit(), before);
  for (int i = 0; i < 60; ++i)
    window(limit, t, 20, 5000us);
  EXPECT_EQ(limit.limit(), 4);
}

// A route that keeps up while its limit is reached earns a larger limit, up to max_limit.
TEST(AdmissionLimit, GrowsWhileTheRouteKeepsUp) {
  auto t = clock_type::now();
  admission_limit limit{small(), t};
  window(limit, t, 20, 100us);
  auto before = limit.limit();
  window(limit, t, 20, 120us);
  EXPECT_GT(limit.limit(), before);
  for (int i = 0; i < 100; ++i)
    window(limit, t, 20, 110us);
  EXPECT_EQ(limit.limit(), 64);
}

// A window with too few requests teaches nothing: the limit stays.
TEST(AdmissionLimit, IgnoresThinWindows) {
  auto t = clock_type::now();
  admission_limit limit{small(), t};
  window(limit, t, 20, 100us);
  auto before = limit.limit();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(limit.try_acquire());
    limit.release(9000us, t);
    t += 150ms;
  }
  EXPECT_EQ(limit.limit(), before);
}

} // namespace
} // namespace troupe::http
