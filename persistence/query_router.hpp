#pragma once
// "db.query": the one address for typed database queries (persistence/accounts.hpp and any later query
// messages). Callers never pick a connection actor themselves.
//
// Protocol:
//   (mailbox_atom) -> size_t         answered by the router itself
//   anything else                    delegated to the next connection actor, round-robin: that actor answers the
//                                    original sender directly (the router never waits for a query), or
//                                    service_error::unavailable when no connection actor is running
//
// A connection that dies with queued queries answers them with CAF's request_receiver_down; callers should use a
// request timeout as for any actor.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <cstddef>
#include <functional>
#include <optional>

namespace troupe {

/// Spawns the router over `connections` connection actors; `connection(i)` returns the live incarnation of
/// connection i, or nullopt while it restarts (then the next one is tried).
caf::actor spawn_query_router(caf::actor_system& sys, size_t connections,
                              std::function<std::optional<caf::actor>(size_t)> connection);

} // namespace troupe
