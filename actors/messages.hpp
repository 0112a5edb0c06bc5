#pragma once
// Every atom and message type exchanged between Troupe's actors, with its inspect function.
// register_message_types() adds them all to an actor_system_config; call it on every node before the
// actor_system is constructed (an unregistered type fails silently in CAF 0.17: see LIBRARY-NOTES.md).

#include "actors/spend.hpp"
#include "introspect/messages.hpp"
#include "persistence/accounts.hpp"
#include "persistence/jobs.hpp"
#include "persistence/messages.hpp"
#include "persistence/plans.hpp"
#include "persistence/repositories.hpp"
#include "persistence/security_status.hpp"
#include "persistence/uploads.hpp"
#include "persistence/wishlist.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

// --- Supervision -------------------------------------------------------------------------------------------------
/// (children_atom) -> std::vector<child_info>: a supervisor's children, in start order.
using children_atom = caf::atom_constant<caf::atom("children")>;
/// Internal to supervisors: a child's shutdown timeout expired.
using stop_timeout_atom = caf::atom_constant<caf::atom("stoptmo")>;

/// What a supervisor says about one child.
struct child_info {
  std::string name;
  std::string kind;       // "worker" or "supervisor"
  std::string restart;    // "permanent", "transient" or "temporary"
  std::string state;      // "running", "stopping" or "stopped"
  uint64_t restarts = 0;  // restarts of this child since the supervisor started
  std::string last_error; // exit reason of the last abnormal exit, "" if none
  int64_t last_error_unix_ms = 0;
  int64_t started_unix_ms = 0; // start of the live incarnation
  caf::actor handle;           // the live incarnation, or invalid when stopped
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_info& x) {
  return f(caf::meta::type_name("child_info"), x.name, x.kind, x.restart, x.state, x.restarts, x.last_error,
           x.last_error_unix_ms, x.started_unix_ms, x.handle);
}

// --- Health ------------------------------------------------------------------------------------------------------
/// (check_atom) -> health_check: a subsystem's readiness check.
using check_atom = caf::atom_constant<caf::atom("check")>;

// --- Rate limits (actors/rate_limit.hpp has the buckets and the shards) ------------------------------------------

/// A named policy: `per_minute` tokens per 60 s, at most `burst` at once.
struct rate_policy {
  std::string name;
  double per_minute = 60;
  double burst = 10;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rate_policy& x) {
  return f(caf::meta::type_name("rate_policy"), x.name, x.per_minute, x.burst);
}

/// The answer of a limiter shard.
struct limit_decision {
  bool allowed = false;
  int64_t remaining = 0;    // whole tokens left after this request
  int64_t reset_s = 0;      // seconds until the bucket is full again (the RateLimit header's t)
  int64_t retry_after_s = 0;  // when refused: whole seconds until a token is available, never earlier
  double per_minute = 0;    // the policy, for RateLimit-Policy
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, limit_decision& x) {
  return f(caf::meta::type_name("limit_decision"), x.allowed, x.remaining, x.reset_s, x.retry_after_s, x.per_minute);
}

/// (limit_atom, std::string key, rate_policy) -> limit_decision; to another node's endpoint also with the request's
/// traceparent and tracestate (std::string each, actors/cluster_endpoint.hpp)
using limit_atom = caf::atom_constant<caf::atom("limit")>;

// --- Authentication and sessions ----------------------------------------------------------------------------------

/// What a verified bearer credential says, before the session actor has checked revocation.
struct credential {
  std::string kind;     // "jwt" or "api_key"
  std::string user_id;  // the JWT's sub, or the API key's owner
  std::string jti;      // jwt: the token id
  int64_t expires_at = 0;  // jwt: exp (unix seconds)
  std::string key_id;   // api_key: the key's id
  rate_policy limit;    // the per-user rate limit to take a token of (empty name: none)
  int64_t reserve = 0;  // generations to reserve from today's quota once the rate limit let the request through
  bool with_storage = false; // also answer the user's storage use (identity::storage), exact
  // Once the rate limit and the quota let the request through: tokens and pico-dollars to reserve against the
  // user's tokens-per-minute window and spend budgets, and the API key's own limits (actors/spend.hpp); 0 and 0:
  // none. The session reserves only where some limit applies (the user's plan has one, or the key is metered).
  int64_t reserve_tokens = 0;
  int64_t reserve_pusd = 0;
  int64_t key_created_at = 0; // api_key: when it was created (its budget periods count from then)
  api_key_limits key_limits{}; // api_key: its own limits (models, budget, tokens and requests per minute, in flight)
  std::string model{};         // the model the call asks for, checked against key_limits.models by the session
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, credential& x) {
  return f(caf::meta::type_name("credential"), x.kind, x.user_id, x.jti, x.expires_at, x.key_id, x.limit,
           x.reserve, x.with_storage, x.reserve_tokens, x.reserve_pusd, x.key_created_at, x.key_limits, x.model);
}

