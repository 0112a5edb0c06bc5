// The cluster on real processes: several troupe nodes on one (scratch) PostgreSQL, joined over BASP on loopback.
// Each test has its own database, so its nodes form a cluster of their own.

#include "tests/integration/harness.hpp"
#include "tests/integration/upload_client.hpp" // temp_dir
#include "actors/cluster.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <csignal>
#include <atomic>
#include <future>
#include <thread>
#include <map>
#include <set>

using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

constexpr int64_t heartbeat_ms = 200;
constexpr int64_t failure_ms = 2000;
// limits.default_burst of the tests about limits: /api/me's per-user policy (every authenticated route's, the admin's
// GET /api/cluster too); one token a minute refills it.
constexpr int burst = 5;

class Cluster : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  }

  // The nodes stop (and are checked) before the files they read go (files_, declared before them).
  void TearDown() override {
    outsiders_.clear();
    nodes_.clear();
  }

  /// Starts node `id` of this test's cluster (with `extra` arguments) and, when `joins`, waits until it has joined.
  troupe_process& start(const std::string& id, int user_burst, std::vector<std::string> extra = {},
                        bool joins = true) {
    troupe_process::options opts;
    opts.args = {"--set", "cluster.enabled=true", "--set", "cluster.node_id=" + id,
                 "--set", "cluster.heartbeat_ms=" + std::to_string(heartbeat_ms),
                 "--set", "cluster.failure_ms=" + std::to_string(failure_ms),
                 "--set", "limits.default_burst=" + std::to_string(user_burst),
                 "--set", "limits.default_per_minute=1", "--set", "limits.auth_burst=100",
                 "--set", "http.threads=1", "--set", "actors.threads=2"};
    opts.args.insert(opts.args.end(), every_node_.begin(), every_node_.end());
    opts.args.insert(opts.args.end(), extra.begin(), extra.end());
    opts.env = env_;
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    auto node = std::make_unique<troupe_process>(opts);
    auto& started = *node;
    if (!joins) {
      outsiders_.push_back(std::move(node));
      return started;
    }
    nodes_.push_back(std::move(node));
    EXPECT_TRUE(started.wait_for_output(R"("msg":"cluster joined")", 10s)) << started.output();
    ids_.push_back(id);
    return started;
  }

  /// Registers `email` through `node` and logs in; returns {user id, access token}. admin@example.com is made an
  /// admin before its first authenticated request.
  std::pair<std::string, std::string> user(const troupe_process& node, const std::string& email) {
    auto credentials = R"({"email":")" + email + R"(","password":"correct horse battery"})";
    auto reg = http({"POST", node.url("/api/auth/register"), credentials, {"Content-Type: application/json"}});
    EXPECT_EQ(reg.status, 201) << reg.body;
    if (email == "admin@example.com")
      db_.execute("UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'");
    auto login = http({"POST", node.url("/api/auth/login"), credentials, {"Content-Type: application/json"}});
    EXPECT_EQ(login.status, 200) << login.body;
    return {json_string(reg, "user_id"), json_string(login, "access_token")};
  }

  static http_result get(const troupe_process& node, const std::string& path, const std::string& token) {
    return http({"GET", node.url(path), "", {"Authorization: Bearer " + token}, 10000});
  }

  /// The members `node` lists in GET /api/cluster with `state` (and, for "up", placed: counted by placement).
  std::set<std::string> listed(const troupe_process& node, const std::string& state) {
    std::set<std::string> ids;
    auto res = get(node, "/api/cluster", admin_);
    EXPECT_EQ(res.status, 200) << res.body;
    auto doc = parse_json(res.body);
    if (doc.HasParseError() || !doc.HasMember("members"))
      return ids;
    for (const auto& m : doc["members"].GetArray())
      if (m["state"].GetString() == state && (state != "up" || m["placed"].GetBool()))
        ids.insert(m["node_id"].GetString());
    return ids;
  }

  /// A sample of a node's /metrics, e.g. `troupe_cluster_placed_members`; -1 when absent. (Polling the admin's
  /// GET /api/cluster would spend the admin's rate limit.)
  static double metric(const troupe_process& node, const std::string& series) {
    auto body = http_get(node.url("/metrics")).body;
    auto at = body.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(body.substr(at + series.size() + 2));
  }

  /// Waits until every node in `nodes` places `count` members; how long it took, or nullopt after `timeout`.
  std::optional<std::chrono::milliseconds> await_placed(const std::vector<troupe_process*>& nodes, size_t count,
                                                        std::chrono::milliseconds timeout) {
    auto start = clock_type::now();
    while (clock_type::now() - start < timeout) {
      bool all = true;
      for (auto* node : nodes)
        all = all && metric(*node, "troupe_cluster_placed_members") == static_cast<double>(count);
      if (all)
        return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start);
      std::this_thread::sleep_for(50ms);
    }
    return std::nullopt;
  }

  std::string owner_of(const troupe_process& node, const std::string& user_id) {
    auto res = get(node, "/api/cluster/owner/" + user_id, admin_);
    EXPECT_EQ(res.status, 200) << res.body;
    return json_string(res, "owner");
  }

  /// The owner of `user_id` among `ids` by the cluster's own placement (rendezvous hashing).
  static std::string placed_owner(std::vector<std::string> ids, const std::string& user_id) {
    std::sort(ids.begin(), ids.end());
    auto pick = troupe::rendezvous_pick(ids, user_id);
    return pick < 0 ? "" : ids[static_cast<size_t>(pick)];
  }

  /// Three nodes placing each other (within 10 s), and an admin token.
  void three_nodes(int user_burst = burst) {
    start(prefix_ + "a", user_burst);
    start(prefix_ + "b", user_burst);
    start(prefix_ + "c", user_burst);
    std::tie(admin_id_, admin_) = user(*nodes_[0], "admin@example.com");
    auto took = await_placed(all(), 3, 10s);
    ASSERT_TRUE(took) << "three nodes did not place each other within 10 s";
  }

  std::vector<troupe_process*> all() {
    std::vector<troupe_process*> result;
    for (auto& node : nodes_)
      result.push_back(node.get());
    return result;
  }

  /// Every node of the test gets these arguments and this environment (besides its own).
  std::vector<std::string> every_node_;
  std::map<std::string, std::string> env_;

  scratch_database db_;
  temp_dir files_; // certificates of the TLS test
  std::string prefix_ = "node-";
  std::vector<std::unique_ptr<troupe_process>> nodes_;
  std::vector<std::unique_ptr<troupe_process>> outsiders_; // started, not expected to join (stopped first)
  std::vector<std::string> ids_;
  std::string admin_id_, admin_;
};

} // namespace

