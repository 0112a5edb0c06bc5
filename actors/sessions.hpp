#pragma once
// Session actors: one per active user, holding what verifying a request needs so the hot path never touches
// PostgreSQL: the user's role and plan, revoked access tokens (until they expire) and revoked API keys.
//
// session actor   (authorize_atom, credential) -> identity   unauthenticated if the token/key is revoked; with
//                                                  credential::with_storage also the user's storage use, from its
//                                                  last read while no transaction changed storage since (the
//                                                  storage epoch, persistence/storage_epoch.hpp), else read again
//                                                  (one read at a time, shared by the requests waiting for it)
//                 (revoke_atom, jti, int64_t expires_at) -> bool   persists the revocation (db.query), then refuses
//                 (revoke_key_atom, key_id) -> bool
//                 (quota_atom, int64_t n) -> quota_status   reserves n generations of today's quota, all or nothing
//                                                  (n < 0 gives a failed generation back);
//                                                  granted usage is persisted through the DB writer (batched)
//                 (mailbox_atom) -> size_t
//                 passivates (exits normally) after `idle` without messages
//                 re-reads its user (role, plan) from db.query in the background when a request finds it older than
//                 `user_refresh`, so `troupe admin grant|revoke` reaches a busy session too (a deleted user ends it)
//
// session manager (session_atom, user_id) -> caf::actor          the live session, loaded from PostgreSQL if needed
//                 (authorize_atom, user_id, credential) -> identity   same, then asks the session
//                 (children_atom) -> std::vector<child_info>     the live sessions ("session:<user id>", at most
//                                                                1000), so debug mode shows them in the tree
//                 (mailbox_atom) -> size_t
//
// The manager is the router of user id -> session: it loads a user's snapshot (concurrent first requests share one
// load), spawns the session (which ends with the manager), publishes it in the sessions directory (so callers usually
// reach it without the manager) and monitors it. A crashed session is forgotten and rebuilt from PostgreSQL on next
// use; the crash is counted as troupe_actor_restarts_total{supervisor="sessions",child="session"}.
//
// The manager is the sessions subsystem's supervisor: it is a child of the root named "sessions", of kind supervisor
// (it answers children_atom with its sessions).

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"
#include "persistence/storage_epoch.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace troupe {

struct session_options {
  std::chrono::milliseconds idle{15 * 60 * 1000};
  /// How old the user's role and plan may get before a request makes the session re-read them.
  std::chrono::seconds user_refresh{60};
  /// Daily generation quota of a plan ("free", "pro", ...).
  std::function<int64_t(const std::string& plan)> daily_quota;
  /// The UTC hour at which the quota day rolls over.
  int reset_utc_hour = 0;
  /// The live DB writer, for usage rows.
  std::function<std::optional<caf::actor>()> writer;
  /// The live "db.query" actor (persistence/query_router.hpp), or nullopt while it restarts.
  std::function<std::optional<caf::actor>()> db_query;
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
};

caf::actor spawn_session_manager(caf::actor_system& sys, session_manager_options options);

/// The "sessions" child of the root: the session manager from the session.* and quota.* settings, publishing live
/// sessions in `sessions` (read by authentication) and its sessions' DB look-ups and usage writes going to db.query
/// and db.writer by name in context.names. troupe_sessions_active is collected into context.metrics.
child_spec make_sessions_supervisor(const config::settings& settings, const supervision_context& context,
                                    std::shared_ptr<directory> sessions,
                                    std::shared_ptr<storage_epoch> storage_changes = nullptr);

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
  quota_reservation(std::shared_ptr<directory> sessions, std::string user_id, int64_t n = 1);
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
  std::string user_id_;
  int64_t n_ = 0;
};

/// The quota day containing `unix_seconds` when days roll over at `reset_utc_hour`: its date (YYYY-MM-DD) and when
/// it ends (unix seconds).
struct quota_day {
  std::string date;
  int64_t ends_at = 0;
};
quota_day quota_day_of(int64_t unix_seconds, int reset_utc_hour);

} // namespace troupe
