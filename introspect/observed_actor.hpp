#pragma once
// The base class of Troupe's actors: an event-based actor that debug tools can look into.
//
// An observed actor is spawned from a function taking `observed_actor*` (or `observed_stateful_actor<S>*`) instead
// of caf::event_based_actor*; nothing else about writing an actor changes. Most actors are; the exceptions are plain
// CAF actors that debug mode does not see (no probe, no answer to debug peeks and traces): the job queue, job runners
// and file-chunk processors (actors/jobs.cpp, actors/processing.cpp), the upload router, sweeper, sessions and I/O
// actors (actors/uploads.cpp) and the upstream client actors (http/client/upstream_client.cpp). All of them but the
// job runners still answer mailbox_atom.
//
// Why a base class rather than a wrapper around each behaviour: CAF 0.17 has no enqueue timestamp and no hook per
// message (its actor profiler is compiled out of the Debian build). Overriding the two virtual functions every
// message passes through, scheduled_actor::enqueue (on the sender's thread) and scheduled_actor::consume (on the
// actor's), sees every message — behaviour handlers, response handlers, down/exit messages, a default handler —
// without touching how handlers reply: response promises, delegation and `caf::after` timeouts run unchanged
// because the original consume does all the work.
//
// Cost:
//   debug mode off  no probe. enqueue is one null test; consume one null test plus one bit test of the message id
//                   (the peek request below is answered in every mode, so the mailbox warning works without debug
//                   mode).
//   debug mode on   enqueue: one relaxed atomic add and two relaxed loads (plus a locked map insert while a trace
//                   of this actor runs); consume: one coarse clock read (a few ns) and four relaxed stores; while a
//                   trace runs, two precise clock reads and, for sampled messages, building the event. The probe's
//                   fields sit on separate cache lines by writer (probe.hpp). Measured: bench/RESULTS.md (bench-debug).
//
// Introspection requests (probe.hpp) are answered here, before the actor's own handlers, when they arrive with high
// priority: CAF's mailbox gives the urgent queue twice the quantum of the normal one and visits it first, so a
// busy actor answers after at most a few of its queued messages. An actor blocked in a handler (a detached DB
// connection in a long query, a hasher) cannot answer until the handler returns; its probe still shows its
// mailbox size and for how long it has been busy.
//
// "Time in mailbox" is exact for messages enqueued while a trace of the actor runs: the sender's thread stamps the
// mailbox element in enqueue and consume looks the stamp up. Messages already queued when the trace began report
// -1 (unknown) rather than a guess.

#include "introspect/probe.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <memory>
#include <vector>

namespace troupe {

class observed_actor : public caf::event_based_actor {
public:
  using super = caf::event_based_actor;

  explicit observed_actor(caf::actor_config& cfg);
  ~observed_actor() override;

  using super::enqueue;
  void enqueue(caf::mailbox_element_ptr ptr, caf::execution_unit* eu) override;
  caf::invoke_message_result consume(caf::mailbox_element& x) override;
  bool cleanup(caf::error&& reason, caf::execution_unit* host) override;

  /// The probe, or nullptr when debug mode is off.
  const std::shared_ptr<actor_probe>& probe() const { return probe_; }

private:
  /// Answers a high-priority introspection request; false if `x` is not one.
  bool answer_introspection(caf::mailbox_element& x);
  mailbox_snapshot snapshot(size_t limit);
  caf::invoke_message_result consume_observed(caf::mailbox_element& x);
  void report(caf::mailbox_element& x, const std::vector<trace_sink*>& sinks, const std::string& type,
              std::chrono::steady_clock::time_point start, int64_t waited_us);

  std::shared_ptr<actor_probe> probe_;
  std::shared_ptr<probe_registry> registry_;
  std::vector<trace_sink_ptr> sinks_; // actor thread only
};

/// A stateful actor with the observed base: `caf::behavior impl(observed_stateful_actor<my_state>* self, ...)`.
template <class State>
using observed_stateful_actor = caf::stateful_actor<State, observed_actor>;

} // namespace troupe
