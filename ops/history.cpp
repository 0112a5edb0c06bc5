#include "ops/history.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <set>

namespace troupe::ops {

const char* to_string(route_family f) {
  switch (f) {
    case route_family::api: return "api";
    case route_family::gateway: return "gateway";
    case route_family::uploads: return "uploads";
    case route_family::auth: return "auth";
    case route_family::ops: return "ops";
    case route_family::other: return "other";
  }
  return "other";
}

namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

} // namespace

route_family family_of_route(std::string_view route) {
  if (starts_with(route, "/v1/") || route == "/api/generate" || route == "/ws")
    return route_family::gateway;
  if (starts_with(route, "/api/auth/") || route == "/api/guest/token" || starts_with(route, "/api/keys"))
    return route_family::auth;
  if (starts_with(route, "/api/uploads") || starts_with(route, "/api/repositories") || starts_with(route, "/api/jobs")
      || starts_with(route, "/api/plans"))
    return route_family::uploads;
  if (route == "/health" || route == "/metrics" || route == "/api/health" || starts_with(route, "/debug")
      || starts_with(route, "/api/cluster") || route == "/api/performance" || route == "/api/status"
      || route == "/api/security/status" || route == "/api/alerts" || starts_with(route, "/dashboard"))
    return route_family::ops;
  if (starts_with(route, "/api/"))
    return route_family::api;
  return route_family::other;
}

// ---- /proc ---------------------------------------------------------------------------------------------------------

double parse_proc_self_cpu(std::string_view stat, double ticks_per_second) {
  // pid (comm) state ppid ... : comm may hold spaces and ')', so fields count from the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string_view::npos || ticks_per_second <= 0)
    return -1;
  std::string rest{stat.substr(close + 1)};
  // Fields after ')': 1 state, 2 ppid, ... utime is field 14 of the line, the 12th after ')'; stime the 13th.
  const char* p = rest.c_str();
  double utime = -1, stime = -1;
  for (int field = 1; field <= 13; ++field) {
    while (*p == ' ')
      ++p;
    if (!*p)
      return -1;
    const char* start = p;
    while (*p && *p != ' ')
      ++p;
    if (field == 12 || field == 13) {
      char* end = nullptr;
      double v = std::strtod(start, &end);
      if (end != p)
        return -1;
      (field == 12 ? utime : stime) = v;
    }
  }
  return (utime + stime) / ticks_per_second;
}

bool parse_proc_stat(std::string_view stat, double& busy, double& total) {
  if (!starts_with(stat, "cpu "))
    return false;
  auto end = stat.find('\n');
  std::string line{stat.substr(4, end == std::string_view::npos ? std::string_view::npos : end - 4)};
  const char* p = line.c_str();
  double values[10] = {};
  int n = 0;
  while (n < 10) {
    char* next = nullptr;
    double v = std::strtod(p, &next);
    if (next == p)
      break;
    values[n++] = v;
    p = next;
  }
  if (n < 4)
    return false;
  total = 0;
  for (int i = 0; i < n && i < 8; ++i) // guest and guest_nice are inside user and nice already
    total += values[i];
  double idle = values[3] + (n > 4 ? values[4] : 0); // idle + iowait
  busy = total - idle;
  return total > 0;
}

bool parse_meminfo(std::string_view meminfo, double& total, double& available) {
  auto field = [&](std::string_view key) -> double {
    size_t pos = 0;
    while (pos < meminfo.size()) {
      auto end = meminfo.find('\n', pos);
      auto line = meminfo.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
      if (starts_with(line, key) && line.size() > key.size() && line[key.size()] == ':') {
        std::string value{line.substr(key.size() + 1)};
        char* next = nullptr;
        double kb = std::strtod(value.c_str(), &next);
        if (next != value.c_str())
          return kb * 1024;
      }
      if (end == std::string_view::npos)
        break;
      pos = end + 1;
    }
    return -1;
  };
  total = field("MemTotal");
  available = field("MemAvailable");
  return total > 0 && available >= 0;
}

// ---- readings ------------------------------------------------------------------------------------------------------

namespace {

/// A histogram bucket's upper bound from its `le` label: "+Inf", or a whole non-negative number; nullopt for
/// anything else (a NaN key would break the bucket map's order).
std::optional<double> bucket_bound(std::string_view le) {
  if (le == "+Inf")
    return INFINITY;
  if (le.empty() || le.size() > 64)
    return std::nullopt;
  std::string text{le};
  char* end = nullptr;
  double bound = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(bound) || bound < 0)
    return std::nullopt;
  return bound;
}

} // namespace