/// A user's daily generation quota, as its session actor counts it.
struct quota_status {
  bool allowed = true;     // for a reservation: whether it was granted
  int64_t limit = 0;       // generations per quota day for the user's plan
  int64_t used = 0;        // used today, including this reservation when granted
  int64_t resets_at = 0;   // unix seconds when the quota day rolls over
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, quota_status& x) {
  return f(caf::meta::type_name("quota_status"), x.allowed, x.limit, x.used, x.resets_at);
}

/// (quota_atom, int64_t n) -> quota_status: to a session; reserves n generations atomically (all or nothing),
/// just reports the quota for n = 0, or gives -n back for n < 0 (a reserved generation that failed).
using quota_atom = caf::atom_constant<caf::atom("quota")>;

/// Who is calling, as the session actor vouches for it (role and plan come from the database, not the token).
struct identity {
  std::string user_id;
  std::string email;
  std::string role;  // "user" or "admin"
  std::string plan;
  int64_t created_at = 0;
  credential via;    // the credential that was presented
  quota_status quota;  // today's generation quota; with via.reserve > 0, whether the reservation was granted
  limit_decision rate; // the decision on via.limit, when one was asked for
  bool storage_known = false; // with via.with_storage: whether `storage` could be read
  storage_status storage;     // the user's storage use and limit (persistence/uploads.hpp)
  spend_status spend;         // with via.reserve_tokens or via.reserve_pusd: whether that reservation was granted
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, identity& x) {
  return f(caf::meta::type_name("identity"), x.user_id, x.email, x.role, x.plan, x.created_at, x.via, x.quota,
           x.rate, x.storage_known, x.storage, x.spend);
}

/// (spend_atom, spend_settlement) -> bool: to a session; ends a spend reservation (actors/spend.hpp).
/// (spend_atom, user_id, spend_settlement) -> bool: to the session manager (to an endpoint with a cluster_origin),
/// for the user's live session (none: nothing to settle, the ledger's rows hold what was spent).
using spend_atom = caf::atom_constant<caf::atom("spend")>;

