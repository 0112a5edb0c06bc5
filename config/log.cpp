#include "config/log.hpp"

#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>

namespace troupe::log {

namespace {

constexpr const char* logger_name = "troupe";

spdlog::level::level_enum to_spdlog(level lvl) {
  switch (lvl) {
    case level::trace: return spdlog::level::trace;
    case level::debug: return spdlog::level::debug;
    case level::info: return spdlog::level::info;
    case level::warn: return spdlog::level::warn;
    case level::error: return spdlog::level::err;
    case level::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::unique_ptr<spdlog::formatter> json_formatter() {
  // %v is `"msg":"...",<fields>` as built by write().
  return std::make_unique<spdlog::pattern_formatter>(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})",
                                                     spdlog::pattern_time_type::utc);
}

std::mutex setup_mutex;
std::shared_ptr<spdlog::logger> current;

std::shared_ptr<spdlog::logger> get() {
  auto lg = std::atomic_load(&current);
  if (lg)
    return lg;
  std::lock_guard<std::mutex> guard{setup_mutex};
  if (!current) {
    auto fallback = std::make_shared<spdlog::logger>(logger_name, std::make_shared<spdlog::sinks::stdout_sink_mt>());
    fallback->set_formatter(json_formatter());
    fallback->set_level(spdlog::level::info);
    std::atomic_store(&current, fallback);
  }
  return current;
}

} // namespace

bool parse_level(std::string_view text, level& out) {
  static constexpr std::pair<const char*, level> names[] = {{"trace", level::trace}, {"debug", level::debug},
                                                            {"info", level::info},   {"warn", level::warn},
                                                            {"error", level::error}, {"off", level::off}};
  for (const auto& [name, lvl] : names)
    if (text == name) {
      out = lvl;
      return true;
    }
  return false;
}

void setup(level min_level) {
  std::lock_guard<std::mutex> guard{setup_mutex};
  // One background thread; a bounded queue that blocks the producer only when 8192 lines are waiting.
  if (!spdlog::thread_pool())
    spdlog::init_thread_pool(8192, 1);
  auto sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  auto lg = std::make_shared<spdlog::async_logger>(logger_name, sink, spdlog::thread_pool(),
                                                   spdlog::async_overflow_policy::block);
  lg->set_formatter(json_formatter());
  lg->set_level(to_spdlog(min_level));
  lg->flush_on(spdlog::level::warn);
  std::atomic_store(&current, std::shared_ptr<spdlog::logger>{lg});
}

void shutdown() {
  if (auto lg = std::atomic_load(&current))
    lg->flush();
  std::lock_guard<std::mutex> guard{setup_mutex};
  std::atomic_store(&current, std::shared_ptr<spdlog::logger>{});
  spdlog::shutdown();
}

bool enabled(level lvl) {
  return get()->should_log(to_spdlog(lvl));
}

void write(level lvl, std::string_view msg, const fields& extra) {
  auto lg = get();
  auto spd_level = to_spdlog(lvl);
  if (!lg->should_log(spd_level))
    return;
  std::string line;
  line.reserve(msg.size() + extra.json().size() + 16);
  line += "\"msg\":\"";
  append_json_escaped(line, msg);
  line += '"';
  line += extra.json();
  lg->log(spd_level, line);
}

void append_json_escaped(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

fields& fields::add(std::string_view key, std::string_view value) {
  json_ += ",\"";
  append_json_escaped(json_, key);
  json_ += "\":\"";
  append_json_escaped(json_, value);
  json_ += '"';
  return *this;
}

fields& fields::add(std::string_view key, int64_t value) {
  json_ += ",\"";
  append_json_escaped(json_, key);
  json_ += "\":";
  json_ += std::to_string(value);
  return *this;
}

fields& fields::add(std::string_view key, uint64_t value) {
  json_ += ",\"";
  append_json_escaped(json_, key);
  json_ += "\":";
  json_ += std::to_string(value);
  return *this;
}

fields& fields::add(std::string_view key, double value) {
  json_ += ",\"";
  append_json_escaped(json_, key);
  json_ += "\":";
  if (std::isfinite(value)) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.3f", value);
    json_ += buf;
  } else {
    json_ += "null";
  }
  return *this;
}

fields& fields::add(std::string_view key, bool value) {
  json_ += ",\"";
  append_json_escaped(json_, key);
  json_ += "\":";
  json_ += value ? "true" : "false";
  return *this;
}

} // namespace troupe::log
