#pragma once
// The shape most routes over the caller's own rows share: authenticate, send (atom, the caller's user id, args...)
// to db.query from the bridge worker, answer with to_response(reply) or the error.

#include "http/auth.hpp"
#include "http/cors.hpp"
#include "http/error_mapping.hpp"

#include "config/service_error.hpp"

#include <memory>
#include <string>
#include <tuple>

namespace troupe::http {

/// `cors` (may be null) adds the CORS headers for the request's origin first. `Reply` is the type db.query answers.
template <class Reply, class Atom, class ToResponse, class... Ts>
void user_query(authenticator& auth, const actor_name<db_query_actor>& db_query, const cors_policy* cors,
                const std::shared_ptr<responder>& r, ToResponse to_response, Atom atom, Ts... args) {
  if (cors)
    cors->apply(r, false);
  auth.authenticate(r, [&auth, db_query, r, to_response, atom,
                        args = std::make_tuple(std::move(args)...)](caf::event_based_actor* self, const identity& who) {
    auto db = auth.bridge().find(db_query);
    if (!db) {
      r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    std::apply(
      [&](const auto&... a) {
        self->request(*db, caf::duration{auth.bridge().timeout()}, atom, who.user_id, a...)
          .then([r, to_response](Reply& reply) { r->send(to_response(reply)); },
                [r](caf::error& err) { r->fail(err); });
      },
      args);
  });
}

} // namespace troupe::http
