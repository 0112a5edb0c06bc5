// Session actors through their manager, with fake db.query and DB writer actors standing in for PostgreSQL:
// exact daily quotas under concurrency, day rollover, revocation, and rebuilding a crashed session.

#include "actors/messages.hpp"
#include "actors/sessions.hpp"
#include "persistence/usage.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

using namespace troupe;

namespace {

/// What the fake database knows and records.
struct fake_db_state {
  std::atomic<int> loads{0};
  std::atomic<int64_t> used_today{0};
  std::atomic<int64_t> spent_day{0};   // what spend_load answers (pico-dollars)
  std::atomic<int64_t> spent_month{0};
  std::mutex mutex;
  std::vector<usage_row> usage;  // rows the writer received
  std::string role = "user";     // what user_by_id answers (guarded by mutex)
  std::atomic<int> user_reads{0};
  std::atomic<int> storage_reads{0};
  std::atomic<int64_t> storage_used{0};  // what storage_get answers
  std::atomic<bool> hold_storage{false}; // storage_get answers only when released (storage_release below)
  std::vector<std::pair<caf::response_promise, int64_t>> held; // guarded by mutex
};

using storage_release_atom = caf::atom_constant<caf::atom("strelease")>;

caf::behavior fake_db(caf::event_based_actor* self, std::shared_ptr<fake_db_state> db) {
  return {
    [db](session_load_atom, const std::string& user_id) -> caf::result<session_snapshot> {
      ++db->loads;
      if (user_id == "ghost")
        return make_error(service_error::not_found, "No such user.");
      session_snapshot s;
      s.user = user_record{user_id, user_id + "@example.com", "", "user", "free", 1};
      s.revoked_jtis = {"old-jti"};
      s.revoked_jti_expiries = {4102444800};  // 2100
      return s;
    },
    [db](usage_load_atom, const std::string&, const std::string&) { return db->used_today.load(); },
    [db](spend_load_atom, const std::string&, int64_t, int64_t) {
      return spend_totals{db->spent_day.load(), db->spent_month.load()};
    },
    [self, db](storage_get_atom, const std::string&) -> caf::result<storage_status> {
      ++db->storage_reads;
      storage_status s{db->storage_used.load(), 1000, "free"};
      if (!db->hold_storage.load())
        return s;
      // Held: answered later with the value read now (a read whose snapshot predates what happens meanwhile).
      auto promise = self->make_response_promise();
      std::lock_guard<std::mutex> guard{db->mutex};
      db->held.emplace_back(promise, s.used_bytes);
      return caf::delegated<storage_status>{};
    },
    [db](storage_release_atom) {
      std::lock_guard<std::mutex> guard{db->mutex};
      for (auto& [promise, used] : db->held)
        promise.deliver(storage_status{used, 1000, "free"});
      db->held.clear();
    },
    [db](user_by_id_atom, const std::string& user_id) -> caf::result<user_record> {
      ++db->user_reads;
      std::lock_guard<std::mutex> guard{db->mutex};
      if (db->role.empty())
        return make_error(service_error::not_found, "No such user.");
      return user_record{user_id, user_id + "@example.com", "", db->role, "free", 1};
    },
  };
}

db_writer_actor::behavior_type fake_writer(db_writer_actor::pointer self, std::shared_ptr<fake_db_state> db) {
  auto record = [db](const write_request& w) {
    std::lock_guard<std::mutex> guard{db->mutex};
    db->usage.insert(db->usage.end(), w.usage.begin(), w.usage.end());
  };
  return {[record](write_atom, write_request& w) {
            record(w);
            return write_result{w.result, false};
          },
          [record](write_later_atom, write_request& w) { record(w); },
          [self](mailbox_atom) -> size_t { return self->mailbox().size(); }};
}

class Sessions : public ::testing::Test {
protected:
  Sessions() {
    register_message_types(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    db_ = std::make_shared<fake_db_state>();
    db_actor_ = sys_->spawn(fake_db, db_);
    writer_ = sys_->spawn(fake_writer, db_);
  }
  ~Sessions() override {
    for (auto& a : {db_actor_, caf::actor_cast<caf::actor>(writer_), caf::actor_cast<caf::actor>(manager_)})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::kill);
  }

