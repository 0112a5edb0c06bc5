#include "actors/sessions.hpp"

#include "actors/guards.hpp"
#include "actors/keyed_children.hpp"
#include "actors/persistence_supervisor.hpp"
#include "introspect/observed_actor.hpp"

#include "actors/rate_limit.hpp"

#include "config/log.hpp"
#include "config/service_error.hpp"
#include "persistence/usage.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <unordered_map>
#include <unordered_set>

namespace troupe {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

quota_day quota_day_of(int64_t unix_seconds, int reset_utc_hour) {
  constexpr int64_t day = 86400;
  auto shifted = unix_seconds - reset_utc_hour * int64_t{3600};
  auto index = shifted >= 0 ? shifted / day : (shifted - day + 1) / day;
  std::time_t start = index * day;
  std::tm utc{};
  ::gmtime_r(&start, &utc);
  char date[16];
  std::strftime(date, sizeof(date), "%Y-%m-%d", &utc);
  return {date, (index + 1) * day + reset_utc_hour * int64_t{3600}};
}

namespace {

constexpr int64_t key_touch_interval_s = 60;
constexpr size_t max_listed_sessions = 1000;

struct session_state {
  session_options opts;
  user_record user;
  std::unordered_map<std::string, int64_t> revoked_jtis;  // jti -> expires_at
  std::unordered_set<std::string> revoked_keys;
  std::unordered_map<std::string, int64_t> key_touched;   // key id -> last time we recorded its use
  quota_day day;      // the quota day `used` counts
  int64_t used = 0;   // generations used that day
  std::unordered_map<std::string, token_bucket> buckets;  // the user's rate limits, by policy name
  std::optional<spend_ledger> spend;                      // budgets and tokens per minute (set at start)
  // The user's API keys with limits that were used here, by key id: the key's limits (from the credential; they
  // never change) and its ledger. `key_spends`: what the session started from, for keys not used yet.
  struct metered_key {
    api_key_limits limits;
    int64_t created_at = 0;
    key_ledger ledger;
  };
  std::unordered_map<std::string, metered_key> keys;
  std::unordered_map<std::string, key_spend> key_spends;
  // Settled here for keys this session holds no ledger of (calls reserved where the user was before a failover):
  // added to the key's spend when its ledger starts.
  std::unordered_map<std::string, int64_t> late_key_pusd;
  std::optional<double> moved_at; // when the user moved here from a node that handed nothing over: new buckets
                                  // start empty then (monotonic seconds)
  int64_t user_loaded_at = 0;                             // when `user` was read (unix seconds)
  bool refreshing_user = false;
  // GET /api/me's storage use: the last exact read and the storage epoch it is exact at, the read under way and who
  // waits for it (`late`: joined after it was sent, so it may predate their request).
  struct storage_waiter {
    identity who;
    caf::response_promise promise;
    bool late = false;
  };
  std::optional<storage_status> storage;
  uint64_t storage_epoch_at = 0;
  bool storage_reading = false;
  std::vector<storage_waiter> storage_waiters;
  // When the session last handled a request (not a mailbox probe): it ends `opts.idle` after it.
  std::chrono::steady_clock::time_point last_request = std::chrono::steady_clock::now();

