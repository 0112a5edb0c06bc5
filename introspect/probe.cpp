#include "introspect/probe.hpp"

#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/type_nr.hpp>
#include <caf/uniform_type_info_map.hpp>

#include <cxxabi.h>
#include <time.h>

#include <cstdlib>

namespace troupe {

int64_t coarse_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// --- trace_sink ---

trace_sink::trace_sink(size_t max_per_second, size_t capacity) : max_per_second_(max_per_second), capacity_(capacity) {}

bool trace_sink::sample(std::chrono::steady_clock::time_point now) {
  seen_.fetch_add(1, std::memory_order_relaxed);
  if (now - window_start_ >= std::chrono::seconds{1}) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= max_per_second_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  ++in_window_;
  return true;
}

void trace_sink::push(trace_event event) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (events_.size() >= capacity_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  events_.push_back(std::move(event));
}

std::vector<trace_event> trace_sink::drain() {
  std::vector<trace_event> result;
  std::lock_guard<std::mutex> guard{mutex_};
  result.swap(events_);
  return result;
}

// --- probe_registry ---

void probe_registry::add(std::shared_ptr<actor_probe> probe) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto id = probe->id;
  probes_[id] = std::move(probe);
}

void probe_registry::remove(uint64_t id) {
  std::lock_guard<std::mutex> guard{mutex_};
  probes_.erase(id);
}

std::shared_ptr<actor_probe> probe_registry::find(uint64_t id) const {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = probes_.find(id);
  return i == probes_.end() ? nullptr : i->second;
}

size_t probe_registry::size() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return probes_.size();
}

// --- message_type_name ---

namespace {

std::string demangled(const std::type_info* ti) {
  if (ti == nullptr)
    return "?";
  int status = 0;
  char* text = abi::__cxa_demangle(ti->name(), nullptr, nullptr, &status);
  std::string result = status == 0 && text != nullptr ? text : ti->name();
  std::free(text);
  return result;
}

/// CAF's built-in types are registered as "@str", "@down", ...: shown as "string", "down_msg", ...
std::string builtin_name(const std::string& name) {
  static const std::unordered_map<std::string, std::string> known{{"@str", "string"},
                                                                  {"@down", "down_msg"},
                                                                  {"@exit", "exit_msg"},
                                                                  {"@timeout", "timeout_msg"},
                                                                  {"@error", "error"},
                                                                  {"@actor", "actor"},
                                                                  {"@i64", "int64"},
                                                                  {"@u64", "uint64"},
                                                                  {"@i32", "int32"},
                                                                  {"@u32", "uint32"},
                                                                  {"@message", "message"},
                                                                  {"@strvec", "strings"},
                                                                  {"@group_down", "group_down_msg"},
                                                                  {"@node_down", "node_down_msg"}};
  auto i = known.find(name);
  if (i != known.end())
    return i->second;
  return name.size() > 1 && name[0] == '@' ? name.substr(1) : name;
}

} // namespace

std::string message_type_name(const caf::actor_system& sys, const caf::type_erased_tuple& msg, bool response) {
  std::string prefix = response ? "response: " : "";
  if (msg.empty())
    return prefix + "(empty)";
  auto rtti = msg.type(0);
  if (rtti.first == caf::type_nr<caf::atom_value>::value)
    return prefix + caf::to_string(msg.get_as<caf::atom_value>(0));
  const auto& name = sys.types().portable_name(rtti);
  if (name != sys.types().default_type_name())
    return prefix + builtin_name(name);
  return prefix + demangled(rtti.second);
}

} // namespace troupe
