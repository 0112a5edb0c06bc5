#include "actors/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

namespace troupe {

namespace {

void append_number(std::string& out, double value) {
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else if (std::isnan(value)) {
    out += "NaN";
  } else if (value == std::floor(value) && std::fabs(value) < 1e15) {
    out += std::to_string(static_cast<int64_t>(value));
  } else {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9g", value);
    out += buf;
  }
}

void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

label_list zip_labels(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  label_list result;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i)
    result.emplace_back(names[i], values[i]);
  return result;
}

/// Encodes label values as "<length>:<value>" each, into a thread-local buffer used as the map key: unambiguous
/// whatever the values contain, and no allocation once the buffer has grown.
const std::string& joined_key(std::initializer_list<std::string_view> values) {
  thread_local std::string key;
  key.clear();
  for (auto v : values) {
    char digits[20];
    auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), v.size());
    (void)ec; // 20 digits hold any size_t
    key.append(digits, end);
    key += ':';
    key.append(v.data(), v.size());
  }
  return key;
}

std::vector<std::string> to_vector(std::initializer_list<std::string_view> values) {
  return {values.begin(), values.end()};
}

} // namespace

// --- prometheus_writer ---

void prometheus_writer::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += help;
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void prometheus_writer::sample(std::string_view name, const label_list& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first)
        out_ += ',';
      first = false;
      out_ += k;
      out_ += "=\"";
      append_label_value(out_, v);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  append_number(out_, value);
  out_ += '\n';
}

// --- counter_family ---

counter_family::counter_family(std::string name, std::string help, std::vector<std::string> label_names)
  : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

counter_family::series& counter_family::find(std::initializer_list<std::string_view> label_values) const {
  const auto& key = joined_key(label_values);
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = series_.find(key);
  if (i == series_.end()) {
    auto fresh = std::make_unique<series>();
    fresh->label_values = to_vector(label_values);
    i = series_.emplace(key, std::move(fresh)).first;
  }
  return *i->second;
}

void counter_family::inc(std::initializer_list<std::string_view> label_values, uint64_t n) {
  find(label_values).value.fetch_add(n, std::memory_order_relaxed);
}

uint64_t counter_family::value(std::initializer_list<std::string_view> label_values) const {
  const auto& key = joined_key(label_values);
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = series_.find(key);
  return i == series_.end() ? 0 : i->second->value.load();
}

void counter_family::write(prometheus_writer& out) const {
  out.family(name_, "counter", help_);
  std::lock_guard<std::mutex> guard{mutex_};
  for (const auto& [key, s] : series_)
    out.sample(name_, zip_labels(label_names_, s->label_values), static_cast<double>(s->value.load()));
}

// --- histogram_family ---

histogram_family::series::series(std::vector<std::string> values, size_t buckets)
  : label_values(std::move(values)), bucket_counts(new std::atomic<uint64_t>[buckets]) {
  for (size_t i = 0; i < buckets; ++i)
    bucket_counts[i] = 0;
}

histogram_family::histogram_family(std::string name, std::string help, std::vector<std::string> label_names,
                                   std::vector<double> upper_bounds)
  : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)),
    bounds_(std::move(upper_bounds)) {}

histogram_family::series& histogram_family::find(std::initializer_list<std::string_view> label_values) const {
  const auto& key = joined_key(label_values);
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = series_.find(key);
  if (i == series_.end())
    i = series_.emplace(key, std::make_unique<series>(to_vector(label_values), bounds_.size() + 1)).first;
  return *i->second;
}

void histogram_family::observe(std::initializer_list<std::string_view> label_values, double value) {
  auto& s = find(label_values);
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket])
    ++bucket;
  s.bucket_counts[bucket].fetch_add(1, std::memory_order_relaxed);
  s.count.fetch_add(1, std::memory_order_relaxed);
  auto sum = s.sum.load(std::memory_order_relaxed);
  while (!s.sum.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

uint64_t histogram_family::count(std::initializer_list<std::string_view> label_values) const {
  const auto& key = joined_key(label_values);
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = series_.find(key);
  return i == series_.end() ? 0 : i->second->count.load();
}

void histogram_family::write(prometheus_writer& out) const {
  out.family(name_, "histogram", help_);
  auto bucket_name = name_ + "_bucket";
  std::lock_guard<std::mutex> guard{mutex_};
  for (const auto& [key, s] : series_) {
    auto labels = zip_labels(label_names_, s->label_values);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += s->bucket_counts[i].load(std::memory_order_relaxed);
      auto with_le = labels;
      std::string le;
      append_number(le, i < bounds_.size() ? bounds_[i] : std::numeric_limits<double>::infinity());
      with_le.emplace_back("le", le);
      out.sample(bucket_name, with_le, static_cast<double>(cumulative));
    }
    out.sample(name_ + "_sum", labels, s->sum.load());
    // The count is the +Inf bucket, so the exposition stays self-consistent under concurrent updates.
    out.sample(name_ + "_count", labels, static_cast<double>(cumulative));
  }
}

std::vector<double> latency_buckets_seconds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

// --- metrics_registry ---

counter_family& metrics_registry::counter(const std::string& name, const std::string& help,
                                          std::vector<std::string> labels) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& slot = counters_[name];
  if (!slot)
    slot = std::make_unique<counter_family>(name, help, std::move(labels));
  return *slot;
}

histogram_family& metrics_registry::histogram(const std::string& name, const std::string& help,
                                              std::vector<std::string> labels, std::vector<double> upper_bounds) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& slot = histograms_[name];
  if (!slot)
    slot = std::make_unique<histogram_family>(name, help, std::move(labels), std::move(upper_bounds));
  return *slot;
}

void metrics_registry::add_collector(collector fn) {
  std::lock_guard<std::mutex> guard{mutex_};
  collectors_.push_back(std::move(fn));
}

std::string metrics_registry::render(const collector& extra) const {
  prometheus_writer out;
  std::vector<collector> collectors;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    for (const auto& [name, family] : counters_)
      family->write(out);
    for (const auto& [name, family] : histograms_)
      family->write(out);
    collectors = collectors_;
  }
  for (const auto& fn : collectors)
    fn(out);
  if (extra)
    extra(out);
  return out.take();
}

uint64_t read_resident_bytes() {
  std::ifstream statm{"/proc/self/statm"};
  uint64_t size_pages = 0;
  uint64_t resident_pages = 0;
  if (statm >> size_pages >> resident_pages)
    return resident_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return 0;
}

counter_family& slow_operations(metrics_registry& metrics) {
  return metrics.counter("troupe_slow_operations_total",
                         "Operations slower than ops.slow_ms, by kind (each logged once with its stages).", {"kind"});
}

process_stats read_process_stats() {
  process_stats result;
  result.resident_bytes = read_resident_bytes();
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0)
    result.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                         + static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (auto* entry = ::readdir(dir))
      if (entry->d_name[0] != '.')
        ++result.open_fds;
    ::closedir(dir);
    // opendir itself holds one descriptor while counting.
    if (result.open_fds > 0)
      --result.open_fds;
  }
  return result;
}

} // namespace troupe
