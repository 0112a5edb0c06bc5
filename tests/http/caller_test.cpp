// The caller (http/caller.hpp): requests from a plain thread to typed and untyped actors, answered on the replying
// actor's thread; errors, dead receivers, delegation, timeouts and late answers, and what happens to requests still
// pending when the caller goes away. Every wait is on a promise with a bound.

#include "http/caller.hpp"

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>
#include <thread>

namespace troupe::http {
namespace {

using namespace std::chrono_literals;
constexpr auto reply_bound = 10s;

using add_atom = caf::atom_constant<caf::atom("add")>;
using hold_atom = caf::atom_constant<caf::atom("hold")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using adder = caf::typed_actor<caf::replies_to<add_atom, int32_t, int32_t>::with<int32_t>,
                               caf::replies_to<add_atom, std::string>::with<std::string, int32_t>>;

adder::behavior_type adder_impl(adder::pointer) {
  return {
    [](add_atom, int32_t x, int32_t y) { return x + y; },
    [](add_atom, const std::string& s) -> caf::result<std::string, int32_t> {
      if (s.empty())
        return make_error(service_error::invalid_input, "empty");
      return {s + s, static_cast<int32_t>(s.size())};
    },
  };
}

/// Holds each hold_atom request until release_atom, which answers all held ones with their number.
struct holder_state {
  std::vector<caf::response_promise> held;
};
caf::behavior holder_impl(caf::stateful_actor<holder_state>* self) {
  return {
    [self](hold_atom) -> caf::result<int32_t> {
      self->state.held.push_back(self->make_response_promise());
      return caf::delegated<int32_t>{};
    },
    [self](release_atom) {
      int32_t n = 0;
      for (auto& p : self->state.held)
        p.deliver(n++);
      self->state.held.clear();
    },
  };
}

struct Caller : ::testing::Test {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  Caller() { sys = std::make_unique<caf::actor_system>(cfg); }
};

TEST_F(Caller, TypedReplyRunsOnTheReplyingThread) {
  caller c{*sys};
  auto a = sys->spawn(adder_impl);
  std::promise<std::pair<int32_t, std::thread::id>> got;
  c.request(a, 5s, [&](int32_t sum) { got.set_value({sum, std::this_thread::get_id()}); },
            [&](caf::error&) { ADD_FAILURE() << "error"; }, add_atom::value, int32_t{2}, int32_t{40});
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(reply_bound), std::future_status::ready);
  auto [sum, thread] = f.get();
  EXPECT_EQ(sum, 42);
  EXPECT_NE(thread, std::this_thread::get_id()); // the actor's scheduler thread ran the handler
  EXPECT_EQ(c.pending(), 0u);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_F(Caller, SeveralReplyValuesAndErrors) {
  caller c{*sys};
  auto a = sys->spawn(adder_impl);
  std::promise<std::string> ok;
  c.request(a, 5s, [&](std::string& s, int32_t n) { ok.set_value(s + "/" + std::to_string(n)); },
            [&](caf::error&) { ok.set_value("error"); }, add_atom::value, std::string{"ab"});
  std::promise<caf::error> failed;
  c.request(a, 5s, [&](std::string&, int32_t) { failed.set_value(caf::error{}); },
            [&](caf::error& e) { failed.set_value(e); }, add_atom::value, std::string{});
  auto f1 = ok.get_future();
  auto f2 = failed.get_future();
  ASSERT_EQ(f1.wait_for(reply_bound), std::future_status::ready);
  ASSERT_EQ(f2.wait_for(reply_bound), std::future_status::ready);
  EXPECT_EQ(f1.get(), "abab/2");
  auto err = f2.get();
  EXPECT_EQ(service_code(err), service_error::invalid_input);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_F(Caller, UntypedReceiverWithNamedReplyTypes) {
  caller c{*sys};
  auto echo = sys->spawn([]() -> caf::behavior { return {[](const std::string& s) { return s; }}; });
  std::promise<std::string> got;
  c.request<std::string>(echo, 5s, [&](std::string& s) { got.set_value(s); },
                         [&](caf::error&) { got.set_value("error"); }, std::string{"hi"});
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(reply_bound), std::future_status::ready);
  EXPECT_EQ(f.get(), "hi");
  // An answer of another type than the one named is an error, not a crash.
  std::promise<caf::error> wrong;
  c.request<int32_t>(echo, 5s, [&](int32_t) { wrong.set_value(caf::error{}); },
                     [&](caf::error& e) { wrong.set_value(e); }, std::string{"hi"});
  auto w = wrong.get_future();
  ASSERT_EQ(w.wait_for(reply_bound), std::future_status::ready);
  EXPECT_EQ(service_code(w.get()), service_error::internal);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}

TEST_F(Caller, DelegatedRequestsAreAnsweredByTheDelegate) {
  caller c{*sys};
  auto a = sys->spawn(adder_impl);
  auto router = sys->spawn([a](caf::event_based_actor* self) -> caf::behavior {
    return {[self, a](add_atom x, int32_t y, int32_t z) { return self->delegate(a, x, y, z); }};
  });
  std::promise<int32_t> got;
  c.request<int32_t>(router, 5s, [&](int32_t sum) { got.set_value(sum); }, [&](caf::error&) { got.set_value(-1); },
                     add_atom::value, int32_t{1}, int32_t{2});
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(reply_bound), std::future_status::ready);
  EXPECT_EQ(f.get(), 3);
  caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_F(Caller, DeadOrMissingReceiverIsAnError) {
  caller c{*sys};
  auto a = sys->spawn(adder_impl);
  {
    caf::scoped_actor self{*sys};
    self->send_exit(a, caf::exit_reason::user_shutdown);
    self->wait_for(a);
  }
  std::promise<caf::error> down;
  c.request(a, 5s, [&](int32_t) { down.set_value(caf::error{}); }, [&](caf::error& e) { down.set_value(e); },
            add_atom::value, int32_t{1}, int32_t{1});
  auto f = down.get_future();
  ASSERT_EQ(f.wait_for(reply_bound), std::future_status::ready);
  EXPECT_EQ(f.get(), caf::sec::request_receiver_down);
  std::promise<caf::error> missing;
  c.request(adder{}, 5s, [&](int32_t) { missing.set_value(caf::error{}); },
            [&](caf::error& e) { missing.set_value(e); }, add_atom::value, int32_t{1}, int32_t{1});
  auto m = missing.get_future();
  ASSERT_EQ(m.wait_for(0s), std::future_status::ready); // answered at once, on this thread
  EXPECT_EQ(service_code(m.get()), service_error::unavailable);
  EXPECT_EQ(c.pending(), 0u);
}

TEST_F(Caller, TimeoutEndsTheRequestOnceAndTheLateAnswerIsDropped) {
  caller c{*sys, std::chrono::hours{1}}; // the test sweeps by hand
  auto h = sys->spawn(holder_impl);
  int answers = 0;
  std::promise<caf::error> timed_out;
  c.request<int32_t>(h, 100ms, [&](int32_t) { ++answers; }, [&](caf::error& e) { timed_out.set_value(e); },
                     hold_atom::value);
  EXPECT_EQ(c.pending(), 1u);
  EXPECT_EQ(c.sweep(caller::clock::now()), 0u); // not due yet
  EXPECT_EQ(c.sweep(caller::clock::now() + 200ms), 1u);
  auto f = timed_out.get_future();
  ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(f.get(), caf::sec::request_timeout);
  EXPECT_EQ(c.pending(), 0u);
  // The answer comes after all: counted as late, no handler runs.
  std::promise<int32_t> second;
  c.request<int32_t>(h, 5s, [&](int32_t n) { second.set_value(n); }, [&](caf::error&) { second.set_value(-1); },
                     hold_atom::value);
  caf::anon_send(h, release_atom::value);
  auto s = second.get_future();
  ASSERT_EQ(s.wait_for(reply_bound), std::future_status::ready);
  EXPECT_EQ(s.get(), 1); // answered second: the first (timed out) answer came before it
  EXPECT_EQ(c.late_answers(), 1u);
  EXPECT_EQ(answers, 0);
  caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

TEST_F(Caller, ARequestWithoutDeadlineIsNeverSweptAndEndsWithItsAnswer) {
  caller c{*sys, std::chrono::hours{1}};
  auto h = sys->spawn(holder_impl);
  std::promise<int32_t> got;
  c.request<int32_t>(h, caller::clock::duration::max(), [&](int32_t n) { got.set_value(n); },
                     [&](caf::error&) { got.set_value(-1); }, hold_atom::value);
  EXPECT_EQ(c.sweep(caller::clock::now() + std::chrono::hours{24 * 365}), 0u);
  EXPECT_EQ(c.pending(), 1u);
  caf::anon_send(h, release_atom::value);
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(reply_bound), std::future_status::ready);
  EXPECT_EQ(f.get(), 0);
  caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

TEST_F(Caller, TheSweeperTimesRequestsOutOnItsOwn) {
  caller c{*sys, 10ms};
  auto h = sys->spawn(holder_impl);
  std::promise<caf::error> timed_out;
  c.request<int32_t>(h, 20ms, [&](int32_t) {}, [&](caf::error& e) { timed_out.set_value(e); }, hold_atom::value);
  auto f = timed_out.get_future();
  ASSERT_EQ(f.wait_for(reply_bound), std::future_status::ready);
  EXPECT_EQ(f.get(), caf::sec::request_timeout);
  caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

TEST_F(Caller, PendingRequestsAreReleasedWhenTheCallerGoes) {
  auto h = sys->spawn(holder_impl);
  auto captured = std::make_shared<int>(7);
  std::weak_ptr<int> watch = captured;
  {
    caller c{*sys, std::chrono::hours{1}};
    c.request<int32_t>(h, 1h, [captured](int32_t) {}, [captured](caf::error&) {}, hold_atom::value);
    captured.reset();
    EXPECT_FALSE(watch.expired());
  }
  EXPECT_TRUE(watch.expired()); // the handlers (and the responder they would hold) are gone
  caf::anon_send(h, release_atom::value); // an answer to a companion that is gone goes nowhere
  caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

TEST_F(Caller, ManyConcurrentRequestsEachEndOnce) {
  caller c{*sys};
  auto a = sys->spawn(adder_impl);
  constexpr int threads = 4, per_thread = 2000;
  std::atomic<int> sum{0}, ended{0};
  std::promise<void> all;
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t)
    senders.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i)
        c.request(a, 5s,
                  [&](int32_t v) {
                    sum += v;
                    if (++ended == threads * per_thread)
                      all.set_value();
                  },
                  [&](caf::error&) {
                    if (++ended == threads * per_thread)
                      all.set_value();
                  },
                  add_atom::value, int32_t{1}, int32_t{0});
    });
  for (auto& s : senders)
    s.join();
  ASSERT_EQ(all.get_future().wait_for(reply_bound), std::future_status::ready);
  EXPECT_EQ(sum.load(), threads * per_thread);
  EXPECT_EQ(c.pending(), 0u);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace troupe::http
