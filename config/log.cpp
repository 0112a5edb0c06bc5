#include "config/log.hpp"

#include <chrono>

#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

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
  case level::trace:
    return spdlog::level::trace;
  case level::debug:
    return spdlog::level::debug;
  case level::info:
    return spdlog::level::info;
  case level::warn:
    return spdlog::level::warn;
  case level::error:
    return spdlog::level::err;
  case level::off:
    return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::unique_ptr<spdlog::formatter> json_formatter() {
  // %v is `"msg":"...",<fields>` as built by write().
  return std::make_unique<spdlog::pattern_formatter>(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})",
                                                     spdlog::pattern_time_type::utc);
}

/// Writes formatted lines to stdout in batches: spdlog's stdout sink flushes after every line, which costs a
/// write(2) per request under load. Lines are written when 64 KiB are pending, on flush() (after every event line,
/// and every second for access lines), and at shutdown.
class batching_stdout_sink : public spdlog::sinks::base_sink<std::mutex> {
public:
  // Under the sink's mutex: the logger's flusher thread wrote pending_ under it last (ThreadSanitizer saw the
  // destructor read it unordered at shutdown).
  ~batching_stdout_sink() override {
    std::lock_guard<std::mutex> guard{this->mutex_};
    write_out();
  }

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    pending_.append(formatted.data(), formatted.size());
    if (pending_.size() >= 64 * 1024)
      write_out();
  }
  void flush_() override { write_out(); }

private:
  void write_out() {
    size_t done = 0;
    while (done < pending_.size()) {
      auto n = ::write(STDOUT_FILENO, pending_.data() + done, pending_.size() - done);
      if (n <= 0)
        break; // stdout is gone: drop the lines rather than block the logger forever
      done += static_cast<size_t>(n);
    }
    pending_.clear();
  }

  std::string pending_;
};

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
  auto sink = std::make_shared<batching_stdout_sink>();
  auto lg = std::make_shared<spdlog::async_logger>(logger_name, sink, spdlog::thread_pool(),
                                                   spdlog::async_overflow_policy::block);
  lg->set_formatter(json_formatter());
  lg->set_level(to_spdlog(min_level));
  lg->flush_on(spdlog::level::warn);
  std::atomic_store(&current, std::shared_ptr<spdlog::logger>{lg});
  spdlog::drop(logger_name);
  spdlog::register_logger(lg);
  spdlog::flush_every(std::chrono::seconds{1});
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

namespace {

thread_local std::string current_trace;

std::string line_of(std::string_view msg, const fields& extra) {
  std::string line;
  line.reserve(msg.size() + extra.json().size() + 64);
  line += "\"msg\":\"";
  append_json_escaped(line, msg);
  line += '"';
  line += extra.json();
  if (!current_trace.empty() && extra.json().find("\"trace_id\":") == std::string::npos) {
    line += ",\"trace_id\":\"";
    append_json_escaped(line, current_trace);
    line += '"';
  }
  return line;
}

} // namespace

trace_scope::trace_scope(std::string trace_id) : previous_(std::move(current_trace)) {
  current_trace = std::move(trace_id);
}

trace_scope::~trace_scope() {
  current_trace = std::move(previous_);
}

const std::string& current_trace_id() {
  return current_trace;
}

bool line_budget::take() {
  auto second = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
                  .count();
  auto window = window_.load(std::memory_order_relaxed);
  if (window != second && window_.compare_exchange_strong(window, second, std::memory_order_relaxed))
    used_.store(0, std::memory_order_relaxed);
  if (used_.fetch_add(1, std::memory_order_relaxed) < per_second_)
    return true;
  suppressed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void write(level lvl, std::string_view msg, const fields& extra) {
  auto lg = get();
  auto spd_level = to_spdlog(lvl);
  if (!lg->should_log(spd_level))
    return;
  lg->log(spd_level, line_of(msg, extra));
  // Event lines are rare and someone may be waiting for them; access lines are batched.
  lg->flush();
}

void access(std::string_view msg, const fields& extra) {
  auto lg = get();
  if (lg->should_log(spdlog::level::info))
    lg->log(spdlog::level::info, line_of(msg, extra));
}

void append_json_escaped(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned char c : text) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
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
