// Tests of actors/metrics.cpp: the Prometheus text rendering of counters and histograms, label escaping, the
// registry's render order with collectors, and the process statistics read from /proc/self.

#include "actors/metrics.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace troupe;

namespace {

std::string render(const counter_family& family) {
  prometheus_writer out;
  family.write(out);
  return out.take();
}

std::string render(const histogram_family& family) {
  prometheus_writer out;
  family.write(out);
  return out.take();
}

// A counter renders HELP and TYPE once, then one sample per label set with the summed increments.
TEST(Metrics, CounterRendersOneSamplePerSeries) {
  counter_family requests{"http_requests_total", "Requests served.", {"route", "status"}};
  requests.inc({"/a", "200"});
  requests.inc({"/a", "200"}, 2);
  requests.inc({"/b", "404"});
  EXPECT_EQ(requests.value({"/a", "200"}), 3u);
  EXPECT_EQ(requests.value({"/b", "404"}), 1u);
  EXPECT_EQ(requests.value({"/a", "404"}), 0u);
  EXPECT_EQ(render(requests), "# HELP http_requests_total Requests served.\n"
                              "# TYPE http_requests_total counter\n"
                              "http_requests_total{route=\"/a\",status=\"200\"} 3\n"
                              "http_requests_total{route=\"/b\",status=\"404\"} 1\n");
}

// Different label values are different series, whatever characters the values contain.
TEST(Metrics, CounterKeepsDistinctLabelValuesApart) {
  counter_family family{"c", "h", {"x", "y"}};
  family.inc({"ab", "c"});
  family.inc({"a", "bc"}, 2);
  family.inc({"a\x1f", ""}, 4);
  family.inc({"a", "\x1f"}, 8);
  EXPECT_EQ(family.value({"ab", "c"}), 1u);
  EXPECT_EQ(family.value({"a", "bc"}), 2u);
  EXPECT_EQ(family.value({"a\x1f", ""}), 4u);
  EXPECT_EQ(family.value({"a", "\x1f"}), 8u);
}

// Buckets are cumulative (a value equal to a bound falls in that bound's bucket), end with +Inf, and are
// followed by _sum and _count.
TEST(Metrics, HistogramRendersCumulativeBucketsSumAndCount) {
  histogram_family latency{"latency_seconds", "Latency.", {"method"}, {0.1, 1, 5}};
  for (double v : {0.05, 0.1, 0.5, 3.0, 100.0})
    latency.observe({"GET"}, v);
  EXPECT_EQ(latency.count({"GET"}), 5u);
  EXPECT_EQ(latency.count({"POST"}), 0u);
  EXPECT_EQ(render(latency), "# HELP latency_seconds Latency.\n"
                             "# TYPE latency_seconds histogram\n"
                             "latency_seconds_bucket{method=\"GET\",le=\"0.1\"} 2\n"
                             "latency_seconds_bucket{method=\"GET\",le=\"1\"} 3\n"
                             "latency_seconds_bucket{method=\"GET\",le=\"5\"} 4\n"
                             "latency_seconds_bucket{method=\"GET\",le=\"+Inf\"} 5\n"
                             "latency_seconds_sum{method=\"GET\"} 103.65\n"
                             "latency_seconds_count{method=\"GET\"} 5\n");
}

// The default latency buckets are strictly increasing from 100 us to 10 s.
TEST(Metrics, LatencyBucketsAscendFrom100usTo10s) {
  auto bounds = latency_buckets_seconds();
  ASSERT_FALSE(bounds.empty());
  EXPECT_DOUBLE_EQ(bounds.front(), 0.0001);
  EXPECT_DOUBLE_EQ(bounds.back(), 10);
  EXPECT_TRUE(std::adjacent_find(bounds.begin(), bounds.end(), std::greater_equal<double>{}) == bounds.end());
}

// Label values escape backslash, double quote and newline as the text format requires; numbers render as
// integers, decimals, +Inf and NaN.
TEST(Metrics, WriterEscapesLabelValuesAndFormatsNumbers) {
  prometheus_writer out;
  out.sample("m", {{"path", "a\"b\\c\nd"}}, 1);
  out.sample("m", {}, 0.25);
  out.sample("m", {}, std::numeric_limits<double>::infinity());
  out.sample("m", {}, std::nan(""));
  out.sample("m", {}, -3);
  EXPECT_EQ(out.take(), "m{path=\"a\\\"b\\\\c\\nd\"} 1\n"
                        "m 0.25\n"
                        "m +Inf\n"
                        "m NaN\n"
                        "m -3\n");

  counter_family family{"c", "h", {"v"}};
  family.inc({"say \"hi\"\n"});
  EXPECT_NE(render(family).find("c{v=\"say \\\"hi\\\"\\n\"} 1\n"), std::string::npos) << render(family);
}

// The registry renders counters, histograms, every collector (on each scrape), then the extra collector;
// asking for a family twice returns the same one.
TEST(Metrics, RegistryRendersFamiliesThenCollectorsThenExtra) {
  metrics_registry registry;
  auto& counter = registry.counter("a_total", "A.", {"k"});
  EXPECT_EQ(&registry.counter("a_total", "ignored", {"k"}), &counter);
  counter.inc({"v"});
  registry.histogram("b_seconds", "B.", {}, {1}).observe({}, 0.5);
  int scrapes = 0;
  registry.add_collector([&scrapes](prometheus_writer& out) {
    ++scrapes;
    out.family("collected", "gauge", "From a collector.");
    out.sample("collected", {}, 7);
  });

  auto text = registry.render([](prometheus_writer& out) {
    out.family("extra", "gauge", "From the scrape.");
    out.sample("extra", {{"actor", "db"}}, 3);
  });
  auto counter_at = text.find("a_total{k=\"v\"} 1\n");
  auto histogram_at = text.find("b_seconds_count 1\n");
  auto collected_at = text.find("collected 7\n");
  auto extra_at = text.find("extra{actor=\"db\"} 3\n");
  ASSERT_NE(counter_at, std::string::npos) << text;
  ASSERT_NE(histogram_at, std::string::npos) << text;
  ASSERT_NE(collected_at, std::string::npos) << text;
  ASSERT_NE(extra_at, std::string::npos) << text;
  EXPECT_LT(counter_at, histogram_at);
  EXPECT_LT(histogram_at, collected_at);
  EXPECT_LT(collected_at, extra_at);
  EXPECT_EQ(scrapes, 1);

  auto again = registry.render();
  EXPECT_EQ(scrapes, 2);
  EXPECT_NE(again.find("collected 7\n"), std::string::npos);
  EXPECT_EQ(again.find("extra"), std::string::npos);
}

// RSS is nonzero and the descriptor count tracks open files exactly (this test runs single-threaded).
TEST(Metrics, ProcessStatsReportRssAndOpenFds) {
  auto before = read_process_stats();
  EXPECT_GT(before.resident_bytes, 1024u * 1024u); // a running gtest binary maps well over 1 MiB
  EXPECT_GE(before.open_fds, 3u);                  // at least stdin, stdout and stderr
  int fd = ::open("/proc/self/statm", O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(read_process_stats().open_fds, before.open_fds + 1);
  ::close(fd);
  EXPECT_EQ(read_process_stats().open_fds, before.open_fds);
}

// The load monitor's cheap read: the same RSS, and it grows when this process touches memory it did not have.
TEST(Metrics, ResidentBytesFollowTheProcess) {
  auto before = read_resident_bytes();
  EXPECT_GT(before, 1024u * 1024u);
  std::vector<char> block(64u << 20);
  for (size_t i = 0; i < block.size(); i += 4096)
    block[i] = static_cast<char>(i);
  auto after = read_resident_bytes();
  EXPECT_GE(after, before + (48u << 20)) << "64 MiB touched, RSS " << before << " -> " << after;
  EXPECT_EQ(block[8192], static_cast<char>(8192)); // the block is read, so its writes stay
  EXPECT_NEAR(static_cast<double>(read_process_stats().resident_bytes), static_cast<double>(read_resident_bytes()),
              4.0 * 1024 * 1024);
}

} // namespace
