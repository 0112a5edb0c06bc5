#include "tools/mock-upstream/knobs.hpp"

#include "tools/mock-upstream/json_text.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace troupe::mock {

namespace {

constexpr int64_t max_latency_ms = 600'000;
constexpr int64_t max_drip_ms = 60'000;
constexpr int64_t max_chunks = 100'000;
constexpr int64_t max_huge_bytes = int64_t{1} << 30;
constexpr int64_t max_retry_after = 86'400;
constexpr int64_t max_count = 1'000'000;

std::string invalid(std::string_view name, std::string_view value, const char* expected) {
  return "invalid mock knob " + std::string{name} + "=" + std::string{value} + ": expected " + expected;
}

bool parse_integer(std::string_view text, int64_t min, int64_t max, int64_t& out) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max)
    return false;
  out = value;
  return true;
}

bool parse_fraction(std::string_view text, double& out) {
  std::string copy{text}; // strtod needs a terminated string; from_chars<double> is missing in GCC 12's libstdc++
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(copy.c_str(), &end);
  if (copy.empty() || errno != 0 || end != copy.c_str() + copy.size() || !std::isfinite(value) || value < 0
      || value > 1)
    return false;
  out = value;
  return true;
}

/// Setter for an integer knob in [min, max].
template <typename T, std::optional<T> knob_overrides::*Field, int64_t Min, int64_t Max>
std::string set_integer(knob_overrides& out, std::string_view name, std::string_view value, const char* expected) {
  int64_t parsed = 0;
  if (!parse_integer(value, Min, Max, parsed))
    return invalid(name, value, expected);
  out.*Field = static_cast<T>(parsed);
  return {};
}

std::string set_status(knob_overrides& out, std::string_view name, std::string_view value, const char* expected) {
  int64_t parsed = 0;
  if (!parse_integer(value, 0, 599, parsed) || (parsed != 0 && parsed != 200 && parsed < 400))
    return invalid(name, value, expected);
  out.status = static_cast<int>(parsed);
  return {};
}

std::string set_retry_after(knob_overrides& out, std::string_view name, std::string_view value, const char* expected) {
  int64_t parsed = 0;
  if (value == "none")
    parsed = -1;
  else if (!parse_integer(value, 0, max_retry_after, parsed))
    return invalid(name, value, expected);
  out.retry_after = parsed;
  return {};
}

std::string set_error_rate(knob_overrides& out, std::string_view name, std::string_view value, const char* expected) {
  double parsed = 0;
  if (!parse_fraction(value, parsed))
    return invalid(name, value, expected);
  out.error_rate = parsed;
  return {};
}

std::string set_malformed(knob_overrides& out, std::string_view name, std::string_view value, const char* expected) {
  for (auto mode : {malformed_mode::none, malformed_mode::json, malformed_mode::sse, malformed_mode::utf8,
                    malformed_mode::truncated, malformed_mode::no_choices, malformed_mode::hangup}) {
    if (value == malformed_name(mode)) {
      out.malformed = mode;
      return {};
    }
  }
  return invalid(name, value, expected);
}

struct knob_entry {
  knob_doc doc;
  std::string (*set)(knob_overrides&, std::string_view name, std::string_view value, const char* expected);
};

// The one table of knobs: name, accepted values, setter.
const std::vector<knob_entry>& knob_table() {
  static const std::vector<knob_entry> table{
    {{"latency_ms", "0..600000"}, set_integer<int64_t, &knob_overrides::latency_ms, 0, max_latency_ms>},
    {{"status", "0 or 200 (normal) or 400..599"}, set_status},
    {{"retry_after", "0..86400 seconds or none"}, set_retry_after},
    {{"error_rate", "a number in 0..1"}, set_error_rate},
    {{"error_status", "400..599"}, set_integer<int, &knob_overrides::error_status, 400, 599>},
    {{"drip_ms", "0..60000"}, set_integer<int64_t, &knob_overrides::drip_ms, 0, max_drip_ms>},
    {{"chunks", "1..100000"}, set_integer<int64_t, &knob_overrides::chunks, 1, max_chunks>},
    {{"malformed", "none|json|sse|utf8|truncated|no_choices|hangup"}, set_malformed},
    {{"huge_bytes", "0..1073741824"}, set_integer<int64_t, &knob_overrides::huge_bytes, 0, max_huge_bytes>},
    {{"think_ms", "0..600000"}, set_integer<int64_t, &knob_overrides::think_ms, 0, max_latency_ms>},
    {{"pause_after", "0..100000 events"}, set_integer<int64_t, &knob_overrides::pause_after, 0, max_chunks>},
    {{"pause_ms", "0..600000"}, set_integer<int64_t, &knob_overrides::pause_ms, 0, max_latency_ms>},
    {{"count", "1..1000000 (POST /mock/config only)"}, set_integer<int64_t, &knob_overrides::count, 1, max_count>},
  };
  return table;
}

template <typename T>
void copy_if_set(const std::optional<T>& from, T& to) {
  if (from)
    to = *from;
}

template <typename T>
void copy_if_set(const std::optional<T>& from, std::optional<T>& to) {
  if (from)
    to = from;
}

bool is_separator(char c) {
  return c == ',' || c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

} // namespace

