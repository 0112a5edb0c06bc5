// Tests of introspect/observed_actor.cpp and actors/introspection.cpp with a real actor system: a stalled actor's
// backlog as its probe and its own peek report it, restart counts and last errors in the tree, traces with exact
// mailbox times. (Rendering and redaction of messages: tests/actors/message_text_test.cpp.)
//
// Deterministic: the stalled actor waits on a promise the test fulfils; every other wait is on a reply or an event
// with a generous limit that fails the test.

#include "actors/breaker.hpp"
#include "actors/introspection.hpp"
#include "actors/messages.hpp"
#include "actors/ops.hpp"
#include "actors/supervisor.hpp"
#include "config/service_error.hpp"
#include "introspect/observed_actor.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

using stall_atom = caf::atom_constant<caf::atom("stall")>;
using work_atom = caf::atom_constant<caf::atom("work")>;
using crash_atom = caf::atom_constant<caf::atom("crash")>;

constexpr auto wait_limit = 10s;

/// An actor system whose actors carry probes (debug mode).
struct debug_system {
  system_config cfg;
  std::unique_ptr<caf::actor_system> sys;

  explicit debug_system(bool debug = true) {
    if (debug)
      cfg.probes = std::make_shared<probe_registry>();
    register_message_types(cfg);
    cfg.set("scheduler.max-threads", 4);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

/// Runs `job` inside a fresh event-based actor and waits for the value it hands to `done`.
template <class T>
std::optional<T> run_in_actor(caf::actor_system& sys,
                              std::function<void(caf::event_based_actor*, std::function<void(T)>)> job) {
  auto result = std::make_shared<std::promise<T>>();
  auto future = result->get_future();
  sys.spawn([job, result](caf::event_based_actor* self) {
    job(self, [self, result](T value) {
      result->set_value(std::move(value));
      self->quit();
    });
  });
  if (future.wait_for(wait_limit) != std::future_status::ready)
    return std::nullopt;
  return future.get();
}

/// An observed actor that blocks its thread on (stall_atom) until `release` is fulfilled, and answers (work_atom, n).
caf::actor spawn_stallable(caf::actor_system& sys, std::shared_future<void> release,
                           std::shared_ptr<std::promise<void>> stalled) {
  return sys.spawn([release, stalled](observed_actor*) -> caf::behavior {
    return {
      [release, stalled](stall_atom) {
        stalled->set_value();
        release.wait(); // a handler stuck in a blocking call: the situation debug mode is for
      },
      [](work_atom, int64_t n) { return n; },
      [](hash_password_atom, const std::string&) { return std::string{"no"}; },
    };
  });
}

} // namespace

// A stalled actor with 1000 queued messages: its probe shows the backlog and the busy handler at once, and its
// own high-priority peek, answered as soon as the stall ends, lists ~1000 messages with their types.
TEST(Introspection, StalledActorShowsItsBacklogAndFirstMessages) {
  debug_system d;
  std::promise<void> release;
  auto stalled = std::make_shared<std::promise<void>>();
  auto actor = spawn_stallable(*d.sys, release.get_future().share(), stalled);
  caf::anon_send(actor, stall_atom::value);
  ASSERT_EQ(stalled->get_future().wait_for(wait_limit), std::future_status::ready);
  for (int64_t i = 0; i < 998; ++i)
    caf::anon_send(actor, work_atom::value, i);
  caf::anon_send(actor, hash_password_atom::value, std::string{"hunter2-secret"});
  caf::anon_send(actor, work_atom::value, int64_t{998});

  auto probe = d.cfg.probes->find(actor.id());
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->queued(), 1000); // the message being handled has left the mailbox
  EXPECT_NE(probe->busy_since_ns.load(), 0);

  // The peek waits in the urgent queue while the actor is stuck; the stall ends; the peek is answered first.
  auto peeked = std::make_shared<std::promise<caf::expected<mailbox_view>>>();
  d.sys->spawn([&](caf::event_based_actor* self) {
    peek_mailbox(self, actor, 50, 10s, [self, peeked](caf::expected<mailbox_view> view) {
      peeked->set_value(std::move(view));
      self->quit();
    });
  });
  // The peek request is queued too (1001) before the actor is released. The probe's counter has no reply to wait
  // on: it is polled, bounded, and the assertion below fails if it never gets there.
  for (int i = 0; i < 1000 && probe->queued() < 1001; ++i)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(probe->queued(), 1001);
  release.set_value();
  auto future = peeked->get_future();
  ASSERT_EQ(future.wait_for(wait_limit), std::future_status::ready);
  auto view = future.get();
  ASSERT_TRUE(view) << caf::to_string(view.error());
  EXPECT_GE(view->size, 990u);
  EXPECT_LE(view->size, 1000u);
  ASSERT_EQ(view->first.size(), 50u);
  EXPECT_EQ(view->first[0].type, "work");
  EXPECT_NE(view->first[0].text.find("work"), std::string::npos);
  ASSERT_FALSE(view->by_type.empty());
  EXPECT_EQ(view->by_type[0].first, "work");
  EXPECT_GE(view->by_type[0].second, 989u);
  ASSERT_EQ(view->by_type.size(), 2u);
  EXPECT_EQ(view->by_type[1].first, "pwhash");
  // The actor drains its backlog and counts what it processed.
  for (int i = 0; i < 5000 && probe->queued() > 0; ++i)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(probe->queued(), 0);
  EXPECT_GE(probe->processed.load(), 1001u);
  EXPECT_EQ(probe->busy_since_ns.load(), 0);
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}

