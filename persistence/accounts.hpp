#pragma once
// Accounts: users, API keys, refresh tokens and revoked access tokens in PostgreSQL, behind typed messages.
// Registered by troupe::register_message_types.
//
// Send every message below to "db.query" (persistence/query_router.hpp), which hands it to a connection actor
// that answers the original sender directly. Conventions:
//   * an empty string means "absent"; times are unix seconds (int64_t: send int64_t, not int), 0 = absent;
//   * ids are UUIDs as text; a malformed id is treated as an unknown one (not_found), never as a 500;
//   * hashes are the lower- or upper-case hex of a SHA-256 (64 characters); tokens and keys are never stored;
//   * every message may also fail with service_error::unavailable (no database, connection lost: retry later),
//     invalid_input (a value the schema refuses: bad email, role, name length, expiry in the past, bad hash)
//     or internal (a bug, logged).

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

struct user_record {
  std::string id;
  std::string email;         // normalised to lower case by the caller
  std::string password_hash; // argon2id encoded string
  std::string role;          // "user" or "admin"
  std::string plan;          // a plans.name, "free" by default
  int64_t created_at = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, user_record& x) {
  return f(caf::meta::type_name("user_record"), x.id, x.email, x.password_hash, x.role, x.plan, x.created_at);
}

/// What an API key may use (issue 16, virtual keys), on top of its owner's plan: set when the key is created, never
/// changed. Empty or 0: no limit of that kind.
struct api_key_limits {
  std::vector<std::string> models; // the models it may call
  int64_t max_budget_pusd = 0;     // spend per budget period, pico-dollars (10^-12 USD)
  int64_t budget_duration_s = 0;   // the period, counted from the key's creation; 0: the budget is for its lifetime
  int64_t tpm_limit = 0;           // tokens per minute
  int64_t rpm_limit = 0;           // requests per minute
  int64_t max_parallel_requests = 0;

  /// Whether the owner's session meters the key's calls (budget, tokens, requests, calls in flight).
  bool metered() const { return max_budget_pusd > 0 || tpm_limit > 0 || rpm_limit > 0 || max_parallel_requests > 0; }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, api_key_limits& x) {
  return f(caf::meta::type_name("api_key_limits"), x.models, x.max_budget_pusd, x.budget_duration_s, x.tpm_limit,
           x.rpm_limit, x.max_parallel_requests);
}

/// The first second of the budget period of a key created at `created_at` holding `now_unix`: the creation for a
/// lifetime budget, else created_at plus whole periods. SQL computes the same (accounts_sql, usage of a key).
inline int64_t key_period_start(int64_t created_at, int64_t budget_duration_s, int64_t now_unix) {
  if (budget_duration_s <= 0 || now_unix <= created_at)
    return created_at;
  return created_at + (now_unix - created_at) / budget_duration_s * budget_duration_s;
}

struct api_key_record {
  std::string id;
  std::string user_id;
  std::string name;
  std::string last4; // the key's last 4 characters, to tell keys apart in a listing
  int64_t created_at = 0;
  int64_t last_used_at = 0; // 0 = never used
  int64_t revoked_at = 0;   // 0 = active
  api_key_limits limits{};
  // Listings only (api_key_list_atom): the current budget period's first second and the spend settled in it (what
  // usage_events holds for the key since then), pico-dollars.
  int64_t period_start = 0;
  int64_t spend_pusd = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, api_key_record& x) {
  return f(caf::meta::type_name("api_key_record"), x.id, x.user_id, x.name, x.last4, x.created_at, x.last_used_at,
           x.revoked_at, x.limits, x.period_start, x.spend_pusd);
}

/// A budgeted key's spend in its current period, as a session starts from it.
struct key_spend {
  std::string key_id;
  int64_t period_start = 0;
  int64_t spent_pusd = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, key_spend& x) {
  return f(caf::meta::type_name("key_spend"), x.key_id, x.period_start, x.spent_pusd);
}

/// What a session actor loads when it starts: the user and what is revoked for them right now.
struct session_snapshot {
  user_record user;
  std::vector<std::string> revoked_jtis;     // access tokens revoked and not yet expired
  std::vector<int64_t> revoked_jti_expiries; // expires_at of revoked_jtis[i]
  std::vector<std::string> revoked_key_ids;  // the user's revoked API keys
  std::vector<key_spend> key_spends;         // the user's live keys with a budget: their current period's spend
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_snapshot& x) {
  return f(caf::meta::type_name("session_snapshot"), x.user, x.revoked_jtis, x.revoked_jti_expiries, x.revoked_key_ids,
           x.key_spends);
}

