// Tests of actors/supervisor.cpp and actors/directory.cpp: restarts per restart type and strategy, restart
// intensity with an injected clock, ordered start, reverse-order shutdown, kill after the shutdown timeout,
// nesting, the restart metric and the name directory.
//
// Deterministic: every wait is on an event (a logged start/stop, a down_msg, a reply) with a generous timeout
// that fails the test; nothing sleeps for a fixed time.

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace caf {
// Readable gtest failure messages for CAF handles and errors.
void PrintTo(const actor& x, std::ostream* os) {
  *os << to_string(x);
}
void PrintTo(const error& x, std::ostream* os) {
  *os << to_string(x);
}
} // namespace caf

using namespace troupe;
using namespace std::chrono_literals;

namespace {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;

constexpr auto wait_limit = 5s;

/// A thread-safe, append-only list of events ("start:a", "stop:a", ...) that tests wait on.
class event_log {
public:
  void push(std::string event) {
    // Notified under the lock: a waiting test may destroy this log as soon as the lock is free.
    std::lock_guard<std::mutex> guard{mutex_};
    events_.push_back(std::move(event));
    changed_.notify_all();
  }

  size_t size() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return events_.size();
  }

  std::vector<std::string> snapshot() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return events_;
  }

  /// Waits until at least `n` events follow index `from`, then returns exactly the first `n` of them
  /// (fewer if the wait timed out, which fails the comparison that follows).
  std::vector<std::string> next(size_t from, size_t n) const {
    std::unique_lock<std::mutex> guard{mutex_};
    changed_.wait_for(guard, wait_limit, [&] { return events_.size() >= from + n; });
    auto first = events_.begin() + static_cast<std::ptrdiff_t>(std::min(from, events_.size()));
    auto last = events_.begin() + static_cast<std::ptrdiff_t>(std::min(from + n, events_.size()));
    return {first, last};
  }

private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<std::string> events_;
};

/// A child that logs "stop:NAME" when it terminates, quits with an error on crash_atom and normally on
/// leave_atom. A stuck one ignores exit requests (logging "ignored:NAME") until it is killed.
/// The stop is logged from on_exit, which CAF runs before it sends the down_msg, so "stop:x" always precedes
/// whatever the supervisor does in reaction (attach_functor would race with the supervisor's own monitor).
class test_worker : public caf::event_based_actor {
public:
  test_worker(caf::actor_config& cfg, std::string name, std::shared_ptr<event_log> events, bool stuck)
    : caf::event_based_actor(cfg), name_(std::move(name)), events_(std::move(events)), stuck_(stuck) {}

  caf::behavior make_behavior() override {
    if (stuck_)
      set_exit_handler([this](caf::exit_msg&) { events_->push("ignored:" + name_); });
    return {
      [this](crash_atom) { quit(make_error(service_error::internal, "boom")); },
      [this](leave_atom) { quit(); },
    };
  }

  void on_exit() override { events_->push("stop:" + name_); }

private:
  std::string name_;
  std::shared_ptr<event_log> events_;
  bool stuck_;
};

caf::actor_system_config& with_troupe_types(caf::actor_system_config& cfg) {
  register_message_types(cfg);
  return cfg;
}

/// An actor system, a scoped actor to talk to supervisors, an event log and helpers. Every supervisor spawned
/// with start() is monitored by `self` and killed at the end of the test so the system can shut down.
class actor_fixture : public ::testing::Test {
protected:
  void TearDown() override {
    for (auto& sup : supervisors_)
      caf::anon_send_exit(sup, caf::exit_reason::kill);
    for (auto& a : others_)
      caf::anon_send_exit(a, caf::exit_reason::kill);
  }

  /// A worker child; "start:NAME" is logged by the factory, in the supervisor's start order.
  child_spec worker(const std::string& name, restart_type restart = restart_type::permanent, bool stuck = false) {
    auto log = events;
    return child_spec{name,
                      [name, log, stuck](caf::actor_system& sys) {
                        auto handle = sys.spawn<test_worker>(name, log, stuck);
                        log->push("start:" + name);
                        return handle;
                      },
                      restart};
  }