totals summarize(const prom_text& metrics, proc_figures proc, int64_t at_ms, int64_t steady_ms) {
  totals t;
  t.at_ms = at_ms;
  t.steady_ms = steady_ms;
  t.proc = proc;
  for (const auto& s : metrics.samples) {
    const auto& n = s.name;
    if (!std::isfinite(s.value))
      continue;
    if (n == "troupe_http_request_duration_seconds_bucket") {
      if (auto bound = bucket_bound(s.label("le")))
        t.families[static_cast<size_t>(family_of_route(s.label("route")))].le[*bound] += s.value;
    } else if (n == "troupe_http_request_duration_seconds_count") {
      auto& h = t.families[static_cast<size_t>(family_of_route(s.label("route")))];
      h.count += s.value;
      auto status = s.label("status");
      if (!status.empty() && status[0] == '5')
        h.errors += s.value;
    } else if (n == "troupe_upstream_request_duration_seconds_bucket") {
      if (auto bound = bucket_bound(s.label("le")))
        t.upstreams[std::string{s.label("upstream")}].le[*bound] += s.value;
    } else if (n == "troupe_upstream_requests_total") {
      auto& h = t.upstreams[std::string{s.label("upstream")}];
      h.count += s.value;
      if (s.label("outcome") != "ok")
        h.errors += s.value;
    } else if (n == "troupe_upstream_breaker_state") {
      t.breakers[std::string{s.label("upstream")}] = static_cast<int8_t>(s.value);
    } else if (n == "troupe_gateway_cache_total") {
      auto result = s.label("result");
      if (result == "hit")
        t.cache_hits += s.value;
      else if (result == "miss")
        t.cache_misses += s.value;
    } else if (n == "troupe_db_batches_total") {
      t.db_batches += s.value;
    } else if (n == "troupe_db_commit_seconds_total") {
      t.db_commit_seconds += s.value;
    } else if (n == "troupe_http_network_bytes_total") {
      (s.label("direction") == "in" ? t.net_in : t.net_out) += s.value;
    } else if (n == "troupe_process_resident_memory_bytes") {
      t.rss = s.value;
    } else if (n == "troupe_http_connections_open") {
      t.connections += s.value;
    } else if (n == "troupe_ws_connections" || n == "troupe_job_event_streams") {
      t.streams += s.value;
    } else if (n == "troupe_sessions_active") {
      t.sessions += s.value;
    } else if (n == "troupe_http_requests_in_flight") {
      t.in_flight += s.value;
    } else if (n == "troupe_actor_mailbox_size") {
      t.mailbox_total += s.value;
      t.top_mailboxes.emplace_back(std::string{s.label("actor")}, s.value);
    }
  }
  constexpr size_t top = 10;
  auto larger = [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); };
  if (t.top_mailboxes.size() > top) {
    std::partial_sort(t.top_mailboxes.begin(), t.top_mailboxes.begin() + top, t.top_mailboxes.end(), larger);
    t.top_mailboxes.resize(top);
  } else {
    std::sort(t.top_mailboxes.begin(), t.top_mailboxes.end(), larger);
  }
  return t;
}

std::optional<int64_t> parse_window(std::string_view text, int64_t max_ms) {
  if (text.size() < 2 || text.size() > 12)
    return std::nullopt;
  int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1000; break;
    case 'm': unit = 60 * 1000; break;
    case 'h': unit = 3600 * 1000; break;
    case 'd': unit = 24 * 3600 * 1000; break;
    default: return std::nullopt;
  }
  int64_t n = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9')
      return std::nullopt;
    n = n * 10 + (c - '0');
    if (n > 1000000000)
      return std::nullopt;
  }
  if (n <= 0 || n > max_ms / unit)
    return std::nullopt;
  return n * unit;
}

