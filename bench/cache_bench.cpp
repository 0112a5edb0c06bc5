// Cache throughput (Google Benchmark): get and put through cache_client across shards, from many concurrent caller
// actors, plus the single-threaded store as a reference. Part of `make bench-cache` (bench/cache.sh).
//
//   build/bench/cache_bench [--benchmark_filter=...]
//
// Each iteration asks every caller actor for `ops` operations (each caller keeps `depth` requests in flight, keys
// drawn from a fixed set spread over the shards) and waits until all of them are done; items/s is operations per
// second over all callers. Arguments: shards, callers.

#include "actors/cache.hpp"
#include "actors/messages.hpp"

#include <benchmark/benchmark.h>
#include <caf/all.hpp>

#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace troupe;

namespace {

using run_atom = caf::atom_constant<caf::atom("benchrun")>;

constexpr size_t key_count = 16384;
constexpr size_t value_bytes = 256;
constexpr size_t ops_per_caller = 2000;
constexpr size_t depth = 8; // requests each caller keeps in flight

struct shared_input {
  std::vector<std::string> keys;
  std::string value = std::string(value_bytes, 'v');
};

struct caller_state {
  std::shared_ptr<const cache_client> client;
  std::shared_ptr<const shared_input> input;
  size_t remaining = 0;
  size_t in_flight = 0;
  bool put = false;
  std::minstd_rand random{42};
  caf::typed_response_promise<bool> done;
};

using caller_actor = caf::stateful_actor<caller_state>;

void step(caller_actor* self) {
  auto& st = self->state;
  while (st.in_flight < depth && st.remaining > 0) {
    --st.remaining;
    ++st.in_flight;
    const auto& key = st.input->keys[st.random() % st.input->keys.size()];
    auto next = [self] {
      --self->state.in_flight;
      if (self->state.remaining == 0 && self->state.in_flight == 0)
        self->state.done.deliver(true);
      else
        step(self);
    };
    if (st.put)
      st.client->put(self, key, st.input->value, std::chrono::milliseconds{0}, {},
                     [next](caf::expected<bool>) { next(); });
    else
      st.client->get(self, key, [next](caf::expected<std::optional<std::string>>) { next(); });
  }
}

caf::behavior caller(caller_actor* self, std::shared_ptr<const cache_client> client,
                     std::shared_ptr<const shared_input> input, uint32_t seed) {
  self->state.client = std::move(client);
  self->state.input = std::move(input);
  self->state.random.seed(seed);
  return {
    [self](run_atom, uint64_t ops, bool put) {
      auto& st = self->state;
      st.remaining = ops;
      st.put = put;
      st.done = self->make_response_promise<bool>();
      step(self);
      return st.done;
    },
  };
}

/// An actor system with `shards` shards holding every key, and `callers` caller actors.
class cache_rig {
public:
  cache_rig(size_t shards, size_t callers) : sys_(configure(cfg_)), self_(sys_) {
    auto stats = std::make_shared<cache_stats>(shards, 1ull << 30);
    std::vector<cache_shard_actor> handles;
    for (size_t i = 0; i < shards; ++i) {
      cache_shard_options opts;
      opts.max_bytes = stats->shard_max_bytes();
      opts.stats = stats;
      opts.index = i;
      handles.push_back(spawn_cache_shard(sys_, opts));
    }
    shards_ = handles;
    auto client = std::make_shared<const cache_client>(handles);
    auto input = std::make_shared<shared_input>();
    for (size_t i = 0; i < key_count; ++i)
      input->keys.push_back("bench:key:" + std::to_string(i));
    for (size_t i = 0; i < callers; ++i)
      callers_.push_back(
        sys_.spawn(caller, client, std::shared_ptr<const shared_input>{input}, static_cast<uint32_t>(i + 1)));
    // Fill every key once, so that gets hit.
    for (const auto& key : input->keys)
      self_
        ->request(handles[client->shard_index(key)], caf::infinite, cache_put_atom::value, key, input->value,
                  int64_t{0}, std::vector<std::string>{})
        .receive([](bool) {}, [](caf::error&) {});
  }

  ~cache_rig() {
    for (auto& a : callers_)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    for (auto& a : shards_)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }

  /// Every caller performs `ops` operations; returns when all are done.
  void run(uint64_t ops, bool put) {
    for (auto& c : callers_)
      self_->request(c, caf::infinite, run_atom::value, ops, put).receive([](bool) {}, [](caf::error&) {});
  }

  size_t callers() const { return callers_.size(); }

private:
  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    register_message_types(cfg);
    // As troupe runs it: one scheduler thread per core (actors.threads = 0), max-throughput 300.
    cfg.set("scheduler.max-threads", static_cast<size_t>(std::max(1u, std::thread::hardware_concurrency())));
    cfg.set("scheduler.max-throughput", size_t{300});
    return cfg;
  }

  caf::actor_system_config cfg_;
  caf::actor_system sys_;
  caf::scoped_actor self_;
  std::vector<cache_shard_actor> shards_;
  std::vector<caf::actor> callers_;
};

// The callers run concurrently: run() sends all requests first, then waits for each.
void run_all(cache_rig& rig, uint64_t ops, bool put, benchmark::State& state) {
  for (auto _ : state)
    rig.run(ops, put);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * ops * rig.callers()));
}

void BM_CacheGet(benchmark::State& state) {
  cache_rig rig{static_cast<size_t>(state.range(0)), static_cast<size_t>(state.range(1))};
  run_all(rig, ops_per_caller, false, state);
}

void BM_CachePut(benchmark::State& state) {
  cache_rig rig{static_cast<size_t>(state.range(0)), static_cast<size_t>(state.range(1))};
  run_all(rig, ops_per_caller, true, state);
}

// The store alone, one thread: the cost of the data structure without any message.
void BM_CacheStoreGet(benchmark::State& state) {
  cache_store store{1ull << 30};
  std::vector<std::string> keys;
  for (size_t i = 0; i < key_count; ++i) {
    keys.push_back("bench:key:" + std::to_string(i));
    store.put(keys.back(), std::string(value_bytes, 'v'), std::chrono::steady_clock::time_point::max(), {});
  }
  std::minstd_rand random{42};
  auto now = std::chrono::steady_clock::now();
  for (auto _ : state)
    benchmark::DoNotOptimize(store.get(keys[random() % keys.size()], now));
  state.SetItemsProcessed(state.iterations());
}

void BM_CacheStorePut(benchmark::State& state) {
  cache_store store{64ull << 20};
  std::vector<std::string> keys;
  for (size_t i = 0; i < key_count; ++i)
    keys.push_back("bench:key:" + std::to_string(i));
  std::string value(value_bytes, 'v');
  std::minstd_rand random{42};
  auto expires = std::chrono::steady_clock::time_point::max();
  for (auto _ : state)
    store.put(keys[random() % keys.size()], value, expires, {});
  state.SetItemsProcessed(state.iterations());
}

// Arguments: shards, callers.
void shard_and_caller_counts(benchmark::internal::Benchmark* b) {
  for (int shards : {1, 4})
    for (int callers : {1, 16, 128})
      b->Args({shards, callers});
}

} // namespace

BENCHMARK(BM_CacheStoreGet);
BENCHMARK(BM_CacheStorePut);
BENCHMARK(BM_CacheGet)->Apply(shard_and_caller_counts)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CachePut)->Apply(shard_and_caller_counts)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
