#pragma once
// The operator's routes beyond /health and /metrics (issue 17): every one admin only (401 without a credential,
// 403 for a user who is not an admin), answered with Cache-Control: no-store.
//
//   GET /api/performance ?window=15m (30s..ops.history_ms; 15m) &points=360 (1..2000)
//                        the current sample and the window's series (ops/history.hpp has the fields), from ops.sampler
//   GET /api/status      version and build, start time and uptime, node and cluster membership, the configuration
//                        (every option, as troupe print-config shows it: secrets as "***"), each subsystem's readiness
//                        check
//   GET /api/security/status ?window=24h (1m..30d)
//                        security events by kind, by address and by account; who the login throttle holds back
//                        now; addresses and accounts refused by rate limits; API keys revoked in the window; access
//                        tokens revoked and not expired; every upstream's breaker
//   GET /api/alerts      firing alerts, the last 100 events, the rules (ops.alerts)
//   GET /dashboard       the dashboard page (http/dashboard_page.cpp): static, no data in it; its script reads the
//                        routes above with the admin token it is given (kept in the tab's sessionStorage)
//   GET /dashboard/chart.js   Chart.js (Debian's libjs-chart.js, embedded at build time)

#include "http/auth.hpp"
#include "http/router.hpp"

#include "actors/breaker.hpp"
#include "actors/cluster.hpp"
#include "actors/persistence_supervisor.hpp"
#include "config/options.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace troupe::http {

struct observability_route_options {
  std::shared_ptr<const config::settings> settings;
  std::shared_ptr<cluster_state> cluster;
  /// Every upstream's breaker gauges, in the order of settings->upstreams.
  std::vector<std::shared_ptr<breaker_gauges>> breakers;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  std::string sampler = "ops.sampler";
  std::string alerts = "ops.alerts";
  std::string health = "ops.health";
  std::string throttle = "auth.throttle";
  actor_name<db_query_actor> db_query = db_query_name;
};

void add_observability_routes(router& routes, authenticator& auth, observability_route_options options);

/// The dashboard's HTML with this CSP nonce in its script and style tags.
std::string dashboard_page_html(const std::string& nonce);
/// Chart.js as Debian ships it (chart.umd/min.js), embedded at build time.
std::string_view embedded_chart_js();

} // namespace troupe::http