double quantile_of_increase(const std::map<double, double>& before, const std::map<double, double>& after, double q) {
  if (after.empty())
    return -1;
  std::vector<std::pair<double, double>> buckets; // bound, cumulative increase
  buckets.reserve(after.size());
  double previous = 0;
  for (const auto& [bound, count] : after) {
    auto old = before.find(bound);
    double inc = count - (old == before.end() ? 0 : old->second);
    inc = std::max(inc, previous); // cumulative counts never fall; a reset must not make them
    buckets.emplace_back(bound, inc);
    previous = inc;
  }
  double total = buckets.back().second;
  if (total <= 0 || !std::isfinite(total)) // (counts summed past the largest double say nothing)
    return -1;
  double rank = q * total;
  double lower_bound = 0, lower_count = 0;
  for (const auto& [bound, cumulative] : buckets) {
    if (cumulative >= rank) {
      if (std::isinf(bound))
        return lower_bound; // beyond the largest finite bound: that bound, like histogram_quantile
      double in_bucket = cumulative - lower_count;
      if (in_bucket <= 0)
        return bound;
      return lower_bound + (bound - lower_bound) * (rank - lower_count) / in_bucket;
    }
    lower_bound = bound;
    lower_count = cumulative;
  }
  return lower_bound;
}

namespace {

float ms_or_none(double seconds) {
  return seconds < 0 ? -1.0f : static_cast<float>(seconds * 1000.0);
}

route_stats stats_of(const totals::histogram& before, const totals::histogram& after, double seconds) {
  route_stats r;
  // An increase that is not a finite number (counts summed past the largest double) counts as none.
  auto increase = [](double a, double b) { return std::isfinite(a - b) ? std::max(0.0, a - b) : 0.0; };
  double count = increase(after.count, before.count);
  double errors = increase(after.errors, before.errors);
  r.rps = static_cast<float>(count / seconds);
  r.error_rate = count > 0 ? static_cast<float>(std::min(1.0, errors / count)) : -1.0f;
  if (count > 0) {
    r.p50_ms = ms_or_none(quantile_of_increase(before.le, after.le, 0.50));
    r.p95_ms = ms_or_none(quantile_of_increase(before.le, after.le, 0.95));
    r.p99_ms = ms_or_none(quantile_of_increase(before.le, after.le, 0.99));
  }
  return r;
}

totals::histogram add(const totals::histogram& a, const totals::histogram& b) {
  totals::histogram sum = a;
  sum.count += b.count;
  sum.errors += b.errors;
  for (const auto& [bound, count] : b.le)
    sum.le[bound] += count;
  return sum;
}

} // namespace

ops_sample derive_sample(const totals& before, const totals& after, double min_cache_lookups) {
  ops_sample s;
  s.at_ms = after.at_ms;
  double seconds = std::max(0.001, static_cast<double>(after.steady_ms - before.steady_ms) / 1000.0);
  // CPU and memory
  const auto &p0 = before.proc, &p1 = after.proc;
  if (p0.process_cpu_seconds >= 0 && p1.process_cpu_seconds >= 0)
    s.cpu_process_pct = static_cast<float>(
      std::clamp(100.0 * (p1.process_cpu_seconds - p0.process_cpu_seconds) / (seconds * std::max(1.0, p1.cores)), 0.0,
                 100.0));
  if (p0.machine_total_ticks >= 0 && p1.machine_total_ticks > p0.machine_total_ticks)
    s.cpu_machine_pct = static_cast<float>(std::clamp(
      100.0 * (p1.machine_busy_ticks - p0.machine_busy_ticks) / (p1.machine_total_ticks - p0.machine_total_ticks), 0.0,
      100.0));
  if (p1.mem_total_bytes > 0 && p1.mem_available_bytes >= 0)
    s.memory_pct = static_cast<float>(
      std::clamp(100.0 * (p1.mem_total_bytes - p1.mem_available_bytes) / p1.mem_total_bytes, 0.0, 100.0));
  s.rss_bytes = static_cast<uint64_t>(std::max(0.0, after.rss));
  s.connections = static_cast<uint32_t>(std::max(0.0, after.connections));
  s.net_in_bps = static_cast<float>(std::max(0.0, after.net_in - before.net_in) / seconds);
  s.net_out_bps = static_cast<float>(std::max(0.0, after.net_out - before.net_out) / seconds);
  // HTTP
  totals::histogram all_before, all_after;
  for (size_t f = 0; f < route_family_count; ++f) {
    s.families[f] = stats_of(before.families[f], after.families[f], seconds);
    if (f != static_cast<size_t>(route_family::ops)) {
      all_before = add(all_before, before.families[f]);
      all_after = add(all_after, after.families[f]);
    }
  }
  s.all = stats_of(all_before, all_after, seconds);
  // cache, database
  double hits = std::max(0.0, after.cache_hits - before.cache_hits);
  double lookups = hits + std::max(0.0, after.cache_misses - before.cache_misses);
  if (lookups >= min_cache_lookups && lookups > 0)
    s.cache_hit_rate = static_cast<float>(hits / lookups);
  double batches = after.db_batches - before.db_batches;
  if (batches > 0)
    s.db_commit_ms = static_cast<float>(1000.0 * std::max(0.0, after.db_commit_seconds - before.db_commit_seconds)
                                        / batches);
  // upstreams: every one the scrape names (a breaker without calls yet included)
  std::set<std::string> names;
  for (const auto& entry : after.upstreams)
    names.insert(entry.first);
  for (const auto& entry : after.breakers)
    names.insert(entry.first);
  static const totals::histogram none;
  for (const auto& name : names) {
    auto b = before.upstreams.find(name);
    auto a = after.upstreams.find(name);
    auto stats = stats_of(b == before.upstreams.end() ? none : b->second, a == after.upstreams.end() ? none : a->second,
                          seconds);
    upstream_stats u;
    u.name = name;
    u.calls_per_s = stats.rps;
    u.error_rate = stats.error_rate;
    u.p95_ms = stats.p95_ms;
    auto state = after.breakers.find(name);
    u.breaker = state == after.breakers.end() ? 0 : state->second;
    s.upstreams.push_back(std::move(u));
  }
  s.streams = static_cast<uint32_t>(std::max(0.0, after.streams));
  s.sessions = static_cast<uint32_t>(std::max(0.0, after.sessions));
  s.in_flight = static_cast<uint32_t>(std::max(0.0, after.in_flight));
  s.mailbox_total = static_cast<uint64_t>(std::max(0.0, after.mailbox_total));
  if (!after.top_mailboxes.empty()) { // sorted, largest first
    s.mailbox_max = static_cast<uint64_t>(std::max(0.0, after.top_mailboxes.front().second));
    s.mailbox_top = after.top_mailboxes.front().first;
  }
  return s;
}