// Three nodes started on one database list each other up within 10 s, and each response names the node.
TEST_F(Cluster, ThreeNodesListEachOtherUp) {
  three_nodes(40);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    auto res = http_get(nodes_[i]->url("/health"));
    EXPECT_EQ(res.header("x-troupe-node"), ids_[i]);
    EXPECT_EQ(listed(*nodes_[i], "up"), std::set<std::string>(ids_.begin(), ids_.end()));
  }
  // Every node agrees on every user's owner.
  auto [user_id, token] = user(*nodes_[1], "someone@example.com");
  auto owner = placed_owner(ids_, user_id);
  for (auto& node : nodes_)
    EXPECT_EQ(owner_of(*node, user_id), owner);
}

// One user's requests spread over three nodes, concurrently: exactly the burst is admitted, as on one node (each
// node keeping its own bucket would admit three bursts).
TEST_F(Cluster, AUsersRequestsOnEveryNodeShareOneBurst) {
  three_nodes();
  auto [user_id, token] = user(*nodes_[2], "spread@example.com");
  constexpr int per_node = 4;
  std::vector<std::future<long>> answers;
  for (auto& node : nodes_)
    for (int i = 0; i < per_node; ++i)
      answers.push_back(std::async(std::launch::async, [&node, token = token] {
        return get(*node, "/api/me", token).status;
      }));
  int admitted = 0, limited = 0;
  for (auto& answer : answers) {
    auto status = answer.get();
    admitted += status == 200;
    limited += status == 429;
  }
  EXPECT_EQ(admitted, burst);
  EXPECT_EQ(limited, 3 * per_node - burst);
  // The two nodes that do not own the user asked its owner for each of their requests, and timed it.
  double remote = 0;
  for (auto& node : nodes_)
    remote += std::max(0.0, metric(*node, R"(troupe_cluster_remote_request_seconds_count{outcome="answered"})"));
  EXPECT_EQ(remote, 2 * per_node);
}

// A spend budget is one across the nodes: 60 calls spread over three nodes, all in flight at once (the mock holds
// each answer 3 s), admit exactly as many as the budget holds reservations for (a node keeping its own ledger
// would admit three times as many); the others get 402 before any upstream call, and the ledger's total stays
// within the budget once every reservation made on another node has settled at its owner.
TEST_F(Cluster, ASpendBudgetIsOneAcrossTheNodes) {
  mock_upstream_process mock;
  env_["TROUPE_UPSTREAMS"] =
    R"([{"name":"a","base_url":")" + mock.base_url() + R"(/v1","models":["mock-1"],"max_inflight":256}])";
  env_["TROUPE_PRICES"] = R"({"mock-1":{"input_per_mtok":0.15,"output_per_mtok":0.6}})";
  // Each call reserves 9 prompt tokens (36 characters) and 64 completion tokens: 39,750,000 pico-dollars. A budget of
  // 200,000,000 holds 5 of them.
  every_node_ = {"--set", "limits.generate_burst=10000", "--set", "limits.generate_per_minute=1000000",
                 "--set", "quota.free_per_day=100000", "--set", "limits.generate_max_inflight=200",
                 "--set", "quota.free_usd_per_day=0.0002"};
  three_nodes(1000);
  auto [user_id, token] = user(*nodes_[0], "budget@example.com");
  std::vector<std::future<http_result>> calls;
  for (int i = 0; i < 60; ++i)
    calls.push_back(std::async(std::launch::async, [this, i, token = token] {
      auto body = R"({"model":"mock-1","max_tokens":64,"messages":[{"role":"user","content":"[[mock latency_ms=3000]] question )"
                  + std::to_string(10 + i) + "\"}]}";
      return http({"POST", nodes_[static_cast<size_t>(i) % 3]->url("/v1/chat/completions"), body,
                   {"Authorization: Bearer " + token, "Content-Type: application/json"}, 30000});
    }));
  int ok = 0, refused = 0;
  std::string other;
  for (auto& call : calls) {
    auto res = call.get();
    ok += res.status == 200;
    refused += res.status == 402;
    if (res.status != 200 && res.status != 402 && other.empty())
      other = std::to_string(res.status) + " " + res.error + " " + res.body;
  }
  EXPECT_EQ(ok, 5) << other;
  EXPECT_EQ(refused, 55) << other;
  EXPECT_EQ(parse_json(http_get(mock.base_url() + "/mock/stats").body)["requests"].GetInt64(), ok);
  // Settled at the owner: its session has room again for what the calls did not use (a few completion tokens each).
  int64_t rows = 0, spent = 0;
  for (int i = 0; i < 1500 && rows < ok; ++i) {
    rows = std::stoll(db_.scalar("SELECT count(*) FROM usage_events"));
    spent = std::stoll(db_.scalar("SELECT coalesce((sum(cost_usd) * 1000000000000)::bigint, 0) FROM usage_events"));
    if (rows < ok)
      std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(rows, ok);
  EXPECT_LE(spent, 200000000);
  auto again = http({"POST", nodes_[1]->url("/v1/chat/completions"),
                     R"({"model":"mock-1","max_tokens":64,"messages":[{"role":"user","content":"one more"}]})",
                     {"Authorization: Bearer " + token, "Content-Type: application/json"}, 30000});
  EXPECT_EQ(again.status, 200) << again.body;
}

