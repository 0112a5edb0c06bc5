#include "ops/tracing.hpp"

#include "config/utf8.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <random>

namespace troupe::tracing {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1; // upper case is invalid in traceparent
}

template <size_t N>
bool read_hex(std::string_view text, std::array<uint8_t, N>& out) {
  if (text.size() != 2 * N)
    return false;
  for (size_t i = 0; i < N; ++i) {
    int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::mt19937_64& generator() {
  thread_local std::mt19937_64 engine{[] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device(), device(), device(), device(), device()};
    return std::mt19937_64{seed};
  }()};
  return engine;
}

template <size_t N>
std::array<uint8_t, N> random_id() {
  std::array<uint8_t, N> id{};
  do {
    for (size_t i = 0; i < N; i += 8) {
      auto r = generator()();
      for (size_t j = 0; j < 8 && i + j < N; ++j)
        id[i + j] = static_cast<uint8_t>(r >> (8 * j));
    }
  } while (is_zero(id.data(), N));
  return id;
}

bool lcalpha(char c) {
  return c >= 'a' && c <= 'z';
}

bool key_rest(char c) {
  return lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/';
}

/// A tracestate key: simple-key = lcalpha 0*255(lcalpha / DIGIT / "_" / "-"/ "*" / "/"); multi-tenant-key =
/// tenant-id "@" system-id, tenant-id = (lcalpha / DIGIT) 0*240(...), system-id = lcalpha 0*13(...).
bool valid_key(std::string_view key) {
  auto part = [](std::string_view p, bool digit_first, size_t max) {
    if (p.empty() || p.size() > max)
      return false;
    if (!(lcalpha(p[0]) || (digit_first && p[0] >= '0' && p[0] <= '9')))
      return false;
    for (size_t i = 1; i < p.size(); ++i)
      if (!key_rest(p[i]))
        return false;
    return true;
  };
  auto at = key.find('@');
  if (at == std::string_view::npos)
    return part(key, false, 256);
  return part(key.substr(0, at), true, 241) && part(key.substr(at + 1), false, 14);
}

bool value_char(char c) {
  return c >= 0x20 && c <= 0x7E && c != ',' && c != '=';
}

} // namespace