// ---- the ring ------------------------------------------------------------------------------------------------------

size_t history::bytes_of(const ops_sample& s) {
  size_t bytes = sizeof(ops_sample) + s.upstreams.capacity() * sizeof(upstream_stats);
  if (s.mailbox_top.capacity() > 15)
    bytes += s.mailbox_top.capacity() + 1;
  for (const auto& u : s.upstreams)
    if (u.name.capacity() > 15)
      bytes += u.name.capacity() + 1;
  return bytes;
}

void history::add(ops_sample s) {
  while (samples_.size() >= capacity_) {
    bytes_ -= bytes_of(samples_.front());
    samples_.pop_front();
  }
  bytes_ += bytes_of(s);
  samples_.push_back(std::move(s));
}

namespace {

/// Mean of the values that are not -1 (none: -1).
float mean_of(const std::vector<const ops_sample*>& group, const std::function<float(const ops_sample&)>& get) {
  double sum = 0;
  int n = 0;
  for (const auto* s : group) {
    float v = get(*s);
    if (v >= 0) {
      sum += v;
      ++n;
    }
  }
  return n == 0 ? -1.0f : static_cast<float>(sum / n);
}

float max_of(const std::vector<const ops_sample*>& group, const std::function<float(const ops_sample&)>& get) {
  float best = -1;
  for (const auto* s : group)
    best = std::max(best, get(*s));
  return best;
}

route_stats merge_route(const std::vector<const ops_sample*>& group,
                        const std::function<const route_stats&(const ops_sample&)>& get) {
  route_stats r;
  r.rps = std::max(0.0f, mean_of(group, [&](const ops_sample& s) { return get(s).rps; }));
  // Error share weighted by requests, so a quiet sample does not count as much as a busy one.
  double requests = 0, errors = 0;
  for (const auto* s : group) {
    const auto& st = get(*s);
    if (st.error_rate >= 0) {
      requests += st.rps;
      errors += st.rps * st.error_rate;
    }
  }
  r.error_rate = requests > 0 ? static_cast<float>(errors / requests) : -1.0f;
  r.p50_ms = max_of(group, [&](const ops_sample& s) { return get(s).p50_ms; });
  r.p95_ms = max_of(group, [&](const ops_sample& s) { return get(s).p95_ms; });
  r.p99_ms = max_of(group, [&](const ops_sample& s) { return get(s).p99_ms; });
  return r;
}

} // namespace

