#pragma once
// Cache shards: a bounded, sharded in-memory cache with a TTL per entry, tags and single flight.
//
// A shard answers cache_shard_actor (below): the messages about one key (cache_key_actor: get, put, erase and single
// flight's claim, wait, fill and fail), invalidations of many keys (cache_invalidation_actor: tag, prefix, clear) and
// a sweep on demand.
//
// Each shard is an LRU bounded by bytes: an entry costs its key, value and tags plus a fixed overhead
// (cache_entry_bytes), and a put evicts least recently used entries until the shard is within its bound again.
// Entries expire after their TTL (the shard's clock is injectable): a read drops an expired entry, and a periodic
// sweep drops the rest. Tags name groups of entries to invalidate together ("user:42").
//
// Single flight: a claim on a missing key makes the first caller the producer (the reply carries a token) and
// parks later claims until the producer fills the key (they get the value) or fails (they get its error, which is
// not cached) or its producer timeout passes (they get service_error::timeout). The next claim after a failure
// starts a new computation. An invalidation of a key while its value is being computed lets the waiters have the
// value but keeps it out of the cache, so a value read before the invalidation is never cached after it.
//
// Keys reach their shard through cache_client, the router of this cache: std::hash of the key modulo the number
// of shards, each shard found by name ("cache.shard.<i>") in the directory, so callers never hold a dead handle.
// In a cluster a client may be given a placement (cache_placement, actors/cluster_endpoint.hpp): a key another node
// holds goes to that node's cluster endpoint, which hands it to its own shard, so every node shares one copy of an
// entry and one single flight per key.
// Counters live in atomics shared with /metrics and GET /api/cache/stats, read without asking the shards.

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"
#include "introspect/messages.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/typed_actor.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace troupe {

// --- protocols ---------------------------------------------------------------------------------------------------

/// The messages about one key: answered by the shard that holds it, and in a cluster by the endpoint of the node that
/// holds it (actors/cluster_endpoint.hpp), which hands them to that shard.
using cache_key_actor = caf::typed_actor<
  /// A hit or a miss; an expired entry is a miss.
  caf::replies_to<cache_get_atom, std::string>::with<cache_reply>,
  /// (key, value, ttl_ms, tags): false if larger than the shard's bound.
  caf::replies_to<cache_put_atom, std::string, std::string, int64_t, std::vector<std::string>>::with<bool>,
  /// Whether an entry was removed.
  caf::replies_to<cache_erase_atom, std::string>::with<bool>,
  /// (key, producer_timeout_ms): single flight, see above (not counted as a hit or a miss).
  caf::replies_to<cache_claim_atom, std::string, int64_t>::with<cache_reply>,
  /// (key, token): waits for the producer holding `token`.
  caf::replies_to<cache_wait_atom, std::string, uint64_t>::with<cache_reply>,
  /// (key, token, value, ttl_ms, tags): the producer's value; whether it was stored.
  caf::replies_to<cache_fill_atom, std::string, uint64_t, std::string, int64_t, std::vector<std::string>>::with<bool>,
  /// (key, token, error): the producer failed; its waiters get the error.
  caf::replies_to<cache_fail_atom, std::string, uint64_t, caf::error>::with<bool>>;

/// Invalidations of many keys, each answering the number of entries removed: by every shard for its own, and by a
/// cluster endpoint for every shard of its node.
using cache_invalidation_actor = caf::typed_actor<caf::replies_to<cache_tag_atom, std::string>::with<uint64_t>,
                                                  caf::replies_to<cache_prefix_atom, std::string>::with<uint64_t>,
                                                  caf::replies_to<cache_clear_atom>::with<uint64_t>>;

/// A cache shard's interface.
using cache_shard_actor = cache_key_actor::extend_with<cache_invalidation_actor>::extend<
  /// Drops expired entries now (the shard also sweeps periodically); how many.
  caf::replies_to<cache_sweep_atom>::with<uint64_t>, mailbox_size_request>;

// --- counters ----------------------------------------------------------------------------------------------------

/// One shard's counters, written by the shard and read by anyone.
struct cache_shard_counters {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> evictions{0};         // dropped to stay within the byte bound
  std::atomic<uint64_t> expirations{0};       // dropped after their TTL (on read or by the sweep)
  std::atomic<uint64_t> invalidations{0};     // dropped by erase, tag, prefix or clear
  std::atomic<uint64_t> coalesced{0};         // claims that waited for another caller's computation
  std::atomic<uint64_t> producer_failures{0}; // computations that failed or timed out
  std::atomic<uint64_t> bytes{0};             // charged bytes held now
  std::atomic<uint64_t> entries{0};           // entries held now
};

