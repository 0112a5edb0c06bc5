#pragma once
// The cluster (DESIGN.md, "The cluster"): nodes that share one PostgreSQL, joined over CAF's middleman (BASP), each
// user served by one owner node chosen by rendezvous hashing over the members that are up.
//
// cluster_state       what every thread reads to place a user: the current view (members, which ones placement
//                     counts, their endpoints), this node's id and epoch, and the recent placement changes (when a
//                     user moved here). Published by the membership actor; read lock-free.
//
// membership actor    ("cluster", detached: its PostgreSQL calls block its own thread only)
//   (cluster_join_atom, http_url, http_port)   once HTTP listens: publishes the endpoint on cluster.host:port (BASP,
//                                              mutual TLS with cluster.tls_*), joins the table with a new epoch
//   every cluster.heartbeat_ms                 heartbeats its row; a row that says another epoch or down means this
//                                              incarnation was declared dead: it ends its sessions (no hand-off:
//                                              their new owners started them empty) and joins again with a new
//                                              epoch; marks members silent for cluster.failure_ms down; connects to
//                                              the members that are up (the middleman's connect, with a timeout);
//                                              publishes the view; tells the session manager when placement moved
//   a row turned "leaving" (troupe cluster drain NODE), or (cluster_leave_atom) -> bool (SIGTERM): drains: the row
//                                              says leaving, so the others stop placing this node within a
//                                              heartbeat; two heartbeats later it stops placing itself, which hands
//                                              its sessions to their new owners; then its row says down (and a
//                                              drain asked for by the table ends the process, as SIGTERM would)
//   on exit                                    marks its row down, so the others move its users at once
//
// endpoint actor      what other nodes talk to (actors/cluster_endpoint.hpp): their users' sessions, the cache keys
//                     this node holds, this node's debug view
//
// Placement is only as fresh as each node's last read of the table: while two nodes disagree (at most about one
// heartbeat), a request reaches the owner that the receiving endpoint sees. A user moved here from a member that
// died starts with empty buckets, refilling from the moment of the move (never a fresh allowance); a user moved by
// a join gets what its previous owner's session hands over (no bucket above it). Until that hand-off arrives (about
// one heartbeat at most) the two owners may each admit from their own bucket: that window is the one inexactness. Quotas come back from what PostgreSQL committed, raised by a hand-off.

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"
#include "introspect/probe.hpp"
#include "ops/span_queue.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system_config.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

/// One member as this node sees it.
struct cluster_member {
  std::string node_id;
  int64_t epoch = 0;
  std::string address; // BASP endpoint
  uint16_t port = 0;
  std::string http_url;
  std::string state;   // joining, up, leaving or down (down also when silent for failure_ms)
  int64_t silent_ms = 0;
  int64_t sessions = 0;
  int64_t last_seen_unix = 0;
  bool connected = false; // a BASP connection to its endpoint is open (always true for this node)
  bool placed = false;    // counted by placement
  caf::actor endpoint;    // its endpoint (a proxy for other nodes)
};

/// The highest-random-weight owner of `key` among `nodes` (index into nodes), or -1 when there is none. Stable across
/// processes and builds (no std::hash).
int rendezvous_pick(const std::vector<std::string>& nodes, std::string_view key);

/// What this node knows of the cluster at one moment. Immutable once published.
struct cluster_view {
  std::string self; // this node's id
  int64_t epoch = 0;
  std::vector<cluster_member> members; // by node id
  std::vector<std::string> placed;     // ids of the members placement counts, sorted
  std::vector<size_t> placed_index;    // their indexes in members
  std::vector<std::string> leaving;    // ids of members draining (alive, handing their users over), sorted

  /// The owner of `user_id`, or nullptr while no member is placed.
  const cluster_member* owner_of(std::string_view user_id) const;
  const cluster_member* find(std::string_view node_id) const;
};

/// Shared by the membership actor (writes), the session manager, the endpoint and HTTP (read).
class cluster_state {
public:
  /// `enabled` false: a single node; every user is local and view() stays empty.
  explicit cluster_state(bool enabled = false, std::string node_id = {});

  bool enabled() const { return enabled_; }
  /// This node's id (cluster.node_id, or as resolved once HTTP listens).
  std::string node_id() const;
  void set_node_id(std::string node_id);
  /// The current view; nullptr until this node joined.
  std::shared_ptr<const cluster_view> view() const { return std::atomic_load(&view_); }

  /// Publishes `view`. When placement changed (another set of placed members), it is recorded at `at` (monotonic
  /// seconds): moved_here_at uses it. `before_join` is the placement before this node's first view (the members up
  /// when it joined; just this node when it was alone).
  void publish(std::shared_ptr<const cluster_view> view, double at);
  void set_initial_placement(std::vector<std::string> before_join);

  /// When `user_id` last moved to this node from a member that is gone (died or left: nothing to hand over) and has
  /// stayed here since (monotonic seconds), within the recorded changes (the last 64, within the last hour); nullopt
  /// when it did not move so, moved from a member still placed (which hands its session over), or is not this
  /// node's.
  std::optional<double> moved_here_at(const std::string& user_id) const;