ops_sample merge_samples(const std::vector<const ops_sample*>& group) {
  if (group.empty())
    return {};
  if (group.size() == 1)
    return *group.front();
  const auto& last = *group.back();
  ops_sample m;
  m.at_ms = last.at_ms;
  m.cpu_process_pct = mean_of(group, [](const ops_sample& s) { return s.cpu_process_pct; });
  m.cpu_machine_pct = mean_of(group, [](const ops_sample& s) { return s.cpu_machine_pct; });
  m.memory_pct = mean_of(group, [](const ops_sample& s) { return s.memory_pct; });
  m.rss_bytes = 0;
  for (const auto* s : group)
    m.rss_bytes = std::max(m.rss_bytes, s->rss_bytes);
  m.connections = static_cast<uint32_t>(std::max(0.0f, mean_of(group, [](const ops_sample& s) {
                                                   return static_cast<float>(s.connections);
                                                 })));
  m.net_in_bps = std::max(0.0f, mean_of(group, [](const ops_sample& s) { return s.net_in_bps; }));
  m.net_out_bps = std::max(0.0f, mean_of(group, [](const ops_sample& s) { return s.net_out_bps; }));
  m.all = merge_route(group, [](const ops_sample& s) -> const route_stats& { return s.all; });
  for (size_t f = 0; f < route_family_count; ++f)
    m.families[f] = merge_route(group, [f](const ops_sample& s) -> const route_stats& { return s.families[f]; });
  m.cache_hit_rate = mean_of(group, [](const ops_sample& s) { return s.cache_hit_rate; });
  m.db_commit_ms = mean_of(group, [](const ops_sample& s) { return s.db_commit_ms; });
  // Upstreams: every name of the group, in the order first seen.
  for (const auto* s : group)
    for (const auto& x : s->upstreams)
      if (std::none_of(m.upstreams.begin(), m.upstreams.end(), [&](const upstream_stats& u) { return u.name == x.name; }))
        m.upstreams.push_back(upstream_stats{x.name, 0, -1, -1, 0});
  for (auto& u : m.upstreams) {
    double calls = 0, failed = 0, rate_sum = 0;
    int rates = 0;
    for (const auto* s : group)
      for (const auto& x : s->upstreams) {
        if (x.name != u.name)
          continue;
        rate_sum += x.calls_per_s;
        ++rates;
        if (x.error_rate >= 0) {
          calls += x.calls_per_s;
          failed += x.calls_per_s * x.error_rate;
        }
        u.p95_ms = std::max(u.p95_ms, x.p95_ms);
        // The worst state of the group: an open breaker must not vanish in a merge.
        if (x.breaker == 1 || (x.breaker == 2 && u.breaker == 0))
          u.breaker = x.breaker;
      }
    u.calls_per_s = static_cast<float>(rate_sum / std::max(1, rates));
    u.error_rate = calls > 0 ? static_cast<float>(failed / calls) : -1.0f;
  }
  m.streams = last.streams;
  m.sessions = last.sessions;
  m.in_flight = last.in_flight;
  m.mailbox_total = 0;
  for (const auto* s : group)
    m.mailbox_total = std::max(m.mailbox_total, s->mailbox_total);
  m.mailbox_max = 0;
  for (const auto* s : group)
    if (s->mailbox_max >= m.mailbox_max) {
      m.mailbox_max = s->mailbox_max;
      m.mailbox_top = s->mailbox_top;
    }
  return m;
}

std::vector<ops_sample> history::window(int64_t since_ms, size_t max_points) const {
  // Samples are in time order: the window starts at the first one not older than since_ms.
  auto first = std::lower_bound(samples_.begin(), samples_.end(), since_ms,
                                [](const ops_sample& s, int64_t t) { return s.at_ms < t; });
  std::vector<const ops_sample*> in_window;
  in_window.reserve(static_cast<size_t>(samples_.end() - first));
  for (auto i = first; i != samples_.end(); ++i)
    in_window.push_back(&*i);
  std::vector<ops_sample> out;
  if (in_window.empty())
    return out;
  max_points = std::max<size_t>(1, max_points);
  size_t group = (in_window.size() + max_points - 1) / max_points;
  out.reserve(in_window.size() / group + 1);
  for (size_t i = 0; i < in_window.size(); i += group) {
    std::vector<const ops_sample*> g(in_window.begin() + static_cast<ptrdiff_t>(i),
                                     in_window.begin() + static_cast<ptrdiff_t>(std::min(in_window.size(), i + group)));
    out.push_back(merge_samples(g));
  }
  return out;
}

