#pragma once
// Debug mode's view into the actor system (debug.enabled only; 404 otherwise, since the routes do not exist).
//
//   GET /debug/nodes                    {"node":..., "nodes":[{node_id, state, connected, http_url}]}: this node's
//                                       id and the cluster's members (null and [] on a single node)
//   GET /debug/actors?node=N            {"node":..., "actors":[...]} the supervision tree, parents before children; each actor:
//                                       id, name, kind, type, supervisor, restart, state, mailbox_size, processed,
//                                       busy_ms, restarts, last_error, last_error_at, started_at, uptime_ms
//   GET /debug/actors/{id}?limit=N&node=N
//                                       the same for one actor (by CAF id or by name) plus "mailbox": its first N
//                                       (default 50, at most 1000) queued messages as text, secrets redacted, and a
//                                       count by type; read by the actor itself on a high-priority request, so a
//                                       busy actor answers after at most a few messages. An actor stuck in a handler
//                                       cannot answer: "mailbox" is null and "mailbox_error" says for how long it has
//                                       been busy (its mailbox_size still comes from its probe).
//   GET /debug/actors/{id}/trace?seconds=N&rate=R
//                                       Server-Sent Events for N seconds (1..60, default 10): one "message" event per
//                                       processed message {at, type, sender, waited_ms, processing_ms}, at most R per
//                                       second (1..1000, default 100; the rest are counted), a "stats" event every
//                                       second {seen, dropped}, and "end" {reason} at the end ("time is up", "the actor
//                                       stopped", ...). waited_ms is exact (enqueue to handler) for messages sent after
//                                       the trace began, null for those already queued.
//   ?node=N asks cluster member N's endpoint (actors/cluster_endpoint.hpp), which renders its own tree or mailbox;
//   404 for an unknown member, 503 while it is not connected, 409 when its debug mode is off. A trace streams only
//   from the actor's own node (400 with ?node= of another).
//   GET /debug/                         one self-contained HTML page (no external assets, its own CSP with a nonce):
//                                       the tree with live mailbox sizes and restarts, the top actors by mailbox size,
//                                       refreshing itself, with a click-through to an actor's mailbox, and in a
//                                       cluster a choice of the node whose tree it shows. The page holds
//                                       no data: it reads the JSON routes above, with the admin token it is given
//                                       when the routes need one, so it is served without a credential.
//
// Every JSON route runs behind `guard` (open on loopback, admin-only otherwise: app/application.cpp).

#include "http/bridge.hpp"
#include "http/ops_routes.hpp"
#include "http/router.hpp"

#include "actors/cluster.hpp"
#include "actors/directory.hpp"
#include "introspect/probe.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace troupe::http {

struct debug_route_options {
  std::shared_ptr<directory> names;       // where the root supervisor is found
  std::shared_ptr<probe_registry> probes; // the probes of debug mode
  std::shared_ptr<cluster_state> cluster; // in a cluster: ?node= asks another member's endpoint
  std::string root = "root";
  std::chrono::milliseconds tree_timeout{1000}; // per supervisor asked for its children
  std::chrono::milliseconds peek_timeout{2000}; // for an actor to answer a mailbox peek
};

void add_debug_routes(router& routes, actor_bridge& bridge, debug_route_options options, route_guard guard);

/// The HTML of GET /debug/, with `nonce` on its inline script and style.
std::string debug_page_html(const std::string& nonce);

} // namespace troupe::http