// An API key's own limits are one across the nodes too: 9 calls with a key allowing 2 in flight, 3 on each node and
// all held by the mock, admit exactly 2 (whichever node they came in on, the key's ledger is at the user's owner);
// the others get 429 before any upstream call. Their settlements, sent from every node with the key's id, free the
// slots: the next call passes.
TEST_F(Cluster, AKeysCallsInFlightAreCountedOnceAcrossTheNodes) {
  mock_upstream_process mock;
  env_["TROUPE_UPSTREAMS"] =
    R"([{"name":"a","base_url":")" + mock.base_url() + R"(/v1","models":["mock-1"],"max_inflight":256}])";
  every_node_ = {"--set", "limits.generate_burst=10000", "--set", "limits.generate_per_minute=1000000",
                 "--set", "quota.free_per_day=100000"};
  three_nodes(1000);
  auto [user_id, token] = user(*nodes_[0], "keyed@example.com");
  auto created = http({"POST", nodes_[0]->url("/api/keys"), R"({"name":"two","max_parallel_requests":2})",
                       {"Authorization: Bearer " + token, "Content-Type: application/json"}, 10000});
  ASSERT_EQ(created.status, 201) << created.body;
  auto key = json_string(created, "key");
  std::vector<std::future<http_result>> calls;
  for (int i = 0; i < 9; ++i)
    calls.push_back(std::async(std::launch::async, [this, i, key] {
      auto body = R"({"model":"mock-1","messages":[{"role":"user","content":"[[mock latency_ms=3000]] held )"
                  + std::to_string(i) + "\"}]}";
      return http({"POST", nodes_[static_cast<size_t>(i) % 3]->url("/v1/chat/completions"), body,
                   {"Authorization: Bearer " + key, "Content-Type: application/json"}, 30000});
    }));
  int ok = 0, refused = 0;
  std::string other;
  for (auto& call : calls) {
    auto res = call.get();
    ok += res.status == 200;
    refused += res.status == 429;
    if (res.status != 200 && res.status != 429 && other.empty())
      other = std::to_string(res.status) + " " + res.error + " " + res.body;
  }
  EXPECT_EQ(ok, 2) << other;
  EXPECT_EQ(refused, 7) << other;
  EXPECT_EQ(parse_json(http_get(mock.base_url() + "/mock/stats").body)["requests"].GetInt64(), ok);
  // The settlements reach the owner (asynchronously): within a few seconds a call passes again, on any node.
  http_result again;
  for (int i = 0; i < 100; ++i) {
    again = http({"POST", nodes_[2]->url("/v1/chat/completions"),
                  R"({"model":"mock-1","messages":[{"role":"user","content":"one more"}]})",
                  {"Authorization: Bearer " + key, "Content-Type: application/json"}, 30000});
    if (again.status == 200)
      break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(again.status, 200) << again.body;
}

// kill -9 of a user's owner: it is reported down within failure_ms + 1 s, the others serve the user within 10 s,
// and the user, whose bucket was spent, does not get a fresh one.
TEST_F(Cluster, AKilledOwnersUsersMoveWithoutAFreshAllowance) {
  three_nodes();
  // A user owned by a node other than the first (which the test keeps asking) and the admin's (whose rate limit
  // would start empty too).
  auto admin_owner = placed_owner(ids_, admin_id_);
  std::string user_id, token, owner;
  for (int i = 0; i < 40 && (owner.empty() || owner == ids_[0] || owner == admin_owner); ++i) {
    std::tie(user_id, token) = user(*nodes_[0], "moved" + std::to_string(i) + "@example.com");
    owner = placed_owner(ids_, user_id);
  }
  ASSERT_NE(owner, ids_[0]);
  ASSERT_NE(owner, admin_owner);
  auto owner_index = static_cast<size_t>(std::find(ids_.begin(), ids_.end(), owner) - ids_.begin());
  auto survivor_index = owner_index == 1 ? size_t{2} : size_t{1};
  auto& asker = *nodes_[0];
  for (int i = 0; i < burst; ++i)
    ASSERT_EQ(get(asker, "/api/me", token).status, 200);
  ASSERT_EQ(get(asker, "/api/me", token).status, 429);

  auto killed_at = clock_type::now();
  nodes_[owner_index]->signal(SIGKILL);
  ASSERT_TRUE(nodes_[owner_index]->wait_exit(5s));

  // Reported down by the survivors within failure_ms + 1 s.
  std::optional<std::chrono::milliseconds> reported;
  while (!reported && clock_type::now() - killed_at < 10s) {
    if (metric(*nodes_[survivor_index], R"(troupe_cluster_members{state="down"})") == 1)
      reported = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - killed_at);
    else
      std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(reported) << "the killed owner was not reported down";
  EXPECT_LE(reported->count(), failure_ms + 1000);

  // Served again within 10 s of the kill: refused for its rate (its bucket starts empty), never a fresh burst.
  long status = 0;
  while (clock_type::now() - killed_at < 10s) {
    status = get(asker, "/api/me", token).status;
    if (status != 503)
      break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(status, 429) << "the user's new owner gave it a fresh allowance (200) or never served it (503)";
  EXPECT_EQ(listed(*nodes_[survivor_index], "down"), std::set<std::string>{owner});
  auto survivors = ids_;
  survivors.erase(survivors.begin() + static_cast<std::ptrdiff_t>(owner_index));
  auto new_owner = placed_owner(survivors, user_id);
  EXPECT_EQ(owner_of(asker, user_id), new_owner);
  EXPECT_EQ(owner_of(*nodes_[survivor_index], user_id), new_owner);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(get(*nodes_[survivor_index], "/api/me", token).status, 429);
}

// A node that would listen for peers on a non-loopback address without TLS refuses to start.
TEST_F(Cluster, PlainBaspOnANonLoopbackAddressIsRefused) {
  std::string out;
  auto status = run_command("TROUPE_DATABASE_URL='" + db_.url() + "' TROUPE_JWT_SECRET=" + test_jwt_secret +
                              " " TROUPE_BINARY
                            " --set http.port=0 --set cluster.enabled=true --set cluster.host=192.0.2.10",
                            out);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("cluster.insecure=true"), std::string::npos) << out;
}