/// (authorize_atom, credential) -> identity: to a session actor; unauthenticated if the token or key is revoked.
/// The session owns the user's rate-limit buckets: when credential::limit names a policy, it takes a token and says
/// how it went in identity::rate (a refusal is still an identity: the caller answers 429 with the right headers).
/// When credential::reserve > 0 and the rate limit allowed the request, it also reserves that many generations of
/// today's quota, as (quota_atom, n) would, and says in identity::quota whether it could (one hop instead of two).
/// (authorize_atom, user_id, credential) -> identity: to the session manager, which starts the session if needed.
using authorize_atom = caf::atom_constant<caf::atom("authorize")>;
/// (session_atom, user_id) -> caf::actor: the user's session actor, started (and loaded) if needed.
using session_atom = caf::atom_constant<caf::atom("session")>;
/// (revoke_atom, jti, int64_t expires_at) -> bool: to a session; persists the revocation, then refuses the token.
using revoke_atom = caf::atom_constant<caf::atom("revoke")>;
/// (revoke_key_atom, key_id) -> bool: to a session; refuses the key from now on (the caller revoked it in the DB).
using revoke_key_atom = caf::atom_constant<caf::atom("revokekey")>;
/// (key_lookup_atom, key_hash, bool use_database) -> api_key_record: to the API key cache; unauthenticated if unknown
/// or revoked. Without use_database a key not in memory fails with not_found instead of costing a query.
using key_lookup_atom = caf::atom_constant<caf::atom("keycache")>;
/// (key_evict_atom, key_id) -> bool: to the API key cache, after a revocation.
using key_evict_atom = caf::atom_constant<caf::atom("keyevict")>;
/// (hash_password_atom, password) -> std::string argon2id hash; (verify_password_atom, hash, password) -> bool.
using hash_password_atom = caf::atom_constant<caf::atom("pwhash")>;
using verify_password_atom = caf::atom_constant<caf::atom("pwverify")>;
/// (security_event_atom, security_event_row): to the security event aggregator (actors/security_events.hpp).
using security_event_atom = caf::atom_constant<caf::atom("secevent")>;
/// (security_flush_atom) -> int64_t: the aggregator hands what it counted to the DB writer now.
using security_flush_atom = caf::atom_constant<caf::atom("secflush")>;
/// Login throttling (actors/auth_workers.hpp): (throttle_check_atom, email, ip) -> int64_t seconds to wait (0 = go
/// ahead); (throttle_fail_atom, email, ip) records a failure; (throttle_reset_atom, email, ip) forgets the account's
/// failures from that address.
using throttle_check_atom = caf::atom_constant<caf::atom("thrcheck")>;
using throttle_fail_atom = caf::atom_constant<caf::atom("thrfail")>;
using throttle_reset_atom = caf::atom_constant<caf::atom("thrreset")>;
/// (throttle_list_atom, int32_t limit) -> std::vector<throttled_entry>: the accounts and addresses that must wait
/// now, longest wait first, at most `limit`.
using throttle_list_atom = caf::atom_constant<caf::atom("thrlist")>;

/// An account (from an address) or an address the login throttle holds back right now.
struct throttled_entry {
  std::string kind;    // "account" (an email from one address) or "address"
  std::string address; // the client address
  std::string email;   // "" for an address
  int64_t failures = 0;     // failed logins within the window
  int64_t wait_seconds = 0; // until the next attempt is allowed
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, throttled_entry& x) {
  return f(caf::meta::type_name("throttled_entry"), x.kind, x.address, x.email, x.failures, x.wait_seconds);
}

// --- Cache shards (actors/cache.hpp) ------------------------------------------------------------------------------
/// A cache shard's answer to a get, a claim or a wait.
struct cache_reply {
  bool hit = false;   // `value` holds the cached (or, for a parked claim, the freshly produced) value
  std::string value;
  uint64_t token = 0; // claim on a miss: nonzero means "you produce it", then fill or fail with this token
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_reply& x) {
  return f(caf::meta::type_name("cache_reply"), x.hit, x.value, x.token);
}

/// (cache_get_atom, key) -> cache_reply (hit or not; expired entries count as misses).
using cache_get_atom = caf::atom_constant<caf::atom("cacheget")>;
/// (cache_put_atom, key, value, int64_t ttl_ms, std::vector<std::string> tags) -> bool: false if the entry is larger
/// than the shard's bound (nothing stored). ttl_ms <= 0 takes the default TTL.
using cache_put_atom = caf::atom_constant<caf::atom("cacheput")>;
/// (cache_erase_atom, key) -> bool: whether an entry was removed.
using cache_erase_atom = caf::atom_constant<caf::atom("cachedel")>;
/// (cache_tag_atom, tag) -> uint64_t, (cache_prefix_atom, key_prefix) -> uint64_t, (cache_clear_atom) -> uint64_t:
/// entries removed.
using cache_tag_atom = caf::atom_constant<caf::atom("cachetag")>;
using cache_prefix_atom = caf::atom_constant<caf::atom("cachepfx")>;
using cache_clear_atom = caf::atom_constant<caf::atom("cacheclr")>;
/// Single flight. (cache_claim_atom, key, int64_t producer_timeout_ms) -> cache_reply: a hit; or, on a miss with no
/// computation under way, a token that makes the caller the producer; or, while one is under way, the answer is
/// parked until the producer fills (-> hit) or fails (-> its error), or its timeout passes (-> timeout).
using cache_claim_atom = caf::atom_constant<caf::atom("cacheclaim")>;
/// (cache_wait_atom, key, uint64_t token) -> cache_reply: parks like a claim on the computation with this token.
using cache_wait_atom = caf::atom_constant<caf::atom("cachewait")>;
/// (cache_fill_atom, key, uint64_t token, value, int64_t ttl_ms, std::vector<std::string> tags) -> bool stored
/// (ttl_ms < 0: the parked callers get the value, nothing is stored);
/// (cache_fail_atom, key, uint64_t token, caf::error) -> bool. Both release the parked callers.
using cache_fill_atom = caf::atom_constant<caf::atom("cachefill")>;
using cache_fail_atom = caf::atom_constant<caf::atom("cachefail")>;
/// (cache_sweep_atom) -> uint64_t: drops expired entries now (the shard also sweeps periodically).
using cache_sweep_atom = caf::atom_constant<caf::atom("cachesweep")>;