const char* malformed_name(malformed_mode mode) {
  switch (mode) {
  case malformed_mode::none:
    return "none";
  case malformed_mode::json:
    return "json";
  case malformed_mode::sse:
    return "sse";
  case malformed_mode::utf8:
    return "utf8";
  case malformed_mode::truncated:
    return "truncated";
  case malformed_mode::no_choices:
    return "no_choices";
  case malformed_mode::hangup:
    return "hangup";
  }
  return "none";
}

void knob_overrides::apply_to(knobs& target) const {
  copy_if_set(latency_ms, target.latency_ms);
  copy_if_set(status, target.status);
  copy_if_set(retry_after, target.retry_after);
  copy_if_set(error_rate, target.error_rate);
  copy_if_set(error_status, target.error_status);
  copy_if_set(drip_ms, target.drip_ms);
  copy_if_set(chunks, target.chunks);
  copy_if_set(malformed, target.malformed);
  copy_if_set(huge_bytes, target.huge_bytes);
  copy_if_set(think_ms, target.think_ms);
  copy_if_set(pause_after, target.pause_after);
  copy_if_set(pause_ms, target.pause_ms);
}

void knob_overrides::merge(const knob_overrides& later) {
  copy_if_set(later.latency_ms, latency_ms);
  copy_if_set(later.status, status);
  copy_if_set(later.retry_after, retry_after);
  copy_if_set(later.error_rate, error_rate);
  copy_if_set(later.error_status, error_status);
  copy_if_set(later.drip_ms, drip_ms);
  copy_if_set(later.chunks, chunks);
  copy_if_set(later.malformed, malformed);
  copy_if_set(later.huge_bytes, huge_bytes);
  copy_if_set(later.think_ms, think_ms);
  copy_if_set(later.pause_after, pause_after);
  copy_if_set(later.pause_ms, pause_ms);
  copy_if_set(later.count, count);
}

std::string set_knob(knob_overrides& out, std::string_view name, std::string_view value) {
  for (const auto& entry : knob_table()) {
    if (name == entry.doc.name)
      return entry.set(out, name, value, entry.doc.values);
  }
  std::string known;
  for (const auto& entry : knob_table())
    known += (known.empty() ? "" : ", ") + std::string{entry.doc.name};
  return "unknown mock knob '" + std::string{name} + "' (known: " + known + ")";
}

std::string parse_knob_list(std::string_view text, knob_overrides& out) {
  knob_overrides parsed;
  size_t pos = 0;
  while (pos < text.size()) {
    if (is_separator(text[pos])) {
      ++pos;
      continue;
    }
    size_t end = pos;
    while (end < text.size() && !is_separator(text[end]))
      ++end;
    auto pair = text.substr(pos, end - pos);
    pos = end;
    auto eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return "invalid mock knob '" + std::string{pair} + "': expected name=value";
    auto name = pair.substr(0, eq);
    if (name == "count")
      return "mock knob count is only accepted by POST /mock/config";
    if (auto error = set_knob(parsed, name, pair.substr(eq + 1)); !error.empty())
      return error;
  }
  out.merge(parsed);
  return {};
}

const std::vector<knob_doc>& knob_docs() {
  static const std::vector<knob_doc> docs = [] {
    std::vector<knob_doc> result;
    for (const auto& entry : knob_table())
      result.push_back(entry.doc);
    return result;
  }();
  return docs;
}

std::string to_json(const knobs& k) {
  knob_overrides all;
  all.latency_ms = k.latency_ms;
  all.status = k.status;
  all.retry_after = k.retry_after;
  all.error_rate = k.error_rate;
  all.error_status = k.error_status;
  all.drip_ms = k.drip_ms;
  all.chunks = k.chunks;
  all.malformed = k.malformed;
  all.huge_bytes = k.huge_bytes;
  all.think_ms = k.think_ms;
  all.pause_after = k.pause_after;
  all.pause_ms = k.pause_ms;
  return to_json(all);
}

std::string to_json(const knob_overrides& k) {
  std::string out = "{";
  auto field = [&out](const char* name, const std::string& value) {
    if (out.size() > 1)
      out += ',';
    out += '"';
    out += name;
    out += "\":";
    out += value;
  };
  if (k.latency_ms)
    field("latency_ms", std::to_string(*k.latency_ms));
  if (k.status)
    field("status", std::to_string(*k.status));
  if (k.retry_after)
    field("retry_after", *k.retry_after < 0 ? std::string{"null"} : std::to_string(*k.retry_after));
  if (k.error_rate)
    field("error_rate", json_number(*k.error_rate));
  if (k.error_status)
    field("error_status", std::to_string(*k.error_status));
  if (k.drip_ms)
    field("drip_ms", std::to_string(*k.drip_ms));
  if (k.chunks)
    field("chunks", std::to_string(*k.chunks));
  if (k.malformed)
    field("malformed", json_string(malformed_name(*k.malformed)));
  if (k.huge_bytes)
    field("huge_bytes", std::to_string(*k.huge_bytes));
  if (k.think_ms)
    field("think_ms", std::to_string(*k.think_ms));
  if (k.pause_after)
    field("pause_after", std::to_string(*k.pause_after));
  if (k.pause_ms)
    field("pause_ms", std::to_string(*k.pause_ms));
  if (k.count)
    field("count", std::to_string(*k.count));
  return out + "}";
}

} // namespace troupe::mock
