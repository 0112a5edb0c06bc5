#pragma once
// The actors behind login and API keys.
//
// password hasher (detached: argon2id takes tens of milliseconds of CPU and must not hold a scheduler thread)
//   (hash_password_atom, password) -> std::string          libsodium crypto_pwhash_str (argon2id)
//   (verify_password_atom, hash, password) -> bool         constant-time; a malformed hash is simply false
//
// login throttle
//   (throttle_check_atom, email, ip) -> int64_t             seconds to wait before the next attempt, 0 = go ahead
//   (throttle_fail_atom, email, ip)                         records a failed login of the account from the address
//   (throttle_list_atom, int32_t limit) -> std::vector<throttled_entry>   who waits now (GET /api/security/status)
//   (throttle_reset_atom, email, ip)                        a successful login forgets that account's failures from
//                                                           that address (not the address's other failures)
//   Failures are counted per (account, address) and per address, never per account alone, so nobody can lock an
//   account's owner out from elsewhere: after `max_failures` failures of one account from one address, or
//   `max_address_failures` failures of any accounts from one address, within `window`, further attempts from that
//   address wait until the oldest failure leaves the window. Idle entries are dropped, so a flood of distinct
//   addresses stays bounded.
//
// API key cache
//   (key_lookup_atom, key_hash, bool use_database) -> api_key_record
//                                                           from memory for `ttl`, else from db.query. Unknown and
//                                                           revoked keys are remembered as misses for `miss_ttl`
//                                                           (unauthenticated without a look-up), and concurrent
//                                                           look-ups of one hash share one query. Without
//                                                           use_database a key not in memory fails with
//                                                           not_found (the caller decided it may not cost a query)
//   (key_evict_atom, key_id) -> bool                        forgets a key at once (after a revocation)
//
// The "auth" supervisor (one_for_one) starts them in this order: auth.hasher.<i> (i < auth.hashers), auth.throttle,
// auth.keys, then auth.events (the security event aggregator, actors/security_events.hpp).

#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"
#include "persistence/queries.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace troupe {

struct password_hasher_options {
  unsigned long long ops_limit = 0; // 0 = libsodium's crypto_pwhash_OPSLIMIT_INTERACTIVE
  size_t mem_limit = 0;             // 0 = crypto_pwhash_MEMLIMIT_INTERACTIVE (64 MiB)
};

caf::actor spawn_password_hasher(caf::actor_system& sys, password_hasher_options options);

/// Hashes on the calling thread (tens of milliseconds): for start-up work such as the dummy hash that logins with
/// an unknown email are verified against. Throws std::runtime_error if libsodium fails.
std::string hash_password_blocking(const password_hasher_options& options, const std::string& password);

/// The login throttle's name in the directory.
inline constexpr const char* login_throttle_name = "auth.throttle";

struct login_throttle_options {
  size_t max_failures = 5;          // of one account from one address
  size_t max_address_failures = 20; // of any accounts from one address
  std::chrono::seconds window{15 * 60};
  size_t max_entries = 100000;                                  // beyond this the oldest entries are dropped
  std::function<std::chrono::steady_clock::time_point()> clock; // steady_clock::now when empty
};

caf::actor spawn_login_throttle(caf::actor_system& sys, login_throttle_options options);

/// Where API key look-ups were answered from (the metric troupe_api_key_lookups_total{source}).
struct api_key_cache_counters {
  std::atomic<uint64_t> hits{0};       // a known key from memory
  std::atomic<uint64_t> miss_hits{0};  // an unknown or revoked key from memory (no query)
  std::atomic<uint64_t> queries{0};    // look-ups that went to the database
  std::atomic<uint64_t> not_cached{0}; // not in memory, and the caller allowed no query
};

struct api_key_cache_options {
  std::chrono::seconds ttl{60};
  std::chrono::seconds miss_ttl{30};
  size_t max_entries = 100000;
  size_t max_misses = 100000;
  std::function<std::optional<db_query_actor>()> db_query;
  std::function<std::chrono::steady_clock::time_point()> clock; // steady_clock::now when empty
  std::shared_ptr<api_key_cache_counters> counters = std::make_shared<api_key_cache_counters>();
};

caf::actor spawn_api_key_cache(caf::actor_system& sys, api_key_cache_options options);

/// Writes troupe_api_key_lookups_total{source} from the cache's counters.
void add_api_key_collector(metrics_registry& metrics, std::shared_ptr<api_key_cache_counters> counters);

/// The "auth" supervisor above, from the auth.* settings; its actors reach db.query and db.writer by name in
/// context.names, and the collectors of the API key cache and the security events go into context.metrics.
supervisor_config make_auth_supervisor(const config::settings& settings, const supervision_context& context);

} // namespace troupe