  supervisor_config config(std::vector<child_spec> children,
                           supervision_strategy strategy = supervision_strategy::one_for_one) {
    supervisor_config cfg;
    cfg.name = "top";
    cfg.strategy = strategy;
    cfg.max_restarts = 100;
    cfg.restart_window = std::chrono::hours{1};
    cfg.children = std::move(children);
    cfg.names = names;
    return cfg;
  }

  caf::actor start(supervisor_config cfg) {
    auto sup = spawn_supervisor(sys, std::move(cfg));
    self->monitor(sup);
    supervisors_.push_back(sup);
    return sup;
  }

  /// Spawns an actor that does nothing (for directory tests).
  caf::actor idle_actor() {
    auto a = sys.spawn([]() -> caf::behavior { return {[](int) {}}; });
    others_.push_back(a);
    return a;
  }

  /// The supervisor's answer to children_atom (empty, with a failure, if it does not answer).
  std::vector<child_info> children(const caf::actor& sup) {
    std::vector<child_info> result;
    self->request(sup, wait_limit, children_atom::value)
      .receive([&](std::vector<child_info>& xs) { result = std::move(xs); },
               [&](caf::error& err) { ADD_FAILURE() << "children query failed: " << sys.render(err); });
    return result;
  }

  child_info child(const caf::actor& sup, const std::string& name) {
    for (auto& info : children(sup))
      if (info.name == name)
        return info;
    ADD_FAILURE() << "no child named " << name;
    return {};
  }

  /// Asks children_atom until `done` holds for child `name` (for changes that log no event, such as a child
  /// that is not restarted). Each attempt is a full round trip through the supervisor's mailbox.
  child_info wait_child(const caf::actor& sup, const std::string& name,
                        const std::function<bool(const child_info&)>& done) {
    auto deadline = std::chrono::steady_clock::now() + wait_limit;
    child_info info;
    while (std::chrono::steady_clock::now() < deadline) {
      info = child(sup, name);
      if (info.name.empty() || done(info))
        return info;
      std::this_thread::yield();
    }
    ADD_FAILURE() << "child " << name << " did not reach the expected state; it is " << info.state;
    return info;
  }

  void crash(const caf::actor& sup, const std::string& name) {
    auto handle = child(sup, name).handle;
    ASSERT_TRUE(handle) << name << " is not running";
    self->send(handle, crash_atom::value);
  }

  /// Waits for the down_msg of a supervisor spawned with start(); returns its exit reason.
  caf::error wait_down(const caf::actor& sup) {
    caf::error reason;
    bool done = false;
    bool timed_out = false;
    self->receive_while([&] { return !done && !timed_out; })(
      [&](caf::down_msg& msg) {
        if (msg.source == sup.address()) {
          reason = std::move(msg.reason);
          done = true;
        }
      },
      caf::after(wait_limit) >> [&] { timed_out = true; });
    EXPECT_TRUE(done) << "supervisor did not terminate";
    return reason;
  }

  /// Asks the supervisor to shut down as its parent would and returns its exit reason.
  caf::error shut_down(const caf::actor& sup) {
    self->send_exit(sup, caf::exit_reason::user_shutdown);
    return wait_down(sup);
  }

  caf::actor_system_config cfg_;
  caf::actor_system sys{with_troupe_types(cfg_)};
  caf::scoped_actor self{sys};
  std::shared_ptr<event_log> events = std::make_shared<event_log>();
  std::shared_ptr<directory> names = std::make_shared<directory>();

private:
  std::vector<caf::actor> supervisors_;
  std::vector<caf::actor> others_;
};

class Supervisor : public actor_fixture {};
class Directory : public actor_fixture {};

using strings = std::vector<std::string>;