// ---- JSON ----------------------------------------------------------------------------------------------------------

namespace {

using writer = rapidjson::Writer<rapidjson::StringBuffer>;

void number_or_null(writer& w, double v) {
  if (v < 0 || !std::isfinite(v))
    w.Null();
  else
    w.Double(std::round(v * 1000.0) / 1000.0);
}

void route_object(writer& w, const route_stats& r) {
  w.StartObject();
  w.Key("rps");
  number_or_null(w, r.rps);
  w.Key("error_rate");
  number_or_null(w, r.error_rate);
  w.Key("p50_ms");
  number_or_null(w, r.p50_ms);
  w.Key("p95_ms");
  number_or_null(w, r.p95_ms);
  w.Key("p99_ms");
  number_or_null(w, r.p99_ms);
  w.EndObject();
}

const char* breaker_name(int8_t state) {
  return state == 1 ? "open" : state == 2 ? "half_open" : "closed";
}

void write_sample(writer& w, const ops_sample& s) {
  w.StartObject();
  w.Key("at_ms");
  w.Int64(s.at_ms);
  w.Key("cpu_process_pct");
  number_or_null(w, s.cpu_process_pct);
  w.Key("cpu_machine_pct");
  number_or_null(w, s.cpu_machine_pct);
  w.Key("memory_pct");
  number_or_null(w, s.memory_pct);
  w.Key("rss_bytes");
  w.Uint64(s.rss_bytes);
  w.Key("connections");
  w.Uint(s.connections);
  w.Key("net_in_bps");
  number_or_null(w, s.net_in_bps);
  w.Key("net_out_bps");
  number_or_null(w, s.net_out_bps);
  w.Key("http");
  route_object(w, s.all);
  w.Key("families");
  w.StartObject();
  for (size_t f = 0; f < route_family_count; ++f) {
    w.Key(to_string(static_cast<route_family>(f)));
    route_object(w, s.families[f]);
  }
  w.EndObject();
  w.Key("cache_hit_rate");
  number_or_null(w, s.cache_hit_rate);
  w.Key("db_commit_ms");
  number_or_null(w, s.db_commit_ms);
  w.Key("upstreams");
  w.StartArray();
  for (const auto& u : s.upstreams) {
    w.StartObject();
    w.Key("name");
    w.String(u.name.c_str(), static_cast<rapidjson::SizeType>(u.name.size()));
    w.Key("calls_per_s");
    number_or_null(w, u.calls_per_s);
    w.Key("error_rate");
    number_or_null(w, u.error_rate);
    w.Key("p95_ms");
    number_or_null(w, u.p95_ms);
    w.Key("breaker");
    w.String(breaker_name(u.breaker));
    w.EndObject();
  }
  w.EndArray();
  w.Key("streams");
  w.Uint(s.streams);
  w.Key("sessions");
  w.Uint(s.sessions);
  w.Key("in_flight");
  w.Uint(s.in_flight);
  w.Key("mailbox_total");
  w.Uint64(s.mailbox_total);
  w.Key("mailbox_max");
  w.Uint64(s.mailbox_max);
  w.Key("mailbox_top");
  w.String(s.mailbox_top.c_str(), static_cast<rapidjson::SizeType>(s.mailbox_top.size()));
  w.EndObject();
}

void series(writer& w, const char* key, const std::vector<ops_sample>& samples,
            const std::function<double(const ops_sample&)>& get) {
  w.Key(key);
  w.StartArray();
  for (const auto& s : samples)
    number_or_null(w, get(s));
  w.EndArray();
}

void route_series(writer& w, const std::vector<ops_sample>& samples,
                  const std::function<const route_stats&(const ops_sample&)>& get) {
  w.StartObject();
  series(w, "rps", samples, [&](const ops_sample& s) { return get(s).rps; });
  series(w, "error_rate", samples, [&](const ops_sample& s) { return get(s).error_rate; });
  series(w, "p50_ms", samples, [&](const ops_sample& s) { return get(s).p50_ms; });
  series(w, "p95_ms", samples, [&](const ops_sample& s) { return get(s).p95_ms; });
  series(w, "p99_ms", samples, [&](const ops_sample& s) { return get(s).p99_ms; });
  w.EndObject();
}

} // namespace