  void start(int64_t daily_limit, std::shared_ptr<storage_epoch> storage_changes = nullptr,
             spend_limits limits = {}) {
    session_manager_options opts;
    opts.session.plan_limits = [limits](const std::string&) { return limits; };
    opts.session.now_seconds = [this] { return seconds_.load(); };
    opts.session.storage_changes = std::move(storage_changes);
    opts.session.db_query = [a = db_actor_]() -> std::optional<db_query_actor> { return caf::actor_cast<db_query_actor>(a); };
    opts.session.writer = [a = writer_]() -> std::optional<db_writer_actor> { return a; };
    opts.session.daily_quota = [daily_limit](const std::string&) { return daily_limit; };
    opts.session.now_unix = [this] { return now_.load(); };
    opts.session.reset_utc_hour = 4;
    opts.session.idle = idle_;
    active_ = opts.active;
    sessions_ = opts.sessions;
    manager_ = spawn_session_manager(*sys_, opts);
  }

  caf::actor session(const std::string& user) {
    caf::scoped_actor self{*sys_};
    caf::actor out;
    self->request(manager_, caf::infinite, session_atom::value, user)
      .receive([&](caf::actor& a) { out = a; }, [&](caf::error& e) { ADD_FAILURE() << to_string(e); });
    return out;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::shared_ptr<fake_db_state> db_;
  caf::actor db_actor_;
  session_manager_actor manager_;
  db_writer_actor writer_;
  std::shared_ptr<std::atomic<int64_t>> active_;  // troupe_sessions_active
  std::shared_ptr<directory> sessions_;           // live sessions by user id
  std::atomic<int64_t> now_{1795300000};  // 2026-11-21T... UTC
  std::atomic<double> seconds_{1000.0};   // the buckets' monotonic clock
  std::chrono::milliseconds idle_{15 * 60 * 1000}; // session_options::idle of start()
};

} // namespace

// A session lives while requests come (for longer than `idle` in all), ends `idle` after the last one, and mailbox
// probes (the metrics' scrapes) do not keep it.
TEST_F(Sessions, EndsIdleAfterItsLastRequest) {
  idle_ = std::chrono::milliseconds{500};
  start(50);
  auto s = session("u1");
  caf::scoped_actor self{*sys_};
  self->monitor(s);
  auto started = std::chrono::steady_clock::now();
  auto last_request = started;
  while (std::chrono::steady_clock::now() - started < 3 * idle_) {
    last_request = std::chrono::steady_clock::now(); // the session's own stamp is later
    self->request(s, caf::infinite, quota_atom::value, int64_t{0})
      .receive([](quota_status&) {}, [](caf::error& e) { FAIL() << "the busy session ended: " << to_string(e); });
    std::this_thread::sleep_for(idle_ / 6); // the passage of time is what this test is about
  }
  bool ended = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (!ended && std::chrono::steady_clock::now() < deadline) {
    self->send(s, mailbox_atom::value);
    self->receive([&](caf::down_msg&) { ended = true; }, [](size_t) {},
                  caf::after(idle_ / 6) >> [] {});
  }
  ASSERT_TRUE(ended) << "the idle session did not end (probed every " << (idle_ / 6).count() << " ms)";
  EXPECT_GE(std::chrono::steady_clock::now() - last_request, idle_);
}

// 50 concurrent reservations against 10 remaining allow exactly 10, and exactly 10 are recorded as usage.
TEST_F(Sessions, QuotaReservationIsExactUnderConcurrency) {
  db_->used_today = 40;
  start(50);
  auto s = session("u1");
  caf::scoped_actor self{*sys_};
  for (int i = 0; i < 50; ++i)
    self->send(s, quota_atom::value, int64_t{1});
  int granted = 0;
  for (int i = 0; i < 50; ++i)
    self->receive([&](quota_status& q) { granted += q.allowed ? 1 : 0; });
  EXPECT_EQ(granted, 10);
  caf::scoped_actor probe{*sys_};
  probe->request(s, caf::infinite, quota_atom::value, int64_t{0})
    .receive([](quota_status& q) {
      EXPECT_EQ(q.used, 50);
      EXPECT_EQ(q.limit, 50);
    },
             [](caf::error&) { FAIL(); });
  // The writer is asynchronous: wait (bounded) for its ten rows.
  for (int i = 0; i < 1000; ++i) {
    std::lock_guard<std::mutex> guard{db_->mutex};
    if (db_->usage.size() >= 10)
      break;
  }
  caf::scoped_actor sync{*sys_};
  sync->request(writer_, caf::infinite, write_atom::value, write_request{}).receive([](write_result&) {}, [](caf::error&) {});
  std::lock_guard<std::mutex> guard{db_->mutex};
  int64_t recorded = 0;
  for (const auto& row : db_->usage)
    recorded += row.requests;
  EXPECT_EQ(recorded, 10);
}

// A reservation is all or nothing; the quota day rolls over at the configured UTC hour.
TEST_F(Sessions, QuotaIsAllOrNothingAndRollsOver) {
  start(5);
  auto s = session("u2");
  caf::scoped_actor self{*sys_};
  quota_status q;
  auto reserve = [&](int64_t n) {
    self->request(s, caf::infinite, quota_atom::value, n).receive([&](quota_status& r) { q = r; }, [](caf::error&) {});
    return q.allowed;
  };
  EXPECT_TRUE(reserve(3));
  EXPECT_FALSE(reserve(3));  // only 2 left: nothing is taken
  EXPECT_EQ(q.used, 3);
  EXPECT_TRUE(reserve(2));
  EXPECT_FALSE(reserve(1));
  reserve(-1); // a failed generation gives its reservation back
  EXPECT_EQ(q.used, 4);
  EXPECT_TRUE(reserve(1));
  reserve(-100); // never below zero
  EXPECT_EQ(q.used, 0);
  auto resets_at = q.resets_at;
  EXPECT_EQ((resets_at - 4 * 3600) % 86400, 0) << "the day ends at 04:00 UTC";
  now_ = resets_at;  // the next quota day
  EXPECT_TRUE(reserve(5));
  EXPECT_EQ(q.resets_at, resets_at + 86400);
}

// Concurrent first requests for one user share one load; a revoked token stays refused.
TEST_F(Sessions, OneLoadPerUserAndRevokedTokensAreRefused) {
  start(50);
  caf::scoped_actor self{*sys_};
  for (int i = 0; i < 20; ++i)
    self->send(manager_, session_atom::value, std::string{"u3"});
  for (int i = 0; i < 20; ++i)
    self->receive([](caf::actor&) {});
  EXPECT_EQ(db_->loads.load(), 1);
  auto s = session("u3");
  self->request(s, caf::infinite, authorize_atom::value, credential{"jwt", "u3", "old-jti", 4102444800, "", {}})
    .receive([](identity&) { ADD_FAILURE() << "a revoked token was accepted"; },
             [](caf::error& e) { EXPECT_EQ(service_code(e), service_error::unauthenticated); });
  self->request(s, caf::infinite, authorize_atom::value, credential{"jwt", "u3", "new-jti", 4102444800, "", {}})
    .receive([](identity& who) { EXPECT_EQ(who.email, "u3@example.com"); }, [](caf::error&) { FAIL(); });
  // An unknown user cannot be authenticated.
  self->request(manager_, caf::infinite, session_atom::value, std::string{"ghost"})
    .receive([](caf::actor&) { ADD_FAILURE(); },
             [](caf::error& e) { EXPECT_EQ(service_code(e), service_error::unauthenticated); });
}

// A crashed session is forgotten and rebuilt from the database on next use.
TEST_F(Sessions, CrashedSessionIsRebuiltOnNextUse) {
  start(50);
  auto first = session("u4");
  caf::scoped_actor self{*sys_};
  self->monitor(first);
  caf::anon_send_exit(first, caf::exit_reason::kill);
  self->receive([](caf::down_msg&) {});
  // The manager hears about it through its own monitor; ask until it hands out a new incarnation.
  caf::actor second = first;
  for (int i = 0; i < 1000 && second == first; ++i)
    second = session("u4");
  EXPECT_NE(second, first);
  EXPECT_EQ(db_->loads.load(), 2);
}

// The session owns the user's rate-limit buckets: 100 concurrent requests with a burst of 40 get exactly 40 tokens,
// and the remaining count goes down one by one.
TEST_F(Sessions, UserRateLimitIsExactUnderConcurrency) {
  start(50);
  auto s = session("u5");
  caf::scoped_actor self{*sys_};
  credential cred{"jwt", "u5", "j", 4102444800, "", rate_policy{"default", 0.01, 40}};
  for (int i = 0; i < 100; ++i)
    self->send(s, authorize_atom::value, cred);
  int allowed = 0;
  std::vector<int64_t> remaining;
  for (int i = 0; i < 100; ++i)
    self->receive([&](identity& who) {
      if (who.rate.allowed) {
        ++allowed;
        remaining.push_back(who.rate.remaining);
      } else {
        EXPECT_GE(who.rate.retry_after_s, 1);
      }
    });
  EXPECT_EQ(allowed, 40);
  for (size_t i = 0; i < remaining.size(); ++i)
    EXPECT_EQ(remaining[i], 39 - static_cast<int64_t>(i));
}

// An authorization that asks to reserve quota (the gateway's one hop) reserves exactly as (quota_atom, n) would,
// refuses beyond the limit without taking anything, and reserves nothing for a request the rate limit refused.
TEST_F(Sessions, AuthorizeReservesQuotaOnlyForAdmittedRequests) {
  start(3);
  auto s = session("u6");
  caf::scoped_actor self{*sys_};
  // Burst 4 tokens, refilled at 0.01 per minute: the fifth authorization is refused by the rate limit.
  credential cred{"jwt", "u6", "j", 4102444800, "", rate_policy{"generate", 0.01, 4}, 1};
  std::vector<identity> answers;
  for (int i = 0; i < 5; ++i)
    self->request(s, caf::infinite, authorize_atom::value, cred)
      .receive([&](identity& who) { answers.push_back(who); }, [](caf::error& e) { FAIL() << to_string(e); });
  ASSERT_EQ(answers.size(), 5u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(answers[i].rate.allowed);
    EXPECT_TRUE(answers[i].quota.allowed) << i;
    EXPECT_EQ(answers[i].quota.used, i + 1);
  }
  EXPECT_TRUE(answers[3].rate.allowed);
  EXPECT_FALSE(answers[3].quota.allowed); // the quota of 3 is used up
  EXPECT_EQ(answers[3].quota.used, 3);
  EXPECT_FALSE(answers[4].rate.allowed);  // refused by the rate limit: no reservation asked of the quota
  EXPECT_EQ(answers[4].quota.used, 3);
  // Without reserve an authorization only reads the quota.
  cred.reserve = 0;
  cred.limit = {};
  self->request(s, caf::infinite, authorize_atom::value, cred)
    .receive([](identity& who) {
      EXPECT_TRUE(who.quota.allowed);
      EXPECT_EQ(who.quota.used, 3);
    },
             [](caf::error& e) { FAIL() << to_string(e); });
  // A refund brings one back.
  self->request(s, caf::infinite, quota_atom::value, int64_t{-1})
    .receive([](quota_status& q) { EXPECT_EQ(q.used, 2); }, [](caf::error& e) { FAIL() << to_string(e); });
}

// A busy session re-reads its user once user_refresh has passed: a role granted or revoked in the database (troupe
// admin grant|revoke, another process) reaches it without waiting for it to go idle; a deleted user ends it.
TEST_F(Sessions, RoleChangesReachABusySession) {
  start(50);
  caf::scoped_actor self{*sys_};
  auto role_of = [&](const std::string& user) {
    std::string role;
    self
      ->request(manager_, caf::infinite, authorize_atom::value, user, credential{"jwt", user, "j", 4102444800, "", {}})
      .receive([&](identity& who) { role = who.role; }, [&](caf::error& e) { role = "error: " + to_string(e); });
    return role;
  };
  EXPECT_EQ(role_of("u9"), "user");
  {
    std::lock_guard<std::mutex> guard{db_->mutex};
    db_->role = "admin";
  }
  now_ += 30;
  EXPECT_EQ(role_of("u9"), "user") << "within user_refresh the session answers from memory";
  EXPECT_EQ(db_->user_reads.load(), 0);
  now_ += 31;
  std::string role;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
       role != "admin" && std::chrono::steady_clock::now() < deadline;)
    role = role_of("u9");
  EXPECT_EQ(role, "admin");
  EXPECT_EQ(db_->user_reads.load(), 1) << "one read per interval, not one per request";
  // A deleted user: the session ends, and the next request cannot load it.
  {
    std::lock_guard<std::mutex> guard{db_->mutex};
    db_->role.clear();
  }
  now_ += 61;
  role_of("u9");
  auto loads = db_->loads.load();
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
       db_->loads.load() == loads && std::chrono::steady_clock::now() < deadline;)
    role_of("u9");
  EXPECT_GT(db_->loads.load(), loads) << "the session ended and was loaded again";
}