// --- Circuit breakers (actors/breaker.hpp) -------------------------------------------------------------------------
/// (breaker_admit_atom) -> breaker_admission
using breaker_admit_atom = caf::atom_constant<caf::atom("bkadmit")>;
/// (breaker_result_atom, uint64_t permit, bool ok, int64_t retry_after_ms, std::string failure), no reply
using breaker_result_atom = caf::atom_constant<caf::atom("bkresult")>;
/// (breaker_state_atom) -> breaker_snapshot
using breaker_state_atom = caf::atom_constant<caf::atom("bkstate")>;
/// (breaker_health_atom, bool ok, std::string detail): an active health check's result; a failed one opens a closed
/// or half-open breaker at once (no reply).
using breaker_health_atom = caf::atom_constant<caf::atom("bkhealth")>;
// --- Uploads (actors/uploads.hpp) ---------------------------------------------------------------------------------

/// What a client asks to create (tus POST), once its headers are parsed and its filename sanitised.
struct upload_spec {
  std::string repository_id;
  std::string filename;
  std::string metadata;  // Upload-Metadata, verbatim
  int64_t length = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, upload_spec& x) {
  return f(caf::meta::type_name("upload_spec"), x.repository_id, x.filename, x.metadata, x.length);
}

/// One tus PATCH: bytes to store at `offset`, with an optional checksum of those bytes.
struct upload_chunk {
  int64_t offset = 0;
  std::string bytes;
  std::string checksum_algorithm;  // "", "sha1" or "sha256"
  std::string checksum;            // the raw digest (decoded from the header's base64)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, upload_chunk& x) {
  return f(caf::meta::type_name("upload_chunk"), x.offset, x.bytes, x.checksum_algorithm, x.checksum);
}

/// An upload as its owner sees it.
struct upload_status {
  std::string id;
  std::string repository_id;
  std::string filename;
  std::string metadata;
  int64_t length = 0;
  int64_t offset = 0;
  int64_t expires_at_ms = 0;  // 0 once completed
  bool completed = false;
  std::string job_id;  // the processing job, once completed
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, upload_status& x) {
  return f(caf::meta::type_name("upload_status"), x.id, x.repository_id, x.filename, x.metadata, x.length, x.offset,
           x.expires_at_ms, x.completed, x.job_id);
}

/// (upload_new_atom, user_id, upload_spec) -> upload_status: to the upload router; creates the upload.
using upload_new_atom = caf::atom_constant<caf::atom("upnew")>;
/// (upload_patch_atom, upload_id, user_id, upload_chunk) -> upload_status: to the router (or the session).
using upload_patch_atom = caf::atom_constant<caf::atom("uppatch")>;
/// (upload_head_atom, upload_id, user_id) -> upload_status
using upload_head_atom = caf::atom_constant<caf::atom("uphead")>;
/// (upload_delete_atom, upload_id, user_id) -> bool
using upload_delete_atom = caf::atom_constant<caf::atom("updelete")>;
/// (upload_forget_atom, upload_id): to the router; the upload is gone (expired): its session stops.
using upload_forget_atom = caf::atom_constant<caf::atom("upforget")>;
/// Upload I/O actors: (upload_write_atom, path, upload_chunk) -> int64_t new size (checksum verified, bytes beyond
/// chunk.offset dropped, written, fsynced); (upload_remove_atom, path) -> bool.
using upload_write_atom = caf::atom_constant<caf::atom("upwrite")>;
using upload_remove_atom = caf::atom_constant<caf::atom("upremove")>;
/// Internal: the sweeper's or a session's timer (only ever self-sent).
using upload_tick_atom = caf::atom_constant<caf::atom("uptick")>;

