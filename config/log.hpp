#pragma once
// Structured logging: one JSON object per line on stdout through spdlog's asynchronous logger.
// Every line has ts (UTC, RFC 3339), level and msg; callers add fields with log::fields.
// Secrets are never passed here: the caller is responsible for what it adds.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::log {

enum class level { trace, debug, info, warn, error, off };

/// Parses "trace" .. "off"; returns false for anything else.
bool parse_level(std::string_view text, level& out);

/// Installs the asynchronous JSON logger. Safe to call more than once (the last call wins).
/// Until it is called, log lines go to a synchronous logger at info level.
void setup(level min_level);

/// Flushes and drops the logger; call once at exit.
void shutdown();

/// The JSON members that follow "msg" on a line, built with escaping.
class fields {
public:
  fields& add(std::string_view key, std::string_view value);
  fields& add(std::string_view key, const char* value) { return add(key, std::string_view{value}); }
  fields& add(std::string_view key, const std::string& value) { return add(key, std::string_view{value}); }
  fields& add(std::string_view key, int64_t value);
  fields& add(std::string_view key, int value) { return add(key, static_cast<int64_t>(value)); }
  fields& add(std::string_view key, uint64_t value);
  fields& add(std::string_view key, double value);
  fields& add(std::string_view key, bool value);
  const std::string& json() const noexcept { return json_; }

private:
  std::string json_;
};

/// While one lives on a thread, every line that thread writes carries "trace_id" (the W3C trace of the request whose
/// code runs there: http/bridge.cpp and http/server.cpp open one around a request's code). Nests; restores the
/// previous id when it ends.
class trace_scope {
public:
  explicit trace_scope(std::string trace_id);
  ~trace_scope();
  trace_scope(const trace_scope&) = delete;
  trace_scope& operator=(const trace_scope&) = delete;

private:
  std::string previous_;
};
/// The trace id lines on this thread carry now ("" outside any trace_scope).
const std::string& current_trace_id();

/// At most `per_second` lines a second for a kind of line whose cause an anonymous client controls (slow requests):
/// take() says whether this one may be written; the lines refused are counted, and the next line written reports
/// them (`suppressed()`, read and reset). Thread-safe.
class line_budget {
public:
  explicit line_budget(int64_t per_second) : per_second_(per_second) {}
  bool take();
  /// Lines refused since the last call.
  uint64_t suppressed() { return suppressed_.exchange(0, std::memory_order_relaxed); }

private:
  int64_t per_second_;
  std::atomic<int64_t> window_{0}; // the second (steady clock) the count is for
  std::atomic<int64_t> used_{0};
  std::atomic<uint64_t> suppressed_{0};
};

bool enabled(level lvl);
/// An event line at `lvl`, written out at once.
void write(level lvl, std::string_view msg, const fields& extra = {});
/// An access-log line (level info), batched with others and written within a second.
void access(std::string_view msg, const fields& extra);

inline void debug(std::string_view msg, const fields& extra = {}) {
  write(level::debug, msg, extra);
}
inline void info(std::string_view msg, const fields& extra = {}) {
  write(level::info, msg, extra);
}
inline void warn(std::string_view msg, const fields& extra = {}) {
  write(level::warn, msg, extra);
}
inline void error(std::string_view msg, const fields& extra = {}) {
  write(level::error, msg, extra);
}

/// Appends `text` to `out` as the inside of a JSON string (quotes not included).
void append_json_escaped(std::string& out, std::string_view text);

} // namespace troupe::log