// A crashed permanent child comes back, its name resolves to the new incarnation, and the query reports it.
TEST_F(Supervisor, CrashedChildIsRestartedAndNameResolvesToNewIncarnation) {
  auto sup = start(config({worker("a")}));
  ASSERT_EQ(events->next(0, 1), strings{"start:a"});
  auto first = child(sup, "a").handle;
  ASSERT_TRUE(first);
  ASSERT_EQ(names->get("a"), first);

  crash(sup, "a");
  EXPECT_EQ(events->next(1, 2), (strings{"stop:a", "start:a"}));
  auto info = child(sup, "a"); // also orders us after the restart, so the directory is up to date
  EXPECT_EQ(info.state, "running");
  EXPECT_EQ(info.restarts, 1u);
  EXPECT_NE(info.last_error.find("boom"), std::string::npos) << info.last_error;
  EXPECT_NE(info.last_error_unix_ms, 0);
  ASSERT_TRUE(info.handle);
  EXPECT_NE(info.handle, first);
  EXPECT_EQ(names->get("a"), info.handle);

  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
  EXPECT_EQ(events->snapshot(), (strings{"start:a", "stop:a", "start:a", "stop:a"}));
}

// A child killed with exit_reason::kill (which cannot be trapped) is restarted; the supervisor survives it.
TEST_F(Supervisor, KilledChildIsRestartedAndTheSupervisorSurvives) {
  auto sup = start(config({worker("a"), worker("b")}));
  ASSERT_EQ(events->next(0, 2), (strings{"start:a", "start:b"}));
  auto first = child(sup, "a").handle;
  caf::anon_send_exit(first, caf::exit_reason::kill);
  EXPECT_EQ(events->next(2, 2), (strings{"stop:a", "start:a"}));
  auto info = wait_child(sup, "a", [&](const child_info& c) { return c.handle && c.handle != first; });
  EXPECT_EQ(info.restarts, 1u);
  EXPECT_EQ(child(sup, "b").restarts, 0u);
  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
}

// A supervisor that is itself killed takes its children with it: nothing it started outlives it.
TEST_F(Supervisor, KilledSupervisorTakesItsChildrenDown) {
  auto sup = start(config({worker("a"), worker("b")}));
  ASSERT_EQ(events->next(0, 2), (strings{"start:a", "start:b"}));
  auto a = child(sup, "a").handle;
  auto b = child(sup, "b").handle;
  self->monitor(a);
  self->monitor(b);
  caf::anon_send_exit(sup, caf::exit_reason::kill);
  size_t children_down = 0;
  bool sup_down = false;
  bool timed_out = false;
  self->receive_while([&] { return (children_down < 2 || !sup_down) && !timed_out; })(
    [&](caf::down_msg& msg) {
      if (msg.source == sup.address())
        sup_down = true;
      else if (msg.source == a.address() || msg.source == b.address())
        ++children_down;
    },
    caf::after(wait_limit) >> [&] { timed_out = true; });
  EXPECT_TRUE(sup_down);
  EXPECT_EQ(children_down, 2u);
}

// With max_restarts = 2, the third crash in the window stops every child and fails the supervisor.
TEST_F(Supervisor, ExceedingRestartIntensityEscalates) {
  auto cfg = config({worker("a"), worker("b")});
  cfg.max_restarts = 2;
  auto sup = start(std::move(cfg));
  ASSERT_EQ(events->next(0, 2), (strings{"start:a", "start:b"}));

  for (uint64_t restarts = 1; restarts <= 2; ++restarts) {
    auto mark = events->size();
    crash(sup, "a");
    ASSERT_EQ(events->next(mark, 2), (strings{"stop:a", "start:a"}));
    ASSERT_EQ(child(sup, "a").restarts, restarts); // still alive after `restarts` restarts
  }
  auto mark = events->size();
  crash(sup, "a");
  auto reason = wait_down(sup);
  EXPECT_EQ(service_code(reason), service_error::internal);
  EXPECT_NE(service_message(reason).find("restart intensity exceeded"), std::string::npos) << sys.render(reason);
  EXPECT_EQ(events->next(mark, 2), (strings{"stop:a", "stop:b"}));
  EXPECT_EQ(events->size(), mark + 2); // nothing was restarted
  EXPECT_TRUE(names->snapshot().empty());
}