// --- Jobs and processing (actors/jobs.hpp, actors/processing.hpp) ------------------------------------------------

/// A segment of a chunk's text; lines relative to the chunk (0 = its first line).
struct chunk_segment {
  int32_t first_line = 0;
  int32_t last_line = 0;
  std::string text;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, chunk_segment& x) {
  return f(caf::meta::type_name("chunk_segment"), x.first_line, x.last_line, x.text);
}

/// What a file-chunk processor found in one chunk.
struct chunk_summary {
  int64_t newlines = 0;
  bool has_nul = false;
  int64_t control_bytes = 0;  // bytes < 0x20 other than \t \n \v \f \r and ESC, plus DEL
  std::vector<chunk_segment> segments;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, chunk_summary& x) {
  return f(caf::meta::type_name("chunk_summary"), x.newlines, x.has_nul, x.control_bytes, x.segments);
}

/// (chunk_atom, std::string bytes) -> chunk_summary: to a file-chunk processor.
using chunk_atom = caf::atom_constant<caf::atom("chunk")>;
/// (job_run_atom, job_record) -> std::string result JSON: to a job runner; invalid_input = fails for good.
using job_run_atom = caf::atom_constant<caf::atom("jobrun")>;
/// (jobs_kick_atom): to the job queue; runnable jobs may be waiting (e.g. an upload just completed).
using jobs_kick_atom = caf::atom_constant<caf::atom("jobskick")>;
/// (jobs_running_atom) -> std::vector<std::string>: the ids of the jobs the queue runs now.
using jobs_running_atom = caf::atom_constant<caf::atom("jobsrun")>;

// --- Cluster (actors/cluster.hpp) ---------------------------------------------------------------------------------

/// Who sends a message to another node's endpoint: its node id and epoch (a stale epoch is refused), and how many
/// endpoints forwarded it already (a user's owner as the sender saw it may have moved: forwarded at most once).
/// A message sent for an HTTP request carries the request's W3C trace context (ops/tracing.hpp): `traceparent`
/// names the sender's span of the call, so the endpoint's span joins the request's trace ("" when none).
struct cluster_origin {
  std::string node_id;
  int64_t epoch = 0;
  int32_t hops = 0;
  std::string traceparent{};
  std::string tracestate{};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_origin& x) {
  return f(caf::meta::type_name("cluster_origin"), x.node_id, x.epoch, x.hops, x.traceparent, x.tracestate);
}

/// One rate-limit bucket of a session, as handed to the user's next owner: the tokens it had at the hand-off.
struct bucket_level {
  rate_policy policy;
  double tokens = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bucket_level& x) {
  return f(caf::meta::type_name("bucket_level"), x.policy, x.tokens);
}

/// What a user's session hands to the user's next owner when membership moves the user: its buckets and today's
/// quota use. The new owner never has more than this (buckets: the lower level; quota: the higher use).
struct session_handoff {
  std::string user_id;
  std::vector<bucket_level> buckets;
  std::string quota_date; // the quota day `used` counts (YYYY-MM-DD)
  int64_t used = 0;
  // The spend ledger (actors/spend.hpp): settled pico-dollars of the quota day and month starting at these unix
  // times, what is reserved and not settled yet (it settles on the new owner), the tokens-per-minute window.
  int64_t spend_day_start = 0;
  int64_t spent_day = 0;
  int64_t spend_month_start = 0;
  int64_t spent_month = 0;
  std::vector<spend_hold> spend_holds{};
  double window_tokens = 0;
  std::vector<key_handoff> keys{}; // the ledgers of the user's API keys with limits
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_handoff& x) {
  return f(caf::meta::type_name("session_handoff"), x.user_id, x.buckets, x.quota_date, x.used, x.spend_day_start,
           x.spent_day, x.spend_month_start, x.spent_month, x.spend_holds, x.window_tokens, x.keys);
}