/// A snapshot of counters (one shard's or the sum of all).
struct cache_numbers {
  uint64_t hits = 0, misses = 0, evictions = 0, expirations = 0, invalidations = 0, coalesced = 0,
           producer_failures = 0, bytes = 0, entries = 0;
};

/// The counters of every shard of one cache, shared by the shards (across restarts), metrics and the stats route.
class cache_stats {
public:
  cache_stats(size_t shards, uint64_t max_bytes);

  size_t shards() const { return shards_.size(); }
  /// The bound over all shards, and one shard's share of it.
  uint64_t max_bytes() const { return max_bytes_; }
  uint64_t shard_max_bytes() const { return max_bytes_ / shards_.size(); }

  cache_shard_counters& shard(size_t i) { return *shards_.at(i); }
  cache_numbers snapshot(size_t i) const;
  cache_numbers total() const;

private:
  uint64_t max_bytes_;
  std::vector<std::unique_ptr<cache_shard_counters>> shards_;
};

/// Writes the troupe_cache_* families: totals (troupe_cache_hits_total, ...) and per shard
/// (troupe_cache_shard_hits_total{shard="0"}, ...).
void add_cache_collector(metrics_registry& metrics, std::shared_ptr<cache_stats> stats);

// --- the store a shard owns --------------------------------------------------------------------------------------

/// What an entry is charged: key, value and tags plus a fixed overhead for the bookkeeping around them (the entry,
/// its index nodes and the LRU links), so that many tiny entries cannot exceed the bound in real memory.
uint64_t cache_entry_bytes(std::string_view key, std::string_view value, const std::vector<std::string>& tags);

/// An LRU map bounded by bytes, with expiry times and tags. Not thread-safe: one shard actor owns it. Times come
/// from the caller, so the store itself has no clock.
class cache_store {
public:
  using time_point = std::chrono::steady_clock::time_point;

  /// `counters` (optional) receive hits, misses, evictions, expirations, invalidations, bytes and entries.
  cache_store(uint64_t max_bytes, cache_shard_counters* counters = nullptr);
  ~cache_store();
  cache_store(const cache_store&) = delete;
  cache_store& operator=(const cache_store&) = delete;

  /// The value of a live entry (made the most recently used), or nullptr; an expired entry is dropped. Counts a hit
  /// or a miss unless `count` is false. The pointer is valid until the next change of the store.
  const std::string* get(std::string_view key, time_point now, bool count = true);

  /// Stores (or replaces) an entry, then evicts least recently used entries until the store is within its bound.
  /// False if the entry alone is larger than the bound: then nothing is stored and an older entry of the key is
  /// removed.
  bool put(std::string key, std::string value, time_point expires, std::vector<std::string> tags);

  bool erase(std::string_view key);
  uint64_t invalidate_tag(const std::string& tag);
  /// Scans every entry: meant for administration and rare invalidations (tags are the cheap way).
  uint64_t invalidate_prefix(std::string_view prefix);
  uint64_t clear();
  /// Drops every entry that expired at or before `now`.
  uint64_t sweep(time_point now);

  uint64_t bytes() const { return bytes_; }
  size_t size() const { return entries_.size(); }
  uint64_t max_bytes() const { return max_bytes_; }
  /// Keys from the most to the least recently used.
  std::vector<std::string> keys_by_recency() const;

private:
  struct entry {
    std::string key;
    std::string value;
    std::vector<std::string> tags;
    time_point expires;
    uint64_t bytes = 0;
    entry* newer = nullptr;
    entry* older = nullptr;
    std::multimap<time_point, entry*>::iterator expiry;
  };

  enum class reason { evicted, expired, invalidated, replaced };
  void remove(entry* e, reason why);
  void unlink(entry* e);
  void untag(entry* e);
  void push_newest(entry* e);
  void publish();

  uint64_t max_bytes_;
  cache_shard_counters* counters_;
  uint64_t bytes_ = 0;
  // Keys are views of entry::key (entries never move: they are owned through unique_ptr).
  std::unordered_map<std::string_view, std::unique_ptr<entry>> entries_;
  entry* newest_ = nullptr;
  entry* oldest_ = nullptr;
  std::multimap<time_point, entry*> by_expiry_;
  std::unordered_map<std::string, std::unordered_set<entry*>> by_tag_;
};