// `troupe cluster drain NODE`: the node hands its users to the others and exits 0; requests to the other nodes
// meanwhile all get an answer (none fails), and the moved user keeps what it had left: over the whole test exactly
// the burst is admitted.
TEST_F(Cluster, ADrainedNodeHandsItsUsersOverWithNoFailedRequest) {
  three_nodes();
  std::string user_id, token;
  for (int i = 0; i < 40 && (user_id.empty() || placed_owner(ids_, user_id) != ids_[1]); ++i)
    std::tie(user_id, token) = user(*nodes_[0], "drained" + std::to_string(i) + "@example.com");
  ASSERT_EQ(placed_owner(ids_, user_id), ids_[1]);
  int admitted = 0;
  for (int i = 0; i < 3; ++i)
    admitted += get(*nodes_[0], "/api/me", token).status == 200;
  ASSERT_EQ(admitted, 3);

  std::atomic<bool> stop{false};
  std::vector<long> statuses;
  std::thread hammer{[&] {
    for (size_t i = 0; !stop.load(); ++i) {
      statuses.push_back(get(*nodes_[i % 2 == 0 ? 0 : 2], "/api/me", token).status);
      std::this_thread::sleep_for(20ms);
    }
  }};
  std::string out;
  auto drained = run_command("TROUPE_DATABASE_URL='" + db_.url() + "' " TROUPE_BINARY " cluster drain " + ids_[1], out);
  auto exit_status = nodes_[1]->wait_exit(20s);
  std::this_thread::sleep_for(500ms);
  stop = true;
  hammer.join();
  EXPECT_EQ(drained, 0) << out;
  EXPECT_EQ(exit_status, std::optional<int>{0}) << nodes_[1]->output();
  EXPECT_NE(nodes_[1]->output().find(R"("msg":"cluster drain done")"), std::string::npos);
  ASSERT_FALSE(statuses.empty());
  for (auto status : statuses) {
    EXPECT_TRUE(status == 200 || status == 429) << status;
    admitted += status == 200;
  }
  EXPECT_EQ(admitted, burst) << "the hand-off should carry the 2 tokens left, and nothing fresh";
  EXPECT_EQ(get(*nodes_[0], "/api/me", token).status, 429);
}

