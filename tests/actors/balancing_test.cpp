// The peak EWMA behind the gateway's choice among upstreams (actors/balancing.hpp).

#include "actors/balancing.hpp"

#include <gtest/gtest.h>

#include <cmath>

using troupe::expected_cost;
using troupe::peak_ewma;

namespace {
constexpr int64_t second = 1000000000;
}

TEST(PeakEwma, APeakIsTakenAtOnceAndAFastSampleOnlyPullsDown) {
  peak_ewma ewma{10.0};
  EXPECT_EQ(ewma.value(0), 0.0); // never measured
  ewma.observe(10, 0);
  EXPECT_DOUBLE_EQ(ewma.value(0), 10);
  ewma.observe(200, 0); // a slow answer: the average is that at once
  EXPECT_DOUBLE_EQ(ewma.value(0), 200);
  ewma.observe(10, second); // one fast answer a second later moves it by 1 - e^-0.1 of the way
  EXPECT_NEAR(ewma.value(second), 200 - 190 * (1 - std::exp(-0.1)), 1e-9);
  EXPECT_GT(ewma.value(second), 150);
}

TEST(PeakEwma, AnUpstreamLeftAloneIsTriedAgain) {
  peak_ewma ewma{10.0};
  ewma.observe(300, 0);
  EXPECT_NEAR(ewma.value(10 * second), 300 * std::exp(-1.0), 1e-9);
  EXPECT_LT(ewma.value(60 * second), 1.0); // after a minute it looks as good as any
}

TEST(PeakEwma, CostGrowsWithCallsInFlight) {
  EXPECT_DOUBLE_EQ(expected_cost(20, 0), 20);
  EXPECT_DOUBLE_EQ(expected_cost(20, 4), 100);
  EXPECT_DOUBLE_EQ(expected_cost(0, 100), 0);
}
