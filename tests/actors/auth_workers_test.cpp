// The login throttle and the API key cache with injected clocks and a fake db.query: failures counted per (account,
// address) and per address, never per account alone; unknown keys remembered as misses, concurrent look-ups of one
// key sharing one query, and look-ups that may not cost a query.

#include "actors/auth_workers.hpp"
#include "actors/messages.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

class AuthWorkers : public ::testing::Test {
protected:
  AuthWorkers() {
    register_message_types(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    self_ = std::make_unique<caf::scoped_actor>(*sys_);
  }
  ~AuthWorkers() override {
    for (auto& a : spawned_)
      caf::anon_send_exit(a, caf::exit_reason::kill);
    self_.reset();
  }

  caf::actor keep(caf::actor a) {
    spawned_.push_back(a);
    return a;
  }

  std::function<clock_type::time_point()> clock() {
    return [this] { return clock_type::time_point{} + std::chrono::seconds{now_s_.load()}; };
  }

  // check and fail go through one scoped actor: messages from one sender arrive in order, so a check sees every
  // failure sent before it.
  int64_t check(const caf::actor& throttle, const std::string& email, const std::string& ip) {
    int64_t wait = -1;
    (*self_)
      ->request(throttle, caf::infinite, throttle_check_atom::value, email, ip)
      .receive([&](int64_t w) { wait = w; }, [](caf::error&) { ADD_FAILURE(); });
    return wait;
  }

  void fail(const caf::actor& throttle, const std::string& email, const std::string& ip, int times = 1) {
    for (int i = 0; i < times; ++i)
      (*self_)->send(throttle, throttle_fail_atom::value, email, ip);
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<caf::scoped_actor> self_;
  std::vector<caf::actor> spawned_;
  std::atomic<int64_t> now_s_{1000};
};

/// A db.query that knows one key ("good" -> user u1) and counts queries.
caf::behavior fake_keys(caf::stateful_actor<std::shared_ptr<std::atomic<int>>>* self,
                        std::shared_ptr<std::atomic<int>> queries) {
  self->state = queries;
  return {
    [self](api_key_lookup_atom, const std::string& hash) -> caf::result<api_key_record> {
      ++*self->state;
      if (hash == "good")
        return api_key_record{"k1", "u1", "main", "abcd", 1, 0, 0};
      return make_error(service_error::unauthenticated, "The API key is invalid or revoked.");
    },
  };
}

using release_atom = caf::atom_constant<caf::atom("release")>;

/// The same, answering only when sent release_atom (so concurrent look-ups overlap); release answers the number of
/// queries so far.
struct parked_keys_state {
  int queries = 0;
  std::vector<caf::response_promise> parked;
};

caf::behavior parked_keys(caf::stateful_actor<parked_keys_state>* self) {
  return {
    [self](api_key_lookup_atom, const std::string&) {
      ++self->state.queries;
      auto promise = self->make_response_promise();
      self->state.parked.push_back(promise);
      return promise;
    },
    [self](release_atom) {
      for (auto& promise : self->state.parked)
        promise.deliver(make_error(service_error::unauthenticated, "The API key is invalid or revoked."));
      self->state.parked.clear();
      return self->state.queries;
    },
  };
}

} // namespace

// Five failures of one account from address A hold back A for that account, but not the owner signing in from B,
// and a success from A forgets only A's failures for that account.
TEST_F(AuthWorkers, ThrottleCountsPerAccountAndAddressNotPerAccount) {
  login_throttle_options opts;
  opts.clock = clock();
  auto throttle = keep(spawn_login_throttle(*sys_, opts));
  fail(throttle, "erin@example.com", "198.51.100.1", 5);
  auto wait = check(throttle, "erin@example.com", "198.51.100.1");
  EXPECT_GT(wait, 800);
  EXPECT_LE(wait, 901);
  EXPECT_EQ(check(throttle, "erin@example.com", "198.51.100.2"), 0) << "the owner elsewhere is not locked out";
  EXPECT_EQ(check(throttle, "other@example.com", "198.51.100.1"), 0) << "5 failures stay under the address limit";
  // The window moves on: 15 minutes after the failures, A may try again.
  now_s_ += 15 * 60;
  EXPECT_EQ(check(throttle, "erin@example.com", "198.51.100.1"), 0);
  // A success forgets that pair, not the address's other failures.
  fail(throttle, "erin@example.com", "198.51.100.1", 5);
  (*self_)->send(throttle, throttle_reset_atom::value, std::string{"erin@example.com"}, std::string{"198.51.100.1"});
  EXPECT_EQ(check(throttle, "erin@example.com", "198.51.100.1"), 0);
}

// An address failing across many accounts is held back for every account, including ones it never tried; other
// addresses are not.
TEST_F(AuthWorkers, ThrottleHoldsBackAnAddressFailingAcrossAccounts) {
  login_throttle_options opts;
  opts.clock = clock();
  opts.max_address_failures = 20;
  auto throttle = keep(spawn_login_throttle(*sys_, opts));
  for (int i = 0; i < 19; ++i)
    fail(throttle, "user" + std::to_string(i) + "@example.com", "203.0.113.9");
  EXPECT_EQ(check(throttle, "fresh@example.com", "203.0.113.9"), 0);
  fail(throttle, "user19@example.com", "203.0.113.9");
  EXPECT_GT(check(throttle, "fresh@example.com", "203.0.113.9"), 0);
  EXPECT_EQ(check(throttle, "fresh@example.com", "203.0.113.10"), 0);
  // The wait ends when the oldest counted failure leaves the window.
  now_s_ += 15 * 60;
  EXPECT_EQ(check(throttle, "fresh@example.com", "203.0.113.9"), 0);
}

// Memory stays bounded whatever number of addresses fail: once full, entries whose failures have all left the window
// make room first, so a live address is still counted.
TEST_F(AuthWorkers, ThrottleMemoryIsBounded) {
  login_throttle_options opts;
  opts.clock = clock();
  opts.max_entries = 100;
  auto throttle = keep(spawn_login_throttle(*sys_, opts));
  for (int i = 0; i < 1000; ++i)
    fail(throttle, "x@example.com", "10.0.0." + std::to_string(i));
  check(throttle, "x@example.com", "10.0.0.0"); // every failure above is handled before the clock moves on
  now_s_ += 15 * 60;
  fail(throttle, "x@example.com", "10.0.9.9", 5);
  EXPECT_GT(check(throttle, "x@example.com", "10.0.9.9"), 0);
}

// An unknown key costs one query, then is answered from memory until miss_ttl has passed.
TEST_F(AuthWorkers, KeyCacheRemembersMisses) {
  auto db = keep(sys_->spawn(fake_keys, std::make_shared<std::atomic<int>>(0)));
  api_key_cache_options opts;
  opts.db_query = [db]() -> std::optional<db_query_actor> { return caf::actor_cast<db_query_actor>(db); };
  opts.clock = clock();
  opts.miss_ttl = 30s;
  auto cache = keep(spawn_api_key_cache(*sys_, opts));
  caf::scoped_actor self{*sys_};
  auto lookup = [&](const std::string& hash) {
    service_error code = service_error::none;
    self->request(cache, caf::infinite, key_lookup_atom::value, hash, true)
      .receive([&](api_key_record&) {}, [&](caf::error& e) { code = service_code(e); });
    return code;
  };
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(lookup("bad"), service_error::unauthenticated);
  EXPECT_EQ(opts.counters->queries.load(), 1u);
  EXPECT_EQ(opts.counters->miss_hits.load(), 49u);
  now_s_ += 31;
  EXPECT_EQ(lookup("bad"), service_error::unauthenticated);
  EXPECT_EQ(opts.counters->queries.load(), 2u) << "an expired miss is asked again";
  EXPECT_EQ(lookup("good"), service_error::none);
  EXPECT_EQ(lookup("good"), service_error::none);
  EXPECT_EQ(opts.counters->queries.load(), 3u);
  EXPECT_EQ(opts.counters->hits.load(), 1u);
}

// Misses are bounded: the oldest are forgotten first.
TEST_F(AuthWorkers, KeyCacheMissesAreBounded) {
  auto db = keep(sys_->spawn(fake_keys, std::make_shared<std::atomic<int>>(0)));
  api_key_cache_options opts;
  opts.db_query = [db]() -> std::optional<db_query_actor> { return caf::actor_cast<db_query_actor>(db); };
  opts.clock = clock();
  opts.max_misses = 10;
  auto cache = keep(spawn_api_key_cache(*sys_, opts));
  caf::scoped_actor self{*sys_};
  for (int i = 0; i < 11; ++i)
    self->request(cache, caf::infinite, key_lookup_atom::value, "bad" + std::to_string(i), true)
      .receive([](api_key_record&) {}, [](caf::error&) {});
  EXPECT_EQ(opts.counters->queries.load(), 11u);
  for (int i : {10, 1}) // the newest is remembered, the oldest (bad0) is not: 1..10 are the 10 kept
    self->request(cache, caf::infinite, key_lookup_atom::value, "bad" + std::to_string(i), true)
      .receive([](api_key_record&) {}, [](caf::error&) {});
  EXPECT_EQ(opts.counters->queries.load(), 11u);
  self->request(cache, caf::infinite, key_lookup_atom::value, std::string{"bad0"}, true)
    .receive([](api_key_record&) {}, [](caf::error&) {});
  EXPECT_EQ(opts.counters->queries.load(), 12u);
}

// Twenty concurrent look-ups of one unknown key cost one query, and all get its answer.
TEST_F(AuthWorkers, KeyCacheSharesConcurrentLookups) {
  auto db = keep(sys_->spawn(parked_keys));
  api_key_cache_options opts;
  opts.db_query = [db]() -> std::optional<db_query_actor> { return caf::actor_cast<db_query_actor>(db); };
  auto cache = keep(spawn_api_key_cache(*sys_, opts));
  caf::scoped_actor self{*sys_};
  for (int i = 0; i < 20; ++i)
    self->send(cache, key_lookup_atom::value, std::string{"bad"}, true);
  // The cache has sent its one query once the fake answers this (messages from one sender arrive in order, and the
  // cache forwards before it handles the next message).
  int queries = -1;
  for (auto deadline = clock_type::now() + 10s; queries < 1 && clock_type::now() < deadline;)
    self->request(db, caf::infinite, release_atom::value).receive([&](int q) { queries = q; }, [](caf::error&) {});
  EXPECT_EQ(queries, 1);
  int refused = 0;
  for (int i = 0; i < 20; ++i)
    self->receive([](api_key_record&) { ADD_FAILURE() << "an unknown key was accepted"; },
                  [&](caf::error& e) { refused += service_code(e) == service_error::unauthenticated; },
                  caf::after(10s) >> [] { ADD_FAILURE() << "no answer"; });
  EXPECT_EQ(refused, 20);
}

// Without use_database, a key not in memory fails with not_found and costs nothing; known keys and known misses are
// still answered from memory.
TEST_F(AuthWorkers, KeyCacheWithoutDatabaseAnswersFromMemoryOnly) {
  auto db = keep(sys_->spawn(fake_keys, std::make_shared<std::atomic<int>>(0)));
  api_key_cache_options opts;
  opts.db_query = [db]() -> std::optional<db_query_actor> { return caf::actor_cast<db_query_actor>(db); };
  auto cache = keep(spawn_api_key_cache(*sys_, opts));
  caf::scoped_actor self{*sys_};
  auto lookup = [&](const std::string& hash, bool use_database) {
    service_error code = service_error::none;
    self->request(cache, caf::infinite, key_lookup_atom::value, hash, use_database)
      .receive([&](api_key_record& k) { EXPECT_EQ(k.user_id, "u1"); }, [&](caf::error& e) { code = service_code(e); });
    return code;
  };
  EXPECT_EQ(lookup("good", false), service_error::not_found);
  EXPECT_EQ(lookup("bad", false), service_error::not_found);
  EXPECT_EQ(opts.counters->queries.load(), 0u);
  EXPECT_EQ(opts.counters->not_cached.load(), 2u);
  EXPECT_EQ(lookup("good", true), service_error::none);
  EXPECT_EQ(lookup("bad", true), service_error::unauthenticated);
  EXPECT_EQ(lookup("good", false), service_error::none);
  EXPECT_EQ(lookup("bad", false), service_error::unauthenticated);
  EXPECT_EQ(opts.counters->queries.load(), 2u);
}
