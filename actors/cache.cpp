#include "actors/cache.hpp"
#include "introspect/observed_actor.hpp"

#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <optional>
#include <set>

namespace troupe {

namespace {

using std::chrono::milliseconds;

// Bookkeeping charged per entry on top of its key, value and tags: the entry itself, its hash-map node, its
// expiry-index node and the heap headers of its strings (measured against RSS by the cache RSS test).
constexpr uint64_t entry_overhead_bytes = 256;
// Per tag: the tag string in the entry and the entry's node in the tag index.
constexpr uint64_t tag_overhead_bytes = 96;
// Longest TTL honoured, so that now + ttl cannot overflow the clock.
constexpr int64_t max_ttl_ms = 365LL * 24 * 3600 * 1000;

} // namespace

// --- counters ----------------------------------------------------------------------------------------------------

cache_stats::cache_stats(size_t shards, uint64_t max_bytes) : max_bytes_(max_bytes) {
  shards_.reserve(std::max<size_t>(1, shards));
  for (size_t i = 0; i < std::max<size_t>(1, shards); ++i)
    shards_.push_back(std::make_unique<cache_shard_counters>());
}

cache_numbers cache_stats::snapshot(size_t i) const {
  const auto& c = *shards_.at(i);
  cache_numbers n;
  n.hits = c.hits.load(std::memory_order_relaxed);
  n.misses = c.misses.load(std::memory_order_relaxed);
  n.evictions = c.evictions.load(std::memory_order_relaxed);
  n.expirations = c.expirations.load(std::memory_order_relaxed);
  n.invalidations = c.invalidations.load(std::memory_order_relaxed);
  n.coalesced = c.coalesced.load(std::memory_order_relaxed);
  n.producer_failures = c.producer_failures.load(std::memory_order_relaxed);
  n.bytes = c.bytes.load(std::memory_order_relaxed);
  n.entries = c.entries.load(std::memory_order_relaxed);
  return n;
}

cache_numbers cache_stats::total() const {
  cache_numbers sum;
  for (size_t i = 0; i < shards_.size(); ++i) {
    auto n = snapshot(i);
    sum.hits += n.hits;
    sum.misses += n.misses;
    sum.evictions += n.evictions;
    sum.expirations += n.expirations;
    sum.invalidations += n.invalidations;
    sum.coalesced += n.coalesced;
    sum.producer_failures += n.producer_failures;
    sum.bytes += n.bytes;
    sum.entries += n.entries;
  }
  return sum;
}

void add_cache_collector(metrics_registry& metrics, std::shared_ptr<cache_stats> stats) {
  metrics.add_collector([stats](prometheus_writer& out) {
    struct field {
      const char* name; // after troupe_cache_ / troupe_cache_shard_
      const char* type;
      const char* help;
      uint64_t cache_numbers::*member;
    };
    static const field fields[] = {
      {"hits_total", "counter", "Cache reads that found a live entry.", &cache_numbers::hits},
      {"misses_total", "counter", "Cache reads that found no live entry.", &cache_numbers::misses},
      {"evictions_total", "counter", "Cache entries evicted to stay within the byte bound.", &cache_numbers::evictions},
      {"expirations_total", "counter", "Cache entries dropped after their TTL.", &cache_numbers::expirations},
      {"invalidations_total", "counter", "Cache entries removed by erase, tag, prefix or clear.",
       &cache_numbers::invalidations},
      {"coalesced_total", "counter", "Cache misses that waited for another caller's computation (single flight).",
       &cache_numbers::coalesced},
      {"producer_failures_total", "counter", "Cache computations that failed or timed out.",
       &cache_numbers::producer_failures},
      {"bytes", "gauge", "Bytes charged to cache entries (keys, values, tags and per-entry overhead).",
       &cache_numbers::bytes},
      {"entries", "gauge", "Cache entries held.", &cache_numbers::entries},
    };
    auto total = stats->total();
    std::vector<cache_numbers> shards;
    for (size_t i = 0; i < stats->shards(); ++i)
      shards.push_back(stats->snapshot(i));
    for (const auto& f : fields) {
      auto name = std::string{"troupe_cache_"} + f.name;
      out.family(name, f.type, std::string{f.help} + " All shards.");
      out.sample(name, {}, static_cast<double>(total.*f.member));
    }
    for (const auto& f : fields) {
      auto name = std::string{"troupe_cache_shard_"} + f.name;
      out.family(name, f.type, std::string{f.help} + " Per shard.");
      for (size_t i = 0; i < shards.size(); ++i)
        out.sample(name, {{"shard", std::to_string(i)}}, static_cast<double>(shards[i].*f.member));
    }
    out.family("troupe_cache_max_bytes", "gauge", "Byte bound of the cache over all shards.");
    out.sample("troupe_cache_max_bytes", {}, static_cast<double>(stats->max_bytes()));
  });
}

// --- cache_store -------------------------------------------------------------------------------------------------

uint64_t cache_entry_bytes(std::string_view key, std::string_view value, const std::vector<std::string>& tags) {
  uint64_t bytes = entry_overhead_bytes + key.size() + value.size();
  for (const auto& tag : tags)
    bytes += tag_overhead_bytes + tag.size();
  return bytes;
}

cache_store::cache_store(uint64_t max_bytes, cache_shard_counters* counters)
  : max_bytes_(max_bytes), counters_(counters) {
  publish();
}

cache_store::~cache_store() = default;

void cache_store::publish() {
  if (!counters_)
    return;
  counters_->bytes.store(bytes_, std::memory_order_relaxed);
  counters_->entries.store(entries_.size(), std::memory_order_relaxed);
}

void cache_store::unlink(entry* e) {
  (e->newer ? e->newer->older : newest_) = e->older;
  (e->older ? e->older->newer : oldest_) = e->newer;
  e->newer = e->older = nullptr;
}

void cache_store::push_newest(entry* e) {
  e->older = newest_;
  e->newer = nullptr;
  if (newest_)
    newest_->newer = e;
  newest_ = e;
  if (!oldest_)
    oldest_ = e;
}

void cache_store::remove(entry* e, reason why) {
  if (counters_) {
    switch (why) {
    case reason::evicted:
      counters_->evictions.fetch_add(1, std::memory_order_relaxed);
      break;
    case reason::expired:
      counters_->expirations.fetch_add(1, std::memory_order_relaxed);
      break;
    case reason::invalidated:
      counters_->invalidations.fetch_add(1, std::memory_order_relaxed);
      break;
    case reason::replaced:
      break;
    }
  }
  unlink(e);
  by_expiry_.erase(e->expiry);
  untag(e);
  bytes_ -= e->bytes;
  entries_.erase(std::string_view{e->key}); // destroys *e last: the map's key views e->key
}

const std::string* cache_store::get(std::string_view key, time_point now, bool count) {
  auto i = entries_.find(key);
  if (i == entries_.end()) {
    if (count && counters_)
      counters_->misses.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  entry* e = i->second.get();
  if (e->expires <= now) {
    remove(e, reason::expired);
    publish();
    if (count && counters_)
      counters_->misses.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (newest_ != e) {
    unlink(e);
    push_newest(e);
  }
  if (count && counters_)
    counters_->hits.fetch_add(1, std::memory_order_relaxed);
  return &e->value;
}

void cache_store::untag(entry* e) {
  for (const auto& tag : e->tags) {
    auto i = by_tag_.find(tag);
    if (i == by_tag_.end())
      continue;
    i->second.erase(e);
    if (i->second.empty())
      by_tag_.erase(i);
  }
}

bool cache_store::put(std::string key, std::string value, time_point expires, std::vector<std::string> tags) {
  // Drop duplicate tags, so each tag indexes the entry once and is charged once.
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  auto bytes = cache_entry_bytes(key, value, tags);
  auto existing = entries_.find(key);
  if (bytes > max_bytes_) {
    if (existing != entries_.end())
      remove(existing->second.get(), reason::replaced);
    publish();
    return false;
  }
  // A value built by appending may hold much more memory than its size: charge what it is, store what it needs.
  if (value.capacity() > value.size() + value.size() / 4 + 64)
    value.shrink_to_fit();
  entry* e = nullptr;
  if (existing != entries_.end()) {
    // Replace in place: the key (which the index views) stays, everything else is renewed.
    e = existing->second.get();
    untag(e);
    by_expiry_.erase(e->expiry);
    unlink(e);
    bytes_ -= e->bytes;
  } else {
    auto owned = std::make_unique<entry>();
    e = owned.get();
    e->key = std::move(key);
    entries_.emplace(std::string_view{e->key}, std::move(owned));
  }
  e->value = std::move(value);
  e->tags = std::move(tags);
  e->expires = expires;
  e->bytes = bytes;
  e->expiry = by_expiry_.emplace(expires, e);
  for (const auto& tag : e->tags)
    by_tag_[tag].insert(e);
  push_newest(e);
  bytes_ += bytes;
  // Evict from the least recently used end; the new entry fits alone, so this stops before reaching it.
  while (bytes_ > max_bytes_ && oldest_ && oldest_ != e)
    remove(oldest_, reason::evicted);
  publish();
  return true;
}

bool cache_store::erase(std::string_view key) {
  auto i = entries_.find(key);
  if (i == entries_.end())
    return false;
  remove(i->second.get(), reason::invalidated);
  publish();
  return true;
}

uint64_t cache_store::invalidate_tag(const std::string& tag) {
  auto i = by_tag_.find(tag);
  if (i == by_tag_.end())
    return 0;
  std::vector<entry*> victims(i->second.begin(), i->second.end());
  for (auto* e : victims)
    remove(e, reason::invalidated);
  publish();
  return victims.size();
}

uint64_t cache_store::invalidate_prefix(std::string_view prefix) {
  std::vector<entry*> victims;
  for (const auto& [key, e] : entries_)
    if (key.substr(0, prefix.size()) == prefix)
      victims.push_back(e.get());
  for (auto* e : victims)
    remove(e, reason::invalidated);
  publish();
  return victims.size();
}

uint64_t cache_store::clear() {
  uint64_t n = entries_.size();
  if (counters_)
    counters_->invalidations.fetch_add(n, std::memory_order_relaxed);
  by_tag_.clear();
  by_expiry_.clear();
  newest_ = oldest_ = nullptr;
  entries_.clear();
  bytes_ = 0;
  publish();
  return n;
}

uint64_t cache_store::sweep(time_point now) {
  uint64_t n = 0;
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) {
    remove(by_expiry_.begin()->second, reason::expired);
    ++n;
  }
  if (n > 0)
    publish();
  return n;
}

std::vector<std::string> cache_store::keys_by_recency() const {
  std::vector<std::string> keys;
  for (auto* e = newest_; e; e = e->older)
    keys.push_back(e->key);
  return keys;
}

// --- the shard actor ---------------------------------------------------------------------------------------------

namespace {

struct shard_state {
  cache_shard_options opts;
  cache_shard_counters* counters = nullptr;
  std::unique_ptr<cache_store> store;

  /// A computation under way for one key (single flight).
  struct flight {
    uint64_t token = 0;
    std::vector<caf::typed_response_promise<cache_reply>> waiters;
    bool stale = false; // the key was written or invalidated since the claim: do not cache the result
    std::chrono::steady_clock::time_point deadline; // the producer's time is up (real time, as CAF's timers)
  };
  std::unordered_map<std::string, flight> flights;
  uint64_t next_token = 1;
  /// When the armed producer-timeout timers fire. One timer covers every flight due after it, so a claim costs the
  /// CAF clock nothing while an earlier timer is armed (a timer per claim was a wake-up of the clock thread and an
  /// entry in its schedule per gateway call, firing long after the call for nothing).
  std::multiset<std::chrono::steady_clock::time_point> producer_timers;

  shard_state() = default;
  shard_state(const shard_state&) = delete;
  shard_state& operator=(const shard_state&) = delete;
  /// The shard ends (restarted, stopped, or a handler threw): the callers parked on its flights would wait forever
  /// on their untimed requests (CAF 0.17 drops an unanswered promise silently). A producer's own wait ignores this
  /// answer: its producer's result ends its call.
  ~shard_state() {
    for (auto& [key, f] : flights)
      for (auto& waiter : f.waiters)
        waiter.deliver(make_error(service_error::unavailable, "The cache restarted; retry shortly."));
  }

  cache_store::time_point now() const { return opts.clock ? opts.clock() : std::chrono::steady_clock::now(); }

  cache_store::time_point expiry(int64_t ttl_ms) const {
    auto ttl = ttl_ms > 0 ? milliseconds{std::min(ttl_ms, max_ttl_ms)} : opts.default_ttl;
    return now() + ttl;
  }

  void count(std::atomic<uint64_t> cache_shard_counters::*member) {
    if (counters)
      (counters->*member).fetch_add(1, std::memory_order_relaxed);
  }

  template <class Predicate>
  void mark_stale(Predicate matches) {
    for (auto& [key, f] : flights)
      if (matches(key))
        f.stale = true;
  }

  /// Ends the computation of `key` if `token` is its token; returns its waiters (none if it was not).
  std::optional<flight> finish(const std::string& key, uint64_t token) {
    auto i = flights.find(key);
    if (i == flights.end() || i->second.token != token)
      return std::nullopt;
    auto result = std::move(i->second);
    flights.erase(i);
    return result;
  }

  static inline const char* name = "cache_shard";
};

/// The shard's own timers: (cache_producer_timeout_atom) the earliest producer deadline armed has come; the
/// periodic sweep.
using cache_producer_timeout_atom = caf::atom_constant<caf::atom("cacheptmo")>;
using cache_tick_atom = caf::atom_constant<caf::atom("cachetick")>;

/// The interface with the shard's own timers: the periodic sweep, and producers' time being up.
using shard_self_actor =
  cache_shard_actor::extend<caf::reacts_to<cache_tick_atom>, caf::reacts_to<cache_producer_timeout_atom>>;

using shard_actor = observed_typed_stateful_actor<shard_self_actor, shard_state>;

/// Arms a producer-timeout timer for `deadline` unless one armed already fires no later.
void arm_producer_timer(shard_actor* self, std::chrono::steady_clock::time_point deadline) {
  auto& timers = self->state.producer_timers;
  if (!timers.empty() && *timers.begin() <= deadline)
    return;
  timers.insert(deadline);
  auto wait = std::chrono::ceil<milliseconds>(deadline - std::chrono::steady_clock::now());
  self->delayed_send(self, std::max(wait, milliseconds{1}), cache_producer_timeout_atom::value);
}

/// The earliest armed timer has fired: fails the flights whose producer's time is up, and arms a timer for the
/// earliest flight left if no armed timer covers it.
void expire_producers(shard_actor* self) {
  auto& st = self->state;
  if (!st.producer_timers.empty())
    st.producer_timers.erase(st.producer_timers.begin());
  auto now = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> next;
  for (auto i = st.flights.begin(); i != st.flights.end();) {
    if (i->second.deadline > now) {
      next = next ? std::min(*next, i->second.deadline) : i->second.deadline;
      ++i;
      continue;
    }
    st.count(&cache_shard_counters::producer_failures);
    for (auto& waiter : i->second.waiters)
      waiter.deliver(make_error(service_error::timeout, "The value of this cache entry was not computed in time."));
    i = st.flights.erase(i);
  }
  if (next)
    arm_producer_timer(self, *next);
}

shard_self_actor::behavior_type shard_impl(shard_actor* self, cache_shard_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.counters =
    st.opts.stats && st.opts.index < st.opts.stats->shards() ? &st.opts.stats->shard(st.opts.index) : nullptr;
  st.store = std::make_unique<cache_store>(st.opts.max_bytes, st.counters);
  if (st.opts.sweep_interval.count() > 0)
    self->delayed_send(self, st.opts.sweep_interval, cache_tick_atom::value);
  return {
    [self](cache_get_atom, const std::string& key) {
      auto& st = self->state;
      const auto* value = st.store->get(key, st.now());
      return value ? cache_reply{true, *value, 0} : cache_reply{};
    },
    [self](cache_put_atom, std::string& key, std::string& value, int64_t ttl_ms, std::vector<std::string>& tags) {
      auto& st = self->state;
      if (auto i = st.flights.find(key); i != st.flights.end())
        i->second.stale = true;
      auto expires = st.expiry(ttl_ms);
      return st.store->put(std::move(key), std::move(value), expires, std::move(tags));
    },
    [self](cache_erase_atom, const std::string& key) {
      auto& st = self->state;
      if (auto i = st.flights.find(key); i != st.flights.end())
        i->second.stale = true;
      return st.store->erase(key);
    },
    [self](cache_tag_atom, const std::string& tag) {
      auto& st = self->state;
      // A computation's tags are known only when it fills: treat every one under way as affected.
      st.mark_stale([](const std::string&) { return true; });
      return st.store->invalidate_tag(tag);
    },
    [self](cache_prefix_atom, const std::string& prefix) {
      auto& st = self->state;
      st.mark_stale([&](const std::string& key) { return key.compare(0, prefix.size(), prefix) == 0; });
      return st.store->invalidate_prefix(prefix);
    },
    [self](cache_clear_atom) {
      auto& st = self->state;
      st.mark_stale([](const std::string&) { return true; });
      return st.store->clear();
    },
    [self](cache_sweep_atom) { return self->state.store->sweep(self->state.now()); },
    [self](cache_tick_atom) {
      self->state.store->sweep(self->state.now());
      self->delayed_send(self, self->state.opts.sweep_interval, cache_tick_atom::value);
    },
    [self](cache_claim_atom, const std::string& key, int64_t producer_timeout_ms) {
      auto& st = self->state;
      auto promise = self->make_response_promise<cache_reply>();
      // Not counted as a hit or miss: get_or_compute counted its get before claiming.
      if (const auto* value = st.store->get(key, st.now(), false)) {
        promise.deliver(cache_reply{true, *value, 0});
        return promise;
      }
      if (auto i = st.flights.find(key); i != st.flights.end()) {
        st.count(&cache_shard_counters::coalesced);
        i->second.waiters.push_back(promise);
        return promise;
      }
      auto token = st.next_token++;
      auto& f = st.flights[key];
      f.token = token;
      f.deadline = std::chrono::steady_clock::now() + milliseconds{std::max<int64_t>(1, producer_timeout_ms)};
      arm_producer_timer(self, f.deadline);
      promise.deliver(cache_reply{false, {}, token});
      return promise;
    },
    [self](cache_wait_atom, const std::string& key, uint64_t token) {
      auto& st = self->state;
      auto promise = self->make_response_promise<cache_reply>();
      auto i = st.flights.find(key);
      if (i != st.flights.end() && i->second.token == token)
        i->second.waiters.push_back(promise);
      else
        promise.deliver(make_error(service_error::timeout, "The computation of this cache entry is over."));
      return promise;
    },
    [self](cache_fill_atom, const std::string& key, uint64_t token, std::string& value, int64_t ttl_ms,
           std::vector<std::string>& tags) {
      auto& st = self->state;
      auto done = st.finish(key, token);
      if (!done)
        return false; // timed out (its waiters have their error) or superseded: never cache a late value
      for (auto& waiter : done->waiters)
        waiter.deliver(cache_reply{true, value, 0});
      if (done->stale || ttl_ms < 0) // ttl_ms < 0: single flight only, nothing stored
        return false;
      auto expires = st.expiry(ttl_ms);
      return st.store->put(key, std::move(value), expires, std::move(tags));
    },
    [self](cache_fail_atom, const std::string& key, uint64_t token, caf::error& err) {
      auto& st = self->state;
      auto done = st.finish(key, token);
      if (!done)
        return false;
      st.count(&cache_shard_counters::producer_failures);
      for (auto& waiter : done->waiters)
        waiter.deliver(err);
      return true;
    },
    [self](cache_producer_timeout_atom) { expire_producers(self); },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

cache_shard_actor spawn_cache_shard(caf::actor_system& sys, cache_shard_options options) {
  return sys.spawn(shard_impl, std::move(options));
}

size_t cache_shard_count(const config::cache_settings& settings) {
  if (settings.shards > 0)
    return static_cast<size_t>(settings.shards);
  return 2 * config::cores();
}

actor_name<cache_shard_actor> cache_shard_name(size_t i) {
  return {"cache.shard." + std::to_string(i)};
}

supervisor_config make_cache_supervisor(const config::cache_settings& settings, const supervision_context& context,
                                        std::shared_ptr<cache_stats> stats, steady_clock_fn clock) {
  if (context.metrics)
    add_cache_collector(*context.metrics, stats);
  auto cfg = subsystem_supervisor("cache", supervision_strategy::one_for_one, context);
  for (size_t i = 0; i < stats->shards(); ++i) {
    cache_shard_options opts;
    opts.max_bytes = stats->shard_max_bytes();
    opts.default_ttl = milliseconds{settings.default_ttl_ms};
    opts.sweep_interval = milliseconds{settings.sweep_ms};
    opts.clock = clock;
    opts.stats = stats;
    opts.index = i;
    cfg.children.push_back(worker_child(
      cache_shard_name(i).value,
      [opts](caf::actor_system& sys) { return caf::actor_cast<caf::actor>(spawn_cache_shard(sys, opts)); },
      milliseconds{1000}));
  }
  return cfg;
}

} // namespace troupe
