#pragma once
// Session actors: one per active user, holding what verifying a request needs so the hot path never touches
// PostgreSQL: the user's role and plan, revoked access tokens (until they expire) and revoked API keys.
//
// A session actor (session_actor, below) answers for its user: authorize requests (unauthenticated if the token or
// key is revoked; with credential::with_storage also the user's storage use, from its last read while no transaction
// changed storage since (the storage epoch, persistence/storage_epoch.hpp), else read again, one read at a time
// shared by the requests waiting for it), persists revocations (db.query) before it acknowledges them, reserves
// quota all or nothing (granted usage is persisted through the DB writer, batched), settles spend reservations
// (actors/spend.hpp) and hands its buckets and quota use over when its user moves to another node. It passivates
// (exits normally) after `idle` without requests (mailbox probes do not count), and re-reads its user (role, plan)
// from db.query in the background when a request finds it older than `user_refresh`, so `troupe admin
// grant|revoke` reaches a busy session too (a deleted user ends it).
//
// The session manager ("sessions", session_manager_actor below) starts sessions, loaded from PostgreSQL if needed,
// and forwards each request with a user id to the user's session; a spend settlement or key revocation goes to the
// live session only (a new one reads the ledger and the database). A hand-off for a user without a live session is
// kept for its next one (at most 100000, for an hour).
//
// A user moved here from a member that is alive (this node joined, or that member drains) is served only once its
// previous owner let it go: its hand-off came, or that member said it handed over everything it no longer owns
// (handoff_done_atom; it had no session for the user), or handoff_wait passed (then its buckets start empty).
// Requests for it wait meanwhile (about a heartbeat), so two nodes never admit for the same user at once.
//
// In a cluster (actors/cluster.hpp) the manager serves only the users this node owns: a request for another
// node's user is delegated to that node's endpoint. A session of a user that moved here starts from the previous
// owner's hand-off, or (the owner died) with empty buckets refilling from the moment of the move.
//
// The manager is the router of user id -> session: it loads a user's snapshot (concurrent first requests share one
// load), spawns the session (which ends with the manager), publishes it in the sessions directory (so callers usually
// reach it without the manager) and monitors it. A crashed session is forgotten and rebuilt from PostgreSQL on next
// use; the crash is counted as troupe_actor_restarts_total{supervisor="sessions",child="session"}.
//
// The manager is the sessions subsystem's supervisor: it is a child of the root named "sessions", of kind supervisor
// (it answers children_atom with its sessions).

#include "actors/cluster.hpp"
#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"
#include "introspect/messages.hpp"
#include "persistence/queries.hpp"
#include "persistence/storage_epoch.hpp"
#include "persistence/writer.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

/// A session's interface.
using session_actor = caf::typed_actor<
  /// The request's identity: unauthenticated when its token or key is revoked; reserves what the credential asks.
  caf::replies_to<authorize_atom, credential>::with<identity>,
  /// Reserves n generations of today's quota, all or nothing (n < 0 gives a failed generation back).
  caf::replies_to<quota_atom, int64_t>::with<quota_status>,
  /// Ends a spend reservation made by authorize_atom with credential::reserve_tokens / reserve_pusd.
  caf::replies_to<spend_atom, spend_settlement>::with<bool>,
  /// (jti, expires_at): refused at once, acknowledged once the revocation is durable.
  caf::replies_to<revoke_atom, std::string, int64_t>::with<bool>,
  /// (key_id): refused from now on (the database already says so).
  caf::replies_to<revoke_key_atom, std::string>::with<bool>,
  /// Its buckets, quota and spend, then it ends (the user moved to another node).
  caf::replies_to<handoff_atom>::with<session_handoff>,
  /// Lowers its buckets / raises its quota use to the previous owner's.
  caf::reacts_to<handoff_atom, session_handoff>, mailbox_size_request>;