  static inline const char* name = "session";
};

/// The session's own timer: has it been idle for `idle`? One timer per `idle`, where a `caf::after` in the behaviour
/// set (and woke) the CAF clock's thread at every message the session handled.
using session_idle_atom = caf::atom_constant<caf::atom("sessidle")>;
using session_self_actor = session_actor::extend<caf::reacts_to<session_idle_atom>>;

using session_self = observed_typed_stateful_actor<session_self_actor, session_state>;

/// A request arrived: the session is not idle.
void busy(session_self* self) {
  self->state.last_request = std::chrono::steady_clock::now();
}

/// Ends the session once it has handled no request for `idle`, else looks again when that would be.
void check_idle(session_self* self) {
  auto idle = self->state.opts.idle;
  auto quiet = std::chrono::steady_clock::now() - self->state.last_request;
  if (quiet >= idle) {
    self->quit();
    return;
  }
  self->delayed_send(self, std::chrono::ceil<std::chrono::milliseconds>(idle - quiet), session_idle_atom::value);
}

int64_t now(const session_options& opts) {
  return opts.now_unix ? opts.now_unix() : unix_now();
}

void read_storage(session_self* self);

/// Ends the storage read under way with `storage` (nullopt: the database could not say), read at `epoch` (nullopt:
/// a change was under way). Waiters that joined late get it only if nothing changed since it was sent; otherwise a
/// new read is sent for them.
void storage_read(session_self* self, std::optional<storage_status> storage, std::optional<uint64_t> epoch) {
  auto& st = self->state;
  st.storage_reading = false;
  bool exact_now = storage && epoch && st.opts.storage_changes && st.opts.storage_changes->unchanged_since(*epoch);
  if (exact_now) {
    st.storage = storage;
    st.storage_epoch_at = *epoch;
  } else {
    st.storage.reset();
  }
  auto waiters = std::move(st.storage_waiters);
  st.storage_waiters.clear();
  for (auto& w : waiters) {
    if (w.late && storage && !exact_now) {
      w.late = false; // the next read is sent after their request: it answers them
      st.storage_waiters.push_back(std::move(w));
      continue;
    }
    if (storage) {
      w.who.storage_known = true;
      w.who.storage = *storage;
    }
    w.promise.deliver(std::move(w.who));
  }
  if (!st.storage_waiters.empty())
    read_storage(self);
}

/// Sends the storage read (one at a time; its answer goes to storage_read).
void read_storage(session_self* self) {
  auto& st = self->state;
  st.storage_reading = true;
  auto epoch = st.opts.storage_changes ? st.opts.storage_changes->settled() : std::nullopt;
  auto db = st.opts.db_query ? st.opts.db_query() : std::nullopt;
  if (!db) {
    storage_read(self, std::nullopt, std::nullopt);
    return;
  }
  // Well under the 10 s the HTTP side waits for the session: a waiter may need two reads, and a slow database must
  // end in `storage: null`, not in a 504.
  self->request(*db, caf::duration{std::chrono::seconds{3}}, storage_get_atom::value, st.user.id)
    .then([self, epoch](storage_status& storage) { storage_read(self, storage, epoch); },
          [self](caf::error&) { storage_read(self, std::nullopt, std::nullopt); });
}

/// Answers `who` with the user's storage use: at once while the last read is still exact, else after a read.
caf::result<identity> with_storage(session_self* self, identity who) {
  auto& st = self->state;
  if (st.storage && st.opts.storage_changes && st.opts.storage_changes->unchanged_since(st.storage_epoch_at)) {
    who.storage_known = true;
    who.storage = *st.storage;
    return who;
  }
  auto promise = self->make_response_promise();
  st.storage_waiters.push_back(session_state::storage_waiter{std::move(who), promise, st.storage_reading});
  if (!st.storage_reading)
    read_storage(self);
  return caf::delegated<identity>{};
}

/// Records (at most once a minute per key) that an API key was used; fire and forget.
void touch_key(session_self* self, const std::string& key_id) {
  auto& st = self->state;
  auto t = now(st.opts);
  auto& last = st.key_touched[key_id];
  if (t - last < key_touch_interval_s)
    return;
  last = t;
  if (auto db = st.opts.db_query ? st.opts.db_query() : std::nullopt)
    caf::anon_send(*db, api_key_touch_atom::value, key_id, t);
}

/// Today's quota, rolling over to a new day (used = 0) when the old one has ended.
quota_status quota(session_self* self) {
  auto& st = self->state;
  auto t = now(st.opts);
  if (t >= st.day.ends_at) {
    st.day = quota_day_of(t, st.opts.reset_utc_hour);
    st.used = 0;
  }
  auto limit = st.opts.daily_quota ? st.opts.daily_quota(st.user.plan) : 0;
  return quota_status{true, limit, st.used, st.day.ends_at};
}

/// Reserves n generations of today's quota (n < 0 gives them back, never below zero) and records the change through
/// the DB writer; refuses, changing nothing, when n > 0 would exceed the plan's limit. n == 0 only reads.
quota_status reserve_quota(session_self* self, int64_t n) {
  auto& st = self->state;
  auto status = quota(self);
  if (n == 0)
    return status;
  if (n > 0 && status.used + n > status.limit) {
    status.allowed = false;
    return status;
  }
  n = std::max(n, -st.used); // a refund never goes below zero
  st.used += n;
  status.used = st.used;
  // Durable within db.background_flush_ms (nobody awaits it), batched with other writes; a restart reloads today's
  // count.
  if (auto writer = st.opts.writer ? st.opts.writer() : std::nullopt) {
    write_request usage;
    usage.result = "{}";
    usage.usage.push_back(usage_row{st.user.id, st.day.date, n, 0});
    caf::anon_send(*writer, write_later_atom::value, std::move(usage));
  }
  return status;
}

spend_limits limits_of(const session_state& st) {
  return st.opts.plan_limits ? st.opts.plan_limits(st.user.plan) : spend_limits{};
}

double seconds_now(const session_options& opts);

/// Reserves spend and tokens (or refuses, changing nothing).
spend_status reserve_spend(session_self* self, int64_t tokens, int64_t pusd) {
  auto& st = self->state;
  auto t = now(st.opts);
  return st.spend->reserve(limits_of(st), tokens, pusd, t, seconds_now(st.opts), t + st.opts.reservation_ttl.count());
}

void settle_spend(session_self* self, const spend_settlement& settlement) {
  auto& st = self->state;
  st.spend->settle(limits_of(st), settlement, now(st.opts), seconds_now(st.opts));
  if (settlement.key_id.empty())
    return;
  if (auto key = st.keys.find(settlement.key_id); key != st.keys.end())
    key->second.ledger.settle(key->second.limits, key->second.created_at, settlement, now(st.opts),
                              seconds_now(st.opts));
  else if (settlement.used_pusd > 0)
    st.late_key_pusd[settlement.key_id] += settlement.used_pusd;
}

/// The ledger of the metered key of `cred`, started if this is its first call here: from the spend its period held
/// when the session loaded (a key created since has spent nothing), with empty windows if the user moved here
/// without a hand-off.
session_state::metered_key& key_of(session_self* self, const credential& cred) {
  auto& st = self->state;
  auto found = st.keys.find(cred.key_id);
  if (found != st.keys.end())
    return found->second;
  auto t = now(st.opts);
  auto start = key_period_start(cred.key_created_at, cred.key_limits.budget_duration_s, t);
  int64_t spent = 0;
  if (auto loaded = st.key_spends.find(cred.key_id); loaded != st.key_spends.end()) {
    start = loaded->second.period_start;
    spent = loaded->second.spent_pusd;
  }
  if (auto late = st.late_key_pusd.find(cred.key_id); late != st.late_key_pusd.end()) {
    spent += late->second;
    st.late_key_pusd.erase(late);
  }
  auto& key = st.keys.emplace(cred.key_id, session_state::metered_key{cred.key_limits, cred.key_created_at,
                                                                      key_ledger{start, spent}})
                .first->second;
  if (st.moved_at && *st.moved_at <= seconds_now(st.opts))
    key.ledger.empty_windows(key.limits, *st.moved_at);
  return key;
}

/// Reserves the call's estimate against the user's plan and, for a metered API key, the key's own limits: both or
/// neither. Nothing is reserved (reservation 0, no settlement needed) when no limit applies: no plan has one (a user
/// whose plan has none still reserves when another has, so that a plan change finds the spend counted) and the
/// key is not metered. A model outside the key's list is refused first ("key_model"), reserving nothing.
spend_status reserve_call(session_self* self, const credential& cred) {
  auto& st = self->state;
  bool by_key = cred.kind == "api_key";
  const auto& models = cred.key_limits.models;
  if (by_key && !models.empty() && !cred.model.empty()
      && std::find(models.begin(), models.end(), cred.model) == models.end()) {
    spend_status refused;
    refused.allowed = false;
    refused.refused = "key_model";
    return refused;
  }
  bool metered_key = by_key && cred.key_limits.metered();
  if (!st.opts.load_spend && !limits_of(st).any() && !metered_key)
    return {};
  auto spend = reserve_spend(self, cred.reserve_tokens, cred.reserve_pusd);
  if (!spend.allowed || !metered_key)
    return spend;
  auto& key = key_of(self, cred);
  auto t = now(st.opts);
  auto keyed = key.ledger.reserve(key.limits, key.created_at, spend.reservation, cred.reserve_tokens,
                                  cred.reserve_pusd, t, seconds_now(st.opts), t + st.opts.reservation_ttl.count());
  if (!keyed.allowed)
    settle_spend(self, spend_settlement{spend.reservation, 0, 0, ""});
  return keyed;
}

/// Re-reads the user (role, plan) in the background once it is older than user_refresh; the request at hand goes on
/// with what the session knows. A user that no longer exists ends the session (the next request reloads and fails).
void refresh_user(session_self* self) {
  auto& st = self->state;
  auto t = now(st.opts);
  if (st.refreshing_user || t - st.user_loaded_at < st.opts.user_refresh.count())
    return;
  auto db = st.opts.db_query ? st.opts.db_query() : std::nullopt;
  if (!db)
    return;
  st.refreshing_user = true;
  self->request(*db, caf::duration{std::chrono::seconds{10}}, user_by_id_atom::value, st.user.id)
    .then(
      [self, t](user_record& user) {
        auto& st = self->state;
        if (user.role != st.user.role)
          log::info("role changed", log::fields{}.add("user_id", user.id).add("role", user.role));
        st.user = std::move(user);
        st.user_loaded_at = t;
        st.refreshing_user = false;
      },
      [self, t](caf::error& err) {
        auto& st = self->state;
        st.refreshing_user = false;
        st.user_loaded_at = t; // try again after another interval
        if (service_code(err) == service_error::not_found)
          self->quit();
      });
}

double seconds_now(const session_options& opts) {
  return opts.now_seconds ? opts.now_seconds() : monotonic_seconds();
}

/// Takes over what the user's previous owner handed over: no bucket above its level, no less quota use.
void take_handoff(session_self* self, const session_handoff& handoff) {
  auto& st = self->state;
  auto t = seconds_now(st.opts);
  for (const auto& level : handoff.buckets) {
    auto bucket = st.buckets.find(level.policy.name);
    if (bucket == st.buckets.end())
      bucket =
        st.buckets.emplace(level.policy.name, token_bucket{level.policy.per_minute, level.policy.burst, t}).first;
    bucket->second.limit_to(level.tokens, t);
  }
  quota(self); // rolls the day over first
  if (handoff.quota_date == st.day.date)
    st.used = std::max(st.used, handoff.used);
  st.spend->take_over(limits_of(st), handoff.spend_day_start, handoff.spent_day, handoff.spend_month_start,
                      handoff.spent_month, handoff.spend_holds, handoff.window_tokens, now(st.opts), t);
  for (const auto& k : handoff.keys) {
    credential cred;
    cred.key_id = k.key_id;
    cred.key_created_at = k.created_at;
    cred.key_limits = k.limits;
    auto& key = key_of(self, cred);
    key.ledger.take_over(key.limits, key.created_at, k.period_start, k.spent, k.holds, k.tokens_left,
                         k.requests_left, now(st.opts), t);
  }
}

/// How a session starts beyond its snapshot: what the user's previous owner handed over, or when the user moved
/// here without a hand-off.
struct session_arrival {
  std::optional<session_handoff> handoff;
  std::optional<double> moved_at;
};

session_self_actor::behavior_type session_impl(session_self* self, session_snapshot snapshot, session_options opts, quota_day day,
                           int64_t used_today, spend_totals spent, session_arrival arrival) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.day = std::move(day);
  st.used = used_today;
  st.moved_at = arrival.moved_at;
  st.user = std::move(snapshot.user);
  st.spend.emplace(st.day.ends_at - 86400, spent.day_pusd, spent.month_pusd, now(st.opts));
  // The keys' spend first: a hand-off's key ledgers start from it.
  for (auto& k : snapshot.key_spends)
    st.key_spends.emplace(k.key_id, std::move(k));
  if (arrival.handoff)
    take_handoff(self, *arrival.handoff);
  for (size_t i = 0; i < snapshot.revoked_jtis.size() && i < snapshot.revoked_jti_expiries.size(); ++i)
    st.revoked_jtis.emplace(snapshot.revoked_jtis[i], snapshot.revoked_jti_expiries[i]);
  st.revoked_keys.insert(snapshot.revoked_key_ids.begin(), snapshot.revoked_key_ids.end());
  st.user_loaded_at = now(st.opts);
  self->delayed_send(self, st.opts.idle, session_idle_atom::value);
  return {
    [self](authorize_atom, credential& cred) -> caf::result<identity> {
      busy(self);
      auto& st = self->state;
      refresh_user(self);
      if (cred.kind == "jwt") {
        auto revoked = st.revoked_jtis.find(cred.jti);
        if (revoked != st.revoked_jtis.end()) {
          if (revoked->second >= now(st.opts))
            return make_error(service_error::unauthenticated, "This token has been revoked.");
          st.revoked_jtis.erase(revoked);  // expired anyway: the signature check refuses it now
        }
      } else if (st.revoked_keys.count(cred.key_id) > 0) {
        return make_error(service_error::unauthenticated, "This API key has been revoked.");
      } else {
        touch_key(self, cred.key_id);
      }
      limit_decision rate;
      if (!cred.limit.name.empty()) {
        auto t = seconds_now(st.opts);
        auto bucket = st.buckets.find(cred.limit.name);
        if (bucket == st.buckets.end() && st.moved_at && *st.moved_at <= t) {
          // The user's previous owner died with its buckets: as if emptied at the move, refilled since.
          bucket =
            st.buckets.emplace(cred.limit.name, token_bucket{cred.limit.per_minute, cred.limit.burst, *st.moved_at})
              .first;
          bucket->second.limit_to(0, *st.moved_at);
        } else if (bucket == st.buckets.end()) {
          bucket = st.buckets.emplace(cred.limit.name, token_bucket{cred.limit.per_minute, cred.limit.burst, t}).first;
        }
        rate = take_token(bucket->second, cred.limit, t);
      }
      // A request the rate limit refused reserves nothing; one its budgets or token window refuse reserves no
      // generation; the spend of one the quota refuses is given back at once.
      bool admitted = cred.limit.name.empty() || rate.allowed;
      spend_status spend;
      if (admitted && (cred.reserve_tokens > 0 || cred.reserve_pusd > 0 || !cred.model.empty())) {
        spend = reserve_call(self, cred);
        admitted = spend.allowed;
      }
      auto today = cred.reserve > 0 && admitted ? reserve_quota(self, cred.reserve) : quota(self);
      if (spend.reservation != 0 && !today.allowed)
        settle_spend(self, spend_settlement{spend.reservation, 0, 0, cred.kind == "api_key" ? cred.key_id : ""});
      bool storage = cred.with_storage;
      identity who{st.user.id, st.user.email, st.user.role, st.user.plan, st.user.created_at, std::move(cred),
                   today, rate, false, storage_status{}, std::move(spend)};
      if (storage)
        return with_storage(self, std::move(who));
      return who;
    },
    [self](quota_atom, int64_t n) {
      busy(self);
      return reserve_quota(self, n);
    },
    [self](spend_atom, const spend_settlement& settlement) {
      busy(self);
      settle_spend(self, settlement);
      return true;
    },
    [self](revoke_atom, const std::string& jti, int64_t expires_at) -> caf::result<bool> {
      busy(self);
      auto& st = self->state;
      auto db = st.opts.db_query ? st.opts.db_query() : std::nullopt;
      if (!db)
        return make_error(service_error::unavailable, "The database is restarting; retry shortly.");
      auto promise = self->make_response_promise<bool>();
      // Refuse the token at once; the revocation is acknowledged once it is durable.
      st.revoked_jtis[jti] = expires_at;
      self->request(*db, caf::duration{std::chrono::seconds{10}}, jti_revoke_atom::value, st.user.id, jti, expires_at)
        .then([promise](bool) mutable { promise.deliver(true); },
              [promise](caf::error& err) mutable { promise.deliver(std::move(err)); });
      return promise;
    },
    [self](revoke_key_atom, const std::string& key_id) {
      busy(self);
      self->state.revoked_keys.insert(key_id);
      return true;
    },
    [self](handoff_atom) {
      // The user moved to another node: what it needs, then this session ends (later requests bounce to the
      // manager, which sends them to the new owner).
      auto& st = self->state;
      auto t = seconds_now(st.opts);
      session_handoff handoff;
      handoff.user_id = st.user.id;
      for (const auto& [name, bucket] : st.buckets)
        handoff.buckets.push_back(bucket_level{rate_policy{name, bucket.per_minute(), bucket.burst()},
                                               bucket.available(t)});
      quota(self);
      handoff.quota_date = st.day.date;
      handoff.used = st.used;
      handoff.spend_day_start = st.spend->day_start();
      handoff.spent_day = st.spend->spent_day();
      handoff.spend_month_start = st.spend->month_start();
      handoff.spent_month = st.spend->spent_month();
      handoff.spend_holds = st.spend->holds();
      handoff.window_tokens = st.spend->window_tokens(limits_of(st), t);
      for (const auto& [id, key] : st.keys)
        handoff.keys.push_back(key_handoff{id, key.limits, key.created_at, key.ledger.period_start(),
                                           key.ledger.spent(), key.ledger.holds(), key.ledger.tokens_left(key.limits, t),
                                           key.ledger.requests_left(key.limits, t)});
      self->quit();
      return handoff;
    },
    [self](handoff_atom, const session_handoff& handoff) {
      busy(self);
      take_handoff(self, handoff);
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); }, // a probe: not a request
    [self](session_idle_atom) { check_idle(self); },
  };
}

