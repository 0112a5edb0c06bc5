// The circuit breaker (actors/breaker.hpp): every transition with an injected clock, and the actor's protocol.

#include "actors/breaker.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

namespace troupe {
namespace {

using std::chrono::milliseconds;

struct fake_clock {
  std::chrono::steady_clock::time_point t{std::chrono::seconds{1000}};
  void advance(milliseconds d) { t += d; }
};

breaker_options options_with(const std::shared_ptr<fake_clock>& clock) {
  breaker_options o;
  o.upstream = "test";
  o.failures = 5;
  o.open_for = milliseconds{60000};
  o.half_open_probes = 3;
  o.now = [clock] { return clock->t; };
  o.now_unix_ms = [] { return int64_t{1700000000000}; };
  return o;
}

void fail(circuit_breaker& b, int times, milliseconds retry_after = milliseconds{0}) {
  for (int i = 0; i < times; ++i) {
    auto a = b.admit();
    ASSERT_TRUE(a.allowed);
    b.record(a.permit, false, retry_after, "HTTP 500");
  }
}

TEST(CircuitBreaker, OpensAfterConsecutiveFailuresOnly) {
  auto clock = std::make_shared<fake_clock>();
  circuit_breaker b{options_with(clock)};
  fail(b, 4);
  auto ok = b.admit();
  b.record(ok.permit, true); // a success resets the count
  fail(b, 4);
  EXPECT_EQ(b.state(), breaker_state::closed);
  fail(b, 1);
  EXPECT_EQ(b.state(), breaker_state::open);
  auto refused = b.admit();
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_ms, 60000);
  auto snap = b.snapshot();
  EXPECT_EQ(snap.opened, 1u);
  EXPECT_EQ(snap.failures, 9u);
  EXPECT_EQ(snap.rejected, 1u);
  EXPECT_EQ(snap.last_failure, "HTTP 500");
  EXPECT_EQ(snap.last_failure_unix_ms, 1700000000000);
}

TEST(CircuitBreaker, StaysOpenForItsTimeThenAdmitsExactlyTheProbes) {
  auto clock = std::make_shared<fake_clock>();
  circuit_breaker b{options_with(clock)};
  fail(b, 5);
  clock->advance(milliseconds{59999});
  EXPECT_FALSE(b.admit().allowed);
  EXPECT_EQ(b.admit().retry_after_ms, 1);
  clock->advance(milliseconds{1});
  EXPECT_EQ(b.state(), breaker_state::half_open);
  std::vector<breaker_admission> probes;
  for (int i = 0; i < 3; ++i) {
    probes.push_back(b.admit());
    EXPECT_TRUE(probes.back().allowed);
    EXPECT_TRUE(probes.back().probe);
  }
  EXPECT_FALSE(b.admit().allowed); // a fourth call waits for the probes' outcome
  b.record(probes[0].permit, true);
  b.record(probes[1].permit, true);
  EXPECT_EQ(b.state(), breaker_state::half_open);
  b.record(probes[2].permit, true);
  EXPECT_EQ(b.state(), breaker_state::closed);
  EXPECT_TRUE(b.admit().allowed);
}

TEST(CircuitBreaker, AFailedProbeOpensItAgain) {
  auto clock = std::make_shared<fake_clock>();
  circuit_breaker b{options_with(clock)};
  fail(b, 5);
  clock->advance(milliseconds{60000});
  auto p1 = b.admit();
  auto p2 = b.admit();
  b.record(p1.permit, true);
  b.record(p2.permit, false, milliseconds{0}, "timeout");
  EXPECT_EQ(b.state(), breaker_state::open);
  EXPECT_EQ(b.snapshot().opened, 2u);
  EXPECT_EQ(b.snapshot().last_failure, "timeout");
  EXPECT_EQ(b.admit().retry_after_ms, 60000);
}

TEST(CircuitBreaker, RetryAfterOfTheOpeningFailureSetsTheOpenTime) {
  auto clock = std::make_shared<fake_clock>();
  circuit_breaker b{options_with(clock)};
  fail(b, 4);
  fail(b, 1, milliseconds{7000});
  EXPECT_EQ(b.admit().retry_after_ms, 7000);
  clock->advance(milliseconds{7000});
  EXPECT_EQ(b.state(), breaker_state::half_open);
}

TEST(CircuitBreaker, ResultsFromAnEarlierStateAreIgnored) {
  auto clock = std::make_shared<fake_clock>();
  circuit_breaker b{options_with(clock)};
  auto straggler = b.admit(); // admitted while closed
  fail(b, 5);
  clock->advance(milliseconds{60000});
  auto probe = b.admit();
  ASSERT_TRUE(probe.probe);
  // The straggler's failure must not re-open the half-open breaker, nor count as a probe.
  b.record(straggler.permit, false);
  EXPECT_EQ(b.state(), breaker_state::half_open);
  b.record(probe.permit, true);
  b.record(b.admit().permit, true);
  b.record(b.admit().permit, true);
  EXPECT_EQ(b.state(), breaker_state::closed);
}

// A failed active health check opens a closed breaker at once (no five failed calls needed), re-opens a half-open one,
// and leaves an open one as it is; the failure names the check.
TEST(CircuitBreaker, AFailedHealthCheckOpensItAtOnce) {
  auto clock = std::make_shared<fake_clock>();
  circuit_breaker b{options_with(clock)};
  b.fail_check("GET /models answered 503");
  EXPECT_EQ(b.state(), breaker_state::open);
  EXPECT_FALSE(b.admit().allowed);
  auto snap = b.snapshot();
  EXPECT_EQ(snap.opened, 1u);
  EXPECT_EQ(snap.last_failure, "health check: GET /models answered 503");
  clock->advance(milliseconds{30000});
  b.fail_check("again"); // open: its time is not extended
  clock->advance(milliseconds{30000});
  EXPECT_EQ(b.state(), breaker_state::half_open);
  b.fail_check("still down");
  EXPECT_EQ(b.state(), breaker_state::open);
  EXPECT_EQ(b.snapshot().opened, 2u);
}

TEST(CircuitBreaker, FailureStatuses) {
  for (int s : {429, 500, 502, 503, 504})
    EXPECT_TRUE(is_breaker_failure_status(s)) << s;
  for (int s : {200, 400, 401, 404, 413, 501})
    EXPECT_FALSE(is_breaker_failure_status(s)) << s;
}

TEST(BreakerActor, AdmitsRecordsAndReports) {
  caf::actor_system_config cfg;
  register_message_types(cfg);
  caf::actor_system sys{cfg};
  auto clock = std::make_shared<fake_clock>();
  auto opts = options_with(clock);
  opts.failures = 2;
  auto breaker = spawn_breaker(sys, opts);
  caf::scoped_actor self{sys};
  auto admit = [&] {
    breaker_admission a;
    self->request(breaker, caf::infinite, breaker_admit_atom::value)
      .receive([&](breaker_admission& x) { a = x; }, [](caf::error& e) { FAIL() << caf::to_string(e); });
    return a;
  };
  auto snapshot = [&] {
    breaker_snapshot s;
    self->request(breaker, caf::infinite, breaker_state_atom::value)
      .receive([&](breaker_snapshot& x) { s = x; }, [](caf::error& e) { FAIL() << caf::to_string(e); });
    return s;
  };
  for (int i = 0; i < 2; ++i) {
    auto a = admit();
    ASSERT_TRUE(a.allowed);
    self->send(breaker, breaker_result_atom::value, a.permit, false, int64_t{0}, std::string{"connect error"});
  }
  auto s = snapshot(); // the results were sent before this request: the mailbox is ordered
  EXPECT_EQ(s.state, breaker_state::open);
  EXPECT_EQ(s.upstream, "test");
  EXPECT_EQ(s.last_failure, "connect error");
  EXPECT_FALSE(admit().allowed);
  self->send_exit(breaker, caf::exit_reason::user_shutdown);
}

// What the actor publishes lets a caller admit itself while the breaker is closed, with the permit the actor would
// give; open or half-open, nothing is admitted that way, and closing again publishes the new permit.
TEST(BreakerActor, PublishesAClosedPermitOnlyWhileClosed) {
  caf::actor_system_config cfg;
  register_message_types(cfg);
  caf::actor_system sys{cfg};
  auto clock = std::make_shared<fake_clock>();
  auto opts = options_with(clock);
  opts.failures = 2;
  opts.half_open_probes = 1;
  opts.gauges = std::make_shared<breaker_gauges>();
  auto gauges = opts.gauges;
  auto breaker = spawn_breaker(sys, opts);
  caf::scoped_actor self{sys};
  auto admit = [&] {
    breaker_admission a;
    self->request(breaker, caf::infinite, breaker_admit_atom::value)
      .receive([&](breaker_admission& x) { a = x; }, [](caf::error& e) { FAIL() << caf::to_string(e); });
    return a;
  };
  auto asked = admit(); // also waits until the actor has published
  ASSERT_TRUE(asked.allowed);
  auto fast = admit_if_closed(*gauges);
  ASSERT_TRUE(fast.has_value());
  EXPECT_TRUE(fast->allowed);
  EXPECT_EQ(fast->permit, asked.permit);
  // Two failures with the self-admitted permit count like any: the breaker opens and stops publishing a permit.
  for (int i = 0; i < 2; ++i)
    self->send(breaker, breaker_result_atom::value, fast->permit, false, int64_t{0}, std::string{"HTTP 503"});
  EXPECT_FALSE(admit().allowed);
  EXPECT_FALSE(admit_if_closed(*gauges).has_value());
  EXPECT_EQ(gauges->state.load(), 1);
  // Half-open (after open_for): still nothing without the actor, which hands out the one probe.
  clock->advance(opts.open_for);
  auto probe = admit();
  ASSERT_TRUE(probe.allowed);
  EXPECT_TRUE(probe.probe);
  EXPECT_FALSE(admit_if_closed(*gauges).has_value());
  // The probe succeeds: closed again, under a new permit; a result carrying the old one is ignored.
  self->send(breaker, breaker_result_atom::value, probe.permit, true, int64_t{0}, std::string{});
  auto again = admit();
  ASSERT_TRUE(again.allowed);
  auto fresh = admit_if_closed(*gauges);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->permit, again.permit);
  EXPECT_NE(fresh->permit, fast->permit);
  self->send(breaker, breaker_result_atom::value, fast->permit, false, int64_t{0}, std::string{"late"});
  self->send(breaker, breaker_result_atom::value, fast->permit, false, int64_t{0}, std::string{"late"});
  EXPECT_TRUE(admit().allowed) << "results of the earlier closed state must not open it";
  EXPECT_TRUE(admit_if_closed(*gauges).has_value());
  self->send_exit(breaker, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace troupe