/// The session manager's interface: each request with a user id reaches that user's session (on this node, or on
/// its owner's through the cluster endpoint).
using session_manager_actor = caf::typed_actor<
  /// The live session (started if needed), as an untyped handle: for tests and tools.
  caf::replies_to<session_atom, std::string>::with<caf::actor>,
  caf::replies_to<authorize_atom, std::string, credential>::with<identity>,
  caf::replies_to<quota_atom, std::string, int64_t>::with<quota_status>,
  caf::replies_to<spend_atom, std::string, spend_settlement>::with<bool>,
  caf::replies_to<revoke_atom, std::string, std::string, int64_t>::with<bool>,
  caf::replies_to<revoke_key_atom, std::string, std::string>::with<bool>,
  /// To the user's live session, else kept for its next one.
  caf::reacts_to<handoff_atom, session_handoff>,
  /// (node_id, placed): that node handed over what it no longer owns.
  caf::reacts_to<handoff_done_atom, std::string, std::vector<std::string>>,
  /// Placement changed: hands the sessions of users this node no longer owns to their owners' endpoints.
  caf::reacts_to<cluster_view_atom>,
  /// This node was declared down: ends every session, forgets hand-offs.
  caf::reacts_to<cluster_reset_atom>,
  /// The live sessions ("session:<user id>", at most 1000), so debug mode shows them in the tree.
  caf::replies_to<children_atom>::with<std::vector<child_info>>, mailbox_size_request>;

/// The manager's name in the directory (a child of the root, of kind supervisor).
inline const actor_name<session_manager_actor> session_manager_name{"sessions"};

struct session_options {
  std::chrono::milliseconds idle{15 * 60 * 1000};
  /// How old the user's role and plan may get before a request makes the session re-read them.
  std::chrono::seconds user_refresh{60};
  /// Daily generation quota of a plan ("free", "pro", ...).
  std::function<int64_t(const std::string& plan)> daily_quota;
  /// Spend budgets and tokens per minute of a plan (actors/spend.hpp); none when empty.
  std::function<troupe::spend_limits(const std::string& plan)> plan_limits;
  /// How long a spend reservation is held without being settled (the longest generation and a margin): then it is
  /// dropped, so a caller that never settles (lost, timed out) cannot hold the budget.
  std::chrono::seconds reservation_ttl{660};
  /// Whether a session reads the user's spend of the day and month when it starts (some plan has a limit).
  bool load_spend = true;
  /// The UTC hour at which the quota day rolls over.
  int reset_utc_hour = 0;
  /// The live DB writer, for usage rows.
  std::function<std::optional<db_writer_actor>()> writer;
  /// The live "db.query" actor (persistence/query_router.hpp), or nullopt while it restarts.
  std::function<std::optional<db_query_actor>()> db_query;
  /// Clock for token expiry, unix seconds (tests inject their own).
  std::function<int64_t()> now_unix;
  /// Monotonic clock of the user's rate-limit buckets, seconds (steady_clock when empty).
  std::function<double()> now_seconds;
  /// Counts the transactions that change storage use: while it says nothing changed since the session read the
  /// user's storage use, the session answers it without asking PostgreSQL. None: read every time.
  std::shared_ptr<storage_epoch> storage_changes;
};

struct session_manager_options {
  session_options session;
  /// Where live sessions are published, keyed by user id (a directory of its own: /metrics does not list it).
  std::shared_ptr<directory> sessions = std::make_shared<directory>();
  std::shared_ptr<metrics_registry> metrics;
  /// Session actors alive: each holds one (a count_holder in its state) until it ends, whatever ends it.
  std::shared_ptr<std::atomic<int64_t>> active = std::make_shared<std::atomic<int64_t>>(0);
  /// The cluster this node belongs to; null or disabled: every user is this node's.
  std::shared_ptr<cluster_state> cluster;
  /// How long a user moved here from a live member waits for that member's hand-off before it starts with empty
  /// buckets (cluster.failure_ms + 3 heartbeats).
  std::chrono::milliseconds handoff_wait{8000};
};

session_manager_actor spawn_session_manager(caf::actor_system& sys, session_manager_options options);

