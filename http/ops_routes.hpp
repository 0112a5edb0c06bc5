#pragma once
// Operational routes: liveness, readiness, metrics, and the debug helpers.
//
//   GET /health        200 {"status":"ok"} while the process serves HTTP (answered on the Pistache thread)
//   GET /api/health    readiness: every subsystem's check; 200 healthy or degraded, 503 unhealthy. Each check's
//                      detail and latency only for callers `detail_access` admits (a client on this machine, an
//                      admin): upstreams' errors name hosts and ports; anybody else sees the statuses
//   GET /metrics       Prometheus text format 0.0.4
//   GET /debug/sleep   ?ms=N answers after N ms without blocking a thread       } debug.enabled only;
//   POST /debug/echo   a JSON body, returned after one actor round trip           } 404 otherwise

#include "http/bridge.hpp"
#include "http/router.hpp"

#include "actors/messages.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace troupe::http {

/// Names of the actors the routes talk to (looked up in the directory on each request).
struct ops_actor_names {
  std::string health = "ops.health";
  std::string metrics = "ops.metrics";
  std::string debug_helper = "debug.helper";
};

/// Decides whether a request may reach a guarded route: calls `handler` (now or later) or answers itself.
using route_guard = std::function<void(const std::shared_ptr<responder>&, const route_handler& handler)>;

/// Decides whether a request may see details: calls `then(true|false)` (now or later), or answers itself (e.g. 401
/// for a credential that is refused).
using detail_access = std::function<void(const std::shared_ptr<responder>&, std::function<void(bool)> then)>;

/// Adds the routes; the debug routes only when `debug_guard` is set (debug.enabled), each behind it. Without
/// `health_details` every caller sees only the statuses of /api/health.
void add_ops_routes(router& routes, actor_bridge& bridge, const ops_actor_names& names, route_guard debug_guard,
                    detail_access health_details = nullptr);

/// The readiness body for a set of checks, and its status (503 if any check is unhealthy). Without `details`, only
/// the overall status and each check's status.
response readiness_response(const std::vector<health_check>& checks, bool details = true);

} // namespace troupe::http