// SIGSTOP (hung, not dead) is detected like a death; SIGCONT makes the node find itself declared down, end its
// sessions and rejoin with a new epoch.
TEST_F(Cluster, AHungNodeIsDetectedAndRejoinsWithANewEpoch) {
  three_nodes(40);
  auto& hung = *nodes_[2];
  hung.signal(SIGSTOP);
  auto stopped_at = clock_type::now();
  std::optional<std::chrono::milliseconds> detected;
  while (!detected && clock_type::now() - stopped_at < 10s) {
    if (metric(*nodes_[0], R"(troupe_cluster_members{state="down"})") == 1 &&
        metric(*nodes_[0], "troupe_cluster_placed_members") == 2)
      detected = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - stopped_at);
    else
      std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(detected) << "a SIGSTOPped node was not detected";
  EXPECT_LE(detected->count(), failure_ms + 1000);

  hung.signal(SIGCONT);
  EXPECT_TRUE(hung.wait_for_output(R"("msg":"this node was declared down by the cluster)", 10s)) << hung.output();
  EXPECT_TRUE(await_placed(all(), 3, 10s)) << "the node did not rejoin";
  auto res = get(*nodes_[0], "/api/cluster", admin_);
  auto doc = parse_json(res.body);
  ASSERT_FALSE(doc.HasParseError()) << res.body;
  for (const auto& m : doc["members"].GetArray())
    if (m["node_id"].GetString() == ids_[2]) {
      EXPECT_EQ(m["epoch"].GetInt64(), 2);
      EXPECT_STREQ(m["state"].GetString(), "up");
    }
}

// A fourth node joining takes over the users rendezvous hashing gives it, each with its live session handed over by
// its previous owner, and no other user moves.
TEST_F(Cluster, AJoiningNodeTakesOnlyItsShareAndTheirSessionsComeAlong) {
  three_nodes(40);
  // User ids are random, so which users the fourth node takes is too: a binomial of users and 1/4. With 40 users
  // none moves with probability 1e-5 and more than half with about 1e-4 (with 24 it was 0.1% and 1%: this test
  // failed now and then).
  constexpr int users = 40;
  std::vector<std::pair<std::string, std::string>> all_users;
  for (int i = 0; i < users; ++i) {
    all_users.push_back(user(*nodes_[static_cast<size_t>(i) % 3], "member" + std::to_string(i) + "@example.com"));
    ASSERT_EQ(get(*nodes_[0], "/api/me", all_users.back().second).status, 200); // a live session at its owner
  }
  auto handed_out = [&] {
    double total = 0;
    for (size_t i = 0; i < 3; ++i)
      total += std::max(0.0, metric(*nodes_[i], R"(troupe_cluster_handoffs_total{direction="out"})"));
    return total;
  };
  EXPECT_EQ(handed_out(), 0);
  auto& fourth = start(prefix_ + "d", 40);
  ASSERT_TRUE(await_placed(all(), 4, 10s));
  int moving = 0;
  for (const auto& [user_id, token] : all_users)
    moving += placed_owner(ids_, user_id) == ids_[3];
  EXPECT_GT(moving, 0);
  EXPECT_LE(moving, users / 2);
  // Every moved user's session came along (and no other): the hand-offs sent equal those received, and the moved.
  auto deadline = clock_type::now() + 10s;
  while (handed_out() < moving && clock_type::now() < deadline)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(handed_out(), moving);
  EXPECT_EQ(metric(fourth, R"(troupe_cluster_handoffs_total{direction="in"})"), moving);
  for (const auto& [user_id, token] : all_users)
    EXPECT_EQ(get(fourth, "/api/me", token).status, 200);
}

// A cluster with mutual TLS (cluster.tls_*, one CA): its nodes place each other; a node without TLS, and one whose
// certificate another CA signed, cannot connect, so they stay joining: nobody places them and they serve nobody.
// Their failed handshakes do not disturb the members' own connection (app/openssl_error_queue.cpp).
TEST_F(Cluster, ATlsClusterKeepsOutNodesWithoutItsCredentials) {
  const std::string& dir = files_.path();
  ASSERT_FALSE(dir.empty());
  std::string out;
  auto make_ca = [&](const std::string& name) {
    return run_command("cd " + dir + " && openssl req -x509 -newkey rsa:2048 -nodes -keyout " + name +
                         ".key -out " + name + ".pem -days 2 -subj /CN=" + name + " 2>&1",
                       out);
  };
  auto make_cert = [&](const std::string& name, const std::string& ca) {
    return run_command("cd " + dir + " && openssl req -newkey rsa:2048 -nodes -keyout " + name + ".key -out " + name +
                         ".csr -subj /CN=" + name + " 2>&1 && openssl x509 -req -in " + name + ".csr -CA " + ca +
                         ".pem -CAkey " + ca + ".key -CAcreateserial -out " + name + ".pem -days 2 2>&1",
                       out);
  };
  ASSERT_EQ(make_ca("ca"), 0) << out;
  ASSERT_EQ(make_ca("rogue-ca"), 0) << out;
  ASSERT_EQ(make_cert("node", "ca"), 0) << out;
  ASSERT_EQ(make_cert("rogue", "rogue-ca"), 0) << out;
  auto tls = [&](const std::string& cert, const std::string& ca) {
    return std::vector<std::string>{"--set", "cluster.tls_cert=" + dir + "/" + cert + ".pem",
                                    "--set", "cluster.tls_key=" + dir + "/" + cert + ".key",
                                    "--set", "cluster.tls_ca=" + dir + "/" + ca + ".pem"};
  };
  start(prefix_ + "a", 40, tls("node", "ca"));
  start(prefix_ + "b", 40, tls("node", "ca"));
  ASSERT_TRUE(await_placed(all(), 2, 10s));

  // Neither outsider joins: the members (lower ids: they open the connections) cannot connect to them, and they
  // stay without a view.
  auto& plain = start(prefix_ + "plain", 40, {}, false);
  auto& rogue = start(prefix_ + "rogue", 40, tls("rogue", "rogue-ca"), false);
  for (const auto* outsider : {"node-plain", "node-rogue"})
    EXPECT_TRUE(nodes_[0]->wait_for_output(std::string{R"(cannot connect to cluster member; retrying every heartbeat","node_id":")"} +
                                             outsider + "\"",
                                           15s))
      << nodes_[0]->output();
  std::this_thread::sleep_for(std::chrono::milliseconds{3 * heartbeat_ms});
  for (size_t i = 0; i < 2; ++i)
    EXPECT_EQ(metric(*nodes_[i], "troupe_cluster_placed_members"), 2);
  EXPECT_EQ(metric(plain, "troupe_cluster_placed_members"), 0);
  EXPECT_EQ(metric(rogue, "troupe_cluster_placed_members"), 0);
  EXPECT_EQ(plain.output().find(R"("msg":"cluster joined")"), std::string::npos);
  EXPECT_EQ(rogue.output().find(R"("msg":"cluster joined")"), std::string::npos);
  // A user's request at an outsider is refused (503): it cannot ask the user's owner.
  auto [user_id, token] = user(*nodes_[0], "tls@example.com");
  EXPECT_EQ(get(plain, "/api/me", token).status, 503);
  EXPECT_EQ(get(*nodes_[1], "/api/me", token).status, 200);
  // The TLS connection between the two is one, opened by the lower id, and it stays up.
  EXPECT_EQ(nodes_[0]->output().find("cluster member connection lost"), std::string::npos) << nodes_[0]->output();
  EXPECT_EQ(nodes_[1]->output().find("cluster member connection lost"), std::string::npos) << nodes_[1]->output();
}

// A second process started with a node id that a live process holds waits (it does not fence the first in a loop),
// and joins once the first has left.
TEST_F(Cluster, ASecondProcessWithALiveNodeIdWaitsForIt) {
  auto& first = start(prefix_ + "a", 40);
  auto& second = start(prefix_ + "a", 40, {}, false);
  EXPECT_TRUE(second.wait_for_output("another process holds this node id", 10s)) << second.output();
  std::this_thread::sleep_for(std::chrono::milliseconds{3 * heartbeat_ms});
  EXPECT_EQ(first.output().find("declared down"), std::string::npos) << first.output();
  EXPECT_EQ(second.output().find(R"("msg":"cluster joined")"), std::string::npos);
  first.signal(SIGTERM); // drains, marks its row down, exits 0
  EXPECT_EQ(first.wait_exit(20s), std::optional<int>{0}) << first.output();
  EXPECT_TRUE(second.wait_for_output(R"("msg":"cluster joined")", 10s)) << second.output();
  EXPECT_EQ(metric(second, "troupe_cluster_placed_members"), 1);
}

// The gateway's cache is one cache across the cluster: an identical call made concurrently on two nodes reaches the
// upstream once (single flight on the node that holds the key), an answer cached through one node is a hit on every
// node, and an admin's invalidation on one node removes it everywhere.
TEST_F(Cluster, AnIdenticalGatewayCallOnTwoNodesReachesTheUpstreamOnce) {
  mock_upstream_process mock;
  env_["TROUPE_UPSTREAMS"] =
    R"([{"name":"a","base_url":")" + mock.base_url() + R"(/v1","models":["mock-1"],"priority":1}])";
  every_node_ = {"--set", "limits.generate_burst=10000", "--set", "limits.generate_per_minute=1000000",
                 "--set", "quota.free_per_day=100000", "--set", "limits.generate_max_inflight=200",
                 "--set", "cache.near_ttl_ms=60000"};
  three_nodes(1000);
  auto [user_id, token] = user(*nodes_[0], "gateway@example.com");
  auto chat = [&](size_t node, const std::string& content, const std::string& extra) {
    auto body = R"({"model":"mock-1","messages":[{"role":"user","content":")" + content + "\"}]" + extra + "}";
    return http({"POST", nodes_[node]->url("/v1/chat/completions"), body,
                 {"Authorization: Bearer " + token, "Content-Type: application/json"}, 30000});
  };
  auto upstream_calls = [&] {
    auto doc = parse_json(http_get(mock.base_url() + "/mock/stats").body);
    return doc.IsObject() && doc.HasMember("requests") ? doc["requests"].GetInt64() : -1;
  };

  // Not cacheable (temperature 0.7): only the single flight merges them. The mock holds its answer 6 s, time for
  // every call on both nodes to arrive even on a loaded machine.
  constexpr int per_node = 8;
  std::vector<std::future<http_result>> calls;
  for (size_t node : {size_t{0}, size_t{1}})
    for (int i = 0; i < per_node; ++i)
      calls.push_back(std::async(std::launch::async, [&, node] {
        return chat(node, "[[mock latency_ms=6000]] the same question", R"(,"temperature":0.7)");
      }));
  int ok = 0;
  std::string failure;
  for (auto& call : calls) {
    auto res = call.get();
    ok += res.status == 200;
    if (res.status != 200 && failure.empty())
      failure = std::to_string(res.status) + " " + res.error + " " + res.body;
  }
  EXPECT_EQ(ok, 2 * per_node) << failure;
  EXPECT_EQ(upstream_calls(), 1);

  // Cacheable (temperature 0): produced once through node a, then a hit on b and on c; asked again, each answers
  // from its near copy (no node is asked for a cache key any more).
  auto asked_of = [&](size_t node) {
    return std::max(0.0, metric(*nodes_[node], R"(troupe_cluster_remote_requests_total{kind="cache"})"));
  };
  std::vector<double> asked_before;
  for (size_t node = 0; node < nodes_.size(); ++node)
    asked_before.push_back(asked_of(node));
  auto first = chat(0, "cache me", R"(,"temperature":0)");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-cache"), "MISS");
  for (size_t node : {size_t{1}, size_t{2}}) {
    auto again = chat(node, "cache me", R"(,"temperature":0)");
    EXPECT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(again.header("x-cache"), "HIT") << "on " << ids_[node];
    EXPECT_EQ(again.body, first.body);
  }
  EXPECT_EQ(upstream_calls(), 2);
  auto cache_requests = [&] {
    double sum = 0;
    for (size_t node = 0; node < nodes_.size(); ++node)
      sum += asked_of(node);
    return sum;
  };
  auto asked = cache_requests();
  // The node that holds the key is the one the others asked since; b and c each keep a near copy of what they read
  // from it, unless they hold it (a produced the value: a computed value is never copied).
  size_t holders = 0, holder = nodes_.size();
  for (size_t node = 0; node < nodes_.size(); ++node)
    if (asked_of(node) > asked_before[node]) {
      ++holders;
      holder = node;
    }
  EXPECT_EQ(holders, 1u);
  uint64_t near_copies = (holder != 1) + (holder != 2);
  for (size_t node : {size_t{1}, size_t{2}})
    EXPECT_EQ(chat(node, "cache me", R"(,"temperature":0)").header("x-cache"), "HIT");
  EXPECT_EQ(cache_requests(), asked);

  // The admin clears the user's entries through node c: gone on every node (near copies too), so node b asks the
  // upstream again.
  auto cleared = http({"POST", nodes_[2]->url("/api/cache/clear"), R"({"tag":"gw:)" + user_id + R"("})",
                       {"Authorization: Bearer " + admin_, "Content-Type: application/json"}, 10000});
  ASSERT_EQ(cleared.status, 200) << cleared.body;
  EXPECT_EQ(parse_json(cleared.body)["removed"].GetUint64(), 1u + near_copies) << "the entry and its near copies: "
                                                                                 << cleared.body;
  auto after = chat(1, "cache me", R"(,"temperature":0)");
  EXPECT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(after.header("x-cache"), "MISS");
  EXPECT_EQ(upstream_calls(), 3);
}