/// The "sessions" child of the root: the session manager from the session.* and quota.* settings, publishing live
/// sessions in `sessions` (read by authentication) and its sessions' DB look-ups and usage writes going to db.query
/// and db.writer by name in context.names. troupe_sessions_active is collected into context.metrics.
/// What the sessions share with the rest of the node.
struct session_pieces {
  std::shared_ptr<directory> sessions = std::make_shared<directory>(); // live sessions by user id
  std::shared_ptr<storage_epoch> storage_changes;                      // none: storage is read every time
  std::shared_ptr<std::atomic<int64_t>> active = std::make_shared<std::atomic<int64_t>>(0);
  std::shared_ptr<cluster_state> cluster; // none: a single node
};

child_spec make_sessions_supervisor(const config::settings& settings, const supervision_context& context,
                                    session_pieces pieces);

/// Writes troupe_sessions_active from the count of live session actors.
void add_session_collector(metrics_registry& metrics, std::shared_ptr<std::atomic<int64_t>> active);

/// The current time in unix seconds.
int64_t unix_now();

/// `n` generations of a user's daily quota that their session granted (quota_atom, n), given back (quota_atom, -n) to
/// the live session when the reservation is destroyed or give_back() is called, unless commit() came first: a call
/// that fails, or whose owner drops it, cannot keep a generation it did not use. Move-only; one owner at a time, on
/// any thread (the give-back is an asynchronous message). A session that ended meanwhile (passivated) gets nothing:
/// the reservation was recorded as usage, and stays.
class quota_reservation {
public:
  quota_reservation() noexcept = default;
  /// Takes over a granted reservation; `sessions` is where live sessions are published by user id
  /// (session_manager_options::sessions).
  quota_reservation(std::shared_ptr<directory> sessions, std::string user_id, int64_t n = 1,
                    std::shared_ptr<cluster_state> cluster = nullptr);
  quota_reservation(quota_reservation&& other) noexcept;
  quota_reservation& operator=(quota_reservation&& other) noexcept;
  quota_reservation(const quota_reservation&) = delete;
  quota_reservation& operator=(const quota_reservation&) = delete;
  ~quota_reservation();

  /// The generations were used: nothing is given back.
  void commit() noexcept;
  /// Gives the generations back now; later calls (and the destructor) do nothing.
  void give_back();
  /// Whether generations are held (reserved, neither committed nor given back).
  bool held() const noexcept { return n_ > 0; }

private:
  std::shared_ptr<directory> sessions_;
  std::shared_ptr<cluster_state> cluster_;
  std::string user_id_;
  int64_t n_ = 0;
};

/// A spend reservation the user's session granted (credential::reserve_tokens / reserve_pusd): settle() sends what
/// the call really used; destroyed unsettled, it settles at 0 (the call failed or was dropped). Move-only; settles
/// once, from any thread (an asynchronous message to the live session, through the owner's endpoint in a cluster).
class spend_reservation {
public:
  spend_reservation() noexcept = default;
  /// Takes over the granted reservation `reservation` (spend_status::reservation; 0: none, nothing to settle), made
  /// against the limits of the API key `key_id` too when that is not "".
  spend_reservation(std::shared_ptr<directory> sessions, std::string user_id, uint64_t reservation,
                    std::shared_ptr<cluster_state> cluster = nullptr, std::string key_id = {});
  spend_reservation(spend_reservation&& other) noexcept;
  spend_reservation& operator=(spend_reservation&& other) noexcept;
  spend_reservation(const spend_reservation&) = delete;
  spend_reservation& operator=(const spend_reservation&) = delete;
  ~spend_reservation();

  /// The call used `tokens` and cost `pusd` pico-dollars; later calls (and the destructor) do nothing.
  void settle(int64_t tokens, int64_t pusd);
  bool held() const noexcept { return held_; }

private:
  std::shared_ptr<directory> sessions_;
  std::shared_ptr<cluster_state> cluster_;
  std::string user_id_;
  std::string key_id_;
  uint64_t reservation_ = 0;
  bool held_ = false;
};

/// The quota day containing `unix_seconds` when days roll over at `reset_utc_hour`: its date (YYYY-MM-DD) and when
/// it ends (unix seconds).
struct quota_day {
  std::string date;
  int64_t ends_at = 0;
};
quota_day quota_day_of(int64_t unix_seconds, int reset_utc_hour);

} // namespace troupe
