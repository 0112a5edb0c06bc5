#pragma once
// Process-wide metrics in the Prometheus text format 0.0.4.
// Families are created once (at start-up) and updated from any thread: a series lookup takes a short mutex,
// the update itself is atomic. Values that are only known at scrape time (RSS, mailbox sizes, breaker states)
// are written by collectors into a prometheus_writer when /metrics is rendered.

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe {

using label_list = std::vector<std::pair<std::string, std::string>>;

/// Writes families and samples in the text format, escaping label values. Families must be opened with
/// family() before their samples; each family name at most once per scrape.
class prometheus_writer {
public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const label_list& labels, double value);
  std::string take() { return std::move(out_); }

private:
  std::string out_;
};

class counter_family {
public:
  counter_family(std::string name, std::string help, std::vector<std::string> label_names);
  /// Adds `n` to the series with these label values (in the order of the label names).
  void inc(std::initializer_list<std::string_view> label_values, uint64_t n = 1);
  uint64_t value(std::initializer_list<std::string_view> label_values) const;
  void write(prometheus_writer& out) const;

private:
  struct series {
    std::vector<std::string> label_values;
    std::atomic<uint64_t> value{0};
  };
  series& find(std::initializer_list<std::string_view> label_values) const;

  std::string name_, help_;
  std::vector<std::string> label_names_;
  mutable std::mutex mutex_;
  // Keyed by the length-prefixed label values, so a lookup of an existing series allocates nothing.
  mutable std::map<std::string, std::unique_ptr<series>> series_;
};

class histogram_family {
public:
  histogram_family(std::string name, std::string help, std::vector<std::string> label_names,
                   std::vector<double> upper_bounds);
  void observe(std::initializer_list<std::string_view> label_values, double value);
  uint64_t count(std::initializer_list<std::string_view> label_values) const;
  void write(prometheus_writer& out) const;

private:
  struct series {
    series(std::vector<std::string> values, size_t buckets);
    std::vector<std::string> label_values;
    std::unique_ptr<std::atomic<uint64_t>[]> bucket_counts; // not cumulative; one per bound plus +Inf
    std::atomic<uint64_t> count{0};
    std::atomic<double> sum{0};
  };
  series& find(std::initializer_list<std::string_view> label_values) const;

  std::string name_, help_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, std::unique_ptr<series>> series_; // keyed like counter_family's
};

/// Latency buckets in seconds, from 100 us to 10 s.
std::vector<double> latency_buckets_seconds();

class metrics_registry {
public:
  /// Returns the family with this name, creating it on first use. Keep the reference: families live as long
  /// as the registry.
  counter_family& counter(const std::string& name, const std::string& help, std::vector<std::string> labels);
  histogram_family& histogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                              std::vector<double> upper_bounds);

  using collector = std::function<void(prometheus_writer&)>;
  /// Adds a function called on every scrape (from the scraping thread) to write scrape-time families.
  void add_collector(collector fn);

  /// Renders every family, then every collector, then `extra` (for values gathered asynchronously).
  std::string render(const collector& extra = {}) const;

private:
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<counter_family>> counters_;
  std::map<std::string, std::unique_ptr<histogram_family>> histograms_;
  std::vector<collector> collectors_;
};

/// troupe_slow_operations_total{kind}: operations over ops.slow_ms (request, upstream, db_batch, job_step), each also
/// logged once as "slow operation" with its stages.
counter_family& slow_operations(metrics_registry& metrics);

/// Resident set size and open file descriptors of this process, read from /proc/self.
struct process_stats {
  uint64_t resident_bytes = 0;
  uint64_t open_fds = 0;
  double cpu_seconds = 0; // user + system CPU time of the process (getrusage)
};
process_stats read_process_stats();
/// Only the resident set size (/proc/self/statm): what the load monitor reads ten times a second. Listing
/// /proc/self/fd costs a dentry look-up per open descriptor, thousands under load.
uint64_t read_resident_bytes();

} // namespace troupe
