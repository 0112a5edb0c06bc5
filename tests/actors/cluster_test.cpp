// Placement without a network: rendezvous hashing (even spread, minimal movement), when a user counts as moved
// here from a member that is gone (its buckets start empty), and where a user's messages go.

#include "actors/cluster.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace troupe;

namespace {

std::shared_ptr<cluster_view> view_of(const std::string& self, std::vector<std::string> placed) {
  auto view = std::make_shared<cluster_view>();
  view->self = self;
  view->epoch = 1;
  std::sort(placed.begin(), placed.end());
  for (const auto& id : placed) {
    cluster_member m;
    m.node_id = id;
    m.state = "up";
    m.placed = true;
    view->placed_index.push_back(view->members.size());
    view->members.push_back(m);
  }
  view->placed = placed;
  return view;
}

std::string owner(const std::vector<std::string>& nodes, const std::string& key) {
  auto pick = rendezvous_pick(nodes, key);
  return pick < 0 ? "" : nodes[static_cast<size_t>(pick)];
}

} // namespace

// Each of three nodes owns about a third of 30000 users; a fourth takes about a quarter, only from the others (no
// user moves between the three), and the choice does not depend on the order the nodes are listed in.
TEST(Placement, RendezvousSpreadsEvenlyAndAJoinMovesOnlyToTheNewNode) {
  std::vector<std::string> three{"n1", "n2", "n3"}, four{"n1", "n2", "n3", "n4"}, shuffled{"n3", "n1", "n2"};
  std::map<std::string, int> owned;
  int moved = 0, moved_elsewhere = 0;
  constexpr int users = 30000;
  for (int i = 0; i < users; ++i) {
    auto user = "user-" + std::to_string(i);
    auto before = owner(three, user);
    ++owned[before];
    EXPECT_EQ(owner(shuffled, user), before);
    auto after = owner(four, user);
    if (after != before) {
      ++moved;
      moved_elsewhere += after != "n4";
    }
  }
  for (const auto& [node, n] : owned) {
    EXPECT_GT(n, users * 30 / 100) << node;
    EXPECT_LT(n, users * 37 / 100) << node;
  }
  EXPECT_GT(moved, users * 22 / 100);
  EXPECT_LT(moved, users * 28 / 100);
  EXPECT_EQ(moved_elsewhere, 0);
  EXPECT_EQ(rendezvous_pick({}, "anyone"), -1);
}

// A user moved here from a member that died counts as moved (its buckets start empty at that moment); one moved by
// a join (its previous owner still placed, handing over) does not; neither does one that was always here.
TEST(Placement, MovedHereOnlyFromAMemberThatIsGone) {
  cluster_state state{true, "b"};
  state.set_initial_placement({"a"}); // b joins a running cluster of one
  state.publish(view_of("b", {"a", "b"}), 100.0);
  std::string joined_here, stays_with_a;
  for (int i = 0; joined_here.empty() || stays_with_a.empty(); ++i) {
    auto user = "u" + std::to_string(i);
    (owner({"a", "b"}, user) == "b" ? joined_here : stays_with_a) = user;
  }
  EXPECT_EQ(state.moved_here_at(joined_here), std::nullopt); // a hands it over
  EXPECT_EQ(state.moved_here_at(stays_with_a), std::nullopt); // not b's

  // a dies: its users move to b with nothing handed over.
  state.publish(view_of("b", {"b"}), 200.0);
  EXPECT_EQ(state.moved_here_at(stays_with_a), std::optional<double>{200.0});
  EXPECT_EQ(state.moved_here_at(joined_here), std::nullopt);
  // A change that does not move placement records nothing.
  state.publish(view_of("b", {"b"}), 300.0);
  EXPECT_EQ(state.moved_here_at(stays_with_a), std::optional<double>{200.0});
  EXPECT_EQ(state.placement_changes(), 2u);
}

// A node alone at its join serves every user with nothing moved.
TEST(Placement, AFirstNodeMovesNobody) {
  cluster_state state{true, "a"};
  state.set_initial_placement({"a"});
  state.publish(view_of("a", {"a"}), 10.0);
  EXPECT_EQ(state.moved_here_at("anyone"), std::nullopt);
}

// Where a user's messages go: here on a single node; nowhere (503) before this node has a view; here when this node
// owns the user; nowhere while the owner is placed but not connected.
TEST(Placement, RouteUser) {
  EXPECT_EQ(route_user(nullptr, "u").kind, session_route::local);
  cluster_state single{false, "solo"};
  EXPECT_EQ(route_user(&single, "u").kind, session_route::local);

  cluster_state state{true, "a"};
  EXPECT_EQ(route_user(&state, "u").kind, session_route::unavailable);
  state.set_initial_placement({"a"});
  state.publish(view_of("a", {"a", "b"}), 1.0);
  EXPECT_EQ(route_user(&state, "u").kind, session_route::unavailable); // no lease: it may have been declared down
  state.extend_lease(std::chrono::steady_clock::now() + std::chrono::hours{1});
  std::string mine, theirs;
  for (int i = 0; mine.empty() || theirs.empty(); ++i) {
    auto user = "u" + std::to_string(i);
    (owner({"a", "b"}, user) == "a" ? mine : theirs) = user;
  }
  auto here = route_user(&state, mine);
  EXPECT_EQ(here.kind, session_route::local);
  EXPECT_EQ(here.owner, "a");
  auto there = route_user(&state, theirs);
  EXPECT_EQ(there.kind, session_route::unavailable); // b has no endpoint in this view
  EXPECT_EQ(there.owner, "b");
}

// The node id defaults to <hostname>-<port>; a wildcard host (others could not connect to it), plain BASP off
// loopback and half-configured TLS are refused.
TEST(Placement, SettingsChecks) {
  config::cluster_settings s{};
  s.enabled = true;
  s.host = "127.0.0.1";
  s.node_id = "";
  s.port = 0;
  auto id = resolve_node_id(s, 8080);
  EXPECT_EQ(id.substr(id.size() - 5), "-8080");
  s.port = 7000;
  id = resolve_node_id(s, 8080);
  EXPECT_EQ(id.substr(id.size() - 5), "-7000");
  s.node_id = "n1";
  EXPECT_EQ(resolve_node_id(s, 8080), "n1");

  EXPECT_EQ(cluster_settings_problem(s), "");
  s.host = "0.0.0.0";
  EXPECT_NE(cluster_settings_problem(s).find("wildcard"), std::string::npos);
  s.host = "10.1.2.3";
  EXPECT_NE(cluster_settings_problem(s).find("cluster.insecure"), std::string::npos);
  s.insecure = true;
  EXPECT_EQ(cluster_settings_problem(s), "");
  s.insecure = false;
  s.tls_cert = "cert.pem";
  EXPECT_NE(cluster_settings_problem(s).find("go together"), std::string::npos);
  s.tls_key = "key.pem";
  s.tls_ca = "ca.pem";
  EXPECT_EQ(cluster_settings_problem(s), "");
}
