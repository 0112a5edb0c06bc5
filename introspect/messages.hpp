#pragma once
// The messages every layer's actors share, whatever their subsystem: the mailbox size the load monitor, the
// mailbox watch and the metrics ask any actor for, the liveness ping and the readiness-check result that
// persistence, actors and http all produce. Declared here, below persistence/ and actors/, so that each layer may
// include them without reaching into another's protocol (persistence/messages.hpp keeps persistence's own types).
// health_check is registered with the others by troupe::register_message_types (actors/messages.hpp).

#include <caf/fwd.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>

#include <cstddef>

#include <string>

namespace troupe {

/// (mailbox_atom) -> size_t: the number of messages waiting in the receiver's mailbox. Answered by every actor
/// other code looks up by name (job runners, which nobody looks up, do not).
using mailbox_atom = caf::atom_constant<caf::atom("mailbox")>;
/// The signature of that request, part of every typed interface: `caf::typed_actor<..., mailbox_size_request>`.
using mailbox_size_request = caf::replies_to<mailbox_atom>::with<size_t>;

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

/// (ping_atom) -> health_check: a liveness probe of what the receiver depends on; today only the database
/// connection actors answer it (they run `SELECT 1`).
using ping_atom = caf::atom_constant<caf::atom("ping")>;

/// Registers this layer's message types (health_check) with the config. Every node calls it through
/// troupe::register_message_types (actors/messages.hpp), so every node knows the same types.
void register_introspect_types(caf::actor_system_config& cfg);

} // namespace troupe
