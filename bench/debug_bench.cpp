// What debug mode costs per message, without HTTP noise (Google Benchmark). Part of `make bench-debug`
// (bench/debug.sh), next to the HTTP comparison.
//
//   build/bench/debug_bench [--benchmark_repetitions=5]
//
// A driver actor sends `batch` sequential requests to an echo actor and waits for each reply: every round trip is
// two messages, each passing the observed_actor hooks of its receiver (enqueue on the sender's thread, consume on
// the receiver's). debug_off: no probes; debug_on: probes in every actor (debug.enabled). items/s = round trips/s.

#include "introspect/observed_actor.hpp"

#include <benchmark/benchmark.h>
#include <caf/all.hpp>

#include <future>
#include <memory>

using namespace troupe;

namespace {

constexpr int64_t batch = 20000;

struct driver_state {
  caf::actor echo;
  int64_t remaining = 0;
  std::shared_ptr<std::promise<void>> done;
};

void next_request(observed_stateful_actor<driver_state>* self) {
  if (self->state.remaining-- == 0) {
    self->state.done->set_value();
    self->quit();
    return;
  }
  self->request(self->state.echo, caf::infinite, self->state.remaining).then([self](int64_t) { next_request(self); });
}

void round_trips(benchmark::State& state, bool debug) {
  system_config cfg;
  if (debug)
    cfg.probes = std::make_shared<probe_registry>();
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  auto echo = sys.spawn([](observed_actor*) -> caf::behavior { return {[](int64_t x) { return x; }}; });
  for (auto _ : state) {
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    sys.spawn(
      [echo, done](observed_stateful_actor<driver_state>* self) -> caf::behavior {
        self->state.echo = echo;
        self->state.remaining = batch;
        self->state.done = done;
        next_request(self);
        return {[](int64_t) {}};
      });
    finished.wait();
  }
  state.SetItemsProcessed(state.iterations() * batch);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}

} // namespace

BENCHMARK_CAPTURE(round_trips, debug_off, false)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(round_trips, debug_on, true)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
