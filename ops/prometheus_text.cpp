#include "ops/prometheus_text.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace troupe::ops {

std::string_view prom_sample::label(std::string_view key) const {
  for (const auto& [k, v] : labels)
    if (k == key)
      return v;
  return {};
}

namespace {

bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}

/// Parses "NaN", "+Inf", "-Inf" or a decimal/exponent number filling the whole token.
bool parse_value(std::string_view token, double& out) {
  if (token == "NaN") {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (token == "+Inf" || token == "Inf") {
    out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (token == "-Inf") {
    out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (token.empty() || token.size() > 64)
    return false;
  for (char c : token)
    if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E'))
      return false;
  std::string copy{token}; // strtod needs a terminator
  char* end = nullptr;
  errno = 0;
  out = std::strtod(copy.c_str(), &end);
  return end == copy.c_str() + copy.size() && errno != ERANGE;
}

/// One sample line; false when it is not one.
bool parse_line(std::string_view line, prom_sample& out) {
  size_t i = 0;
  auto skip_spaces = [&] {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
      ++i;
  };
  skip_spaces();
  if (i >= line.size() || !name_start(line[i]))
    return false;
  size_t start = i;
  while (i < line.size() && name_char(line[i]))
    ++i;
  out.name.assign(line.substr(start, i - start));
  out.labels.clear();
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      skip_spaces();
      if (i >= line.size())
        return false;
      if (line[i] == '}') {
        ++i;
        break;
      }
      if (!name_start(line[i]))
        return false;
      size_t key_start = i;
      while (i < line.size() && name_char(line[i]))
        ++i;
      std::string key{line.substr(key_start, i - key_start)};
      skip_spaces();
      if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"')
        return false;
      i += 2;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i >= line.size())
            return false;
          char e = line[i++];
          if (e == 'n')
            value.push_back('\n');
          else if (e == '\\' || e == '"')
            value.push_back(e);
          else
            return false;
        } else {
          value.push_back(c);
        }
      }
      if (!closed)
        return false;
      out.labels.emplace_back(std::move(key), std::move(value));
      skip_spaces();
      if (i < line.size() && line[i] == ',')
        ++i;
      else if (i < line.size() && line[i] == '}')
        continue;
      else
        return false;
    }
  }
  if (i >= line.size() || (line[i] != ' ' && line[i] != '\t'))
    return false;
  skip_spaces();
  size_t value_start = i;
  while (i < line.size() && line[i] != ' ' && line[i] != '\t')
    ++i;
  if (!parse_value(line.substr(value_start, i - value_start), out.value))
    return false;
  skip_spaces();
  if (i < line.size()) { // an optional timestamp: an integer
    size_t ts_start = i;
    if (line[i] == '-')
      ++i;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9')
      ++i;
    if (i == ts_start || i - ts_start > 20)
      return false;
    skip_spaces();
  }
  return i == line.size();
}

} // namespace

prom_text parse_prometheus_text(std::string_view text, size_t max_samples) {
  prom_text result;
  size_t pos = 0;
  prom_sample sample;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    auto line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#')
      continue;
    if (!parse_line(line, sample)) {
      ++result.bad_lines;
      continue;
    }
    if (result.samples.size() >= max_samples) {
      ++result.dropped;
      continue;
    }
    result.samples.push_back(std::move(sample));
    sample = prom_sample{};
  }
  return result;
}

} // namespace troupe::ops
