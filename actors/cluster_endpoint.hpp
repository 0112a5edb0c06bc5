#pragma once
// A node's cluster endpoint: the one actor other nodes talk to (published on cluster.host:port over BASP, spawned by
// the membership actor, actors/cluster.hpp, and linked to it).
//
// Sessions of the users this node owns:
//   (authorize_atom, user_id, credential, cluster_origin) -> identity
//   (quota_atom, user_id, int64_t n, cluster_origin) -> quota_status
//   (spend_atom, user_id, spend_settlement, cluster_origin) -> bool
//   (revoke_atom, user_id, jti, int64_t expires_at, cluster_origin) -> bool
//   (revoke_key_atom, user_id, key_id, cluster_origin) -> bool
//   (handoff_atom, session_handoff, cluster_origin), (handoff_done_atom, node_id, placed, cluster_origin)
//   go to this node's session manager when this node owns the user in its view; forward once to the owner it sees
//   otherwise (the sender's view was older); a sender whose epoch is not the current one is refused (fencing).
//   Hand-offs go to the manager whatever the view says (it keeps them for the user's next session).
//   A message whose origin carries a sampled traceparent (sent for an HTTP request) is recorded as a SERVER span
//   "cluster <kind>" of that trace on this node (tracing.otlp_endpoint), the sender's span its parent.
//
// The cache keys this node holds (cache_placement below: the gateway's responses and single flight):
//   every shard message about one key (cache_get/put/erase/claim/wait/fill/fail_atom, actors/messages.hpp) goes to
//   this node's shard of the key, which answers the sender directly; (cache_tag_atom, tag), (cache_prefix_atom,
//   prefix) and (cache_clear_atom) go to every shard here, answered with the sum of the entries removed. No fencing:
//   while two nodes disagree on placement, the worst case is one more upstream call, never a wrong answer.
//
// The client addresses this node holds (placed like cache keys, by "ip:<address>"): exact per-address limits
// across the cluster.
//   (limit_atom, key, rate_policy) -> limit_decision            to this node's limiter shard of the key
//   (limit_atom, key, rate_policy, traceparent, tracestate) -> limit_decision
//                                                               the same, for a request of that (W3C) trace: a
//                                                               sampled one is recorded as a span "cluster limit"
//   (throttle_check_atom, email, ip) -> int64_t, (throttle_fail_atom, email, ip), (throttle_reset_atom, email, ip)
//                                                               to this node's login throttle (login_throttle_name)
//
// Debug mode (this node's, when it is on; else service_error::conflict):
//   (cluster_debug_tree_atom) -> std::string, (cluster_debug_actor_atom, key, uint64_t limit) -> std::string
//   the bodies of GET /debug/actors and GET /debug/actors/{id} as this node would answer them.

#include "actors/cache.hpp"
#include "actors/cluster.hpp"
#include "actors/directory.hpp"
#include "actors/metrics.hpp"
#include "introspect/probe.hpp"
#include "ops/span_queue.hpp"

#include <caf/actor.hpp>
#include <caf/local_actor.hpp>

#include <chrono>
#include <memory>

namespace troupe {

struct cluster_endpoint_options {
  caf::actor membership; // the membership actor that spawns it (hellos go there)
  std::shared_ptr<cluster_state> cluster;
  std::shared_ptr<directory> names; // "sessions", "cache.shard.<i>", "root"
  std::shared_ptr<metrics_registry> metrics;
  size_t cache_shards = 0;                // 0: cache messages are refused (unavailable)
  size_t limiter_shards = 0;              // "limits.shard.<i>"; 0: limit messages are refused
  std::shared_ptr<probe_registry> probes; // null when this node's debug mode is off
  std::shared_ptr<tracing::span_queue> spans; // where its spans go (null: tracing.otlp_endpoint unset)
  /// How long a traced request waits for this node's answer before it fails (cluster.request_timeout_ms, the
  /// sender's own wait: an answer after it would reach nobody).
  std::chrono::milliseconds request_timeout{5000};
};

/// Spawns the endpoint linked to `parent` (the membership actor).
caf::actor spawn_cluster_endpoint(caf::local_actor* parent, cluster_endpoint_options options);

/// Places cache keys over the cluster as users are placed (rendezvous hashing over the placed members): a key
/// another connected member holds goes to its endpoint; a key of this node, or of a member not connected now, to
/// this node's own shard. Invalidations go to every placed or draining member, and fail while one of them is not
/// connected. `timeout` bounds each request to another node; `near_ttl` is the near tier (cache.near_ttl_ms).
cache_placement cluster_cache_placement(std::shared_ptr<cluster_state> state, std::chrono::milliseconds timeout,
                                        std::chrono::milliseconds near_ttl);

} // namespace troupe
