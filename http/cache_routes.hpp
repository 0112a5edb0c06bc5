#pragma once
// The cache's HTTP surface, and the users of the cache on the HTTP side.
//
//   GET  /api/cache/stats                     -> 200 hits, misses, evictions, expirations, bytes and entries, in
//                                                total and per shard (authenticated; ETag/304)
//   POST /api/cache/clear   {} | {"tag":..} | {"prefix":..}  -> 200 {"removed":N,"scope":...}   (admin; in a
//                                                cluster every node's entries, 503 while a member is unreachable)
//   GET  /api/users/{id}                      -> 200 the user's profile, served from the cache (60 s, tag
//                                                "user:<id>"); the caller's own, or any for an admin, else 404;
//                                                Cache-Control: private, no-cache with ETag/304
//
// Profiles are looked up through cache_client::get_or_compute: concurrent misses for one user share one
// PostgreSQL lookup, and a failed lookup is not cached. Nothing in the server changes a profile: the role changes
// only through `troupe admin grant|revoke` (another process) and auth.admin_emails at start-up (before any profile
// is cached), the plan only in the database. So a cached profile may be up to profile_ttl old after such a change;
// an admin who needs it sooner posts {"tag":"user:<id>"} to /api/cache/clear.

#include "http/auth.hpp"
#include "http/bridge.hpp"
#include "http/router.hpp"

#include "actors/cache.hpp"
#include "actors/persistence_supervisor.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace troupe::http {

struct cache_route_options {
  std::shared_ptr<cache_client> cache;         // this node's shards: profiles
  std::shared_ptr<cache_client> invalidations; // POST /api/cache/clear (in a cluster: every node's); null = cache
  std::shared_ptr<cache_stats> stats;
  actor_name<db_query_actor> db_query = db_query_name; // the query router's name in the bridge's directory
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
void cached_user_profile(caf::event_based_actor* self, const cache_client& cache, std::optional<db_query_actor> db,
                         const std::string& user_id, std::function<void(caf::expected<std::string>)> then,
                         std::chrono::milliseconds ttl = std::chrono::milliseconds{60000});

} // namespace troupe::http