// Debug mode shows every node: /debug/nodes lists the members, ?node= opens another node's tree and an actor's
// mailbox there (rendered by that node), a node whose debug mode is off says so, and the page offers the nodes.
TEST_F(Cluster, DebugModeOpensEveryNodesTreeAndMailboxes) {
  every_node_ = {"--set", "debug.enabled=true"};
  start(prefix_ + "a", burst);
  start(prefix_ + "b", burst);
  every_node_.clear();
  start(prefix_ + "c", burst);
  std::tie(admin_id_, admin_) = user(*nodes_[0], "admin@example.com");
  ASSERT_TRUE(await_placed(all(), 3, 10s));
  auto& a = *nodes_[0];

  auto nodes = parse_json(http_get(a.url("/debug/nodes")).body);
  ASSERT_TRUE(nodes.IsObject() && nodes.HasMember("nodes"));
  EXPECT_EQ(std::string(nodes["node"].GetString()), ids_[0]);
  std::set<std::string> members;
  for (const auto& m : nodes["nodes"].GetArray())
    members.insert(m["node_id"].GetString());
  EXPECT_EQ(members, std::set<std::string>(ids_.begin(), ids_.end()));

  auto tree = http_get(a.url("/debug/actors?node=" + ids_[1]));
  ASSERT_EQ(tree.status, 200) << tree.body;
  auto doc = parse_json(tree.body);
  EXPECT_EQ(std::string(doc["node"].GetString()), ids_[1]);
  std::set<std::string> names;
  for (const auto& actor : doc["actors"].GetArray())
    names.insert(actor["name"].GetString());
  for (const char* name : {"root", "sessions", "cluster", "cache.shard.0"})
    EXPECT_EQ(names.count(name), 1u) << name << " is not in " << ids_[1] << "'s tree";
  // Its own tree, by default and by its own id.
  EXPECT_EQ(std::string(parse_json(http_get(a.url("/debug/actors")).body)["node"].GetString()), ids_[0]);
  EXPECT_EQ(std::string(parse_json(http_get(a.url("/debug/actors?node=" + ids_[0])).body)["node"].GetString()),
            ids_[0]);

  auto actor = http_get(a.url("/debug/actors/sessions?limit=5&node=" + ids_[1]));
  ASSERT_EQ(actor.status, 200) << actor.body;
  auto one = parse_json(actor.body);
  EXPECT_EQ(std::string(one["node"].GetString()), ids_[1]);
  EXPECT_EQ(std::string(one["name"].GetString()), "sessions");
  EXPECT_TRUE(one["mailbox"].IsObject()) << actor.body;

  EXPECT_EQ(http_get(a.url("/debug/actors?node=" + ids_[2])).status, 409) << "node c's debug mode is off";
  EXPECT_EQ(http_get(a.url("/debug/actors/nobody?node=" + ids_[1])).status, 404);
  EXPECT_EQ(http_get(a.url("/debug/actors?node=no-such-node")).status, 404);
  EXPECT_EQ(http_get(a.url("/debug/actors/sessions/trace?seconds=1&node=" + ids_[1])).status, 400);
  EXPECT_EQ(http_get(nodes_[2]->url("/debug/actors")).status, 404) << "debug mode is off on node c";

  // The page on node a offers every node (headless Chromium runs its script).
  std::string dom;
  auto status = chromium_dump_dom(a.url("/debug/"), dom);
  ASSERT_EQ(status, 0) << dom;
  EXPECT_NE(dom.find("<option value=\"" + ids_[1] + "\""), std::string::npos) << dom.substr(0, 4000);
  EXPECT_NE(dom.find("(this node)"), std::string::npos);
  EXPECT_NE(dom.find("node " + ids_[0] + ":"), std::string::npos);
}