  /// The last move of `user_id` to this node (it has stayed here since), within the recorded changes.
  struct user_move {
    double at = 0;
    std::string from;       // its previous owner
    bool from_gone = false; // which died (nothing to hand over); else it is still placed or draining
  };
  std::optional<user_move> last_move(const std::string& user_id) const;

  /// Placement changes recorded since start.
  uint64_t placement_changes() const { return changes_.load(std::memory_order_relaxed); }

  /// This node may serve its users until `until` (steady clock): its last heartbeat that the table took, plus the
  /// failure time, less a heartbeat. Past it the others may have declared this node down and taken its users, so
  /// route_user answers unavailable (a node cut off from PostgreSQL stops serving instead of doubling limits).
  void extend_lease(std::chrono::steady_clock::time_point until) {
    lease_until_.store(until.time_since_epoch().count(), std::memory_order_release);
  }
  bool lease_valid() const {
    return std::chrono::steady_clock::now().time_since_epoch().count() <
           lease_until_.load(std::memory_order_acquire);
  }

  /// This process's instance id (random, fixed for its life): a restarted membership actor keeps the node id it
  /// holds; another process must wait until this one is down (membership_store::join).
  const std::string& instance() const { return instance_; }

  /// Where this node serves HTTP, once it listens (join_cluster sets it; a restarted membership actor reads it).
  void set_http(std::string url, uint16_t port);
  std::optional<std::pair<std::string, uint16_t>> http() const;

private:
  bool enabled_;
  std::string instance_;
  mutable std::mutex mutex_; // node_id_, history_
  std::string node_id_;
  std::optional<std::pair<std::string, uint16_t>> http_;
  std::shared_ptr<const cluster_view> view_;
  struct change {
    double at = 0;
    std::vector<std::string> placed;
    std::vector<std::string> leaving;
  };
  std::vector<change> history_; // oldest first; history_[0] is the placement before the join
  std::atomic<uint64_t> changes_{0};
  std::atomic<std::chrono::steady_clock::rep> lease_until_{0};
};

/// Where a message about a user's session goes from this node.
struct session_route {
  enum kind_t { local, remote, unavailable } kind = local;
  caf::actor endpoint;   // remote: the owner's endpoint
  cluster_origin origin; // remote: this node
  std::string owner;     // the owner's node id ("" on a single node)
};

/// The route to `user_id`'s session: local on a single node (state null or disabled) and when this node owns the
/// user; unavailable while this node has no view yet.
session_route route_user(const cluster_state* state, const std::string& user_id);

/// The endpoint of the member that owns `key` by placement (rendezvous hashing over the placed members) when that is
/// another connected member; nullopt when it is this node, a member not connected now (this node stands in), or on a
/// single node. What keys other than users place this way: gateway cache keys, per-address limiter buckets and the
/// login throttle's addresses, each served by the owner's endpoint.
std::optional<caf::actor> remote_owner(const cluster_state* state, std::string_view key);

/// Resolves cluster.node_id: the configured id, else <hostname>-<cluster.port, else http_port>.
std::string resolve_node_id(const config::cluster_settings& cluster, uint16_t http_port);

/// Loads the middleman (and with cluster.tls_* the OpenSSL module) into `cfg`, with BASP heartbeats every
/// cluster.heartbeat_ms and a connection timeout of cluster.failure_ms. Call before the actor system is built.
void configure_cluster_transport(caf::actor_system_config& cfg, const config::cluster_settings& cluster);

/// Why this node must not start with these settings ("" when it may): cluster.host not loopback without TLS and
/// without cluster.insecure; TLS files half configured.
std::string cluster_settings_problem(const config::cluster_settings& cluster);

struct cluster_options {
  config::cluster_settings settings;
  std::string database_url;
  std::shared_ptr<cluster_state> state;
  std::shared_ptr<directory> names; // "sessions": the session manager
  std::shared_ptr<metrics_registry> metrics;
  /// The session actors alive on this node (its row's `sessions`).
  std::shared_ptr<std::atomic<int64_t>> sessions_active;
  size_t cache_shards = 0;                // this node's cache shards ("cache.shard.<i>" in names)
  size_t limiter_shards = 0;              // this node's limiter shards ("limits.shard.<i>")
  std::shared_ptr<probe_registry> probes; // debug mode only: other nodes may read this node's tree
  std::shared_ptr<tracing::span_queue> spans; // the endpoint's spans (tracing.otlp_endpoint; else null)
};

/// The "cluster" child of the root (a detached worker; permanent). Registers the cluster's metric collector.
child_spec make_cluster_supervisor(cluster_options options);

/// Once HTTP listens at `http_url`: records it in `state` and tells the membership actor ("cluster" in `names`) to
/// join.
void join_cluster(cluster_state& state, const directory& names, const std::string& http_url, uint16_t http_port);

} // namespace troupe