std::string performance_json(const std::vector<ops_sample>& samples, const ops_sample* current, int64_t now_ms,
                             int64_t window_ms, int64_t sample_ms,
                             const std::vector<std::pair<std::string, double>>& top_mailboxes) {
  rapidjson::StringBuffer buffer;
  writer w{buffer};
  w.StartObject();
  w.Key("now_ms");
  w.Int64(now_ms);
  w.Key("window_ms");
  w.Int64(window_ms);
  w.Key("sample_ms");
  w.Int64(sample_ms);
  w.Key("points");
  w.Uint64(samples.size());
  w.Key("current");
  if (current)
    write_sample(w, *current);
  else
    w.Null();
  w.Key("top_mailboxes");
  w.StartArray();
  for (const auto& [actor, size] : top_mailboxes) {
    w.StartObject();
    w.Key("actor");
    w.String(actor.c_str(), static_cast<rapidjson::SizeType>(actor.size()));
    w.Key("size");
    w.Uint64(static_cast<uint64_t>(std::max(0.0, size)));
    w.EndObject();
  }
  w.EndArray();
  w.Key("series");
  w.StartObject();
  w.Key("t");
  w.StartArray();
  for (const auto& s : samples)
    w.Int64(s.at_ms);
  w.EndArray();
  series(w, "cpu_process_pct", samples, [](const ops_sample& s) { return s.cpu_process_pct; });
  series(w, "cpu_machine_pct", samples, [](const ops_sample& s) { return s.cpu_machine_pct; });
  series(w, "memory_pct", samples, [](const ops_sample& s) { return s.memory_pct; });
  series(w, "rss_bytes", samples, [](const ops_sample& s) { return static_cast<double>(s.rss_bytes); });
  series(w, "connections", samples, [](const ops_sample& s) { return static_cast<double>(s.connections); });
  series(w, "net_in_bps", samples, [](const ops_sample& s) { return s.net_in_bps; });
  series(w, "net_out_bps", samples, [](const ops_sample& s) { return s.net_out_bps; });
  series(w, "cache_hit_rate", samples, [](const ops_sample& s) { return s.cache_hit_rate; });
  series(w, "db_commit_ms", samples, [](const ops_sample& s) { return s.db_commit_ms; });
  series(w, "streams", samples, [](const ops_sample& s) { return static_cast<double>(s.streams); });
  series(w, "sessions", samples, [](const ops_sample& s) { return static_cast<double>(s.sessions); });
  series(w, "in_flight", samples, [](const ops_sample& s) { return static_cast<double>(s.in_flight); });
  series(w, "mailbox_total", samples, [](const ops_sample& s) { return static_cast<double>(s.mailbox_total); });
  series(w, "mailbox_max", samples, [](const ops_sample& s) { return static_cast<double>(s.mailbox_max); });
  w.Key("http");
  route_series(w, samples, [](const ops_sample& s) -> const route_stats& { return s.all; });
  w.Key("families");
  w.StartObject();
  for (size_t f = 0; f < route_family_count; ++f) {
    w.Key(to_string(static_cast<route_family>(f)));
    route_series(w, samples, [f](const ops_sample& s) -> const route_stats& { return s.families[f]; });
  }
  w.EndObject();
  // Upstreams: every name seen in the window, each series aligned with "t" (null where the name is absent).
  std::set<std::string> names;
  for (const auto& s : samples)
    for (const auto& u : s.upstreams)
      names.insert(u.name);
  w.Key("upstreams");
  w.StartObject();
  for (const auto& name : names) {
    auto find = [&name](const ops_sample& s) -> const upstream_stats* {
      for (const auto& u : s.upstreams)
        if (u.name == name)
          return &u;
      return nullptr;
    };
    w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
    w.StartObject();
    auto upstream_series = [&](const char* key, auto field) {
      series(w, key, samples, [&](const ops_sample& s) {
        auto* u = find(s);
        return u ? static_cast<double>(u->*field) : -1.0;
      });
    };
    upstream_series("calls_per_s", &upstream_stats::calls_per_s);
    upstream_series("error_rate", &upstream_stats::error_rate);
    upstream_series("p95_ms", &upstream_stats::p95_ms);
    upstream_series("breaker", &upstream_stats::breaker);
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

} // namespace troupe::ops
