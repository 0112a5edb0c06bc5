#pragma once
// What debug mode knows about each actor, readable from any thread, and the messages debug tools exchange with
// actors. The lowest layer of Troupe's actors (persistence/ and actors/ both build on it), so it knows nothing of
// their protocols: messages are handled as opaque caf::message values here and rendered (with secrets redacted)
// by actors/message_text.hpp.
//
// One actor_probe per observed actor (introspect/observed_actor.hpp), created only when debug mode is on and
// registered in the probe_registry of its actor system (troupe::system_config::probes). Counters are written by
// the actor's own thread (and, for `queued`, by its senders) and read by anyone, so a debug route learns an actor's
// mailbox size even while the actor is stuck in a long handler: that is the actor debug mode is for.
//
// Protocol every observed actor answers, sent at high priority so a busy actor answers before its backlog
// (`request<caf::message_priority::high>` with a caf::duration: a std::chrono timeout drops the priority):
//   (debug_peek_atom, uint64_t limit) -> mailbox_snapshot     the first `limit` queued messages and a count of
//                                                             every queued message by type
//   (debug_trace_atom, trace_sink_ptr) -> bool                from now on, processed messages are reported to the
//                                                             sink until it is closed (debug mode only; false when
//                                                             debug mode is off)

#include <caf/actor_system_config.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/message.hpp>
#include <caf/meta/type_name.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace troupe {

using debug_peek_atom = caf::atom_constant<caf::atom("dbgpeek")>;
using debug_trace_atom = caf::atom_constant<caf::atom("dbgtrace")>;

/// One message waiting in a mailbox, as the owning actor copied it.
struct queued_message {
  caf::message content;   // a copy: rendering it cannot disturb the actor
  uint64_t sender_id = 0; // CAF actor id of the sender, 0 when anonymous
  bool urgent = false;    // in the high-priority queue
  bool response = false;  // the answer to one of the actor's own requests
  int64_t waited_us = -1; // time since it was enqueued, -1 when unknown (only known while a trace runs)
};

/// A mailbox as its owner saw it when it handled (debug_peek_atom, limit).
struct mailbox_snapshot {
  uint64_t size = 0;                                     // messages queued, the peek request itself excluded
  std::vector<queued_message> first;                     // the first `limit`, urgent ones first (they run first)
  std::vector<std::pair<std::string, uint64_t>> by_type; // every queued message counted by type, most common first
};

/// One processed message, as a trace reports it.
struct trace_event {
  int64_t at_unix_us = 0;    // when processing started
  std::string type;          // message_type_name
  uint64_t sender_id = 0;    // 0 when anonymous
  int64_t waited_us = -1;    // enqueue to start of processing; -1 when it was enqueued before the trace began
  int64_t processing_us = 0; // time inside the handler (asynchronous replies it starts are not included)
};

/// A bounded, thread-safe buffer between a traced actor (the only writer) and a trace stream (the reader).
/// Sampling: at most `max_per_second` events are kept per second of wall time; the rest are only counted.
class trace_sink {
public:
  trace_sink(size_t max_per_second, size_t capacity);

  /// Called by the traced actor before processing a message: whether to report it (counts it either way).
  bool sample(std::chrono::steady_clock::time_point now);
  void push(trace_event event);

  /// Takes every buffered event (the reader's side).
  std::vector<trace_event> drain();
  uint64_t seen() const { return seen_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  /// Ends the trace: the actor forgets the sink on its next message.
  void close() { closed_.store(true, std::memory_order_release); }
  bool closed() const { return closed_.load(std::memory_order_acquire); }

private:
  const size_t max_per_second_;
  const size_t capacity_;
  std::chrono::steady_clock::time_point window_start_{}; // actor thread only
  size_t in_window_ = 0;                                 // actor thread only
  std::atomic<uint64_t> seen_{0};
  std::atomic<uint64_t> dropped_{0}; // not sampled, or the buffer was full
  std::atomic<bool> closed_{false};
  std::mutex mutex_;
  std::vector<trace_event> events_;
};

using trace_sink_ptr = std::shared_ptr<trace_sink>;

/// Monotonic nanoseconds from CLOCK_MONOTONIC_COARSE: a few ns to read (steady_clock costs ~20 ns), resolution of
/// a few ms, which is all "busy for how long" needs.
int64_t coarse_now_ns();

/// Counters of one observed actor. Written by the actor (and `enqueued` by its senders); read by anyone. Grouped by
/// who writes them, one cache line each: the mailbox size is enqueued - dequeued rather than one counter both sides
/// update, which would move a cache line between the sender's and the actor's core on every message.
struct actor_probe {
  explicit actor_probe(uint64_t actor_id) : id(actor_id) {}

  // Read-mostly: the id, and what senders check on every message.
  const uint64_t id;
  std::atomic<const char*> type{nullptr}; // the actor's name() (e.g. "session"), known after its first message
  std::atomic<bool> tracing{false};       // a trace sink is attached: senders stamp enqueue times
  std::atomic<int64_t> started_unix_ms{0};
  // Senders only: the actor never writes this line, so a sender's add usually stays in its own core's cache.
  alignas(64) std::atomic<int64_t> enqueued{0};
  // The actor only.
  alignas(64) std::atomic<int64_t> dequeued{0}; // taken out of the mailbox (a skipped message goes back)
  std::atomic<uint64_t> processed{0};           // messages handled (system messages and responses included)
  std::atomic<int64_t> busy_since_ns{0};        // coarse_now_ns() when the running handler started; 0 when idle

  /// Messages in the mailbox: enqueued minus taken out (read from any thread; exact once both settle).
  int64_t queued() const {
    auto out = dequeued.load(std::memory_order_relaxed);
    return std::max<int64_t>(0, enqueued.load(std::memory_order_relaxed) - out);
  }

  // Enqueue times of messages sent while a trace runs, keyed by mailbox element. Written by senders.
  std::mutex stamps_mutex;
  std::unordered_map<const void*, std::chrono::steady_clock::time_point> stamps;
};

/// Every live probe of one actor system, by actor id. Thread-safe.
class probe_registry {
public:
  void add(std::shared_ptr<actor_probe> probe);
  void remove(uint64_t id);
  std::shared_ptr<actor_probe> find(uint64_t id) const;
  size_t size() const;

private:
  mutable std::mutex mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<actor_probe>> probes_;
};

/// The actor system configuration of Troupe: with `probes` set (debug mode), every observed actor spawned in the
/// system gets a probe. A plain caf::actor_system_config works too, without probes.
class system_config : public caf::actor_system_config {
public:
  std::shared_ptr<probe_registry> probes;
};

/// What a message is, for people: "write" for (write_atom, ...), "write_request" for a message that starts with
/// one, "response: identity" for an answer. Type names are the registered ones (demangled C++ names otherwise).
std::string message_type_name(const caf::actor_system& sys, const caf::type_erased_tuple& msg, bool response = false);

} // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::trace_sink_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::mailbox_snapshot)
