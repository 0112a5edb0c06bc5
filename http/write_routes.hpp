#pragma once
// Durable write endpoints. Each answers 201 only after its rows are committed in PostgreSQL.
//
//   POST /api/events     one funnel event, or {"events":[...]} with up to 1000  -> 201 {"accepted":N}
//   POST /api/feedback   {"rating":1..5, "comment"?, "lang"?}                   -> 201 {"status":"received"}
//
// Both take an Idempotency-Key header: a retry with the same key (per caller, 24 h) gets the first result with
// `Idempotent-Replayed: true` and writes nothing; the same key with a different body is a 409. Both need a bearer
// credential; the caller's identity and address come from the request, never from the body.

#include "http/bridge.hpp"
#include "http/router.hpp"

#include "actors/persistence_supervisor.hpp"

#include <string>

namespace troupe::http {

struct write_route_options {
  actor_name<db_writer_actor> writer = db_writer_name; // the DB writer's name in the directory
};

class authenticator;

/// Both routes require a credential: the rows belong to the caller.
void add_write_routes(router& routes, authenticator& auth, const write_route_options& options);

/// Whether `text` is an RFC 3339 date-time with a valid calendar date and time ("2026-11-21T10:00:00Z",
/// "2026-11-21T10:00:00.123+02:00").
bool is_rfc3339(const std::string& text);

} // namespace troupe::http
