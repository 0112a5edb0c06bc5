#pragma once
// Session actors: one per active user, holding what verifying a request needs so the hot path never touches
// PostgreSQL: the user's role and plan, revoked access tokens (until they expire) and revoked API keys.
//
// session actor   (authorize_atom, credential) -> identity   unauthenticated if the token/key is revoked
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

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"

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
};

struct session_manager_options {
  session_options session;
  /// Where live sessions are published, keyed by user id (a directory of its own: /metrics does not list it).
  std::shared_ptr<directory> sessions = std::make_shared<directory>();
  std::shared_ptr<metrics_registry> metrics;
  std::shared_ptr<std::atomic<int64_t>> active = std::make_shared<std::atomic<int64_t>>(0);
};

caf::actor spawn_session_manager(caf::actor_system& sys, session_manager_options options);

/// The current time in unix seconds.
int64_t unix_now();

/// The quota day containing `unix_seconds` when days roll over at `reset_utc_hour`: its date (YYYY-MM-DD) and when
/// it ends (unix seconds).
struct quota_day {
  std::string date;
  int64_t ends_at = 0;
};
quota_day quota_day_of(int64_t unix_seconds, int reset_utc_hour);

} // namespace troupe