// An address's limits are one across the cluster: its sign-in rate limit bucket and its failed sign-ins live on the
// node that holds the address, so attempts spread over three nodes count down one bucket (RateLimit's r) and the
// address waits after auth.login_max_address_failures failures in all, not per node.
TEST_F(Cluster, AnAddressHasOneSignInLimitAcrossNodes) {
  constexpr int auth_burst = 8, max_failures = 4;
  every_node_ = {"--set", "limits.auth_burst=" + std::to_string(auth_burst), "--set", "limits.auth_per_minute=1",
                 "--set", "auth.login_max_address_failures=" + std::to_string(max_failures)};
  for (const char* id : {"a", "b", "c"})
    start(prefix_ + id, burst);
  ASSERT_TRUE(await_placed(all(), 3, 10s)); // (read from /metrics: no sign-in spent)
  auto remaining = [](const http_result& res) {
    auto header = res.header("ratelimit");
    auto at = header.find(";r=");
    return at == std::string::npos ? -1 : std::stoi(header.substr(at + 3));
  };
  for (int i = 1; i <= auth_burst + 1; ++i) {
    auto& node = *nodes_[static_cast<size_t>(i) % nodes_.size()];
    // Another unknown account each time: only the address's own counts apply.
    auto body = R"({"email":"nobody)" + std::to_string(i) + R"(@example.com","password":"wrong password here"})";
    auto res = http({"POST", node.url("/api/auth/login"), body, {"Content-Type: application/json"}, 10000});
    if (i <= max_failures) {
      EXPECT_EQ(res.status, 401) << "attempt " << i << ": " << res.body;
    } else {
      EXPECT_EQ(res.status, 429) << "attempt " << i << ": " << res.body;
      if (i <= auth_burst) {
        EXPECT_NE(res.body.find("Too many failed sign-ins"), std::string::npos) << "attempt " << i << ": " << res.body;
      }
    }
    EXPECT_EQ(remaining(res), std::max(0, auth_burst - i)) << "attempt " << i << " on " << res.header("x-troupe-node");
  }
}

