#pragma once
// "db.query": the one address for typed database queries (persistence/accounts.hpp and any later query
// messages). Callers never pick a connection actor themselves.
//
// Its interface is db_query_actor (persistence/queries.hpp), every typed query:
//   (mailbox_atom) -> size_t         answered by the router itself
//   (repo_search_atom, ...)          a repository search: to the search connections (below), when there are any
//   anything else                    delegated to the next connection actor, round-robin: that actor answers the
//                                    original sender directly (the router never waits for a query), or
//                                    service_error::unavailable when no connection actor is running
// The router itself is untyped inside: it forwards whatever arrives, and what arrives is checked by the senders'
// typed handle; the connections it forwards to implement db_connection_actor, which includes db_query_actor.
//
// Searches are the one query whose cost the client chooses (a query matching every segment of a large
// repository). With search connections configured they never run on the pool that serves logins, sessions and
// writes: they go to their own connections, each running one search with at most one more waiting for it, so at
// most 2 x search_connections are accepted at once; one more is refused at once with service_error::overloaded
// (503, Retry-After) rather than queued without bound. Each search also runs under a statement_timeout (the
// connection actor's database_options::search_timeout).
//
// A connection that dies with queued queries answers them with CAF's request_receiver_down; callers should use a
// request timeout as for any actor.

#include "persistence/queries.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>

namespace troupe {

/// The connections reserved for repository searches. None (the default): searches share the pool like any query.
struct search_lane {
  size_t connections = 0;
  /// The live incarnation of search connection i, or nullopt while it restarts (then another one is tried).
  std::function<std::optional<db_connection_actor>(size_t)> connection;
  /// How long the router waits for a search connection's answer before it frees the slot (the answer, if any,
  /// still reaches the caller's request only within the caller's own timeout). Longer than the search timeout.
  std::chrono::milliseconds answer_timeout{60000};
};

/// Spawns the router over `connections` connection actors; `connection(i)` returns the live incarnation of
/// connection i, or nullopt while it restarts (then the next one is tried).
db_query_actor spawn_query_router(caf::actor_system& sys, size_t connections,
                                  std::function<std::optional<db_connection_actor>(size_t)> connection,
                                  search_lane searches = {});

} // namespace troupe