// Live sessions are counted until they end, however they end: a killed manager (whose down handler never runs again)
// leaves no session counted. Before the count was a guard held for each session actor, the manager counted sessions
// out in its down handler and this stayed at 2.
TEST_F(Sessions, KilledManagerLeavesNoSessionCounted) {
  start(50);
  auto a = session("u10");
  auto b = session("u11");
  EXPECT_EQ(active_->load(), 2);
  caf::scoped_actor self{*sys_};
  self->monitor(a);
  self->monitor(b);
  caf::anon_send_exit(manager_, caf::exit_reason::kill);
  for (int i = 0; i < 2; ++i)
    self->receive([](caf::down_msg&) {});
  // Each count is given back by the session's own clean-up, right after it notified its monitors: a bounded wait for
  // that step, not for time.
  for (int i = 0; i < 1000000 && active_->load() != 0; ++i)
    std::this_thread::yield();
  EXPECT_EQ(active_->load(), 0);
}

// A quota reservation gives its generation back to the user's live session when it is dropped unanswered (a dying
// call), and keeps it once committed; a moved-from reservation gives nothing back.
TEST_F(Sessions, QuotaReservationGivesBackUnlessCommitted) {
  start(5);
  auto s = session("u12");
  caf::scoped_actor self{*sys_};
  auto used = [&] {
    int64_t n = -1;
    self->request(s, caf::infinite, quota_atom::value, int64_t{0})
      .receive([&](quota_status& q) { n = q.used; }, [](caf::error&) { FAIL(); });
    return n;
  };
  auto reserve = [&] {
    self->request(s, caf::infinite, quota_atom::value, int64_t{1})
      .receive([](quota_status& q) { EXPECT_TRUE(q.allowed); }, [](caf::error&) { FAIL(); });
    return quota_reservation{sessions_, "u12"};
  };
  {
    auto dropped = reserve();
    EXPECT_TRUE(dropped.held());
    EXPECT_EQ(used(), 1);
  }
  // The give-back was enqueued before this question: the session answers it first.
  EXPECT_EQ(used(), 0);
  {
    auto kept = reserve();
    kept.commit();
    EXPECT_FALSE(kept.held());
  }
  EXPECT_EQ(used(), 1);
  {
    auto first = reserve();
    auto second = std::move(first);
    EXPECT_FALSE(first.held());
    second.give_back();
    second.give_back();
  }
  EXPECT_EQ(used(), 1);
}

