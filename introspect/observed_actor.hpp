#pragma once
// The base class of Troupe's actors: an event-based actor that debug tools can look into.
//
// An observed actor is spawned from a function taking `observed_actor*` (or `observed_stateful_actor<S>*`) instead
// of caf::event_based_actor*; a typed one from a function taking `observed_typed_stateful_actor<Handle, S>*` and
// returning `Handle::behavior_type`. Nothing else about writing an actor changes. Most actors are; the exceptions are plain
// CAF actors that debug mode does not see (no probe, no answer to debug peeks and traces): the job queue, job runners
// and file-chunk processors (actors/jobs.cpp, actors/processing.cpp), the upload router, sweeper, sessions and I/O
// actors (actors/uploads.cpp) and the upstream client actors (actors/upstream_client.cpp). All of them but the
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
#include <caf/typed_event_based_actor.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

/// What makes an actor observable, apart from the actor's class so untyped and typed actors share it. Owned by the
/// actor (observed_base) and used on the sender's thread (on_enqueue) and the actor's (the rest).
class actor_observer {
public:
  explicit actor_observer(caf::scheduled_actor& self);
  ~actor_observer();
  actor_observer(const actor_observer&) = delete;
  actor_observer& operator=(const actor_observer&) = delete;

  void on_enqueue(caf::scheduled_actor& self, const caf::mailbox_element* x);

  /// Answers an introspection request itself; otherwise runs `base` (the actor's own consume), timing it while a
  /// probe exists.
  template <class Consume>
  caf::invoke_message_result consume(caf::scheduled_actor& self, caf::mailbox_element& x, Consume&& base) {
    if (x.mid.is_urgent_message() && answer_introspection(self, x)) {
      count_dequeued();
      return caf::invoke_message_result::consumed;
    }
    if (!probe_)
      return base(x);
    observation o{*probe_};
    begin(self, x, o);
    o.result = base(x);
    end(x, o);
    return o.result;
  }

  void on_cleanup();

  /// The probe, or nullptr when debug mode is off.
  const std::shared_ptr<actor_probe>& probe() const { return probe_; }

private:
  /// One message being handled while a probe exists. Counted as processed however the handler ends, exceptions
  /// included (the actor then quits); a skipped message goes back to the mailbox and is not.
  struct observation {
    explicit observation(actor_probe& p) : probe(p) {}
    ~observation();
    observation(const observation&) = delete;
    observation& operator=(const observation&) = delete;
    actor_probe& probe;
    bool begun = false; // the message was counted as dequeued (the last step of begin)
    caf::invoke_message_result result = caf::invoke_message_result::consumed;
    std::string type;
    int64_t waited_us = -1;
    std::vector<trace_sink*> wanted;            // the sinks whose sampling took this message
    std::chrono::steady_clock::time_point start; // precise time, read only while a trace runs
  };

  void count_dequeued();
  /// Answers a high-priority introspection request; false if `x` is not one.
  bool answer_introspection(caf::scheduled_actor& self, caf::mailbox_element& x);
  mailbox_snapshot snapshot(caf::scheduled_actor& self, size_t limit);
  void begin(caf::scheduled_actor& self, caf::mailbox_element& x, observation& o);
  void end(caf::mailbox_element& x, observation& o);

  std::shared_ptr<actor_probe> probe_;
  std::shared_ptr<probe_registry> registry_;
  std::vector<trace_sink_ptr> sinks_; // actor thread only
};

/// An actor class `Base` (caf::event_based_actor or a caf::typed_event_based_actor) that debug tools can look into.
template <class Base>
class observed_base : public Base {
public:
  using super = Base;

  explicit observed_base(caf::actor_config& cfg) : super(cfg), observer_(*this) {}

  using super::enqueue;
  void enqueue(caf::mailbox_element_ptr ptr, caf::execution_unit* eu) override {
    observer_.on_enqueue(*this, ptr.get());
    super::enqueue(std::move(ptr), eu);
  }

  caf::invoke_message_result consume(caf::mailbox_element& x) override {
    return observer_.consume(*this, x, [this](caf::mailbox_element& y) { return super::consume(y); });
  }

  bool cleanup(caf::error&& reason, caf::execution_unit* host) override {
    observer_.on_cleanup();
    return super::cleanup(std::move(reason), host);
  }

  /// The probe, or nullptr when debug mode is off.
  const std::shared_ptr<actor_probe>& probe() const { return observer_.probe(); }

private:
  actor_observer observer_;
};

using observed_actor = observed_base<caf::event_based_actor>;

/// A stateful actor with the observed base: `caf::behavior impl(observed_stateful_actor<my_state>* self, ...)`.
template <class State>
using observed_stateful_actor = caf::stateful_actor<State, observed_actor>;

/// The typed counterpart: `my_actor::behavior_type impl(observed_typed_stateful_actor<my_actor, my_state>* self)`,
/// where `my_actor` is a caf::typed_actor<...> handle type.
template <class Handle, class State>
using observed_typed_stateful_actor =
  caf::stateful_actor<State, observed_base<typename Handle::base>>;

} // namespace troupe
