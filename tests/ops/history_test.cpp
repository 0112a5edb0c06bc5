// The process history (ops/history.hpp): totals read from a scrape, samples derived from two readings (rates,
// quantiles of the interval, shares), the bounded ring, windows merged down to a number of points, the JSON series.

#include "ops/history.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cmath>

namespace troupe::ops {
namespace {

/// A /metrics text with `n` requests to /api/me (all in the 0.005 s bucket but `slow` in the 0.5 s one), `errors` of
/// them 500s, one upstream and the cache.
std::string scrape(int n, int slow, int errors, int hits, int misses, double commit_s, int batches) {
  auto count = [](int v) { return std::to_string(v); };
  std::string text;
  text += "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"200\",le=\"0.005\"} "
          + count(n - slow - errors) + "\n";
  text += "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"200\",le=\"0.5\"} "
          + count(n - errors) + "\n";
  text += "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"200\",le=\"+Inf\"} "
          + count(n - errors) + "\n";
  text += "troupe_http_request_duration_seconds_count{route=\"/api/me\",status=\"200\"} " + count(n - errors) + "\n";
  text += "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"500\",le=\"0.005\"} " + count(errors)
          + "\n";
  text += "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"500\",le=\"0.5\"} " + count(errors)
          + "\n";
  text += "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"500\",le=\"+Inf\"} " + count(errors)
          + "\n";
  text += "troupe_http_request_duration_seconds_count{route=\"/api/me\",status=\"500\"} " + count(errors) + "\n";
  // health checks: the ops family, not in the overall figures
  text += "troupe_http_request_duration_seconds_bucket{route=\"/health\",status=\"200\",le=\"+Inf\"} 1000\n";
  text += "troupe_http_request_duration_seconds_count{route=\"/health\",status=\"200\"} 1000\n";
  text += "troupe_gateway_cache_total{result=\"hit\"} " + count(hits) + "\n";
  text += "troupe_gateway_cache_total{result=\"miss\"} " + count(misses) + "\n";
  text += "troupe_db_batches_total " + count(batches) + "\n";
  text += "troupe_db_commit_seconds_total " + std::to_string(commit_s) + "\n";
  text += "troupe_upstream_requests_total{upstream=\"a\",outcome=\"ok\"} " + count(n) + "\n";
  text += "troupe_upstream_request_duration_seconds_bucket{upstream=\"a\",le=\"0.1\"} " + count(n) + "\n";
  text += "troupe_upstream_request_duration_seconds_bucket{upstream=\"a\",le=\"+Inf\"} " + count(n) + "\n";
  text += "troupe_upstream_breaker_state{upstream=\"a\"} 1\n";
  text += "troupe_http_connections_open 12\n";
  text += "troupe_http_network_bytes_total{direction=\"in\"} " + count(n * 100) + "\n";
  text += "troupe_http_network_bytes_total{direction=\"out\"} " + count(n * 1000) + "\n";
  text += "troupe_ws_connections 2\ntroupe_job_event_streams 3\ntroupe_sessions_active 4\n";
  text += "troupe_actor_mailbox_size{actor=\"db.writer\"} 40\n";
  text += "troupe_actor_mailbox_size{actor=\"cache.shard.0\"} 7\n";
  text += "troupe_actor_mailbox_size{actor=\"ops.metrics\"} 0\n";
  return text;
}

proc_figures proc(double cpu_s, double busy, double total, double cores = 2) {
  proc_figures p;
  p.process_cpu_seconds = cpu_s;
  p.machine_busy_ticks = busy;
  p.machine_total_ticks = total;
  p.mem_total_bytes = 1000;
  p.mem_available_bytes = 250;
  p.cores = cores;
  return p;
}

TEST(History, RouteFamilies) {
  EXPECT_EQ(family_of_route("/v1/chat/completions"), route_family::gateway);
  EXPECT_EQ(family_of_route("/ws"), route_family::gateway);
  EXPECT_EQ(family_of_route("/api/auth/login"), route_family::auth);
  EXPECT_EQ(family_of_route("/api/keys/{id}"), route_family::auth);
  EXPECT_EQ(family_of_route("/api/uploads/{id}"), route_family::uploads);
  EXPECT_EQ(family_of_route("/api/jobs/{id}/events"), route_family::uploads);
  EXPECT_EQ(family_of_route("/health"), route_family::ops);
  EXPECT_EQ(family_of_route("/api/performance"), route_family::ops);
  EXPECT_EQ(family_of_route("/dashboard/chart.js"), route_family::ops);
  EXPECT_EQ(family_of_route("/api/me"), route_family::api);
  EXPECT_EQ(family_of_route("unmatched"), route_family::other);
}

TEST(History, DerivesRatesSharesAndQuantilesOfTheInterval) {
  auto before = summarize(parse_prometheus_text(scrape(100, 0, 0, 10, 0, 1.0, 10)), proc(10, 100, 1000), 1000, 0);
  // 10 s later: 200 more requests, 20 of them slow (0.005..0.5 s), 10 of them 500s; 30 hits and 10 misses;
  // 5 batches that took 0.25 s; 4 s of CPU on 2 cores; the machine 300 busy ticks of 500.
  auto after = summarize(parse_prometheus_text(scrape(300, 20, 10, 40, 10, 1.25, 15)), proc(14, 400, 1500), 11000, 10000);
  auto s = derive_sample(before, after);
  EXPECT_EQ(s.at_ms, 11000);
  EXPECT_NEAR(s.all.rps, 20.0, 1e-6);
  EXPECT_NEAR(s.all.error_rate, 10.0 / 200, 1e-6);
  auto api = s.families[static_cast<size_t>(route_family::api)];
  EXPECT_NEAR(api.rps, 20.0, 1e-6);
  // 170 fast + 10 errors fast: 180 of 200 under 5 ms, so p50 is within the first bucket and p95 in the second.
  EXPECT_GT(api.p50_ms, 0);
  EXPECT_LE(api.p50_ms, 5.0);
  EXPECT_GT(api.p95_ms, 5.0);
  EXPECT_LE(api.p95_ms, 500.0);
  EXPECT_EQ(s.families[static_cast<size_t>(route_family::ops)].rps, 0) << "no new health checks";
  EXPECT_NEAR(s.cache_hit_rate, 30.0 / 40, 1e-6);
  EXPECT_NEAR(s.db_commit_ms, 250.0 / 5, 1e-3);
  EXPECT_NEAR(s.cpu_process_pct, 100.0 * 4 / (10 * 2), 1e-3);
  EXPECT_NEAR(s.cpu_machine_pct, 100.0 * 300 / 500, 1e-3);
  EXPECT_NEAR(s.memory_pct, 75.0, 1e-3);
  EXPECT_EQ(s.connections, 12u);
  EXPECT_NEAR(s.net_in_bps, 200 * 100 / 10.0, 1e-3);
  EXPECT_NEAR(s.net_out_bps, 200 * 1000 / 10.0, 1e-3);
  EXPECT_EQ(s.streams, 5u);
  EXPECT_EQ(s.sessions, 4u);
  EXPECT_EQ(s.mailbox_total, 47u);
  EXPECT_EQ(s.mailbox_max, 40u);
  EXPECT_EQ(s.mailbox_top, "db.writer");
  ASSERT_EQ(s.upstreams.size(), 1u);
  EXPECT_EQ(s.upstreams[0].name, "a");
  EXPECT_NEAR(s.upstreams[0].calls_per_s, 20.0, 1e-6);
  EXPECT_EQ(s.upstreams[0].breaker, 1);
  ASSERT_EQ(after.top_mailboxes.size(), 3u);
  EXPECT_EQ(after.top_mailboxes[0].first, "db.writer");
  EXPECT_EQ(after.top_mailboxes[1].first, "cache.shard.0");
}

TEST(History, AQuietIntervalHasNoLatencyNorShares) {
  auto a = summarize(parse_prometheus_text(scrape(100, 0, 0, 10, 0, 1.0, 10)), proc(10, 100, 1000), 1000, 0);
  auto b = summarize(parse_prometheus_text(scrape(100, 0, 0, 10, 0, 1.0, 10)), proc(10, 100, 1000), 6000, 5000);
  auto s = derive_sample(a, b);
  EXPECT_EQ(s.all.rps, 0);
  EXPECT_EQ(s.all.error_rate, -1);
  EXPECT_EQ(s.all.p95_ms, -1);
  EXPECT_EQ(s.cache_hit_rate, -1) << "no lookups";
  EXPECT_EQ(s.db_commit_ms, -1) << "no commit";
  EXPECT_EQ(s.cpu_machine_pct, -1) << "no tick passed";
}

// What a scrape cannot mean is left out, never turned into a NaN: a bucket bound that is not a number (the bucket map
// orders by it), and counts summed past the largest double (found by the metrics_text fuzz target).
TEST(History, NonsenseBoundsAndOverflowingCountsGiveNoNaN) {
  const std::string text =
    "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"200\",le=\"nan\"} 1\n"
    "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"200\",le=\"-1\"} 1\n"
    "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"200\",le=\"0.1x\"} 1\n"
    "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"200\",le=\"0.1\"} 1e308\n"
    "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"201\",le=\"0.1\"} 1e308\n"
    "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"200\",le=\"+Inf\"} 1e308\n"
    "troupe_http_request_duration_seconds_bucket{route=\"/api/me\",status=\"201\",le=\"+Inf\"} 1e308\n"
    "troupe_http_request_duration_seconds_count{route=\"/api/me\",status=\"200\"} 1e308\n"
    "troupe_http_request_duration_seconds_count{route=\"/api/me\",status=\"201\"} 1e308\n";
  auto before = summarize(parse_prometheus_text(""), proc(0, 0, 0), 0, 0);
  auto after = summarize(parse_prometheus_text(text), proc(0, 0, 0), 5000, 5000);
  auto sample = derive_sample(before, after);
  for (const auto& f : sample.families) {
    EXPECT_FALSE(std::isnan(f.rps));
    EXPECT_FALSE(std::isnan(f.p50_ms));
    EXPECT_FALSE(std::isnan(f.p95_ms));
    EXPECT_FALSE(std::isnan(f.p99_ms));
  }
  EXPECT_TRUE(std::isfinite(sample.all.rps));
}

TEST(History, TooFewCacheLookupsGiveNoHitRate) {
  auto a = summarize(parse_prometheus_text(scrape(100, 0, 0, 10, 0, 1.0, 10)), {}, 1000, 0);
  auto b = summarize(parse_prometheus_text(scrape(100, 0, 0, 12, 3, 1.0, 10)), {}, 6000, 5000);
  EXPECT_EQ(derive_sample(a, b, 10).cache_hit_rate, -1);
  EXPECT_NEAR(derive_sample(a, b, 5).cache_hit_rate, 2.0 / 5, 1e-6);
}

TEST(History, QuantileInterpolatesWithinABucketAndStopsAtTheLargestBound) {
  std::map<double, double> before{{0.1, 0}, {0.2, 0}, {INFINITY, 0}};
  std::map<double, double> after{{0.1, 50}, {0.2, 100}, {INFINITY, 100}};
  EXPECT_NEAR(quantile_of_increase(before, after, 0.5), 0.1, 1e-9);
  EXPECT_NEAR(quantile_of_increase(before, after, 0.75), 0.15, 1e-9);
  std::map<double, double> beyond{{0.1, 0}, {0.2, 0}, {INFINITY, 10}};
  EXPECT_NEAR(quantile_of_increase(before, beyond, 0.99), 0.2, 1e-9);
  EXPECT_EQ(quantile_of_increase(after, after, 0.5), -1) << "nothing observed";
}

TEST(History, RingIsBoundedAndWindowsMergeDownToPoints) {
  history ring(100);
  for (int i = 0; i < 250; ++i) {
    ops_sample s;
    s.at_ms = i * 1000;
    s.all.rps = static_cast<float>(i % 2 == 0 ? 10 : 20);
    s.all.p95_ms = static_cast<float>(i);
    s.cpu_machine_pct = 50;
    ring.add(s);
  }
  EXPECT_EQ(ring.size(), 100u);
  EXPECT_EQ(ring.samples().front().at_ms, 150000);
  EXPECT_GT(ring.memory_bytes(), 100 * sizeof(ops_sample) - 1);
  auto all = ring.window(0, 1000);
  EXPECT_EQ(all.size(), 100u);
  auto recent = ring.window(240000, 1000);
  EXPECT_EQ(recent.size(), 10u);
  auto merged = ring.window(0, 10);
  ASSERT_EQ(merged.size(), 10u);
  EXPECT_NEAR(merged[0].all.rps, 15.0, 1e-6) << "rates: the mean";
  EXPECT_NEAR(merged[0].all.p95_ms, 159.0, 1e-6) << "quantiles: the worst";
  EXPECT_EQ(merged[0].at_ms, 159000) << "a merged point is at its last sample";
  EXPECT_NEAR(merged[0].cpu_machine_pct, 50.0, 1e-6);
}

TEST(History, MergeKeepsTheWorstBreakerStateAndEveryUpstream) {
  ops_sample a, b, c;
  a.upstreams = {{"x", 30, 0, 10, 0}, {"gone", 1, 0, 5, 0}};
  b.upstreams = {{"x", 10, 1, 40, 1}};
  c.upstreams = {{"x", 20, 0, 10, 0}};
  auto m = merge_samples({&a, &b, &c});
  ASSERT_EQ(m.upstreams.size(), 2u) << "an upstream missing from the last sample stays";
  EXPECT_EQ(m.upstreams[0].name, "x");
  EXPECT_EQ(m.upstreams[0].breaker, 1);
  EXPECT_NEAR(m.upstreams[0].calls_per_s, 20, 1e-6);
  EXPECT_NEAR(m.upstreams[0].error_rate, 10.0 / 60, 1e-6) << "weighted by calls";
  EXPECT_EQ(m.upstreams[0].p95_ms, 40);
  EXPECT_EQ(m.upstreams[1].name, "gone");
}

TEST(History, KeepsItsByteCountAsSamplesComeAndGo) {
  history ring(3);
  ops_sample big;
  big.upstreams = {{"an upstream with a long name", 1, 0, 1, 0}};
  big.mailbox_top = "a mailbox with a long actor name";
  for (int i = 0; i < 5; ++i) {
    big.at_ms = i;
    ring.add(big);
  }
  EXPECT_EQ(ring.memory_bytes(), 3 * history::bytes_of(big));
  EXPECT_GT(history::bytes_of(big), sizeof(ops_sample) + 60);
}

TEST(History, ParsesWindows) {
  EXPECT_EQ(parse_window("15m", 86400000), 900000);
  EXPECT_EQ(parse_window("30s", 86400000), 30000);
  EXPECT_EQ(parse_window("24h", 86400000), 86400000);
  EXPECT_EQ(parse_window("2d", 86400000), std::nullopt) << "over the maximum";
  for (const char* bad : {"", "m", "15", "-5m", "0m", "1.5h", "15 m", "15M", "99999999999999h"})
    EXPECT_EQ(parse_window(bad, 86400000), std::nullopt) << bad;
}

TEST(History, ParsesProc) {
  EXPECT_NEAR(parse_proc_self_cpu("123 (tr oupe) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0", 100), 3.0, 1e-9);
  EXPECT_EQ(parse_proc_self_cpu("garbage", 100), -1);
  double busy = 0, total = 0;
  ASSERT_TRUE(parse_proc_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n", busy, total));
  EXPECT_EQ(total, 1000);
  EXPECT_EQ(busy, 150);
  EXPECT_FALSE(parse_proc_stat("intr 1 2 3", busy, total));
  double mem_total = 0, mem_available = 0;
  ASSERT_TRUE(parse_meminfo("MemTotal:       2000 kB\nMemFree: 10 kB\nMemAvailable:    500 kB\n", mem_total,
                            mem_available));
  EXPECT_EQ(mem_total, 2000 * 1024.0);
  EXPECT_EQ(mem_available, 500 * 1024.0);
  EXPECT_FALSE(parse_meminfo("MemTotal: 5 kB\n", mem_total, mem_available));
}

TEST(History, PerformanceJsonHasAlignedSeriesAndNulls) {
  history ring(10);
  for (int i = 0; i < 3; ++i) {
    ops_sample s;
    s.at_ms = 1000 * (i + 1);
    s.all.rps = 5;
    if (i == 1)
      s.upstreams = {{"b\"q", 2, 0.5f, 30, 2}};
    ring.add(s);
  }
  auto series = ring.window(0, 100);
  auto json = performance_json(series, ring.latest(), 4000, 60000, 1000, {{"db.writer", 3}});
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  ASSERT_FALSE(doc.HasParseError()) << json;
  EXPECT_EQ(doc["points"].GetInt(), 3);
  EXPECT_EQ(doc["series"]["t"].Size(), 3u);
  EXPECT_EQ(doc["series"]["http"]["rps"].Size(), 3u);
  EXPECT_TRUE(doc["series"]["cache_hit_rate"][0].IsNull());
  const auto& upstream = doc["series"]["upstreams"]["b\"q"];
  ASSERT_TRUE(upstream.IsObject()) << json;
  EXPECT_TRUE(upstream["p95_ms"][0].IsNull());
  EXPECT_EQ(upstream["p95_ms"][1].GetDouble(), 30);
  EXPECT_EQ(upstream["breaker"][1].GetDouble(), 2);
  EXPECT_EQ(doc["top_mailboxes"][0]["actor"], "db.writer");
  EXPECT_EQ(doc["current"]["at_ms"].GetInt64(), 3000);
}

} // namespace
} // namespace troupe::ops