namespace {

/// authorize with the storage use; the identity's storage_bytes_used, or -1 if unknown.
int64_t storage_of(caf::scoped_actor& self, const caf::actor& session, const std::string& user) {
  credential cred{"jwt", user, "jti", 4102444800, "", {}};
  cred.with_storage = true;
  int64_t used = -2;
  self->request(session, std::chrono::seconds{10}, authorize_atom::value, cred)
    .receive([&](identity& who) { used = who.storage_known ? who.storage.used_bytes : -1; },
             [&](caf::error& e) { ADD_FAILURE() << to_string(e); });
  return used;
}

} // namespace

// GET /api/me's storage use: kept while no storage-changing transaction ran, read again after one (or while one is
// under way), never kept from a read that a change overlapped.
TEST_F(Sessions, StorageUseIsKeptOnlyWhileNothingChangedIt) {
  auto epoch = std::make_shared<storage_epoch>();
  start(50, epoch);
  caf::scoped_actor self{*sys_};
  auto s = session("u9");
  db_->storage_used = 100;
  EXPECT_EQ(storage_of(self, s, "u9"), 100);
  EXPECT_EQ(storage_of(self, s, "u9"), 100);
  EXPECT_EQ(db_->storage_reads.load(), 1); // the second answer came from the session
  {
    storage_epoch::change changing{epoch.get()};
    db_->storage_used = 250;
    // While a change is under way every request reads, and nothing read then is kept.
    EXPECT_EQ(storage_of(self, s, "u9"), 250);
    EXPECT_EQ(db_->storage_reads.load(), 2);
  }
  EXPECT_EQ(storage_of(self, s, "u9"), 250);
  EXPECT_EQ(db_->storage_reads.load(), 3);
  EXPECT_EQ(storage_of(self, s, "u9"), 250);
  EXPECT_EQ(db_->storage_reads.load(), 3);
  // A change that began and ended after the last read: read again.
  { storage_epoch::change changing{epoch.get()}; db_->storage_used = 300; }
  EXPECT_EQ(storage_of(self, s, "u9"), 300);
  EXPECT_EQ(db_->storage_reads.load(), 4);
}