// --- the shard actor ---------------------------------------------------------------------------------------------

struct cache_shard_options {
  uint64_t max_bytes = 64 * 1024 * 1024;          // this shard's bound
  std::chrono::milliseconds default_ttl{300000};  // for puts and fills with ttl_ms <= 0
  std::chrono::milliseconds sweep_interval{1000}; // 0 = no periodic sweep (tests sweep by message)
  steady_clock_fn clock;                          // steady_clock::now when empty (tests inject their own)
  std::shared_ptr<cache_stats> stats;             // optional, with `index` the shard's counters
  size_t index = 0;
};

cache_shard_actor spawn_cache_shard(caf::actor_system& sys, cache_shard_options options);

/// The number of shards the settings ask for: cache.shards, or 2 x cores when it is 0.
size_t cache_shard_count(const config::cache_settings& settings);

/// "cache.shard.<i>"
actor_name<cache_shard_actor> cache_shard_name(size_t i);

/// The "cache" supervisor (one_for_one) with one permanent child per shard, named cache_shard_name(i), each bound
/// to stats->shard_max_bytes(). `stats` (shared with the cache's clients) decides the number of shards; its
/// collector (add_cache_collector) goes into context.metrics.
supervisor_config make_cache_supervisor(const config::cache_settings& settings, const supervision_context& context,
                                        std::shared_ptr<cache_stats> stats, steady_clock_fn clock = {});

// --- the client: key -> shard, usable from inside any actor ------------------------------------------------------

/// Reaches the shard that owns a key. Every operation runs inside the calling actor (`self`): it sends a request
/// and calls the handler from its response, never blocking. Handlers are called exactly once (unless omitted).
/// A shard that is not running (restarting) is service_error::unavailable, except in get_or_compute, which then
/// computes the value without caching it. Thread-safe: one client serves every actor.
///
/// Requests to this node's shards carry no timeout: a shard answers every request at once, or (a claim parked behind
/// another caller's computation, a producer's wait) at the fill, the failure or the producer's deadline; a handler
/// that throws answers with the error; a shard that dies bounces the requests left in its mailbox
/// (request_receiver_down) and answers its parked ones service_error::unavailable as it ends. A timed request costs
/// a CAF 0.17 clock entry under a mutex, which cut get throughput to a third in bench/cache_bench.cpp, and two
/// wake-ups of the clock's thread. Single flight's claim and wait on another node's shard are timed (its producer
/// timeout plus a margin): that node may go away without an answer.
/// Where the keys of a cluster-wide cache live (actors/cluster_endpoint.hpp: cluster_cache_placement).
struct cache_placement {
  /// The endpoint of the node that holds `key` when that is another node; nullopt when it is this node.
  std::function<std::optional<cache_key_actor>(std::string_view key)> remote;
  /// Every other live node's endpoint, for invalidations; an error while one of them cannot be reached.
  std::function<caf::expected<std::vector<cache_invalidation_actor>>()> peers;
  /// Of every request to another node (a node that dies leaves its requests unanswered, never failed).
  std::chrono::milliseconds timeout{5000};
  /// The near tier: get_or_compute keeps a copy of a value it read from another node's cache in this node's shard
  /// for this long (0 = none), so a hot entry is read here; invalidations reach the copies too (they are in this
  /// node's shards). Values computed meanwhile are never copied.
  std::chrono::milliseconds near_ttl{0};
};

class cache_client {
public:
  using lookup = std::function<std::optional<cache_shard_actor>(size_t)>;

