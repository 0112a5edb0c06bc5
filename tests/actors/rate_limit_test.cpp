// Token bucket arithmetic (injected time) and the limiter shard actor: decisions, headers' numbers, bounded memory.

#include "actors/messages.hpp"
#include "actors/rate_limit.hpp"
#include "tests/sanitizers/sanitizers.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

using namespace troupe;

// A new bucket holds `burst` tokens and refuses the next one.
TEST(TokenBucket, StartsFullAndRefusesBeyondBurst) {
  token_bucket b{60, 3, 0};
  EXPECT_TRUE(b.take(0));
  EXPECT_TRUE(b.take(0));
  EXPECT_TRUE(b.take(0));
  EXPECT_FALSE(b.take(0));
  EXPECT_DOUBLE_EQ(b.available(0), 0);
}

// Tokens come back at the rate, never beyond the burst, however long the bucket idles.
TEST(TokenBucket, RefillsAtTheRateUpToTheBurst) {
  token_bucket b{60, 2, 0};  // one token per second
  b.take(0);
  b.take(0);
  EXPECT_NEAR(b.available(0.5), 0.5, 1e-9);
  EXPECT_FALSE(b.take(0.5));
  EXPECT_TRUE(b.take(1.0));
  EXPECT_NEAR(b.available(1e9), 2, 1e-9);  // long idle
  EXPECT_TRUE(b.full(1e9));
}

// Fractional rates: 0.5 per minute is one token every 120 s.
TEST(TokenBucket, FractionalRates) {
  token_bucket b{0.5, 1, 0};
  EXPECT_TRUE(b.take(0));
  EXPECT_NEAR(b.seconds_until_token(0), 120, 1e-6);
  EXPECT_FALSE(b.take(119.9));
  EXPECT_TRUE(b.take(120.0));
}

// Waiting times: until one token, and until full.
TEST(TokenBucket, ReportsWaitingTimes) {
  token_bucket b{30, 10, 0};  // one token per 2 s
  for (int i = 0; i < 10; ++i)
    b.take(0);
  EXPECT_NEAR(b.seconds_until_token(0), 2, 1e-9);
  EXPECT_NEAR(b.seconds_until_full(0), 20, 1e-9);
  EXPECT_NEAR(b.seconds_until_full(5), 15, 1e-9);  // 2.5 tokens back after 5 s
}

// A clock that does not move forward (or goes back) never creates tokens.
TEST(TokenBucket, BackwardClockCreatesNothing) {
  token_bucket b{60, 1, 100};
  EXPECT_TRUE(b.take(100));
  EXPECT_FALSE(b.take(50));
  EXPECT_FALSE(b.take(100));
}

// The same key always lands on the same shard, and keys spread over shards.
TEST(ShardOf, IsStableAndSpreads) {
  EXPECT_EQ(shard_of("user:42", 8), shard_of("user:42", 8));
  std::vector<int> hits(8, 0);
  for (int i = 0; i < 8000; ++i)
    ++hits[shard_of("ip:10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), 8)];
  for (auto h : hits)
    EXPECT_GT(h, 700);
}

namespace {

class LimiterShard : public ::testing::Test {
protected:
  LimiterShard() {
    register_message_types(cfg_);
    cfg_.add_message_type<rate_policy>("rate_policy");
    cfg_.add_message_type<limit_decision>("limit_decision");
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }
  ~LimiterShard() override {
    if (shard_)
      caf::anon_send_exit(shard_, caf::exit_reason::kill);
  }

  void start(size_t max_keys = 100000) {
    limiter_options opts;
    opts.max_keys = max_keys;
    opts.now_seconds = [this] { return now_.load(); };
    opts.sweep_interval = std::chrono::hours{1};  // the test sweeps by filling up, not by time
    keys_ = opts.keys;
    shard_ = spawn_limiter_shard(*sys_, opts);
  }

  limit_decision ask(const std::string& key, const rate_policy& policy) {
    caf::scoped_actor self{*sys_};
    limit_decision out;
    self->request(shard_, caf::infinite, limit_atom::value, key, policy)
      .receive([&](limit_decision& d) { out = d; }, [&](caf::error& e) { ADD_FAILURE() << to_string(e); });
    return out;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  limiter_shard_actor shard_;
  std::atomic<double> now_{1000};
  std::shared_ptr<std::atomic<int64_t>> keys_;
};

} // namespace

// Exactly `burst` requests pass; the remaining count goes down; a refusal says when to retry (whole seconds).
TEST_F(LimiterShard, AllowsTheBurstThenRefusesWithRetryAfter) {
  start();
  rate_policy p{"generate", 30, 10};
  for (int i = 0; i < 10; ++i) {
    auto d = ask("user:1", p);
    EXPECT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 9 - i);
  }
  auto refused = ask("user:1", p);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0);
  EXPECT_EQ(refused.retry_after_s, 2);
  EXPECT_EQ(refused.reset_s, 20);
  // Another subject, or another policy, has its own bucket.
  EXPECT_TRUE(ask("user:2", p).allowed);
  EXPECT_TRUE(ask("user:1", rate_policy{"default", 120, 40}).allowed);
  // Time passes: one token back after 2 s.
  now_ = now_ + 2.0;
  EXPECT_TRUE(ask("user:1", p).allowed);
  EXPECT_FALSE(ask("user:1", p).allowed);
}

// 100k distinct clients do not grow a shard beyond its bound.
TEST_F(LimiterShard, DistinctClientsStayBounded) {
  start(1000);
  rate_policy p{"anonymous", 60, 20};
  caf::scoped_actor self{*sys_};
  // 100 times the bound; 10 times under a sanitizer, where 100k round trips outlast the test's timeout.
  const int clients = troupe::testing::under_sanitizer ? 10000 : 100000;
  for (int i = 0; i < clients; ++i)
    self->send(shard_, limit_atom::value, "ip:" + std::to_string(i), p);
  for (int i = 0; i < clients; ++i)
    self->receive([](limit_decision&) {});
  EXPECT_LE(keys_->load(), 1000);
  // Long idle makes every bucket full again, and full buckets are forgotten first.
  now_ = now_ + 3600.0;
  ask("ip:fresh", p);
  EXPECT_LE(keys_->load(), 1000);
}