/// The outcome of presenting a refresh token.
struct refresh_rotation {
  std::string outcome;   // "rotated"; "reused" (it was used before: its whole family is revoked now);
                         // "invalid" (unknown, expired or revoked)
  std::string user_id;   // set for "rotated" and "reused"
  std::string family_id; // set for "rotated" and "reused"
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, refresh_rotation& x) {
  return f(caf::meta::type_name("refresh_rotation"), x.outcome, x.user_id, x.family_id);
}

// --- Users -------------------------------------------------------------------------------------------------------
/// (user_create_atom, email, password_hash, role) -> user_record; role "" = "user"; conflict if the email exists.
using user_create_atom = caf::atom_constant<caf::atom("usercreate")>;
/// (user_guest_atom, user_id, email) -> user_record: the guest of that id (role and plan "guest", no password),
/// created on first use; a retry or a concurrent first use finds the same row.
using user_guest_atom = caf::atom_constant<caf::atom("userguest")>;
/// (user_by_email_atom, email) -> user_record; not_found if none.
using user_by_email_atom = caf::atom_constant<caf::atom("userbymail")>;
/// (user_by_id_atom, user_id) -> user_record; not_found if none or malformed.
using user_by_id_atom = caf::atom_constant<caf::atom("userbyid")>;
/// (user_set_role_atom, email, role) -> user_record (updated); not_found if none.
using user_set_role_atom = caf::atom_constant<caf::atom("userrole")>;
/// (session_load_atom, user_id) -> session_snapshot; not_found if no such user.
using session_load_atom = caf::atom_constant<caf::atom("sessload")>;

// --- Refresh tokens ----------------------------------------------------------------------------------------------
/// (refresh_issue_atom, user_id, family_id, token_hash, int64_t expires_at) -> std::string family_id; family_id ""
/// starts a new family (login). not_found if the user is unknown, or family_id is not a live family of the user.
using refresh_issue_atom = caf::atom_constant<caf::atom("rtissue")>;
/// (refresh_rotate_atom, old_token_hash, new_token_hash, int64_t new_expires_at) -> refresh_rotation, in one
/// transaction with the old token locked: of two concurrent rotations of one token one is "rotated", one "reused".
using refresh_rotate_atom = caf::atom_constant<caf::atom("rtrotate")>;
/// (refresh_revoke_atom, token_hash) -> int64_t: revokes the token's whole family (logout); the number of tokens
/// revoked now (0 if the token is unknown or its family was revoked already).
using refresh_revoke_atom = caf::atom_constant<caf::atom("rtrevoke")>;
/// (refresh_revoke_user_atom, user_id) -> int64_t: revokes every family of the user; tokens revoked now.
using refresh_revoke_user_atom = caf::atom_constant<caf::atom("rtrevuser")>;

// --- Access tokens -----------------------------------------------------------------------------------------------
/// (jti_revoke_atom, user_id, jti, int64_t expires_at) -> bool: revokes an access token until it expires. Idempotent:
/// true when revoked by this call, false when it already was (both succeed). not_found if the user is unknown.
using jti_revoke_atom = caf::atom_constant<caf::atom("jtirevoke")>;

// --- API keys ----------------------------------------------------------------------------------------------------
/// (api_key_create_atom, user_id, name, key_hash, last4, api_key_limits) -> api_key_record; not_found if the user is
/// unknown, conflict if the hash exists.
using api_key_create_atom = caf::atom_constant<caf::atom("keycreate")>;
/// (api_key_list_atom, user_id) -> std::vector<api_key_record>: newest first, revoked ones included, each with its
/// current budget period and the spend settled in it.
using api_key_list_atom = caf::atom_constant<caf::atom("keylist")>;
/// (api_key_revoke_atom, user_id, key_id) -> api_key_record; not_found if unknown or another user's (404, never
/// 403); revoking again keeps the first revoked_at.
using api_key_revoke_atom = caf::atom_constant<caf::atom("keyrevoke")>;
/// (api_key_lookup_atom, key_hash) -> api_key_record (with user_id); unauthenticated if unknown or revoked.
using api_key_lookup_atom = caf::atom_constant<caf::atom("keylookup")>;
/// (api_key_touch_atom, key_id, int64_t used_at) -> bool: last_used_at = greatest(last_used_at, used_at); false if
/// the key is unknown.
using api_key_touch_atom = caf::atom_constant<caf::atom("keytouch")>;

// --- Maintenance -------------------------------------------------------------------------------------------------
/// (auth_purge_atom) -> int64_t rows deleted: expired revoked_tokens, refresh tokens expired over a day ago.
using auth_purge_atom = caf::atom_constant<caf::atom("authpurge")>;

} // namespace troupe