  /// Shards found by name (cache_shard_name) in `names`. `timeout` 0 = requests without a timeout.
  cache_client(std::shared_ptr<directory> names, size_t shards,
               std::chrono::milliseconds timeout = std::chrono::milliseconds{0});
  /// Fixed handles (tests, benchmarks).
  explicit cache_client(std::vector<cache_shard_actor> shards,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

  /// Places keys across a cluster from now on (before the client is shared). Without it every key is local.
  void place(cache_placement placement) { placement_ = std::move(placement); }

  size_t shards() const { return shards_; }
  size_t shard_index(std::string_view key) const;
  std::optional<cache_shard_actor> shard(size_t i) const { return lookup_(i); }
  /// What answers for `key`: this node's shard, or (with a placement) the endpoint of the node that holds it, which
  /// takes every message a shard takes about one key.
  std::optional<cache_key_actor> shard_for(std::string_view key) const;
  /// Where a read of `key` starts: with a near tier, this node's shard (it holds the key or may hold a near copy);
  /// else shard_for(key).
  std::optional<cache_key_actor> first_stop(std::string_view key) const;

  using value_handler = std::function<void(caf::expected<std::optional<std::string>>)>;
  using bool_handler = std::function<void(caf::expected<bool>)>;
  using count_handler = std::function<void(caf::expected<uint64_t>)>;
  using result_handler = std::function<void(caf::expected<std::string>)>;

  /// The value, or nullopt on a miss.
  void get(caf::event_based_actor* self, const std::string& key, value_handler then) const;
  /// ttl <= 0 takes the shard's default TTL. Without `then`, fire and forget.
  void put(caf::event_based_actor* self, const std::string& key, std::string value, std::chrono::milliseconds ttl,
           std::vector<std::string> tags = {}, bool_handler then = {}) const;
  void erase(caf::event_based_actor* self, const std::string& key, bool_handler then = {}) const;
  /// Tag, prefix and clear ask every shard (with a placement, every node's too); `then` gets the sum of the entries
  /// removed, or the first error (nothing is reported done while a live node could still hold the entries).
  void invalidate_tag(caf::event_based_actor* self, const std::string& tag, count_handler then = {}) const;
  void invalidate_prefix(caf::event_based_actor* self, const std::string& prefix, count_handler then = {}) const;
  void clear(caf::event_based_actor* self, count_handler then = {}) const;

  /// Computes a value asynchronously inside `self` and calls `done` exactly once with it or with an error.
  using producer = std::function<void(caf::event_based_actor* self, result_handler done)>;

  /// The cached value of `key`; on a miss, the value of one computation shared by every concurrent caller: the
  /// first caller runs `producer`, the value is cached with `ttl` and `tags` and handed to all of them. A failed
  /// producer's error goes to all of them and is not cached (the next call computes again). If the producer has not
  /// finished after `producer_timeout`, every caller gets service_error::timeout. A hit costs one get; a miss then
  /// claims the key (cache_claim_atom), which is not counted again as a hit or miss. When the node holding the key
  /// does not answer the get, the value is computed here without the cache. With a near tier, a key another node
  /// holds is read from this node's copy first, and the value got from there is copied here (cache_placement).
  void get_or_compute(caf::event_based_actor* self, const std::string& key, std::chrono::milliseconds ttl,
                      std::vector<std::string> tags, producer produce, result_handler then,
                      std::chrono::milliseconds producer_timeout = std::chrono::milliseconds{10000}) const;

  /// Single flight without caching: concurrent callers with the same key share one run of `produce` (the first
  /// caller's); its value (or error) goes to all of them and is not stored. Later callers compute again.
  void single_flight(caf::event_based_actor* self, const std::string& key, producer produce, result_handler then,
                     std::chrono::milliseconds producer_timeout = std::chrono::milliseconds{10000}) const;

private:
  /// Where a request about `key` goes, and with which timeout.
  struct target {
    cache_key_actor actor;
    caf::duration timeout;
    bool remote = false;
  };
  std::optional<target> route(std::string_view key) const;

  /// get_or_compute at `where`: a get, then on a miss the claim (and the producer when this caller is it).
  /// `copy_hit` (optional) gets the value of a get hit first (the near tier's copy).
  using hit_copier = std::function<void(const std::string&)>;
  void fetch(caf::event_based_actor* self, target where, const std::string& key, int64_t ttl_ms,
             std::vector<std::string> tags, producer produce, result_handler then,
             std::chrono::milliseconds producer_timeout, hit_copier copy_hit = {}) const;

  /// Claims `key` on `target` (another node's when `remote`) and runs `produce` if this caller is the producer;
  /// ttl_ms < 0 stores nothing.
  void claim_and_compute(caf::event_based_actor* self, cache_key_actor target, bool remote, const std::string& key,
                         int64_t ttl_ms, std::vector<std::string> tags, producer produce, result_handler then,
                         std::chrono::milliseconds producer_timeout) const;

  /// Sends the message to every shard and sums the counts they answer.
  template <class... Ts>
  void broadcast(caf::event_based_actor* self, count_handler then, Ts... msg) const;

  size_t shards_;
  lookup lookup_;
  cache_placement placement_;              // empty functions: every key is this node's
  caf::duration timeout_;                  // of plain requests; infinite when constructed with 0
  std::chrono::milliseconds claim_margin_; // added to a claim's producer timeout
};

} // namespace troupe
