// The membership table through membership_store on a scratch PostgreSQL: epochs, fencing of a stale incarnation,
// silence by the database's clock, and purging.

#include "tests/persistence/scratch_database.hpp"

#include "persistence/cluster_store.hpp"
#include "persistence/migrations.hpp"

#include <gtest/gtest.h>

#include <variant>

using namespace troupe;
using troupe::testing::scratch_database;
using namespace std::chrono_literals;

namespace {

class MembershipStore : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
    auto migrated = migrate_database(db_.url());
    ASSERT_FALSE(std::holds_alternative<std::string>(migrated));
    store_ = make_membership_store(db_.url());
  }

  static member_row node(const std::string& id, uint16_t port) {
    member_row m;
    m.node_id = id;
    m.address = "127.0.0.1";
    m.port = port;
    m.http_url = "http://127.0.0.1:" + std::to_string(port + 1);
    return m;
  }

  const member_row* find(const std::vector<member_row>& rows, const std::string& id) {
    for (const auto& r : rows)
      if (r.node_id == id)
        return &r;
    return nullptr;
  }

  scratch_database db_;
  std::unique_ptr<membership_store> store_;
};

} // namespace

// Each start of a node id gets the next epoch; the previous incarnation's heartbeat is refused from then on.
TEST_F(MembershipStore, EveryJoinIsANewEpochAndFencesTheOldOne) {
  EXPECT_EQ(store_->join(node("a", 4000), "joining", 5000ms), std::optional<int64_t>{1});
  EXPECT_EQ(store_->heartbeat("a", 1, "up", 3), std::optional<std::string>{"up"});
  auto rows = store_->members();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, "up");
  EXPECT_EQ(rows[0].sessions, 3);
  EXPECT_EQ(rows[0].port, 4000);
  EXPECT_EQ(rows[0].http_url, "http://127.0.0.1:4001");
  EXPECT_LT(rows[0].silent_ms, 5000);

  EXPECT_EQ(store_->join(node("a", 4100), "joining", 5000ms), std::optional<int64_t>{2}); // the same process
  EXPECT_EQ(store_->heartbeat("a", 1, "up", 0), std::nullopt); // the old incarnation is fenced
  EXPECT_EQ(store_->heartbeat("a", 2, "up", 0), std::optional<std::string>{"up"});
  EXPECT_EQ(store_->members()[0].port, 4100);
  EXPECT_FALSE(store_->set_state("a", 1, "down"));
  EXPECT_TRUE(store_->set_state("a", 2, "leaving"));
  EXPECT_EQ(store_->members()[0].state, "leaving");
}

// A member silent longer than the failure time (by the database's clock) is marked down, once, but never by itself
// (the node judging was silent too: it was frozen, and the others judge it); its heartbeat is refused then, so it
// must join again; rows down long enough are purged.
TEST_F(MembershipStore, SilentMembersGoDownAndArePurged) {
  store_->join(node("a", 4000), "up", 5000ms);
  store_->join(node("b", 4002), "up", 5000ms);
  db_.execute("UPDATE cluster_members SET last_seen_at = now() - interval '10 seconds'");
  EXPECT_EQ(store_->mark_silent_down(5000ms, "a"), std::vector<std::string>{"b"});
  EXPECT_TRUE(store_->mark_silent_down(5000ms, "a").empty());
  auto rows = store_->members();
  ASSERT_NE(find(rows, "b"), nullptr);
  EXPECT_EQ(find(rows, "b")->state, "down");
  EXPECT_GE(find(rows, "b")->silent_ms, 10000);
  EXPECT_EQ(find(rows, "a")->state, "up");
  EXPECT_EQ(store_->heartbeat("b", 1, "up", 0), std::nullopt);
  EXPECT_EQ(store_->heartbeat("a", 1, "up", 0), std::optional<std::string>{"up"});

  EXPECT_EQ(store_->purge_down(60000ms), 0);
  db_.execute("UPDATE cluster_members SET last_seen_at = now() - interval '2 minutes' WHERE node_id = 'b'");
  EXPECT_EQ(store_->purge_down(60000ms), 1);
  rows = store_->members();
  EXPECT_EQ(rows.size(), 1u);
  EXPECT_EQ(store_->join(node("b", 4002), "joining", 5000ms), std::optional<int64_t>{1}); // a purged id starts over
}

// A drain asked for (troupe cluster drain) turns the row to leaving, and the node's heartbeats do not undo it.
TEST_F(MembershipStore, ADrainRequestSticksThroughHeartbeats) {
  store_->join(node("a", 4000), "up", 5000ms);
  EXPECT_TRUE(store_->request_drain("a"));
  EXPECT_EQ(store_->heartbeat("a", 1, "up", 0), std::optional<std::string>{"leaving"});
  EXPECT_EQ(store_->members()[0].state, "leaving");
  EXPECT_FALSE(store_->request_drain("a")); // already leaving
  EXPECT_FALSE(store_->request_drain("nobody"));
}

// Another process with the same node id is refused while the holder lives, and admitted once it is silent or down.
TEST_F(MembershipStore, ALiveNodeIdIsNotTakenByAnotherProcess) {
  auto first = node("a", 4000);
  first.instance = "first";
  auto second = node("a", 4200);
  second.instance = "second";
  EXPECT_EQ(store_->join(first, "up", 5000ms), std::optional<int64_t>{1});
  EXPECT_EQ(store_->join(second, "joining", 5000ms), std::nullopt);
  EXPECT_EQ(store_->members()[0].port, 4000); // untouched
  db_.execute("UPDATE cluster_members SET last_seen_at = now() - interval '6 seconds'");
  EXPECT_EQ(store_->join(second, "joining", 5000ms), std::optional<int64_t>{2});
  EXPECT_EQ(store_->heartbeat("a", 1, "up", 0), std::nullopt); // the first is fenced
  EXPECT_TRUE(store_->set_state("a", 2, "down"));
  EXPECT_EQ(store_->join(first, "joining", 5000ms), std::optional<int64_t>{3}); // down: free again
}

// A database that cannot be reached is a one-line error, not a crash; the store reconnects once it is back.
TEST_F(MembershipStore, UnreachableDatabaseIsAnError) {
  auto unreachable = make_membership_store("postgresql://postgres@127.0.0.1:1/troupe", 500ms);
  EXPECT_THROW(unreachable->members(), std::runtime_error);
}
