#pragma once
// The message types of persistence/'s typed interface. Registered by troupe::register_message_types.

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>

namespace troupe {

/// (mailbox_atom) -> size_t: the number of messages waiting in the receiver's mailbox. Every actor of ours
/// answers it (declared here, in the lowest layer, so persistence's actors answer it too).
using mailbox_atom = caf::atom_constant<caf::atom("mailbox")>;

/// The result of one subsystem's readiness check, as shown by GET /api/health.
struct health_check {
  std::string name;
  std::string status; // "healthy", "degraded" or "unhealthy"
  double latency_ms = 0;
  std::string detail; // a human sentence; never contains secrets
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, health_check& x) {
  return f(caf::meta::type_name("health_check"), x.name, x.status, x.latency_ms, x.detail);
}

/// (ping_atom) -> health_check: a database connection actor runs `SELECT 1`.
using ping_atom = caf::atom_constant<caf::atom("ping")>;

} // namespace troupe