// Restarts older than the window (by the injected clock) are forgotten; without advancing it they count.
TEST_F(Supervisor, RestartsOutsideTheWindowDoNotCount) {
  auto now_ms = std::make_shared<std::atomic<int64_t>>(0);
  auto cfg = config({worker("a")});
  cfg.max_restarts = 1;
  cfg.restart_window = 1000ms;
  cfg.clock = [now_ms] { return std::chrono::steady_clock::time_point{} + std::chrono::milliseconds{*now_ms}; };
  auto sup = start(std::move(cfg));
  ASSERT_EQ(events->next(0, 1), strings{"start:a"});

  for (uint64_t restarts = 1; restarts <= 3; ++restarts) {
    auto mark = events->size();
    crash(sup, "a");
    ASSERT_EQ(events->next(mark, 2), (strings{"stop:a", "start:a"}));
    ASSERT_EQ(child(sup, "a").restarts, restarts);
    *now_ms += 1001;
  }
  // Control: a second crash within the window does escalate.
  auto mark = events->size();
  crash(sup, "a");
  ASSERT_EQ(events->next(mark, 2), (strings{"stop:a", "start:a"}));
  ASSERT_EQ(child(sup, "a").restarts, 4u);
  crash(sup, "a");
  EXPECT_EQ(service_code(wait_down(sup)), service_error::internal);
}

// one_for_all: crashing b stops the others in reverse start order, then starts a, b, c in order.
TEST_F(Supervisor, OneForAllRestartsEverySibling) {
  auto sup = start(config({worker("a"), worker("b"), worker("c")}, supervision_strategy::one_for_all));
  ASSERT_EQ(events->next(0, 3), (strings{"start:a", "start:b", "start:c"}));
  crash(sup, "b");
  EXPECT_EQ(events->next(3, 6), (strings{"stop:b", "stop:c", "stop:a", "start:a", "start:b", "start:c"}));
  for (auto& info : children(sup)) {
    EXPECT_EQ(info.state, "running") << info.name;
    EXPECT_EQ(info.restarts, 1u) << info.name;
  }
  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
  EXPECT_EQ(events->next(9, 3), (strings{"stop:c", "stop:b", "stop:a"}));
  EXPECT_EQ(events->size(), 12u);
}

// rest_for_one: crashing b restarts b and c (stopping c first); a keeps its incarnation.
TEST_F(Supervisor, RestForOneRestartsOnlyLaterSiblings) {
  auto sup = start(config({worker("a"), worker("b"), worker("c")}, supervision_strategy::rest_for_one));
  ASSERT_EQ(events->next(0, 3), (strings{"start:a", "start:b", "start:c"}));
  auto a = child(sup, "a").handle;
  crash(sup, "b");
  EXPECT_EQ(events->next(3, 4), (strings{"stop:b", "stop:c", "start:b", "start:c"}));
  auto info = child(sup, "a");
  EXPECT_EQ(info.handle, a);
  EXPECT_EQ(info.restarts, 0u);
  EXPECT_EQ(child(sup, "b").restarts, 1u);
  EXPECT_EQ(child(sup, "c").restarts, 1u);
  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
  EXPECT_EQ(events->next(7, 3), (strings{"stop:c", "stop:b", "stop:a"}));
}

// An exit request from the parent stops c, b, a in that order, then the supervisor exits with that reason.
TEST_F(Supervisor, ShutdownStopsChildrenInReverseStartOrder) {
  auto sup = start(config({worker("a"), worker("b"), worker("c")}));
  ASSERT_EQ(events->next(0, 3), (strings{"start:a", "start:b", "start:c"}));
  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
  EXPECT_EQ(events->snapshot(), (strings{"start:a", "start:b", "start:c", "stop:c", "stop:b", "stop:a"}));
  EXPECT_TRUE(names->snapshot().empty());
}

