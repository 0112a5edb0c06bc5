#pragma once
// Active health checks of the upstreams (issue 16): one actor, "upstream.health", a child of the upstreams
// supervisor. Every upstream with a health_check_path is asked GET base_url + path every health_check_interval_ms
// through the upstream clients; an answer other than 2xx within health_check_timeout_ms (or none) is sent to the
// upstream's breaker (breaker_health_atom), which opens at once: the gateway then skips that upstream before a
// user's request finds it dead. A passing check changes nothing (the breaker's half-open probes decide recovery).
//
// Actor protocol: (mailbox_atom) -> size_t; its ticks are private.

#include "actors/upstream_client.hpp"

#include "actors/supervisor.hpp"
#include "config/upstreams.hpp"

#include <memory>
#include <vector>

namespace troupe::client {

/// The "upstream.health" child, or nullopt when no upstream has a health_check_path.
std::optional<child_spec> make_health_checks(const std::vector<config::upstream_settings>& upstreams,
                                             std::shared_ptr<directory> names,
                                             std::vector<std::shared_ptr<doorbell>> bells);

} // namespace troupe::client
