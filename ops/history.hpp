#pragma once
// The process's history: one ops_sample every ops.sample_ms (5 s), derived from two consecutive readings of the
// process (its /metrics text, /proc), kept in a ring of bounded size (ops.history_ms / ops.sample_ms samples), and
// rendered as the series of GET /api/performance. Pure code: the sampler actor (ops/sampler.hpp) feeds it.
//
// What one sample holds (rates are per second over the interval since the previous sample; latencies are quantiles
// of the interval's requests, from the histogram buckets' increase, interpolated like Prometheus's
// histogram_quantile; -1 = nothing to measure in the interval, rendered as null):
//   cpu_process_pct   CPU time of this process over the interval, in % of the machine (all cores)
//   cpu_machine_pct   the machine's busy time, % (from /proc/stat)
//   memory_pct        the machine's memory in use, % (MemTotal - MemAvailable), rss_bytes the process's
//   connections       open HTTP connections; net_in_bps / net_out_bps their bytes read / written per second
//   rps, error_rate, p50/p95/p99_ms      every HTTP request but the ops family's (health checks, metrics scrapes,
//                                        this API, the dashboard); error_rate = share answered 5xx
//   families          the same per route family (route_family below)
//   cache_hit_rate    share of gateway cache lookups that hit (-1 with fewer than min_cache_lookups lookups)
//   db_commit_ms      mean time of the DB writer's batch commits
//   upstreams         per upstream: calls/s, share that failed, p95 ms, breaker state (0 closed, 1 open, 2 half-open)
//   streams           open streams: WebSockets + job event streams; sessions: live session actors
//   mailbox_total / mailbox_max / mailbox_top   the named actors' queued messages, the largest and whose it is

#include "ops/prometheus_text.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::ops {

/// Route families of the per-family series.
enum class route_family : uint8_t { api, gateway, uploads, auth, ops, other };
constexpr size_t route_family_count = 6;
const char* to_string(route_family f);
/// The family of a route pattern as the router names it ("/v1/chat/completions", "/api/jobs/{id}").
route_family family_of_route(std::string_view route);

struct route_stats {
  float rps = 0;
  float error_rate = -1;
  float p50_ms = -1, p95_ms = -1, p99_ms = -1;
};

struct upstream_stats {
  std::string name;
  float calls_per_s = 0;
  float error_rate = -1;
  float p95_ms = -1;
  int8_t breaker = 0; // 0 closed, 1 open, 2 half-open
};

struct ops_sample {
  int64_t at_ms = 0; // unix ms
  float cpu_process_pct = -1, cpu_machine_pct = -1, memory_pct = -1;
  uint64_t rss_bytes = 0;
  uint32_t connections = 0;
  float net_in_bps = 0, net_out_bps = 0;
  route_stats all; // every family but ops
  std::array<route_stats, route_family_count> families;
  float cache_hit_rate = -1;
  float db_commit_ms = -1;
  std::vector<upstream_stats> upstreams;
  uint32_t streams = 0, sessions = 0, in_flight = 0;
  uint64_t mailbox_total = 0, mailbox_max = 0;
  std::string mailbox_top;
};

/// CPU and memory figures read from /proc (parse_* below) at the time of a reading.
struct proc_figures {
  double process_cpu_seconds = -1; // utime + stime of this process
  double machine_busy_ticks = -1, machine_total_ticks = -1;
  double mem_total_bytes = -1, mem_available_bytes = -1;
  double cores = 1;
};

/// /proc/self/stat -> utime + stime in seconds (ticks / ticks_per_second); -1 when it does not parse.
double parse_proc_self_cpu(std::string_view stat, double ticks_per_second);
/// /proc/stat's "cpu " line -> busy and total ticks; false when it does not parse.
bool parse_proc_stat(std::string_view stat, double& busy, double& total);
/// /proc/meminfo -> MemTotal and MemAvailable in bytes; false when either is missing.
bool parse_meminfo(std::string_view meminfo, double& total, double& available);

/// The cumulative figures of one reading that samples are differences of.
struct totals {
  struct histogram {
    double count = 0, errors = 0;  // requests (or calls) and those that failed
    std::map<double, double> le;   // bucket upper bound -> cumulative count
  };
  int64_t at_ms = 0;     // unix ms
  int64_t steady_ms = 0; // monotonic ms: intervals
  std::array<histogram, route_family_count> families;
  std::map<std::string, histogram> upstreams;
  std::map<std::string, int8_t> breakers;
  double cache_hits = 0, cache_misses = 0;
  double db_batches = 0, db_commit_seconds = 0;
  double net_in = 0, net_out = 0;
  double rss = 0, connections = 0, streams = 0, sessions = 0, in_flight = 0;
  double mailbox_total = 0;
  std::vector<std::pair<std::string, double>> top_mailboxes; // the 10 largest, largest first
  proc_figures proc;
};

/// The totals in a scrape of /metrics (and the /proc figures read with it).
totals summarize(const prom_text& metrics, proc_figures proc, int64_t at_ms, int64_t steady_ms);

/// q-quantile (0..1) of the increase between two cumulative bucket sets, in the buckets' unit; -1 when nothing
/// was observed.
double quantile_of_increase(const std::map<double, double>& before, const std::map<double, double>& after, double q);

/// The sample of the interval between two readings (`after` later than `before`).
ops_sample derive_sample(const totals& before, const totals& after, double min_cache_lookups = 10);

/// A ring of samples: at most `capacity`, the oldest dropped first.
class history {
public:
  explicit history(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
  void add(ops_sample s);
  size_t size() const { return samples_.size(); }
  size_t capacity() const { return capacity_; }
  const std::deque<ops_sample>& samples() const { return samples_; }
  const ops_sample* latest() const { return samples_.empty() ? nullptr : &samples_.back(); }
  /// Approximate bytes the ring holds now (samples and their upstream entries), kept as samples come and go.
  size_t memory_bytes() const { return bytes_; }
  /// Samples with at_ms >= since_ms, oldest first, reduced to at most `max_points` by merging neighbours (mean of
  /// rates and gauges, shares weighted by requests, the worst of quantiles, mailbox sizes and breaker states).
  std::vector<ops_sample> window(int64_t since_ms, size_t max_points) const;

  /// Bytes one sample holds (its upstream entries and long strings included).
  static size_t bytes_of(const ops_sample& s);

private:
  size_t capacity_;
  size_t bytes_ = 0;
  std::deque<ops_sample> samples_;
};

/// Merges consecutive samples into one (see history::window).
ops_sample merge_samples(const std::vector<const ops_sample*>& group);

/// The body of GET /api/performance: {"now_ms", "window_ms", "sample_ms", "samples", "current": {...},
/// "series": {"t": [...], "cpu_process_pct": [...], ..., "families": {"api": {"rps": [...], ...}}, "upstreams":
/// {"name": {...}}}}; -1 values as null.
std::string performance_json(const std::vector<ops_sample>& series, const ops_sample* current, int64_t now_ms,
                             int64_t window_ms, int64_t sample_ms,
                             const std::vector<std::pair<std::string, double>>& top_mailboxes = {});

/// "30s", "15m", "6h", "7d" (a positive integer and a unit) -> milliseconds; nullopt for anything else or over
/// `max_ms`.
std::optional<int64_t> parse_window(std::string_view text, int64_t max_ms);


} // namespace troupe::ops
