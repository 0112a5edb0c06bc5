#include "actors/breaker.hpp"
#include "introspect/observed_actor.hpp"

#include "config/log.hpp"

#include <algorithm>

namespace troupe {

using std::chrono::milliseconds;

const char* to_string(breaker_state s) {
  switch (s) {
  case breaker_state::closed:
    return "closed";
  case breaker_state::open:
    return "open";
  case breaker_state::half_open:
    return "half_open";
  }
  return "closed";
}

bool is_breaker_failure_status(int status) {
  // 529: Anthropic's "overloaded", a 503 by another number.
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504 || status == 529;
}

actor_name<breaker_actor> breaker_name(const std::string& upstream) {
  return {"upstream." + upstream + ".breaker"};
}

circuit_breaker::circuit_breaker(breaker_options options) : opts_(std::move(options)) {
  if (!opts_.now)
    opts_.now = [] { return std::chrono::steady_clock::now(); };
  if (!opts_.now_unix_ms)
    opts_.now_unix_ms = [] {
      return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
  opts_.failures = std::max<int64_t>(1, opts_.failures);
  opts_.half_open_probes = std::max<int64_t>(1, opts_.half_open_probes);
  totals_.upstream = opts_.upstream;
}

circuit_breaker::time_point circuit_breaker::now() const {
  return opts_.now();
}

void circuit_breaker::open(milliseconds for_how_long) {
  state_ = breaker_state::open;
  ++generation_;
  open_until_ = now() + for_how_long;
  totals_.opened++;
}

void circuit_breaker::tick() {
  if (state_ == breaker_state::open && now() >= open_until_) {
    state_ = breaker_state::half_open;
    ++generation_;
    probes_admitted_ = 0;
    probes_succeeded_ = 0;
  }
}

breaker_state circuit_breaker::state() {
  tick();
  return state_;
}

breaker_admission circuit_breaker::admit() {
  tick();
  breaker_admission a;
  switch (state_) {
  case breaker_state::closed:
    a.allowed = true;
    break;
  case breaker_state::half_open:
    if (probes_admitted_ < opts_.half_open_probes) {
      ++probes_admitted_;
      a.allowed = true;
      a.probe = true;
    } else {
      // The probes are out; their outcome decides. Come back soon.
      a.retry_after_ms = 1000;
    }
    break;
  case breaker_state::open:
    a.retry_after_ms = std::max<int64_t>(1, std::chrono::duration_cast<milliseconds>(open_until_ - now()).count());
    break;
  }
  if (a.allowed)
    a.permit = generation_;
  else
    totals_.rejected++;
  return a;
}

void circuit_breaker::fail_check(const std::string& why) {
  tick();
  totals_.failures++;
  totals_.last_failure = "health check: " + why;
  totals_.last_failure_unix_ms = opts_.now_unix_ms();
  if (state_ == breaker_state::open)
    return;
  open(opts_.open_for);
  log::warn("circuit breaker opened: the health check failed",
            log::fields{}.add("upstream", opts_.upstream).add("last_failure", totals_.last_failure));
}

void circuit_breaker::record(uint64_t permit, bool ok, milliseconds retry_after, const std::string& failure) {
  tick();
  if (ok) {
    totals_.successes++;
  } else {
    totals_.failures++;
    totals_.last_failure = failure.empty() ? "failure" : failure;
    totals_.last_failure_unix_ms = opts_.now_unix_ms();
  }
  // Only calls admitted in the current state count towards its transitions.
  if (permit != generation_)
    return;
  auto open_for = retry_after.count() > 0 ? retry_after : opts_.open_for;
  switch (state_) {
  case breaker_state::closed:
    if (ok) {
      consecutive_ = 0;
    } else if (++consecutive_ >= opts_.failures) {
      open(open_for);
      log::warn("circuit breaker opened", log::fields{}
                                            .add("upstream", opts_.upstream)
                                            .add("consecutive_failures", consecutive_)
                                            .add("open_ms", static_cast<int64_t>(open_for.count()))
                                            .add("last_failure", totals_.last_failure));
    }
    break;
  case breaker_state::half_open:
    if (!ok) {
      open(open_for);
      log::warn("circuit breaker re-opened: a half-open probe failed",
                log::fields{}.add("upstream", opts_.upstream).add("last_failure", totals_.last_failure));
    } else if (++probes_succeeded_ >= opts_.half_open_probes) {
      state_ = breaker_state::closed;
      ++generation_;
      consecutive_ = 0;
      log::info("circuit breaker closed: every half-open probe succeeded",
                log::fields{}.add("upstream", opts_.upstream));
    }
    break;
  case breaker_state::open:
    break; // stragglers from before it opened
  }
}

breaker_snapshot circuit_breaker::snapshot() {
  tick();
  auto s = totals_;
  s.state = state_;
  s.consecutive_failures = consecutive_;
  s.open_remaining_ms = state_ == breaker_state::open
                          ? std::max<int64_t>(0, std::chrono::duration_cast<milliseconds>(open_until_ - now()).count())
                          : 0;
  return s;
}

namespace {

struct breaker_actor_state {
  std::unique_ptr<circuit_breaker> breaker;
  std::shared_ptr<breaker_gauges> gauges;
  static inline const char* name = "breaker";
};

void publish(breaker_actor_state& st) {
  if (!st.gauges)
    return;
  auto s = st.breaker->snapshot();
  st.gauges->state.store(static_cast<int>(s.state), std::memory_order_relaxed);
  st.gauges->closed_permit.store(s.state == breaker_state::closed ? st.breaker->generation() + 1 : 0,
                                 std::memory_order_release);
  st.gauges->successes.store(s.successes, std::memory_order_relaxed);
  st.gauges->failures.store(s.failures, std::memory_order_relaxed);
  st.gauges->rejected.store(s.rejected, std::memory_order_relaxed);
  st.gauges->opened.store(s.opened, std::memory_order_relaxed);
}

breaker_actor::behavior_type breaker_impl(observed_typed_stateful_actor<breaker_actor, breaker_actor_state>* self,
                                          breaker_options options) {
  self->state.gauges = options.gauges;
  self->state.breaker = std::make_unique<circuit_breaker>(std::move(options));
  publish(self->state);
  return {
    [self](breaker_admit_atom) {
      auto a = self->state.breaker->admit();
      publish(self->state);
      return a;
    },
    [self](breaker_result_atom, uint64_t permit, bool ok, int64_t retry_after_ms, const std::string& failure) {
      self->state.breaker->record(permit, ok, milliseconds{std::max<int64_t>(0, retry_after_ms)}, failure);
      publish(self->state);
    },
    [self](breaker_health_atom, bool ok, const std::string& detail) {
      if (ok)
        return;
      self->state.breaker->fail_check(detail);
      publish(self->state);
    },
    [self](breaker_state_atom) { return self->state.breaker->snapshot(); },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

std::optional<breaker_admission> admit_if_closed(const breaker_gauges& gauges) {
  auto permit = gauges.closed_permit.load(std::memory_order_acquire);
  if (permit == 0)
    return std::nullopt;
  breaker_admission a;
  a.allowed = true;
  a.permit = permit - 1;
  return a;
}

breaker_actor spawn_breaker(caf::actor_system& sys, breaker_options options) {
  return sys.spawn(breaker_impl, std::move(options));
}

} // namespace troupe
