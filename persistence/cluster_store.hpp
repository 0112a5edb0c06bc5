#pragma once
// The cluster's membership store: the cluster_members table (migrations 0001, 0006), one row per node id, read and
// written by each node's membership actor (actors/cluster.hpp) and by `troupe cluster status|drain`.
//
// Every call is blocking (its own libpqxx connection, opened on first use and reopened after a failure): call it from
// a detached actor or the command line, never from a scheduler or Pistache thread. A failure throws
// std::runtime_error with a one-line message (never the URL or a password).
//
// Times are the database's (now()), so nodes with skewed clocks agree on who is silent.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

/// One node as the table says.
struct member_row {
  std::string node_id;
  std::string address;  // where its BASP endpoint listens
  uint16_t port = 0;
  std::string http_url; // where it serves HTTP
  std::string instance; // the process holding the node id (random per process)
  std::string state;    // joining, up, leaving or down
  int64_t epoch = 0;    // incremented at each start
  int64_t sessions = 0; // sessions it owned at its last heartbeat
  int64_t silent_ms = 0;      // since its last heartbeat (database clock)
  int64_t last_seen_unix = 0; // its last heartbeat, unix seconds
};

class membership_store {
public:
  virtual ~membership_store() = default;
  /// Writes this node's row as `state` with the next epoch (1 for a new node id) and a fresh heartbeat; returns the
  /// epoch. nullopt when another process (another `instance`) holds the node id and is neither down nor silent for
  /// `failure`: a duplicate node id, or this node's previous process not yet found dead.
  virtual std::optional<int64_t> join(const member_row& self, const std::string& state,
                                      std::chrono::milliseconds failure) = 0;
  /// Refreshes the heartbeat (and session count, and state) of this node's row and returns the row's state: `state`,
  /// or "leaving" when a drain was asked for (`troupe cluster drain`), which a heartbeat never undoes. nullopt when
  /// the row now has another epoch or was marked down: this incarnation is fenced and must join again.
  virtual std::optional<std::string> heartbeat(const std::string& node_id, int64_t epoch, const std::string& state,
                                               int64_t sessions) = 0;
  /// Asks the node `node_id` (up or joining) to drain: its row becomes "leaving". False when no such node is.
  virtual bool request_drain(const std::string& node_id) = 0;
  /// Every row, by node id.
  virtual std::vector<member_row> members() = 0;
  /// Marks rows that are not down and silent for longer than `failure` as down, but `self`'s (a node never judges
  /// itself: the others do); returns their node ids.
  virtual std::vector<std::string> mark_silent_down(std::chrono::milliseconds failure, const std::string& self) = 0;
  /// Sets a row's state if it still has `epoch` (a drain or a clean leave); false when it did not.
  virtual bool set_state(const std::string& node_id, int64_t epoch, const std::string& state) = 0;
  /// Deletes rows down and silent for longer than `age` (node ids that never come back would pile up otherwise);
  /// returns how many.
  virtual int64_t purge_down(std::chrono::milliseconds age) = 0;
};

/// The PostgreSQL store at `url`: connects within `timeout`, and each statement ends within it too (a hung database
/// must not hold a heartbeat past the failure time; the node's lease runs out instead).
std::unique_ptr<membership_store> make_membership_store(std::string url,
                                                        std::chrono::milliseconds timeout = std::chrono::milliseconds{3000});

} // namespace troupe