// A transient child that leaves normally stays stopped; its sibling and the supervisor carry on.
TEST_F(Supervisor, TransientChildIsNotRestartedAfterNormalExit) {
  auto sup = start(config({worker("a", restart_type::transient), worker("b")}));
  ASSERT_EQ(events->next(0, 2), (strings{"start:a", "start:b"}));
  auto b = child(sup, "b").handle;
  self->send(child(sup, "a").handle, leave_atom::value);
  auto info = wait_child(sup, "a", [](const child_info& x) { return x.state != "running"; });
  EXPECT_EQ(info.state, "stopped");
  EXPECT_EQ(info.restarts, 0u);
  EXPECT_EQ(info.last_error, "");
  EXPECT_FALSE(info.handle);
  EXPECT_EQ(names->get("a"), std::nullopt);
  auto sibling = child(sup, "b");
  EXPECT_EQ(sibling.state, "running");
  EXPECT_EQ(sibling.handle, b);
  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
  EXPECT_EQ(events->snapshot(), (strings{"start:a", "start:b", "stop:a", "stop:b"}));
}

// A transient child that crashes is restarted.
TEST_F(Supervisor, TransientChildIsRestartedAfterCrash) {
  auto sup = start(config({worker("a", restart_type::transient)}));
  ASSERT_EQ(events->next(0, 1), strings{"start:a"});
  crash(sup, "a");
  EXPECT_EQ(events->next(1, 2), (strings{"stop:a", "start:a"}));
  auto info = child(sup, "a");
  EXPECT_EQ(info.state, "running");
  EXPECT_EQ(info.restarts, 1u);
  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
}

// A temporary child that crashes stays stopped (with its error recorded); the supervisor carries on.
TEST_F(Supervisor, TemporaryChildIsNeverRestarted) {
  auto sup = start(config({worker("a", restart_type::temporary), worker("b")}));
  ASSERT_EQ(events->next(0, 2), (strings{"start:a", "start:b"}));
  crash(sup, "a");
  auto info = wait_child(sup, "a", [](const child_info& x) { return x.state != "running"; });
  EXPECT_EQ(info.state, "stopped");
  EXPECT_EQ(info.restarts, 0u);
  EXPECT_NE(info.last_error.find("boom"), std::string::npos) << info.last_error;
  EXPECT_EQ(names->get("a"), std::nullopt);
  EXPECT_EQ(child(sup, "b").state, "running");
  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
  EXPECT_EQ(events->snapshot(), (strings{"start:a", "start:b", "stop:a", "stop:b"}));
}

// A child that ignores the exit request is killed after its shutdown timeout, and the shutdown completes.
TEST_F(Supervisor, StuckChildIsKilledAfterShutdownTimeout) {
  auto stuck = worker("s", restart_type::permanent, true);
  stuck.shutdown_timeout = 50ms;
  auto sup = start(config({worker("a"), std::move(stuck)}));
  ASSERT_EQ(events->next(0, 2), (strings{"start:a", "start:s"}));
  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
  EXPECT_EQ(events->snapshot(), (strings{"start:a", "start:s", "ignored:s", "stop:s", "stop:a"}));
}

// A child that fails its first start stops the children started before it and fails the supervisor.
TEST_F(Supervisor, FailedFirstStartFailsTheSupervisor) {
  child_spec broken{"b", [](caf::actor_system&) { return caf::actor{}; }};
  auto sup = start(config({worker("a"), std::move(broken), worker("c")}));
  auto reason = wait_down(sup);
  EXPECT_EQ(service_code(reason), service_error::internal);
  EXPECT_NE(service_message(reason).find("b failed to start"), std::string::npos) << sys.render(reason);
  EXPECT_EQ(events->snapshot(), (strings{"start:a", "stop:a"}));
  EXPECT_TRUE(names->snapshot().empty());
}

