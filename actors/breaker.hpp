#pragma once
// A circuit breaker per upstream: the state machine (circuit_breaker, pure, with an injected clock) and the actor
// that owns one ("upstream.<name>.breaker").
//
//   closed     every call goes through; `failures` consecutive failures open it
//   open       no call goes through for `open_for` (or for the Retry-After of the 429 that opened it)
//   half_open  exactly `half_open_probes` calls go through; all succeed -> closed, any fails -> open again
//
// A failure is what says the upstream is unwell: connect error, timeout, 429, 500, 502, 503, 504 (the caller
// classifies). Results of calls admitted in an earlier state are ignored: only probes decide a half-open breaker,
// and an open breaker ignores stragglers.
//
// The actor's interface is breaker_actor, below its message types.

#include "actors/directory.hpp"
#include "actors/messages.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace troupe {

enum class breaker_state : uint8_t { closed, open, half_open };

const char* to_string(breaker_state s);

struct breaker_admission {
  bool allowed = false;
  uint64_t permit = 0;        // pass back with the result (identifies the state the call was admitted in)
  bool probe = false;         // admitted as one of the half-open probes
  int64_t retry_after_ms = 0; // when refused: how long until the breaker may admit again
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, breaker_admission& x) {
  return f(caf::meta::type_name("breaker_admission"), x.allowed, x.permit, x.probe, x.retry_after_ms);
}

struct breaker_snapshot {
  std::string upstream;
  breaker_state state = breaker_state::closed;
  int64_t consecutive_failures = 0;
  int64_t open_remaining_ms = 0; // open: until half-open
  uint64_t successes = 0;        // totals since start
  uint64_t failures = 0;
  uint64_t rejected = 0;    // calls refused while open (or beyond the probes)
  uint64_t opened = 0;      // times it opened
  std::string last_failure; // what the last failure was ("" if none)
  int64_t last_failure_unix_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, breaker_snapshot& x) {
  return f(caf::meta::type_name("breaker_snapshot"), x.upstream, x.state, x.consecutive_failures, x.open_remaining_ms,
           x.successes, x.failures, x.rejected, x.opened, x.last_failure, x.last_failure_unix_ms);
}

/// The breaker actor's interface.
using breaker_actor = caf::typed_actor<
  /// A permit, or how long to stay away.
  caf::replies_to<breaker_admit_atom>::with<breaker_admission>,
  /// (permit, ok, retry_after_ms, failure): the outcome of an admitted call.
  caf::reacts_to<breaker_result_atom, uint64_t, bool, int64_t, std::string>,
  /// (ok, detail): an active health check's result; a failed one opens the breaker at once.
  caf::reacts_to<breaker_health_atom, bool, std::string>,
  /// For /api/health and /metrics.
  caf::replies_to<breaker_state_atom>::with<breaker_snapshot>, mailbox_size_request>;

/// What /metrics shows of a breaker, published by its actor after every change (read without asking it).
struct breaker_gauges {
  std::atomic<int> state{0}; // 0 closed, 1 open, 2 half_open
  /// While the breaker is closed: the permit of a call admitted now, plus one; 0 while it is open or half-open.
  /// A closed breaker admits every call, so callers take their permit here instead of asking the actor
  /// (admit_if_closed): a call admitted from a value the actor has just replaced carries the old permit, and its
  /// result is ignored like that of any call admitted before the state changed.
  std::atomic<uint64_t> closed_permit{0};
  std::atomic<uint64_t> successes{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> opened{0};
};

struct breaker_options {
  std::string upstream;
  int64_t failures = 5;
  std::chrono::milliseconds open_for{60000};
  int64_t half_open_probes = 3;
  /// Monotonic clock (tests inject their own).
  std::function<std::chrono::steady_clock::time_point()> now;
  /// Wall clock for last_failure_unix_ms (tests inject their own).
  std::function<int64_t()> now_unix_ms;
  /// Optional: published after every message (survives restarts of the actor; counts then start again).
  std::shared_ptr<breaker_gauges> gauges;
};

/// The state machine, without an actor: one owner calls it (the breaker actor, or a test).
class circuit_breaker {
public:
  explicit circuit_breaker(breaker_options options);

  breaker_admission admit();
  /// `retry_after` > 0 (from an upstream 429) replaces open_for if this failure opens the breaker.
  void record(uint64_t permit, bool ok, std::chrono::milliseconds retry_after = std::chrono::milliseconds{0},
              const std::string& failure = "");
  /// A failed active health check (`why`): a closed or half-open breaker opens at once for open_for; an open one
  /// stays as it is.
  void fail_check(const std::string& why);
  breaker_snapshot snapshot();
  breaker_state state(); // after applying the clock (open -> half_open when the time is up)
  /// The permit a call admitted now would carry (changes with every state change).
  uint64_t generation() const { return generation_; }

private:
  using time_point = std::chrono::steady_clock::time_point;
  time_point now() const;
  void open(std::chrono::milliseconds for_how_long);
  void tick(); // open -> half_open once open_until has passed

  breaker_options opts_;
  breaker_state state_ = breaker_state::closed;
  uint64_t generation_ = 1; // bumped on every state change; permits carry it
  int64_t consecutive_ = 0;
  int64_t probes_admitted_ = 0;
  int64_t probes_succeeded_ = 0;
  time_point open_until_{};
  breaker_snapshot totals_;
};

/// The admission a closed breaker would give, read from its gauges without a message; nothing while it is open or
/// half-open (ask the actor: its probes and its clock decide).
std::optional<breaker_admission> admit_if_closed(const breaker_gauges& gauges);

/// Name of the breaker actor of an upstream in the directory.
actor_name<breaker_actor> breaker_name(const std::string& upstream);

breaker_actor spawn_breaker(caf::actor_system& sys, breaker_options options);

/// A flat list of the classifications the gateway uses: is this upstream outcome a breaker failure?
/// (connect error, timeout, 429, 500, 502, 503, 504)
bool is_breaker_failure_status(int status);

} // namespace troupe