// --- the manager ---

struct manager_state {
  session_manager_options opts;
  keyed_children sessions; // user id -> live session
  using waiter = std::function<void(caf::expected<caf::actor>)>;
  std::unordered_map<std::string, std::vector<waiter>> loading;  // user id -> who waits for its session
  // Hand-offs of users moved here, for their next session: user id -> (hand-off, when it came, monotonic seconds).
  std::unordered_map<std::string, std::pair<session_handoff, double>> handoffs;
  // Users whose session waits for their previous owner to let go: user id -> that node (cluster only).
  std::unordered_map<std::string, std::string> awaiting;
  // What each node last said it let go of: node id -> the placement it handed over for (handoff_done_atom).
  std::unordered_map<std::string, std::vector<std::string>> released;
  // Users that waited too long for a hand-off: their buckets start empty.
  std::unordered_set<std::string> empty_start;

  static inline const char* name = "session_manager";
};

/// The interface with the manager's own timer: the hand-off awaited for a user moved here is late.
using manager_self_actor = session_manager_actor::extend<caf::reacts_to<handoff_timeout_atom, std::string>>;

using manager_self = observed_typed_stateful_actor<manager_self_actor, manager_state>;

void load_session(manager_self* self, const std::string& user_id);

/// The node whose hand-off `user_id` must wait for before this node serves it, or "" when it need not wait: it did
/// not move here from a live member, its hand-off is here, or its previous owner let go of it already.
std::string must_wait_for(manager_self* self, const std::string& user_id) {
  auto& st = self->state;
  if (!st.opts.cluster || !st.opts.cluster->enabled() || st.handoffs.count(user_id) > 0)
    return {};
  auto move = st.opts.cluster->last_move(user_id);
  if (!move || move->from_gone)
    return {};
  if (auto released = st.released.find(move->from); released != st.released.end()) {
    auto pick = rendezvous_pick(released->second, user_id);
    if (pick >= 0 && released->second[static_cast<size_t>(pick)] != move->from)
      return {};
  }
  return move->from;
}

