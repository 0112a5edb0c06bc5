#pragma once
// The cache's HTTP surface, and the users of the cache on the HTTP side.
//
//   GET  /api/cache/stats                     -> 200 hits, misses, evictions, expirations, bytes and entries, in
//                                                total and per shard (authenticated; ETag/304)
//   POST /api/cache/clear   {} | {"tag":..} | {"prefix":..}  -> 200 {"removed":N,"scope":...}   (admin)
//   GET  /api/users/{id}                      -> 200 the user's profile, served from the cache (60 s, tag
//                                                "user:<id>"); the caller's own, or any for an admin, else 404;
//                                                Cache-Control: private, no-cache with ETag/304
//
// Profiles are looked up through cache_client::get_or_compute: concurrent misses for one user share one
// PostgreSQL lookup, and a failed lookup is not cached. Whatever changes a user's profile calls
// invalidate_user_profile (or an admin posts {"tag":"user:<id>"} to /api/cache/clear after `troupe admin grant`,
// which runs in another process).

#include "http/auth.hpp"
#include "http/bridge.hpp"
#include "http/router.hpp"

#include "actors/cache.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace troupe::http {

struct cache_route_options {
  std::shared_ptr<cache_client> cache;
  std::shared_ptr<cache_stats> stats;
  std::string db_query = "db.query"; // the query router's name in the bridge's directory
  std::chrono::milliseconds profile_ttl{60000};
};

void add_cache_routes(router& routes, authenticator& auth, cache_route_options options);

/// "user:<id>": the cache key of a user's profile, and the tag that invalidates everything cached about the user.
std::string user_cache_key(const std::string& user_id);

/// The profile JSON of a user ({"user_id","email","role","plan","created_at"}; never the password hash).
std::string profile_json(const user_record& user);

/// Inside an actor: the user's profile JSON, from the cache or from `db` (user_by_id_atom; then cached for `ttl`
/// under user_cache_key with that tag). Errors: not_found for an unknown user, unavailable without a database,
/// or the database's error (none of them cached).
void cached_user_profile(caf::event_based_actor* self, const cache_client& cache, std::optional<caf::actor> db,
                         const std::string& user_id, std::function<void(caf::expected<std::string>)> then,
                         std::chrono::milliseconds ttl = std::chrono::milliseconds{60000});

/// The same lookup as a user_record (id, email, role, plan, created_at; password_hash empty), with the response
/// handler shape of `self->request(db, ..., user_by_id_atom::value, id).then(on_user, on_error)`, so a caller of
/// that request can switch to the cache by replacing the one statement.
void cached_user_by_id(caf::event_based_actor* self, const cache_client& cache, std::optional<caf::actor> db,
                       const std::string& user_id, std::function<void(user_record&)> on_user,
                       std::function<void(caf::error&)> on_error);

/// Drops everything cached about a user (tag user_cache_key(user_id)); call it when the user's profile changes.
/// `then` (optional) gets the number of entries removed.
void invalidate_user_profile(caf::event_based_actor* self, const cache_client& cache, const std::string& user_id,
                             cache_client::count_handler then = {});

} // namespace troupe::http