std::string hex(const uint8_t* bytes, size_t size) {
  static const char digits[] = "0123456789abcdef";
  std::string out(2 * size, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  return out;
}

bool is_zero(const uint8_t* bytes, size_t size) {
  for (size_t i = 0; i < size; ++i)
    if (bytes[i] != 0)
      return false;
  return true;
}

std::optional<traceparent> parse_traceparent(std::string_view h) {
  // trim optional whitespace around the value
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t'))
    h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t'))
    h.remove_suffix(1);
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-')
    return std::nullopt;
  int v_hi = hex_value(h[0]), v_lo = hex_value(h[1]);
  if (v_hi < 0 || v_lo < 0 || (v_hi == 15 && v_lo == 15))
    return std::nullopt;
  bool version_00 = v_hi == 0 && v_lo == 0;
  if (version_00 ? h.size() != 55 : (h.size() > 55 && h[55] != '-'))
    return std::nullopt;
  traceparent p;
  std::array<uint8_t, 1> flags{};
  if (!read_hex(h.substr(3, 32), p.trace) || !read_hex(h.substr(36, 16), p.parent) || !read_hex(h.substr(53, 2), flags))
    return std::nullopt;
  if (is_zero(p.trace.data(), p.trace.size()) || is_zero(p.parent.data(), p.parent.size()))
    return std::nullopt;
  p.sampled = (flags[0] & 1) != 0;
  return p;
}

bool valid_tracestate(std::string_view h) {
  if (h.empty() || h.size() > 512)
    return false;
  size_t members = 0, pos = 0;
  while (pos <= h.size()) {
    auto end = h.find(',', pos);
    if (end == std::string_view::npos)
      end = h.size();
    auto member = h.substr(pos, end - pos);
    while (!member.empty() && (member.front() == ' ' || member.front() == '\t'))
      member.remove_prefix(1);
    while (!member.empty() && (member.back() == ' ' || member.back() == '\t'))
      member.remove_suffix(1);
    if (!member.empty()) {
      if (++members > 32)
        return false;
      auto eq = member.find('=');
      if (eq == std::string_view::npos || eq == 0 || eq > 256 || member.size() - eq - 1 > 256 || eq + 1 == member.size())
        return false;
      auto key = member.substr(0, eq), value = member.substr(eq + 1);
      if (!valid_key(key))
        return false;
      for (char c : value)
        if (!value_char(c))
          return false;
    }
    if (end == h.size())
      break;
    pos = end + 1;
  }
  return members > 0;
}

std::string format_traceparent(const trace_id& trace, const span_id& span, bool sampled) {
  return "00-" + hex(trace) + "-" + hex(span) + (sampled ? "-01" : "-00");
}

trace_id new_trace_id() {
  return random_id<16>();
}

span_id new_span_id() {
  return random_id<8>();
}

context context_for(const std::optional<std::string>& traceparent_header,
                    const std::optional<std::string>& tracestate_header, double sample_ratio) {
  context c;
  c.span = new_span_id();
  std::optional<traceparent> parent;
  if (traceparent_header)
    parent = parse_traceparent(*traceparent_header);
  if (parent) {
    c.trace = parent->trace;
    c.parent = parent->parent;
    c.sampled = parent->sampled; // the caller decided
    if (tracestate_header && valid_tracestate(*tracestate_header))
      c.tracestate = *tracestate_header;
  } else {
    c.trace = new_trace_id();
    c.sampled = sample_ratio >= 1.0
                || (sample_ratio > 0
                    && std::uniform_real_distribution<double>{0, 1}(generator()) < sample_ratio);
  }
  return c;
}

int64_t unix_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::optional<span> server_span_for(std::string_view traceparent, std::string_view tracestate, std::string name) {
  auto parent = parse_traceparent(traceparent);
  if (!parent || !parent->sampled)
    return std::nullopt;
  span s;
  s.trace = parent->trace;
  s.id = new_span_id();
  s.parent = parent->parent;
  s.name = std::move(name);
  s.kind = span_kind::server;
  s.start_unix_ns = unix_now_ns();
  if (valid_tracestate(tracestate))
    s.tracestate = std::string{tracestate};
  return s;
}

namespace {

/// `text` with each invalid UTF-8 byte replaced by U+FFFD (a collector refuses a body that is not UTF-8) and cut to
/// `max` bytes (at a character boundary).
std::string utf8_text(std::string_view text, size_t max = 2048) {
  std::string out;
  out.reserve(std::min(text.size(), max));
  for (size_t i = 0; i < text.size() && out.size() < max;) {
    auto n = config::utf8_sequence(text, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

} // namespace

std::string otlp_json(const std::vector<span>& spans, const std::string& service_version, const std::string& instance) {
  using writer = rapidjson::Writer<rapidjson::StringBuffer>;
  rapidjson::StringBuffer buffer;
  writer w{buffer};
  auto string_attribute = [&w](const std::string& key, const std::string& raw) {
    auto value = utf8_text(raw);
    w.StartObject();
    w.Key("key");
    w.String(key.c_str(), static_cast<rapidjson::SizeType>(key.size()));
    w.Key("value");
    w.StartObject();
    w.Key("stringValue");
    w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
    w.EndObject();
    w.EndObject();
  };
  w.StartObject();
  w.Key("resourceSpans");
  w.StartArray();
  w.StartObject();
  w.Key("resource");
  w.StartObject();
  w.Key("attributes");
  w.StartArray();
  string_attribute("service.name", "troupe");
  string_attribute("service.version", service_version);
  string_attribute("service.instance.id", instance);
  w.EndArray();
  w.EndObject();
  w.Key("scopeSpans");
  w.StartArray();
  w.StartObject();
  w.Key("scope");
  w.StartObject();
  w.Key("name");
  w.String("troupe.http");
  w.EndObject();
  w.Key("spans");
  w.StartArray();
  for (const auto& s : spans) {
    w.StartObject();
    auto text = [&w](const char* key, const std::string& value) {
      w.Key(key);
      w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
    };
    text("traceId", hex(s.trace));
    text("spanId", hex(s.id));
    if (!is_zero(s.parent.data(), s.parent.size()))
      text("parentSpanId", hex(s.parent));
    if (!s.tracestate.empty())
      text("traceState", s.tracestate);
    text("name", utf8_text(s.name, 256));
    w.Key("kind");
    w.Int(static_cast<int>(s.kind));
    text("startTimeUnixNano", std::to_string(s.start_unix_ns));
    text("endTimeUnixNano", std::to_string(s.end_unix_ns));
    w.Key("attributes");
    w.StartArray();
    for (const auto& [k, v] : s.attributes)
      string_attribute(k, v);
    for (const auto& [k, v] : s.int_attributes) {
      w.StartObject();
      text("key", k);
      w.Key("value");
      w.StartObject();
      text("intValue", std::to_string(v)); // int64 as a decimal string (OTLP JSON)
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
    w.Key("status");
    w.StartObject();
    if (s.error) {
      w.Key("code");
      w.Int(2);
    }
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

} // namespace troupe::tracing
