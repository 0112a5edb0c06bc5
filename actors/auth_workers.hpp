#pragma once
// The actors behind login and API keys.
//
// password hasher (detached: argon2id takes tens of milliseconds of CPU and must not hold a scheduler thread)
//   (hash_password_atom, password) -> std::string          libsodium crypto_pwhash_str (argon2id)
//   (verify_password_atom, hash, password) -> bool         constant-time; a malformed hash is simply false
//
// login throttle
//   (throttle_check_atom, email, ip) -> int64_t             seconds to wait before the next attempt, 0 = go ahead
//   (throttle_fail_atom, email, ip)                         records a failed login for both the account and the IP
//   (throttle_reset_atom, email)                            a successful login forgets the account's failures
//   After `max_failures` failures within `window`, for one account or one IP, further attempts wait until the
//   oldest failure leaves the window. Idle entries are dropped, so a flood of distinct IPs stays bounded.
//
// API key cache
//   (key_lookup_atom, key_hash) -> api_key_record           from memory for `ttl`, else from db.query
//   (key_evict_atom, key_id) -> bool                        forgets a key at once (after a revocation)

#include "actors/messages.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <functional>
#include <optional>

namespace troupe {

struct password_hasher_options {
  unsigned long long ops_limit = 0;  // 0 = libsodium's crypto_pwhash_OPSLIMIT_INTERACTIVE
  size_t mem_limit = 0;              // 0 = crypto_pwhash_MEMLIMIT_INTERACTIVE (64 MiB)
};

caf::actor spawn_password_hasher(caf::actor_system& sys, password_hasher_options options);

/// Hashes on the calling thread (tens of milliseconds): for start-up work such as the dummy hash that logins with
/// an unknown email are verified against. Throws std::runtime_error if libsodium fails.
std::string hash_password_blocking(const password_hasher_options& options, const std::string& password);

struct login_throttle_options {
  size_t max_failures = 5;
  std::chrono::seconds window{15 * 60};
  size_t max_entries = 100000;  // beyond this the oldest entries are dropped
  std::function<std::chrono::steady_clock::time_point()> clock;  // steady_clock::now when empty
};

caf::actor spawn_login_throttle(caf::actor_system& sys, login_throttle_options options);

struct api_key_cache_options {
  std::chrono::seconds ttl{60};
  size_t max_entries = 100000;
  std::function<std::optional<caf::actor>()> db_query;
};

caf::actor spawn_api_key_cache(caf::actor_system& sys, api_key_cache_options options);

} // namespace troupe
