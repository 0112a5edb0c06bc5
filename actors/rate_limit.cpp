#include "actors/rate_limit.hpp"
#include "introspect/observed_actor.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace troupe {

void token_bucket::configure(double per_minute, double burst) {
  rate_per_second_ = std::max(per_minute, 1e-9) / 60.0;
  burst_ = std::max(burst, 1.0);
  tokens_ = std::min(tokens_, burst_);
}

double token_bucket::available(double now) const {
  auto elapsed = std::max(0.0, now - updated_);
  return std::min(burst_, tokens_ + elapsed * rate_per_second_);
}

void token_bucket::limit_to(double tokens, double now) {
  tokens_ = std::max(0.0, std::min(available(now), tokens));
  updated_ = std::max(updated_, now);
}

namespace {
// Refills accumulate in small steps: forgive rounding so that a token due at t is there at t.
constexpr double epsilon = 1e-9;
} // namespace

bool token_bucket::take(double now) {
  tokens_ = available(now);
  updated_ = std::max(updated_, now);
  if (tokens_ + epsilon < 1.0)
    return false;
  tokens_ = std::max(0.0, tokens_ - 1.0);
  return true;
}

double token_bucket::seconds_until_token(double now) const {
  auto have = available(now);
  return have + epsilon >= 1.0 ? 0.0 : (1.0 - have) / rate_per_second_;
}

double token_bucket::seconds_until_full(double now) const {
  return (burst_ - available(now)) / rate_per_second_;
}

limit_decision take_token(token_bucket& bucket, const rate_policy& policy, double now) {
  limit_decision d;
  d.per_minute = policy.per_minute;
  d.allowed = bucket.take(now);
  d.remaining = static_cast<int64_t>(std::floor(bucket.available(now) + 1e-9));
  d.reset_s = static_cast<int64_t>(std::ceil(bucket.seconds_until_full(now) - 1e-9));
  if (!d.allowed)
    d.retry_after_s = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(bucket.seconds_until_token(now) - 1e-9)));
  return d;
}

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

size_t shard_of(const std::string& key, size_t shards) {
  // FNV-1a: stable across processes and nodes, unlike std::hash.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key)
    h = (h ^ c) * 1099511628211ull;
  return shards == 0 ? 0 : static_cast<size_t>(h % shards);
}

namespace {

struct entry {
  token_bucket bucket;
  std::string policy;
};

struct limiter_state {
  limiter_options opts;
  std::unordered_map<std::string, entry> buckets;  // "<policy>|<key>"
  static inline const char* name = "limiter_shard";
};

/// A shard's own timer: every limiter_options::sweep_interval, drop the buckets that have refilled.
using limiter_sweep_atom = caf::atom_constant<caf::atom("sweep")>;

/// The interface with the shard's own timer, which nobody else sends.
using limiter_self_actor = limiter_shard_actor::extend<caf::reacts_to<limiter_sweep_atom>>;

using limiter_actor = observed_typed_stateful_actor<limiter_self_actor, limiter_state>;

double now(limiter_actor* self) {
  return self->state.opts.now_seconds ? self->state.opts.now_seconds() : monotonic_seconds();
}

/// Drops buckets that are full again (a new bucket would be identical).
void sweep(limiter_actor* self) {
  auto& st = self->state;
  auto t = now(self);
  for (auto i = st.buckets.begin(); i != st.buckets.end();)
    i = i->second.bucket.full(t) ? st.buckets.erase(i) : std::next(i);
  st.opts.keys->store(static_cast<int64_t>(st.buckets.size()));
}

limiter_self_actor::behavior_type limiter_impl(limiter_actor* self, limiter_options opts) {
  self->state.opts = std::move(opts);
  self->delayed_send(self, self->state.opts.sweep_interval, limiter_sweep_atom::value);
  return {
    [self](limit_atom, const std::string& key, const rate_policy& policy) {
      auto& st = self->state;
      auto t = now(self);
      auto id = policy.name + "|" + key;
      auto i = st.buckets.find(id);
      if (i == st.buckets.end()) {
        if (st.buckets.size() >= st.opts.max_keys)
          sweep(self);
        if (st.buckets.size() >= st.opts.max_keys)
          st.buckets.erase(st.buckets.begin());  // every bucket is in use: forget one (it restarts full)
        i = st.buckets.emplace(id, entry{token_bucket{policy.per_minute, policy.burst, t}, policy.name}).first;
        st.opts.keys->store(static_cast<int64_t>(st.buckets.size()));
      }
      return take_token(i->second.bucket, policy, t);
    },
    [self](limiter_sweep_atom) {
      sweep(self);
      self->delayed_send(self, self->state.opts.sweep_interval, limiter_sweep_atom::value);
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

limiter_shard_actor spawn_limiter_shard(caf::actor_system& sys, limiter_options options) {
  return sys.spawn(limiter_impl, std::move(options));
}

size_t limiter_shard_count(const config::limits_settings& settings) {
  if (settings.shards > 0)
    return static_cast<size_t>(settings.shards);
  return 2 * config::cores();
}

actor_name<limiter_shard_actor> limiter_shard_name(size_t i) {
  return {"limits.shard." + std::to_string(i)};
}

supervisor_config make_limits_supervisor(const config::limits_settings& settings, const supervision_context& context) {
  // Rate limiter shards: one owner per (subject, policy) key.
  auto limits = subsystem_supervisor("limits", supervision_strategy::one_for_one, context);
  limiter_options limiter;
  limiter.max_keys = static_cast<size_t>(settings.max_keys);
  for (size_t i = 0; i < limiter_shard_count(settings); ++i)
    limits.children.push_back(worker_child(
      limiter_shard_name(i).value,
      [limiter](caf::actor_system& sys) { return caf::actor_cast<caf::actor>(spawn_limiter_shard(sys, limiter)); },
      std::chrono::milliseconds{1000}));
  if (context.metrics)
    context.metrics->add_collector([keys = limiter.keys](prometheus_writer& out) {
      out.family("troupe_rate_limit_buckets", "gauge", "Token buckets held by the rate limiter shards.");
      out.sample("troupe_rate_limit_buckets", {}, static_cast<double>(keys->load()));
    });
  return limits;
}

} // namespace troupe