/// Ends the wait of `user_id` for its hand-off (it came, its previous owner let go, or the wait timed out): loads it.
void stop_waiting(manager_self* self, const std::string& user_id) {
  if (self->state.awaiting.erase(user_id) > 0)
    load_session(self, user_id);
}

/// Calls `then` with the session of `user_id` (or why there is none), loading it first if needed.
void with_session(manager_self* self, const std::string& user_id, manager_state::waiter then) {
  auto& st = self->state;
  if (auto session = st.sessions.find(user_id)) {
    then(*session);
    return;
  }
  auto& waiting = st.loading[user_id];
  waiting.push_back(std::move(then));
  if (waiting.size() > 1)
    return;  // a load (or the wait for a hand-off) is under way; it answers everyone
  if (auto from = must_wait_for(self, user_id); !from.empty()) {
    st.awaiting[user_id] = from;
    self->delayed_send(self, st.opts.handoff_wait, handoff_timeout_atom::value, user_id);
    return;
  }
  load_session(self, user_id);
}

/// Loads `user_id`'s session from the database and answers everyone waiting for it in `loading`.
void load_session(manager_self* self, const std::string& user_id) {
  auto& st = self->state;
  auto db = st.opts.session.db_query ? st.opts.session.db_query() : std::nullopt;
  auto fail_all = [self, user_id](caf::error err) {
    auto waiting = std::move(self->state.loading[user_id]);
    self->state.loading.erase(user_id);
    for (auto& w : waiting)
      w(err);
  };
  if (!db) {
    fail_all(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
    return;
  }
  // The user, what is revoked, and how much of today's quota is used: then the session starts.
  auto day = quota_day_of(st.opts.session.now_unix ? st.opts.session.now_unix() : unix_now(),
                          st.opts.session.reset_utc_hour);
  auto start = [self, user_id, day](session_snapshot snapshot, int64_t used, spend_totals spent) {
        auto& st = self->state;
        session_arrival arrival;
        if (auto handoff = st.handoffs.find(user_id); handoff != st.handoffs.end()) {
          arrival.handoff = std::move(handoff->second.first);
          st.handoffs.erase(handoff);
        }
        if (st.empty_start.erase(user_id) > 0)
          arrival.moved_at = monotonic_seconds();
        else if (st.opts.cluster)
          arrival.moved_at = st.opts.cluster->moved_here_at(user_id);
        auto session = caf::actor_cast<caf::actor>(
          self->spawn(session_impl, std::move(snapshot), st.opts.session, day, used, spent, std::move(arrival)));
        // Counted in troupe_sessions_active until it terminates, however it ends (even with the manager).
        hold_while_alive(session, count_holder{st.opts.active});
        self->monitor(session);
        st.sessions.add(user_id, session);
        st.opts.sessions->put(user_id, session);
        auto waiting = std::move(st.loading[user_id]);
        st.loading.erase(user_id);
        for (auto& w : waiting)
          w(session);
  };
  self->request(*db, caf::duration{std::chrono::seconds{10}}, session_load_atom::value, user_id)
    .then(
      [self, db, user_id, day, start, fail_all](session_snapshot& snapshot) mutable {
        self->request(*db, caf::duration{std::chrono::seconds{10}}, usage_load_atom::value, user_id, day.date)
          .then(
            [self, db, user_id, day, start, snapshot, fail_all](int64_t used) mutable {
              // What the user spent this quota day and this month, for the spend ledger (when some plan has a
              // limit: else it is never read).
              if (!self->state.opts.session.load_spend) {
                start(std::move(snapshot), used, spend_totals{});
                return;
              }
              auto now_unix = self->state.opts.session.now_unix ? self->state.opts.session.now_unix() : unix_now();
              self
                ->request(*db, caf::duration{std::chrono::seconds{10}}, spend_load_atom::value, user_id,
                          day.ends_at - 86400, month_start(now_unix))
                .then([start, snapshot, used](spend_totals& spent) mutable { start(std::move(snapshot), used, spent); },
                      [fail_all](caf::error& err) mutable { fail_all(std::move(err)); });
            },
            [fail_all](caf::error& err) mutable { fail_all(std::move(err)); });
      },
      [fail_all](caf::error& err) mutable {
        // An unknown user (deleted since the token was issued) cannot be authenticated.
        if (service_code(err) == service_error::not_found)
          fail_all(make_error(service_error::unauthenticated, "This account no longer exists."));
        else
          fail_all(std::move(err));
      });
}

constexpr size_t max_kept_handoffs = 100000;
constexpr double handoff_keep_s = 3600;

/// When another node owns `user_id` (a cluster whose view says so): delegates the message to that node's endpoint,
/// or answers unavailable while this node has no view; true then. False: the user is this node's.
template <class Promise, class... Ts>
bool elsewhere(manager_self* self, const std::string& user_id, Promise& promise, Ts&&... xs) {
  auto route = route_user(self->state.opts.cluster.get(), user_id);
  if (route.kind == session_route::local)
    return false;
  if (route.kind == session_route::unavailable)
    promise.deliver(make_error(service_error::unavailable, "This node is joining the cluster; retry shortly."));
  else
    promise.delegate(route.endpoint, std::forward<Ts>(xs)..., std::move(route.origin));
  return true;
}

/// Tells every other member of `view` that this node handed over all it does not own under `placed`.
void say_handed_over(const cluster_view& view, const std::vector<std::string>& placed) {
  cluster_origin origin{view.self, view.epoch, 0};
  for (const auto& m : view.members)
    if (m.node_id != view.self && m.endpoint)
      caf::anon_send(m.endpoint, handoff_done_atom::value, view.self, placed, origin);
}

/// Placement changed: each live session of a user another node owns now hands its state to that node and ends;
/// once all have, every other member hears that this node let go of what it no longer owns.
void hand_off_moved(manager_self* self) {
  auto& st = self->state;
  auto view = st.opts.cluster ? st.opts.cluster->view() : nullptr;
  if (!view)
    return;
  // Users waiting for a hand-off that are no longer this node's: their requests go elsewhere now.
  for (auto i = st.awaiting.begin(); i != st.awaiting.end();) {
    if (route_user(st.opts.cluster.get(), i->first).kind == session_route::local) {
      ++i;
      continue;
    }
    auto waiting = std::move(st.loading[i->first]);
    st.loading.erase(i->first);
    for (auto& w : waiting)
      w(make_error(service_error::unavailable, "This user moved to another node; retry."));
    i = st.awaiting.erase(i);
  }
  auto placed = view->placed;
  auto pending = std::make_shared<size_t>(1); // 1 until every hand-off is sent
  auto one_done = [pending, view, placed] {
    if (--*pending == 0)
      say_handed_over(*view, placed);
  };
  for (const auto& [user_id, session] : st.sessions.all()) {
    auto route = route_user(st.opts.cluster.get(), user_id);
    if (route.kind != session_route::remote)
      continue;
    // Out of the directory at once: new requests go to the new owner (authentication places them first anyway).
    st.opts.sessions->erase(user_id, session);
    auto metrics = st.opts.metrics;
    ++*pending;
    self->request(session, caf::duration{std::chrono::seconds{5}}, handoff_atom::value)
      .then(
        [endpoint = route.endpoint, origin = route.origin, metrics, one_done](session_handoff& handoff) {
          caf::anon_send(endpoint, handoff_atom::value, std::move(handoff), origin);
          if (metrics)
            metrics->counter("troupe_cluster_handoffs_total", "Sessions handed between nodes, by direction.",
                             {"direction"})
              .inc({"out"});
          one_done();
        },
        [user_id = user_id, one_done](caf::error& err) {
          // Its new owner waits for it until handoff_wait, then starts it empty: nothing given away.
          log::warn("session hand-off failed; the user's new owner starts it empty",
                    log::fields{}.add("user_id", user_id).add("error", to_string(err)));
          one_done();
        });
  }
  one_done();
}

manager_self_actor::behavior_type manager_impl(manager_self* self, session_manager_options opts) {
  self->state.opts = std::move(opts);
  self->state.sessions.stop_with(self);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    auto ended = st.sessions.remove(msg.source);
    if (!ended)
      return;
    auto& [user_id, session] = *ended;
    if (session)
      st.opts.sessions->erase(user_id, session);
    if (msg.reason && msg.reason != caf::exit_reason::user_shutdown) {
      log::warn("session failed; it is rebuilt on next use",
                log::fields{}.add("user_id", user_id).add("error", self->system().render(msg.reason)));
      if (st.opts.metrics)
        st.opts.metrics
          ->counter("troupe_actor_restarts_total", "Restarts of supervised actors.", {"supervisor", "child"})
          .inc({"sessions", "session"});
    }
  });
  return {
    [self](session_atom, const std::string& user_id) {
      auto promise = self->make_response_promise<caf::actor>();
      with_session(self, user_id, [promise](caf::expected<caf::actor> session) mutable {
        if (session)
          promise.deliver(std::move(*session));
        else
          promise.deliver(std::move(session.error()));
      });
      return promise;
    },
    [self](authorize_atom, const std::string& user_id, credential& cred) {
      auto promise = self->make_response_promise<identity>();
      if (elsewhere(self, user_id, promise, authorize_atom::value, user_id, cred))
        return promise;
      with_session(self, user_id, [promise, cred](caf::expected<caf::actor> session) mutable {
        if (session)
          promise.delegate(*session, authorize_atom::value, std::move(cred));
        else
          promise.deliver(std::move(session.error()));
      });
      return promise;
    },
    [self](quota_atom, const std::string& user_id, int64_t n) {
      auto promise = self->make_response_promise<quota_status>();
      if (elsewhere(self, user_id, promise, quota_atom::value, user_id, n))
        return promise;
      with_session(self, user_id, [promise, n](caf::expected<caf::actor> session) mutable {
        if (session)
          promise.delegate(*session, quota_atom::value, n);
        else
          promise.deliver(std::move(session.error()));
      });
      return promise;
    },
    [self](spend_atom, const std::string& user_id, const spend_settlement& settlement) {
      auto promise = self->make_response_promise<bool>();
      if (elsewhere(self, user_id, promise, spend_atom::value, user_id, settlement))
        return promise;
      if (auto session = self->state.sessions.find(user_id))
        promise.delegate(*session, spend_atom::value, settlement);
      else
        promise.deliver(true); // no live session: a new one reads what was spent from the ledger
      return promise;
    },
    [self](revoke_atom, const std::string& user_id, const std::string& jti, int64_t expires_at) {
      auto promise = self->make_response_promise<bool>();
      if (elsewhere(self, user_id, promise, revoke_atom::value, user_id, jti, expires_at))
        return promise;
      with_session(self, user_id, [promise, jti, expires_at](caf::expected<caf::actor> session) mutable {
        if (session)
          promise.delegate(*session, revoke_atom::value, jti, expires_at);
        else
          promise.deliver(std::move(session.error()));
      });
      return promise;
    },
    [self](revoke_key_atom, const std::string& user_id, const std::string& key_id) {
      auto promise = self->make_response_promise<bool>();
      if (elsewhere(self, user_id, promise, revoke_key_atom::value, user_id, key_id))
        return promise;
      // A session that is not live reads the revoked keys from the database when it starts.
      if (auto session = self->state.sessions.find(user_id))
        promise.delegate(*session, revoke_key_atom::value, key_id);
      else
        promise.deliver(true);
      return promise;
    },
    [self](handoff_atom, session_handoff& handoff) {
      auto& st = self->state;
      if (st.opts.metrics)
        st.opts.metrics->counter("troupe_cluster_handoffs_total", "Sessions handed between nodes, by direction.",
                                 {"direction"})
          .inc({"in"});
      if (auto session = st.sessions.find(handoff.user_id)) {
        self->send(caf::actor_cast<session_actor>(*session), handoff_atom::value, std::move(handoff));
        return;
      }
      auto user_id = handoff.user_id;
      auto now = monotonic_seconds();
      if (st.handoffs.size() >= max_kept_handoffs)
        for (auto i = st.handoffs.begin(); i != st.handoffs.end();)
          i = now - i->second.second > handoff_keep_s ? st.handoffs.erase(i) : std::next(i);
      if (st.handoffs.size() < max_kept_handoffs)
        st.handoffs[user_id] = {std::move(handoff), now};
      stop_waiting(self, user_id);
    },
    [self](handoff_done_atom, const std::string& node_id, std::vector<std::string>& placed) {
      auto& st = self->state;
      std::vector<std::string> let_go;
      for (const auto& [user_id, from] : st.awaiting) {
        auto pick = rendezvous_pick(placed, user_id);
        if (from == node_id && pick >= 0 && placed[static_cast<size_t>(pick)] != node_id)
          let_go.push_back(user_id);
      }
      st.released[node_id] = std::move(placed);
      for (const auto& user_id : let_go)
        stop_waiting(self, user_id);
    },
    [self](handoff_timeout_atom, const std::string& user_id) {
      auto& st = self->state;
      auto from = st.awaiting.find(user_id);
      if (from == st.awaiting.end())
        return;
      log::warn("no hand-off came for a user moved here; its buckets start empty",
                log::fields{}.add("user_id", user_id).add("from", from->second));
      st.empty_start.insert(user_id);
      stop_waiting(self, user_id);
    },
    [self](cluster_view_atom) { hand_off_moved(self); },
    [self](cluster_reset_atom) {
      auto& st = self->state;
      st.handoffs.clear();
      st.released.clear();
      st.empty_start.clear();
      for (const auto& [user_id, from] : std::exchange(st.awaiting, {})) {
        auto waiting = std::move(st.loading[user_id]);
        st.loading.erase(user_id);
        for (auto& w : waiting)
          w(make_error(service_error::unavailable, "This node is rejoining the cluster; retry shortly."));
      }
      for (const auto& [user_id, session] : st.sessions.all()) {
        st.opts.sessions->erase(user_id, session);
        self->send_exit(session, caf::exit_reason::user_shutdown);
      }
    },
    [self](children_atom) {
      // The live sessions, as children for debug mode's tree (at most max_listed_sessions, by user id).
      std::vector<child_info> result;
      for (const auto& [user_id, session] : self->state.sessions.all())
        result.push_back(child_info{"session:" + user_id, "worker", "temporary", "running", 0, "", 0, 0, session});
      std::sort(result.begin(), result.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
      if (result.size() > max_listed_sessions)
        result.resize(max_listed_sessions);
      return result;
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

session_manager_actor spawn_session_manager(caf::actor_system& sys, session_manager_options options) {
  return sys.spawn(manager_impl, std::move(options));
}

quota_reservation::quota_reservation(std::shared_ptr<directory> sessions, std::string user_id, int64_t n,
                                     std::shared_ptr<cluster_state> cluster)
  : sessions_(std::move(sessions)), cluster_(std::move(cluster)), user_id_(std::move(user_id)),
    n_(sessions_ ? std::max<int64_t>(n, 0) : 0) {}

quota_reservation::quota_reservation(quota_reservation&& other) noexcept
  : sessions_(std::move(other.sessions_)), cluster_(std::move(other.cluster_)), user_id_(std::move(other.user_id_)),
    n_(std::exchange(other.n_, 0)) {}

quota_reservation& quota_reservation::operator=(quota_reservation&& other) noexcept {
  if (this != &other) {
    give_back();
    sessions_ = std::move(other.sessions_);
    cluster_ = std::move(other.cluster_);
    user_id_ = std::move(other.user_id_);
    n_ = std::exchange(other.n_, 0);
  }
  return *this;
}

quota_reservation::~quota_reservation() {
  give_back();
}

void quota_reservation::commit() noexcept {
  n_ = 0;
}

void quota_reservation::give_back() {
  auto n = std::exchange(n_, 0);
  if (n <= 0)
    return;
  auto route = route_user(cluster_.get(), user_id_);
  if (route.kind == session_route::remote)
    caf::anon_send(route.endpoint, quota_atom::value, user_id_, -n, std::move(route.origin));
  else if (route.kind == session_route::local)
    if (auto session = sessions_->get_as<session_actor>(user_id_))
      caf::anon_send(*session, quota_atom::value, -n);
}

spend_reservation::spend_reservation(std::shared_ptr<directory> sessions, std::string user_id, uint64_t reservation,
                                     std::shared_ptr<cluster_state> cluster, std::string key_id)
  : sessions_(std::move(sessions)), cluster_(std::move(cluster)), user_id_(std::move(user_id)),
    key_id_(std::move(key_id)), reservation_(reservation), held_(sessions_ != nullptr && reservation != 0) {}

spend_reservation::spend_reservation(spend_reservation&& other) noexcept
  : sessions_(std::move(other.sessions_)), cluster_(std::move(other.cluster_)), user_id_(std::move(other.user_id_)),
    key_id_(std::move(other.key_id_)), reservation_(other.reservation_), held_(std::exchange(other.held_, false)) {}

spend_reservation& spend_reservation::operator=(spend_reservation&& other) noexcept {
  if (this != &other) {
    settle(0, 0);
    sessions_ = std::move(other.sessions_);
    cluster_ = std::move(other.cluster_);
    user_id_ = std::move(other.user_id_);
    key_id_ = std::move(other.key_id_);
    reservation_ = other.reservation_;
    held_ = std::exchange(other.held_, false);
  }
  return *this;
}

spend_reservation::~spend_reservation() {
  settle(0, 0);
}

void spend_reservation::settle(int64_t tokens, int64_t pusd) {
  if (!std::exchange(held_, false))
    return;
  spend_settlement settlement{reservation_, std::max<int64_t>(tokens, 0), std::max<int64_t>(pusd, 0), key_id_};
  auto route = route_user(cluster_.get(), user_id_);
  if (route.kind == session_route::remote)
    caf::anon_send(route.endpoint, spend_atom::value, user_id_, settlement, std::move(route.origin));
  else if (route.kind == session_route::local)
    if (auto session = sessions_->get_as<session_actor>(user_id_))
      caf::anon_send(*session, spend_atom::value, settlement);
}

child_spec make_sessions_supervisor(const config::settings& s, const supervision_context& context,
                                    session_pieces pieces) {
  // The manager routes user ids to session actors (loaded on first use, passivated when idle).
  session_manager_options manager;
  manager.session.idle = std::chrono::milliseconds{s.session.idle_ms};
  manager.session.db_query = db_query_lookup(context.names);
  manager.session.writer = db_writer_lookup(context.names);
  manager.session.reset_utc_hour = static_cast<int>(s.quota.reset_utc_hour);
  manager.session.daily_quota = [free = s.quota.free_per_day, pro = s.quota.pro_per_day,
                                  guest = s.guest.per_day](const std::string& plan) {
    return plan == "pro" ? pro : plan == "guest" ? guest : free;
  };
  manager.session.reservation_ttl =
    std::chrono::duration_cast<std::chrono::seconds>(std::chrono::milliseconds{s.gateway.max_generation_ms})
    + std::chrono::seconds{60};
  manager.session.load_spend = s.quota.any_spend_limit();
  manager.session.plan_limits = [q = s.quota](const std::string& plan) {
    bool pro = plan == "pro";
    auto pusd = [](double usd) { return static_cast<int64_t>(std::llround(usd * 1e12)); };
    return spend_limits{pusd(pro ? q.pro_usd_per_day : q.free_usd_per_day),
                        pusd(pro ? q.pro_usd_per_month : q.free_usd_per_month),
                        pro ? q.pro_tokens_per_minute : q.free_tokens_per_minute};
  };
  // The storage epoch counts this process's transactions only: in a cluster, other nodes change a user's storage
  // too, so the session reads it every time.
  if (!s.cluster.enabled)
    manager.session.storage_changes = std::move(pieces.storage_changes);
  manager.sessions = std::move(pieces.sessions);
  manager.active = std::move(pieces.active);
  manager.cluster = std::move(pieces.cluster);
  manager.handoff_wait = std::chrono::milliseconds{s.cluster.failure_ms + 3 * s.cluster.heartbeat_ms};
  manager.metrics = context.metrics;
  if (context.metrics)
    add_session_collector(*context.metrics, manager.active);
  // It supervises the session actors (answers children_atom like a supervisor).
  return child_spec{session_manager_name.value,
                    [manager](caf::actor_system& sys) {
                      return caf::actor_cast<caf::actor>(spawn_session_manager(sys, manager));
                    },
                    restart_type::permanent, std::chrono::milliseconds{5000}, child_kind::supervisor};
}

void add_session_collector(metrics_registry& metrics, std::shared_ptr<std::atomic<int64_t>> active) {
  metrics.add_collector([active](prometheus_writer& out) {
    out.family("troupe_sessions_active", "gauge", "Session actors alive (one per recently active user).");
    out.sample("troupe_sessions_active", {}, static_cast<double>(active->load()));
  });
}

} // namespace troupe