TEST_F(Sessions, StorageReadOverlappedByAChangeIsNotKeptAndLateJoinersReadAgain) {
  auto epoch = std::make_shared<storage_epoch>();
  start(50, epoch);
  caf::scoped_actor self{*sys_};
  auto s = session("u10");
  db_->storage_used = 10;
  db_->hold_storage = true;
  credential cred{"jwt", "u10", "jti", 4102444800, "", {}};
  cred.with_storage = true;
  // First request: its read is held (snapshot 10).
  self->send(s, authorize_atom::value, cred);
  for (int i = 0; i < 200 && db_->storage_reads.load() < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{5}); // bounded: the read is a message we cannot await
  ASSERT_EQ(db_->storage_reads.load(), 1);
  // A change commits while the read is out, then a second request joins the read under way.
  { storage_epoch::change changing{epoch.get()}; db_->storage_used = 20; }
  self->send(s, authorize_atom::value, cred);
  self->send(s, mailbox_atom::value); // the session has taken the second request once this is answered
  self->receive([](size_t) {});
  db_->hold_storage = false;
  caf::anon_send(db_actor_, storage_release_atom::value);
  std::vector<int64_t> seen;
  for (int i = 0; i < 2; ++i)
    self->receive([&](identity& who) { seen.push_back(who.storage_known ? who.storage.used_bytes : -1); },
                  [&](caf::error& e) { ADD_FAILURE() << to_string(e); });
  // The first request gets the held read (it was sent after the request came); the late one gets a new read.
  EXPECT_EQ(seen, (std::vector<int64_t>{10, 20}));
  EXPECT_EQ(db_->storage_reads.load(), 2);
  // The overlapped read (10) was not kept; the second one, which nothing overlapped, is.
  EXPECT_EQ(storage_of(self, s, "u10"), 20);
  EXPECT_EQ(db_->storage_reads.load(), 2);
}