// A factory that throws counts as a failed start too, also when it is the very first child.
TEST_F(Supervisor, ThrowingFactoryFailsTheSupervisor) {
  child_spec broken{"x", [](caf::actor_system&) -> caf::actor { throw std::runtime_error("no database"); }};
  auto sup = start(config({std::move(broken), worker("a")}));
  auto reason = wait_down(sup);
  EXPECT_EQ(service_code(reason), service_error::internal);
  EXPECT_TRUE(events->snapshot().empty());
}

// A nested supervisor that gives up (max_restarts = 0) is restarted by its parent, with fresh children.
TEST_F(Supervisor, NestedSupervisorRestartsAsAChild) {
  auto inner = config({worker("w")});
  inner.name = "inner";
  inner.max_restarts = 0;
  auto sup = start(config({supervisor_child(std::move(inner))}));
  ASSERT_EQ(events->next(0, 1), strings{"start:w"});
  auto first_inner = child(sup, "inner");
  EXPECT_EQ(first_inner.kind, "supervisor");
  ASSERT_TRUE(first_inner.handle);

  crash(first_inner.handle, "w");
  EXPECT_EQ(events->next(1, 2), (strings{"stop:w", "start:w"}));
  auto info = child(sup, "inner");
  EXPECT_EQ(info.state, "running");
  EXPECT_EQ(info.restarts, 1u);
  EXPECT_NE(info.last_error.find("restart intensity exceeded"), std::string::npos) << info.last_error;
  ASSERT_TRUE(info.handle);
  EXPECT_NE(info.handle, first_inner.handle);
  auto w = child(info.handle, "w");
  EXPECT_EQ(w.state, "running");
  EXPECT_EQ(w.restarts, 0u); // a fresh supervisor, a fresh count
  EXPECT_EQ(names->get("w"), w.handle);

  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
  EXPECT_EQ(events->next(3, 1), strings{"stop:w"});
}

// Each restart increments troupe_actor_restarts_total{supervisor,child} for the restarted child only.
TEST_F(Supervisor, RestartsAreCountedInMetrics) {
  auto metrics = std::make_shared<metrics_registry>();
  auto cfg = config({worker("a"), worker("b")});
  cfg.metrics = metrics;
  auto sup = start(std::move(cfg));
  ASSERT_EQ(events->next(0, 2), (strings{"start:a", "start:b"}));
  for (int i = 0; i < 2; ++i) {
    auto mark = events->size();
    crash(sup, "a");
    ASSERT_EQ(events->next(mark, 2), (strings{"stop:a", "start:a"}));
  }
  ASSERT_EQ(child(sup, "a").restarts, 2u); // orders us after the second restart and its metric update
  auto& restarts = metrics->counter("troupe_actor_restarts_total", "", {"supervisor", "child"});
  EXPECT_EQ(restarts.value({"top", "a"}), 2u);
  EXPECT_EQ(restarts.value({"top", "b"}), 0u);
  EXPECT_NE(metrics->render().find("troupe_actor_restarts_total{supervisor=\"top\",child=\"a\"} 2\n"),
            std::string::npos)
    << metrics->render();
  EXPECT_EQ(shut_down(sup), caf::exit_reason::user_shutdown);
}

// erase() removes a name only while it still points at the given incarnation; snapshot() sorts by name.
TEST_F(Directory, EraseKeepsNewerIncarnation) {
  directory dir;
  auto old_incarnation = idle_actor();
  auto new_incarnation = idle_actor();
  auto other = idle_actor();
  dir.put("x", old_incarnation);
  dir.put("x", new_incarnation);
  dir.put("a", other);
  dir.erase("x", old_incarnation); // the old incarnation's late stop
  EXPECT_EQ(dir.get("x"), new_incarnation);
  auto all = dir.snapshot();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, "a");
  EXPECT_EQ(all[1].first, "x");
  dir.erase("x", new_incarnation);
  EXPECT_EQ(dir.get("x"), std::nullopt);
  EXPECT_EQ(dir.get("a"), other);
  EXPECT_EQ(dir.get("never"), std::nullopt);
}

} // namespace
