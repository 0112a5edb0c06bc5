#include "actors/sessions.hpp"

#include "actors/guards.hpp"
#include "actors/keyed_children.hpp"
#include "actors/persistence_supervisor.hpp"
#include "introspect/observed_actor.hpp"

#include "actors/rate_limit.hpp"

#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <algorithm>
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

  static inline const char* name = "session";
};

using session_actor = observed_stateful_actor<session_state>;

int64_t now(const session_options& opts) {
  return opts.now_unix ? opts.now_unix() : unix_now();
}

void read_storage(session_actor* self);

/// Ends the storage read under way with `storage` (nullopt: the database could not say), read at `epoch` (nullopt:
/// a change was under way). Waiters that joined late get it only if nothing changed since it was sent; otherwise a
/// new read is sent for them.
void storage_read(session_actor* self, std::optional<storage_status> storage, std::optional<uint64_t> epoch) {
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
void read_storage(session_actor* self) {
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
caf::result<identity> with_storage(session_actor* self, identity who) {
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
void touch_key(session_actor* self, const std::string& key_id) {
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
quota_status quota(session_actor* self) {
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
quota_status reserve_quota(session_actor* self, int64_t n) {
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
  // Durable, batched with other writes; a restart reloads today's count.
  if (auto writer = st.opts.writer ? st.opts.writer() : std::nullopt) {
    write_request usage;
    usage.result = "{}";
    usage.usage.push_back(usage_row{st.user.id, st.day.date, n, 0});
    caf::anon_send(*writer, write_atom::value, std::move(usage));
  }
  return status;
}

/// Re-reads the user (role, plan) in the background once it is older than user_refresh; the request at hand goes on
/// with what the session knows. A user that no longer exists ends the session (the next request reloads and fails).
void refresh_user(session_actor* self) {
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

caf::behavior session_impl(session_actor* self, session_snapshot snapshot, session_options opts, quota_day day,
                           int64_t used_today) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.day = std::move(day);
  st.used = used_today;
  st.user = std::move(snapshot.user);
  for (size_t i = 0; i < snapshot.revoked_jtis.size() && i < snapshot.revoked_jti_expiries.size(); ++i)
    st.revoked_jtis.emplace(snapshot.revoked_jtis[i], snapshot.revoked_jti_expiries[i]);
  st.revoked_keys.insert(snapshot.revoked_key_ids.begin(), snapshot.revoked_key_ids.end());
  st.user_loaded_at = now(st.opts);
  return {
    [self](authorize_atom, credential& cred) -> caf::result<identity> {
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
        auto t = st.opts.now_seconds ? st.opts.now_seconds() : monotonic_seconds();
        auto bucket = st.buckets.find(cred.limit.name);
        if (bucket == st.buckets.end())
          bucket = st.buckets.emplace(cred.limit.name, token_bucket{cred.limit.per_minute, cred.limit.burst, t}).first;
        rate = take_token(bucket->second, cred.limit, t);
      }
      // A request the rate limit refused reserves nothing.
      bool admitted = cred.limit.name.empty() || rate.allowed;
      auto today = cred.reserve > 0 && admitted ? reserve_quota(self, cred.reserve) : quota(self);
      bool storage = cred.with_storage;
      identity who{st.user.id, st.user.email, st.user.role, st.user.plan, st.user.created_at, std::move(cred),
                   today, rate, false, storage_status{}};
      if (storage)
        return with_storage(self, std::move(who));
      return who;
    },
    [self](quota_atom, int64_t n) { return reserve_quota(self, n); },
    [self](revoke_atom, const std::string& jti, int64_t expires_at) -> caf::result<bool> {
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
      self->state.revoked_keys.insert(key_id);
      return true;
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
    caf::after(self->state.opts.idle) >> [self] { self->quit(); },
  };
}

// --- the manager ---

struct manager_state {
  session_manager_options opts;
  keyed_children sessions; // user id -> live session
  using waiter = std::function<void(caf::expected<caf::actor>)>;
  std::unordered_map<std::string, std::vector<waiter>> loading;  // user id -> who waits for its session

  static inline const char* name = "session_manager";
};

using manager_actor = observed_stateful_actor<manager_state>;

/// Calls `then` with the session of `user_id` (or why there is none), loading it first if needed.
void with_session(manager_actor* self, const std::string& user_id, manager_state::waiter then) {
  auto& st = self->state;
  if (auto session = st.sessions.find(user_id)) {
    then(*session);
    return;
  }
  auto& waiting = st.loading[user_id];
  waiting.push_back(std::move(then));
  if (waiting.size() > 1)
    return;  // a load is under way; it answers everyone
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
  auto start = [self, user_id, day](session_snapshot snapshot, int64_t used) {
        auto& st = self->state;
        auto session = self->spawn(session_impl, std::move(snapshot), st.opts.session, day, used);
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
          .then([start, snapshot](int64_t used) mutable { start(std::move(snapshot), used); },
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

caf::behavior manager_impl(manager_actor* self, session_manager_options opts) {
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
      with_session(self, user_id, [promise, cred](caf::expected<caf::actor> session) mutable {
        if (session)
          promise.delegate(*session, authorize_atom::value, std::move(cred));
        else
          promise.deliver(std::move(session.error()));
      });
      return promise;
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

caf::actor spawn_session_manager(caf::actor_system& sys, session_manager_options options) {
  return sys.spawn(manager_impl, std::move(options));
}

quota_reservation::quota_reservation(std::shared_ptr<directory> sessions, std::string user_id, int64_t n)
  : sessions_(std::move(sessions)), user_id_(std::move(user_id)), n_(sessions_ ? std::max<int64_t>(n, 0) : 0) {}

quota_reservation::quota_reservation(quota_reservation&& other) noexcept
  : sessions_(std::move(other.sessions_)), user_id_(std::move(other.user_id_)), n_(std::exchange(other.n_, 0)) {}

quota_reservation& quota_reservation::operator=(quota_reservation&& other) noexcept {
  if (this != &other) {
    give_back();
    sessions_ = std::move(other.sessions_);
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
  if (auto session = sessions_->get(user_id_))
    caf::anon_send(*session, quota_atom::value, -n);
}

child_spec make_sessions_supervisor(const config::settings& s, const supervision_context& context,
                                    std::shared_ptr<directory> sessions, std::shared_ptr<storage_epoch> storage_changes) {
  // The manager routes user ids to session actors (loaded on first use, passivated when idle).
  session_manager_options manager;
  manager.session.idle = std::chrono::milliseconds{s.session.idle_ms};
  manager.session.db_query = db_query_lookup(context.names);
  manager.session.writer = db_writer_lookup(context.names);
  manager.session.reset_utc_hour = static_cast<int>(s.quota.reset_utc_hour);
  manager.session.daily_quota = [free = s.quota.free_per_day, pro = s.quota.pro_per_day](const std::string& plan) {
    return plan == "pro" ? pro : free;
  };
  manager.session.storage_changes = std::move(storage_changes);
  manager.sessions = std::move(sessions);
  manager.metrics = context.metrics;
  if (context.metrics)
    add_session_collector(*context.metrics, manager.active);
  // It supervises the session actors (answers children_atom like a supervisor).
  return child_spec{"sessions", [manager](caf::actor_system& sys) { return spawn_session_manager(sys, manager); },
                    restart_type::permanent, std::chrono::milliseconds{5000}, child_kind::supervisor};
}

void add_session_collector(metrics_registry& metrics, std::shared_ptr<std::atomic<int64_t>> active) {
  metrics.add_collector([active](prometheus_writer& out) {
    out.family("troupe_sessions_active", "gauge", "Session actors alive (one per recently active user).");
    out.sample("troupe_sessions_active", {}, static_cast<double>(active->load()));
  });
}

} // namespace troupe