/// To a session: (handoff_atom) -> session_handoff, after which it ends (the user moved); (handoff_atom,
/// session_handoff): lowers its buckets and raises its quota use to what the previous owner handed over.
/// To the session manager: (handoff_atom, session_handoff): for the user's live or next session.
/// To an endpoint: (handoff_atom, session_handoff, cluster_origin).
using handoff_atom = caf::atom_constant<caf::atom("handoff")>;
/// (handoff_done_atom, node_id, std::vector<std::string> placed): to the session manager (to an endpoint with a
/// cluster_origin): `node_id` handed over every session of the users it does not own under `placed`. A node waiting
/// for such a user's hand-off starts it then (from its hand-off if one came, else fresh: it had no session).
using handoff_done_atom = caf::atom_constant<caf::atom("hodone")>;
/// Internal to the session manager: a user waited for its hand-off long enough.
using handoff_timeout_atom = caf::atom_constant<caf::atom("hotmo")>;
/// (cluster_view_atom): to the session manager; the cluster's placement changed: sessions of users this node no
/// longer owns are handed to their owners.
using cluster_view_atom = caf::atom_constant<caf::atom("clview")>;
/// (cluster_reset_atom): to the session manager; this node was declared down and joins again with a new epoch:
/// every session ends without a hand-off (the users' new owners started them empty meanwhile).
using cluster_reset_atom = caf::atom_constant<caf::atom("clreset")>;
/// (cluster_join_atom, std::string http_url, uint16_t http_port): to the membership actor, once HTTP listens.
using cluster_join_atom = caf::atom_constant<caf::atom("cljoin")>;
/// (cluster_leave_atom) -> bool: to the membership actor; drains this node (row "leaving", its users handed to their
/// new owners once the others stopped placing it, row "down") and answers when done (at once when not joined).
using cluster_leave_atom = caf::atom_constant<caf::atom("clleave")>;
/// (cluster_hello_atom, node_id, int64_t epoch, caf::actor endpoint): from the node that opened the connection (the
/// lower node id) to the other's endpoint, every heartbeat: its own endpoint, so that one connection serves both ways
/// (two connections opened at once from both sides, over TLS, kept replacing each other).
using cluster_hello_atom = caf::atom_constant<caf::atom("clhello")>;
/// Internal to the membership actor: its heartbeat timer.
using cluster_tick_atom = caf::atom_constant<caf::atom("cltick")>;
/// Debug mode across nodes, to another node's endpoint (actors/cluster_endpoint.hpp): (cluster_debug_tree_atom) ->
/// std::string, its tree as GET /debug/actors's JSON; (cluster_debug_actor_atom, std::string key, uint64_t limit) ->
/// std::string, one actor and its mailbox as GET /debug/actors/{id}'s JSON.
using cluster_debug_tree_atom = caf::atom_constant<caf::atom("cldbgtree")>;
using cluster_debug_actor_atom = caf::atom_constant<caf::atom("cldbgactor")>;

// --- Metrics ------------------------------------------------------------------------------------------------------
/// (metrics_atom) -> std::string: the Prometheus text exposition, mailbox sizes included.
using metrics_atom = caf::atom_constant<caf::atom("metrics")>;

// --- Test and debug helpers ---------------------------------------------------------------------------------------
/// (delay_atom, milliseconds) -> int64_t: answers after the given time without blocking a thread.
using delay_atom = caf::atom_constant<caf::atom("delay")>;
/// (echo_atom, std::string) -> std::string: answers with its argument (one actor round trip).
using echo_atom = caf::atom_constant<caf::atom("echo")>;
/// Internal to the debug helper: a delay is over.
using delay_done_atom = caf::atom_constant<caf::atom("delaydone")>;

/// Registers this layer's message types (above, and actors/breaker.hpp's and actors/spend.hpp's) with the config.
void register_actor_types(caf::actor_system_config& cfg);

/// Registers every layer's message types, each in one place: register_service_errors (config/service_error.hpp),
/// register_introspect_types, register_persistence_types and register_actor_types. Every node calls it once
/// before its actor system starts, so all nodes know the same types under the same names.
void register_message_types(caf::actor_system_config& cfg);

} // namespace troupe