// A session handed over (the user moved to another node) says what its buckets hold and its quota use, then ends;
// the next owner's session takes no more than that: the lower bucket, the higher use.
TEST_F(Sessions, HandOffCarriesBucketsAndQuotaAndTheNextSessionTakesNoMore) {
  start(10);
  auto s = session("u20");
  caf::scoped_actor self{*sys_};
  credential cred{"jwt", "u20", "j", 4102444800, "", rate_policy{"default", 0.01, 5}};
  cred.reserve = 1;
  for (int i = 0; i < 3; ++i)
    self->request(s, caf::infinite, authorize_atom::value, cred).receive([](identity& who) {
      EXPECT_TRUE(who.rate.allowed);
      EXPECT_TRUE(who.quota.allowed);
    }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  session_handoff handoff;
  self->monitor(s);
  self->request(s, caf::infinite, handoff_atom::value)
    .receive([&](session_handoff& h) { handoff = std::move(h); }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  EXPECT_EQ(handoff.user_id, "u20");
  ASSERT_EQ(handoff.buckets.size(), 1u);
  EXPECT_EQ(handoff.buckets[0].policy.name, "default");
  EXPECT_NEAR(handoff.buckets[0].tokens, 2.0, 0.01);
  EXPECT_EQ(handoff.used, 3);
  self->receive([](caf::down_msg&) {}); // it ended

  // The user's session on its next owner (here: a user this manager never had) starts from the hand-off the manager
  // kept for it.
  handoff.user_id = "u22";
  handoff.used = 7;
  self->send(manager_, handoff_atom::value, handoff);
  auto next = session("u22");
  int allowed = 0;
  cred.user_id = "u22";
  cred.reserve = 0;
  for (int i = 0; i < 5; ++i)
    self->request(next, caf::infinite, authorize_atom::value, cred).receive([&](identity& who) {
      allowed += who.rate.allowed;
      EXPECT_EQ(who.quota.used, 7);
    }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  EXPECT_EQ(allowed, 2); // what the first session had left, not a fresh burst of 5
}

// A hand-off reaching a live session lowers its buckets and raises its quota use, never the other way.
TEST_F(Sessions, HandOffToALiveSessionOnlyLowers) {
  start(10);
  auto s = session("u21");
  caf::scoped_actor self{*sys_};
  credential cred{"jwt", "u21", "j", 4102444800, "", rate_policy{"default", 0.01, 5}};
  self->request(s, caf::infinite, authorize_atom::value, cred).receive([](identity&) {}, [](caf::error&) {});
  // 4 tokens left here; the hand-off says 1, and a use of 2 (here 0): the session keeps 1 token, use 2.
  session_handoff lower{"u21", {bucket_level{rate_policy{"default", 0.01, 5}, 1.0}}, "", 0};
  caf::anon_send(s, handoff_atom::value, lower);
  int allowed = 0;
  for (int i = 0; i < 4; ++i)
    self->request(s, caf::infinite, authorize_atom::value, cred).receive([&](identity& who) {
      allowed += who.rate.allowed;
    }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  EXPECT_EQ(allowed, 1);
  // A higher level changes nothing.
  session_handoff higher{"u21", {bucket_level{rate_policy{"default", 0.01, 5}, 5.0}}, "", 0};
  caf::anon_send(s, handoff_atom::value, higher);
  self->request(s, caf::infinite, authorize_atom::value, cred).receive([](identity& who) {
    EXPECT_FALSE(who.rate.allowed);
  }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
}

namespace {

/// authorize reserving `tokens` and `pusd` (and one generation); the answer.
identity reserve_spend(caf::scoped_actor& self, const caf::actor& session, const std::string& user, int64_t tokens,
                       int64_t pusd) {
  credential cred{"jwt", user, "j", 4102444800, "", {}, 1};
  cred.reserve_tokens = tokens;
  cred.reserve_pusd = pusd;
  identity out;
  self->request(session, caf::infinite, authorize_atom::value, cred)
    .receive([&](identity& who) { out = std::move(who); }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  return out;
}

} // namespace

// Reserve, then settle: what is reserved counts against the budget until it settles; settling replaces it by what
// was used; a refused reservation takes no generation of the quota.
TEST_F(Sessions, SpendIsReservedThenSettled) {
  start(100, nullptr, spend_limits{1000, 0, 0});
  auto s = session("u30");
  caf::scoped_actor self{*sys_};
  auto first = reserve_spend(self, s, "u30", 10, 600);
  EXPECT_TRUE(first.spend.allowed);
  EXPECT_NE(first.spend.reservation, 0u);
  EXPECT_EQ(first.quota.used, 1);
  auto second = reserve_spend(self, s, "u30", 10, 600); // 600 reserved + 600 > 1000
  EXPECT_FALSE(second.spend.allowed);
  EXPECT_EQ(second.spend.reservation, 0u);
  EXPECT_EQ(second.spend.refused, "daily_budget");
  EXPECT_EQ(second.spend.limit, 1000);
  EXPECT_EQ(second.spend.used, 600);
  EXPECT_GT(second.spend.retry_after_s, 0);
  EXPECT_EQ(second.quota.used, 1); // no generation taken
  // The first call used 100 of its 600: 900 left.
  {
    spend_reservation r{sessions_, "u30", first.spend.reservation};
    r.settle(5, 100);
    EXPECT_FALSE(r.held());
    r.settle(5, 100); // once only
  }
  auto third = reserve_spend(self, s, "u30", 10, 600);
  EXPECT_TRUE(third.spend.allowed);
  EXPECT_FALSE(reserve_spend(self, s, "u30", 10, 301).spend.allowed); // 100 + 600 + 301 > 1000
  {
    spend_reservation dropped{sessions_, "u30", third.spend.reservation}; // destroyed unsettled: settles at 0
  }
  EXPECT_TRUE(reserve_spend(self, s, "u30", 10, 900).spend.allowed); // 100 + 900
  // Far beyond any budget: refused, nothing overflows.
  EXPECT_EQ(reserve_spend(self, s, "u30", 10, INT64_MAX).spend.refused, "daily_budget");
}

// A reservation nobody settles (its caller timed out or was lost) is dropped after reservation_ttl: it cannot hold
// the budget for the rest of the session's life.
TEST_F(Sessions, AnUnsettledReservationExpires) {
  start(100, nullptr, spend_limits{1000, 0, 0});
  auto s = session("u35");
  caf::scoped_actor self{*sys_};
  EXPECT_TRUE(reserve_spend(self, s, "u35", 10, 900).spend.allowed);
  EXPECT_FALSE(reserve_spend(self, s, "u35", 10, 900).spend.allowed);
  now_ += 661; // the default reservation_ttl is 660 s
  EXPECT_TRUE(reserve_spend(self, s, "u35", 10, 900).spend.allowed);
}

// A new session starts from what the ledger says was spent this day and month.
TEST_F(Sessions, SpendStartsFromTheLedger) {
  db_->spent_day = 900;
  db_->spent_month = 5000;
  start(100, nullptr, spend_limits{1000, 5100, 0});
  auto s = session("u31");
  caf::scoped_actor self{*sys_};
  auto daily = reserve_spend(self, s, "u31", 1, 200);
  EXPECT_EQ(daily.spend.refused, "daily_budget");
  auto monthly = reserve_spend(self, s, "u31", 1, 100);
  EXPECT_TRUE(monthly.spend.allowed);
  auto over = reserve_spend(self, s, "u31", 1, 1);
  EXPECT_EQ(over.spend.refused, "daily_budget"); // 900 + 100 reserved = the day's 1000
  // The next quota day (it rolls over at 04:00 UTC): the day is new, the month is not.
  now_ += 600;
  spend_reservation{sessions_, "u31", monthly.spend.reservation}.settle(1, 100); // spent: day 1000, month 5100
  now_ += 86400 - 600;
  auto next_day = reserve_spend(self, s, "u31", 1, 50);
  EXPECT_EQ(next_day.spend.refused, "monthly_budget"); // 5100 + 50 > 5100
}

// Tokens per minute: a window of that many tokens refilling over a minute; a call that used less than it reserved
// gives the rest back, one that used more leaves the window in debt; a reservation larger than the window is refused
// outright.
TEST_F(Sessions, TokensPerMinuteAreReservedAndSettled) {
  start(100, nullptr, spend_limits{0, 0, 1000});
  auto s = session("u32");
  caf::scoped_actor self{*sys_};
  auto first = reserve_spend(self, s, "u32", 800, 0);
  EXPECT_TRUE(first.spend.allowed);
  auto refused = reserve_spend(self, s, "u32", 300, 0);
  EXPECT_EQ(refused.spend.refused, "tokens_per_minute");
  EXPECT_EQ(refused.spend.retry_after_s, 6); // 100 more tokens at 1000 a minute
  spend_reservation{sessions_, "u32", first.spend.reservation}.settle(500, 0); // 300 back
  auto second = reserve_spend(self, s, "u32", 500, 0);
  EXPECT_TRUE(second.spend.allowed);
  spend_reservation{sessions_, "u32", second.spend.reservation}.settle(900, 0); // 400 over: the window is at -400
  EXPECT_FALSE(reserve_spend(self, s, "u32", 1, 0).spend.allowed);
  seconds_ = seconds_ + 30.0; // 500 tokens refilled: at 100
  EXPECT_TRUE(reserve_spend(self, s, "u32", 100, 0).spend.allowed);
  EXPECT_EQ(reserve_spend(self, s, "u32", 5000, 0).spend.retry_after_s, 60); // never fits in 1000
}

// A hand-off carries the spend: the next owner counts no less spent, keeps the reservations (they settle there,
// once, however often the hand-off arrives) and the window's level.
TEST_F(Sessions, HandOffCarriesTheSpend) {
  start(100, nullptr, spend_limits{1000, 0, 1000});
  auto s = session("u33");
  caf::scoped_actor self{*sys_};
  auto held = reserve_spend(self, s, "u33", 700, 400);
  EXPECT_TRUE(held.spend.allowed);
  session_handoff handoff;
  self->request(s, caf::infinite, handoff_atom::value)
    .receive([&](session_handoff& h) { handoff = std::move(h); }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  ASSERT_EQ(handoff.spend_holds.size(), 1u);
  EXPECT_EQ(handoff.spend_holds[0].pusd, 400);
  EXPECT_NEAR(handoff.window_tokens, 300, 0.01);
  handoff.user_id = "u34";
  handoff.spent_day = 500;
  self->send(manager_, handoff_atom::value, handoff);
  auto next = session("u34");
  caf::anon_send(next, handoff_atom::value, handoff); // the same hand-off again: nothing more is held
  EXPECT_EQ(reserve_spend(self, next, "u34", 1, 101).spend.refused, "daily_budget"); // 500 + 400 + 101 > 1000
  EXPECT_EQ(reserve_spend(self, next, "u34", 301, 1).spend.refused, "tokens_per_minute");
  // The reservation made on the previous owner settles here.
  spend_reservation{sessions_, "u34", held.spend.reservation}.settle(100, 50);
  EXPECT_TRUE(reserve_spend(self, next, "u34", 1, 450).spend.allowed); // 550 + 450 = 1000
}
