#pragma once
// The cluster's admin routes (actors/cluster.hpp has the cluster itself):
//
//   GET /api/cluster                  (admin) -> 200 {node_id, enabled, epoch, members: [{node_id, state, address,
//                                      port, http_url, epoch, sessions, silent_ms, last_seen_unix, connected,
//                                      placed}]}   as this node sees them (a single node lists itself)
//   GET /api/cluster/owner/{user_id}  (admin) -> 200 {user_id, owner, self}   the node that owns the user's session;
//                                      503 while this node has no view of the cluster

#include "http/auth.hpp"
#include "http/router.hpp"

#include "actors/cluster.hpp"

#include <memory>

namespace troupe::http {

/// `cluster` names this node even when the cluster is disabled (cluster_state::node_id).
void add_cluster_routes(router& routes, authenticator& auth, std::shared_ptr<cluster_state> cluster);

} // namespace troupe::http
