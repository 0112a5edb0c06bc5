#pragma once
// Rate limiting: token buckets per (subject, policy), owned by limiter shard actors so every decision about one key
// is made by one actor (exact, whatever the number of HTTP threads or requests in flight).
//
// A limiter shard's interface is limiter_shard_actor, below. Buckets that have refilled completely are equivalent to new ones and are dropped by a periodic sweep, and a shard
// never holds more than max_keys buckets, so a flood of distinct clients cannot grow memory without bound.
//
// The "limits" supervisor (one_for_one) starts limiter_shard_count() shards, named limiter_shard_name(i); a key's
// shard is shard_of(key, count).

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

/// A limiter shard's interface.
using limiter_shard_actor = caf::typed_actor<
  /// (key, policy): takes a token of the key's bucket under the policy, and says what is left.
  caf::replies_to<limit_atom, std::string, rate_policy>::with<limit_decision>, mailbox_size_request>;

/// A token bucket (pure arithmetic; times in seconds on any monotonic clock).
class token_bucket {
public:
  token_bucket(double per_minute, double burst, double now) : tokens_(burst), updated_(now) {
    configure(per_minute, burst);
  }

  /// Takes one token if there is one. Refills first.
  bool take(double now);
  /// Tokens available at `now` (fractional).
  double available(double now) const;
  /// Seconds until one token is available (0 if one is).
  double seconds_until_token(double now) const;
  /// Seconds until the bucket is full again.
  double seconds_until_full(double now) const;
  bool full(double now) const { return available(now) >= burst_; }
  double per_minute() const { return rate_per_second_ * 60.0; }
  double burst() const { return burst_; }
  /// At most `tokens` at `now` (a hand-off from the user's previous owner, or an empty start when `tokens` is 0).
  void limit_to(double tokens, double now);

private:
  void configure(double per_minute, double burst);

  double rate_per_second_ = 1;
  double burst_ = 1;
  double tokens_;
  double updated_;
};

/// Takes a token of `bucket` (governed by `policy`) at `now` and describes the outcome for the RateLimit headers.
limit_decision take_token(token_bucket& bucket, const rate_policy& policy, double now);

/// Monotonic seconds (steady_clock), the time base of buckets.
double monotonic_seconds();

struct limiter_options {
  size_t max_keys = 100000;  // buckets per shard
  std::chrono::milliseconds sweep_interval{10000};
  std::function<double()> now_seconds;  // monotonic seconds; steady_clock when empty (tests inject their own)
  std::shared_ptr<std::atomic<int64_t>> keys = std::make_shared<std::atomic<int64_t>>(0);  // buckets held
};

limiter_shard_actor spawn_limiter_shard(caf::actor_system& sys, limiter_options options);

/// The shard that owns `key` among `shards`.
size_t shard_of(const std::string& key, size_t shards);

/// The number of shards the settings ask for: limits.shards, or 2 x cores when it is 0.
size_t limiter_shard_count(const config::limits_settings& settings);

/// "limits.shard.<i>"
actor_name<limiter_shard_actor> limiter_shard_name(size_t i);

/// The "limits" supervisor: limiter_shard_count(settings) shards bounded by limits.max_keys each. The buckets they
/// hold are written as troupe_rate_limit_buckets by a collector in context.metrics.
supervisor_config make_limits_supervisor(const config::limits_settings& settings, const supervision_context& context);

} // namespace troupe
