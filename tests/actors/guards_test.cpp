// The guards of actors/guards.hpp: a count taken by a holder is given back exactly once, by its destruction, its
// release, or (for hold_while_alive) its actor's end however it comes, and a move hands it over without giving it back.

#include "actors/guards.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <thread>

using namespace troupe;

namespace {

struct counters {
  std::atomic<int64_t> live{0};
};

} // namespace

// A holder counts in when made and out when destroyed; release() counts out at once and only once.
TEST(CountHolder, CountsOutOnDestructionAndReleaseOnce) {
  std::atomic<int64_t> count{0};
  {
    count_holder held{count};
    EXPECT_TRUE(held.held());
    EXPECT_EQ(count.load(), 1);
  }
  EXPECT_EQ(count.load(), 0);
  count_holder early{count};
  early.release();
  early.release();
  EXPECT_FALSE(early.held());
  EXPECT_EQ(count.load(), 0);
}

// A move hands the unit over: the moved-from holder gives nothing back, the new owner gives it back once.
TEST(CountHolder, MoveHandsTheCountOver) {
  std::atomic<int64_t> count{0};
  count_holder first{count};
  {
    count_holder second{std::move(first)};
    EXPECT_FALSE(first.held());
    EXPECT_EQ(count.load(), 1);
    first = count_holder{}; // assigning nothing to a moved-from holder gives nothing back
    EXPECT_EQ(count.load(), 1);
  }
  EXPECT_EQ(count.load(), 0);
}

// Move-assigning over a holder gives its own unit back first: two holders, then one.
TEST(CountHolder, MoveAssignmentGivesTheOverwrittenUnitBack) {
  std::atomic<int64_t> count{0};
  count_holder a{count};
  count_holder b{count};
  EXPECT_EQ(count.load(), 2);
  a = std::move(b);
  EXPECT_EQ(count.load(), 1);
  a = count_holder{};
  EXPECT_EQ(count.load(), 0);
}

// hold_count keeps the counters struct alive while it holds a unit of one of its members, and a vector of holders
// (an actor's state) gives every unit back when it goes.
TEST(CountHolder, HoldCountKeepsItsOwnerAlive) {
  auto owner = std::make_shared<counters>();
  std::weak_ptr<counters> weak = owner;
  std::vector<count_holder> held;
  for (int i = 0; i < 3; ++i)
    held.push_back(hold_count(owner, &counters::live));
  EXPECT_EQ(owner->live.load(), 3);
  auto* live = &owner->live;
  owner.reset();
  ASSERT_FALSE(weak.expired());
  EXPECT_EQ(live->load(), 3);
  held.pop_back();
  EXPECT_EQ(live->load(), 2);
  held.clear();
  EXPECT_TRUE(weak.expired());
  EXPECT_FALSE(hold_count(std::shared_ptr<counters>{}, &counters::live).held());
}

// An actor holding a unit gives it back when it ends, whether it quits, is killed (exit_reason::kill cannot be
// trapped) or was already dead when the holder was tied to it.
TEST(CountHolder, HoldWhileAliveEndsWithTheActor) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto count = std::make_shared<std::atomic<int64_t>>(0);
  auto idle = [](caf::event_based_actor*) -> caf::behavior { return {[](int x) { return x; }}; };
  auto quitting = sys.spawn(idle);
  auto killed = sys.spawn(idle);
  hold_while_alive(quitting, count_holder{count});
  hold_while_alive(killed, count_holder{count});
  EXPECT_EQ(count->load(), 2);
  caf::scoped_actor self{sys};
  self->monitor(quitting);
  self->monitor(killed);
  self->send_exit(quitting, caf::exit_reason::user_shutdown);
  self->send_exit(killed, caf::exit_reason::kill);
  for (int i = 0; i < 2; ++i)
    self->receive([](caf::down_msg&) {});
  // The holder is released by the actor's own clean-up, right after it notified its monitors (attachables run
  // newest first): a bounded wait for that step, not for time.
  for (int i = 0; i < 1000000 && count->load() != 0; ++i)
    std::this_thread::yield();
  EXPECT_EQ(count->load(), 0);
  // Already dead: released at once.
  hold_while_alive(killed, count_holder{count});
  EXPECT_EQ(count->load(), 0);
  hold_while_alive(caf::actor{}, count_holder{count});
  EXPECT_EQ(count->load(), 0);
}