// A child that crashed and was restarted shows its restart count, last error and when, in the collected tree.
TEST(Introspection, TreeShowsRestartsAndLastError) {
  debug_system d;
  auto names = std::make_shared<directory>();
  supervisor_config inner;
  inner.name = "inner";
  inner.names = names;
  inner.children.push_back({"crashy", [](caf::actor_system& sys) {
                              return sys.spawn([](observed_actor* self) -> caf::behavior {
                                return {
                                  [self](crash_atom) { self->quit(make_error(service_error::internal, "boom")); }};
                              });
                            }});
  supervisor_config root_cfg;
  root_cfg.name = "root";
  root_cfg.names = names;
  root_cfg.children.push_back(supervisor_child(inner));
  auto root = spawn_supervisor(*d.sys, root_cfg);

  auto collect = [&] {
    return run_in_actor<std::vector<actor_view>>(
      *d.sys, [&](caf::event_based_actor* self, std::function<void(std::vector<actor_view>)> done) {
        collect_actor_tree(self, root, "root", d.cfg.probes, 2000ms, done);
      });
  };
  std::optional<caf::actor> first;
  // The directory entry appears when the supervisor has started its child (no message tells the test): polled,
  // bounded, and ASSERT_TRUE fails if it never does; the same for the restarted child in the tree below.
  for (int i = 0; i < 500 && !first; ++i, std::this_thread::sleep_for(10ms))
    first = names->get("crashy"); // the supervisors start their children once scheduled
  ASSERT_TRUE(first);
  caf::anon_send(*first, crash_atom::value);
  std::optional<std::vector<actor_view>> tree;
  for (int i = 0; i < 500; ++i) {
    tree = collect();
    ASSERT_TRUE(tree);
    if (tree->size() == 3 && tree->at(2).restarts == 1 && tree->at(2).state == "running")
      break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(tree->size(), 3u);
  EXPECT_EQ(tree->at(0).name, "root");
  EXPECT_EQ(tree->at(1).name, "inner");
  EXPECT_EQ(tree->at(1).supervisor, "root");
  EXPECT_EQ(tree->at(1).kind, "supervisor");
  const auto& crashy = tree->at(2);
  EXPECT_EQ(crashy.name, "crashy");
  EXPECT_EQ(crashy.supervisor, "inner");
  EXPECT_EQ(crashy.restarts, 1u);
  EXPECT_NE(crashy.last_error.find("boom"), std::string::npos) << crashy.last_error;
  EXPECT_GT(crashy.last_error_unix_ms, 0);
  EXPECT_GT(crashy.started_unix_ms, 0);
  EXPECT_NE(crashy.id, first->id());
  EXPECT_EQ(crashy.mailbox_size, 0);
  EXPECT_GE(crashy.processed, 0);
  caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
}

// A trace reports every processed message with its type, sender, exact time in mailbox and processing time.
TEST(Introspection, TraceReportsMessagesWithTimeInMailbox) {
  debug_system d;
  std::promise<void> release;
  auto stalled = std::make_shared<std::promise<void>>();
  auto actor = spawn_stallable(*d.sys, release.get_future().share(), stalled);
  auto sink = std::make_shared<trace_sink>(1000, 1000);
  auto attached = run_in_actor<bool>(*d.sys, [&](caf::event_based_actor* self, std::function<void(bool)> done) {
    self->request<caf::message_priority::high>(actor, caf::duration{2s}, debug_trace_atom::value, sink)
      .then([done](bool ok) { done(ok); }, [done](caf::error&) { done(false); });
  });
  ASSERT_TRUE(attached && *attached);
  caf::anon_send(actor, stall_atom::value);
  ASSERT_EQ(stalled->get_future().wait_for(wait_limit), std::future_status::ready);
  for (int64_t i = 0; i < 10; ++i)
    caf::anon_send(actor, work_atom::value, i);
  std::this_thread::sleep_for(20ms); // the queued messages wait at least this long: a lower bound to check
  release.set_value();
  std::vector<trace_event> events;
  for (int i = 0; i < 5000 && events.size() < 11; ++i) {
    auto more = sink->drain();
    events.insert(events.end(), more.begin(), more.end());
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(events.size(), 11u);
  EXPECT_EQ(events[0].type, "stall");
  EXPECT_GE(events[0].processing_us, 20000);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ(events[i].type, "work");
    EXPECT_GE(events[i].waited_us, 20000) << i;
    EXPECT_EQ(events[i].sender_id, 0u);
  }
  EXPECT_EQ(sink->seen(), 11u);
  sink->close();
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}

// Without debug mode actors carry no probe and refuse traces, but still answer a peek (the mailbox warning uses it).
TEST(Introspection, WithoutDebugModeNoProbeButPeekWorks) {
  debug_system d{false};
  auto actor = d.sys->spawn([](observed_actor* self) -> caf::behavior {
    EXPECT_EQ(self->probe(), nullptr);
    return {[](work_atom, int64_t n) { return n; }};
  });
  auto view = run_in_actor<bool>(*d.sys, [&](caf::event_based_actor* self, std::function<void(bool)> done) {
    peek_mailbox(self, actor, 10, 2000ms, [done](caf::expected<mailbox_view> v) { done(v && v->size == 0); });
  });
  ASSERT_TRUE(view);
  EXPECT_TRUE(*view);
  auto refused = run_in_actor<bool>(*d.sys, [&](caf::event_based_actor* self, std::function<void(bool)> done) {
    self
      ->request<caf::message_priority::high>(actor, caf::duration{2s}, debug_trace_atom::value,
                                             std::make_shared<trace_sink>(10, 10))
      .then([done](bool ok) { done(!ok); }, [done](caf::error&) { done(false); });
  });
  ASSERT_TRUE(refused);
  EXPECT_TRUE(*refused);
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}

// A typed actor (the circuit breaker, spawned as the server spawns it) is observed like an untyped one: it has a
// probe that counts what it handled and answers a peek, although neither message is in its interface.
TEST(Introspection, TypedActorsAreObservedToo) {
  debug_system d;
  breaker_options options;
  options.upstream = "mock";
  breaker_actor breaker = spawn_breaker(*d.sys, options);
  auto probe = d.cfg.probes->find(breaker.id());
  ASSERT_NE(probe, nullptr);
  caf::scoped_actor self{*d.sys};
  for (int i = 0; i < 3; ++i)
    self->request(breaker, caf::duration{wait_limit}, breaker_admit_atom::value)
      .receive([](const breaker_admission& a) { EXPECT_TRUE(a.allowed); },
               [](caf::error& e) { FAIL() << caf::to_string(e); });
  EXPECT_STREQ(probe->type.load(), "breaker");
  auto view = run_in_actor<bool>(*d.sys, [&](caf::event_based_actor* self, std::function<void(bool)> done) {
    peek_mailbox(self, caf::actor_cast<caf::actor>(breaker), 10, 2000ms,
                 [done](caf::expected<mailbox_view> v) { done(v && v->size == 0); });
  });
  ASSERT_TRUE(view);
  EXPECT_TRUE(*view);
  // Read after the peek's answer: the actor finished counting the third admission before it took the peek (the
  // reply to an admission leaves before its count is made).
  EXPECT_EQ(probe->processed.load(), 3u);
  caf::anon_send_exit(breaker, caf::exit_reason::user_shutdown);
}

// The mailbox watch warns once when a named actor stays above the threshold, naming the most common waiting type.
TEST(MailboxWatch, WarnsOnceNamingTheMostCommonWaitingType) {
  debug_system d;
  auto names = std::make_shared<directory>();
  std::promise<void> release;
  auto stalled = std::make_shared<std::promise<void>>();
  auto actor = spawn_stallable(*d.sys, release.get_future().share(), stalled);
  names->put("stuck", actor);
  auto warnings = std::make_shared<std::promise<mailbox_warning>>();
  auto count = std::make_shared<std::atomic<int>>(0);
  mailbox_watch_options opts;
  opts.names = names;
  opts.threshold = 100;
  opts.warn_after = 50ms;
  opts.interval = 10ms;
  opts.probes = d.cfg.probes;
  opts.on_warning = [warnings, count](const mailbox_warning& w) {
    if (count->fetch_add(1) == 0)
      warnings->set_value(w);
  };
  caf::anon_send(actor, stall_atom::value);
  ASSERT_EQ(stalled->get_future().wait_for(wait_limit), std::future_status::ready);
  for (int64_t i = 0; i < 299; ++i)
    caf::anon_send(actor, work_atom::value, i);
  caf::anon_send(actor, hash_password_atom::value, std::string{"x"});
  auto watch = spawn_mailbox_watch(*d.sys, opts);
  // The probe shows the backlog at once; after warn_after the watch asks the actor for its waiting types, a request
  // that waits (at high priority) for the stall to end: the mailbox then holds 301 messages.
  auto probe = d.cfg.probes->find(actor.id());
  for (int i = 0; i < 5000 && probe->queued() < 301; ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(probe->queued(), 301);
  release.set_value();
  auto future = warnings->get_future();
  ASSERT_EQ(future.wait_for(wait_limit), std::future_status::ready);
  auto w = future.get();
  EXPECT_EQ(w.actor, "stuck");
  EXPECT_EQ(w.size, 300u);
  EXPECT_GE(w.above_ms, 50);
  EXPECT_EQ(w.most_common_type, "work");
  EXPECT_GE(w.most_common_count, 290u);
  // Once per episode: the backlog drains, and no second warning follows.
  for (int i = 0; i < 5000 && probe->queued() > 0; ++i)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(count->load(), 1);
  caf::anon_send_exit(watch, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}