// A request's trace crosses to the node that owns its user: the node the request reached records its "cluster"
// call (CLIENT) under the request's span, and the owner records "cluster authorize" (SERVER) as that call's child,
// in the same trace, each node exporting its own spans to the collector.
TEST_F(Cluster, ARequestsTraceCrossesToTheUsersOwner) {
  capture_server collector;
  every_node_ = {"--set", "tracing.otlp_endpoint=" + collector.url("/v1/traces"), "--set", "tracing.export_ms=50",
                 "--set", "tracing.sample_ratio=0"};
  start(prefix_ + "a", 40);
  start(prefix_ + "b", 40);
  ASSERT_TRUE(await_placed(all(), 2, 10s));
  auto [user_id, token] = user(*nodes_[0], "traced@example.com");
  auto owner = placed_owner(ids_, user_id);
  size_t entry = owner == ids_[0] ? 1 : 0; // the node that does not own the user
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736", caller_span = "00f067aa0ba902b7";
  auto me = http({"GET", nodes_[entry]->url("/api/me"), "",
                  {"Authorization: Bearer " + token, "traceparent: 00-" + trace + "-" + caller_span + "-01",
                   "tracestate: rojo=00f067aa0ba902b7"},
                  10000});
  ASSERT_EQ(me.status, 200) << me.body;

  // Every span of the trace the collector received, by name, with the node that exported it.
  std::map<std::string, otlp_span> by_name;
  auto collect = [&] {
    by_name.clear();
    for (auto& span : otlp_spans(collector))
      if (span.trace == trace)
        by_name[span.name] = span;
    return by_name.count("GET /api/me") && by_name.count("cluster") && by_name.count("cluster authorize");
  };
  auto deadline = clock_type::now() + 15s;
  while (!collect() && clock_type::now() < deadline)
    std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(collect()) << "spans of the trace that arrived: " << by_name.size();

  const auto& request = by_name["GET /api/me"];
  EXPECT_EQ(request.node, ids_[entry]);
  EXPECT_EQ(request.parent, caller_span);
  const auto& call = by_name["cluster"];
  EXPECT_EQ(call.node, ids_[entry]);
  EXPECT_EQ(call.kind, 3) << "a CLIENT span";
  EXPECT_EQ(call.parent, request.id);
  const auto& served = by_name["cluster authorize"];
  EXPECT_EQ(served.node, owner) << "the owner exported it";
  EXPECT_EQ(served.kind, 2) << "a SERVER span";
  EXPECT_EQ(served.parent, call.id) << "a child of the call that reached it";
  EXPECT_EQ(served.state, "rojo=00f067aa0ba902b7");
  auto attribute = [](const otlp_span& span, const std::string& key) {
    auto i = span.attributes.find(key);
    return i == span.attributes.end() ? std::string{"(none)"} : i->second;
  };
  EXPECT_EQ(attribute(served, "troupe.node"), owner);
  EXPECT_EQ(attribute(served, "troupe.cluster.sender"), ids_[entry]);
  // One machine, one clock: the owner's span lies within the call, the call within the request.
  EXPECT_LE(request.start, call.start);
  EXPECT_LE(call.start, served.start);
  EXPECT_LE(served.start, served.end);
  EXPECT_LE(served.end, call.end);
  EXPECT_LE(call.end, request.end);

  // Unsampled (no traceparent, tracing.sample_ratio=0): the owner records nothing for the call. A sampled call
  // after it, in another trace: once the owner's span of that one arrived, the unsampled one's would have too.
  ASSERT_EQ(http({"GET", nodes_[entry]->url("/api/me"), "", {"Authorization: Bearer " + token}, 10000}).status, 200);
  const std::string later = "5bf92f3577b34da6a3ce929d0e0e4737";
  ASSERT_EQ(http({"GET", nodes_[entry]->url("/api/me"), "",
                  {"Authorization: Bearer " + token, "traceparent: 00-" + later + "-" + caller_span + "-01"}, 10000})
              .status,
            200);
  auto authorize_spans = [&] {
    size_t n = 0;
    bool later_arrived = false;
    for (const auto& request : collector.requests())
      for (size_t at = request.body.find("\"cluster authorize\""); at != std::string::npos;
           at = request.body.find("\"cluster authorize\"", at + 1)) {
        ++n;
        later_arrived = later_arrived || request.body.find(later) != std::string::npos;
      }
    return later_arrived ? n : 0;
  };
  deadline = clock_type::now() + 15s;
  while (authorize_spans() == 0 && clock_type::now() < deadline)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(authorize_spans(), 2u) << "the two sampled calls, not the unsampled one";

  // A sign-in's per-address limit is decided by the node that holds the address: its span joins the trace too.
  auto address_owner = placed_owner(ids_, "ip:127.0.0.1");
  size_t other = address_owner == ids_[0] ? 1 : 0;
  const std::string signin = "6bf92f3577b34da6a3ce929d0e0e4738";
  auto login = http({"POST", nodes_[other]->url("/api/auth/login"),
                     R"({"email":"traced@example.com","password":"correct horse battery"})",
                     {"Content-Type: application/json", "traceparent: 00-" + signin + "-" + caller_span + "-01"},
                     10000});
  ASSERT_EQ(login.status, 200) << login.body;
  std::optional<otlp_span> signin_request, limit_call, limit_served;
  deadline = clock_type::now() + 15s;
  do {
    signin_request.reset();
    limit_call.reset();
    limit_served.reset();
    for (auto& span : otlp_spans(collector))
      if (span.trace == signin && span.name == "POST /api/auth/login")
        signin_request = span;
      else if (span.trace == signin && span.name == "cluster")
        limit_call = span;
      else if (span.trace == signin && span.name == "cluster limit")
        limit_served = span;
    if (signin_request && limit_call && limit_served)
      break;
    std::this_thread::sleep_for(50ms);
  } while (clock_type::now() < deadline);
  ASSERT_TRUE(signin_request && limit_call && limit_served) << "the limit call's spans did not arrive";
  EXPECT_EQ(limit_call->node, ids_[other]);
  EXPECT_EQ(limit_call->kind, 3) << "a CLIENT span";
  EXPECT_EQ(limit_call->parent, signin_request->id);
  EXPECT_EQ(attribute(*limit_served, "troupe.node"), address_owner);
  EXPECT_EQ(limit_served->node, address_owner);
  EXPECT_EQ(limit_served->parent, limit_call->id);
  EXPECT_EQ(limit_served->kind, 2);
  nodes_.clear(); // before the collector goes: their last batches reach it
}
