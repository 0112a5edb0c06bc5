#pragma once
// What debug mode shows of the actor system: the supervision tree with every actor's counters, and the mailbox of
// one actor. Used from inside an actor (an HTTP bridge worker, the mailbox watch); never blocks.
//
// The tree comes from the supervisors themselves ((children_atom) -> std::vector<child_info>, asked recursively
// from the root; the session manager answers it too, listing its session actors), so names, states, restart counts
// and last errors are the supervisors' own records. Counters come from each actor's probe (introspect/probe.hpp),
// read without asking the actor: an actor stuck in a handler still shows its mailbox size and how long it has been
// busy. Without probes (debug mode off) the counters are -1.
//
// A mailbox's content can only be read by its owner: peek_mailbox sends (debug_peek_atom, limit) at high priority
// (with a caf::duration timeout, which keeps the priority) and renders the copies it gets back with secrets
// redacted (actors/message_text.hpp).

#include "actors/messages.hpp"
#include "introspect/probe.hpp"

#include <caf/actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace troupe {

/// One actor as debug mode shows it.
struct actor_view {
  uint64_t id = 0;           // CAF actor id of the live incarnation; 0 when stopped
  std::string name;          // its name in the supervision tree (unique)
  std::string kind;          // "supervisor" or "worker"
  std::string type;          // what the actor is (its CAF name, e.g. "session"), "" if unknown
  std::string supervisor;    // name of its supervisor, "" for the root
  std::string restart;       // "permanent", "transient" or "temporary"
  std::string state;         // "running", "stopping" or "stopped"
  int64_t mailbox_size = -1; // -1 when unknown (no probe)
  int64_t processed = -1;    // messages handled by this incarnation; -1 when unknown
  int64_t busy_ms = 0;       // time in the handler running now; 0 when idle
  uint64_t restarts = 0;
  std::string last_error;
  int64_t last_error_unix_ms = 0;
  int64_t started_unix_ms = 0;
  caf::actor handle; // invalid when stopped
};

using actor_tree_handler = std::function<void(std::vector<actor_view>)>;

/// Collects `root` (named `root_name`) and everything under it, parents before children. Each supervisor gets
/// `timeout` to answer; one that does not is listed without children. Calls `done` exactly once, inside `self`.
void collect_actor_tree(caf::event_based_actor* self, caf::actor root, std::string root_name,
                        std::shared_ptr<probe_registry> probes, std::chrono::milliseconds timeout,
                        actor_tree_handler done);

/// One queued message, rendered.
struct message_view {
  std::string type;       // message_type_name
  std::string text;       // render_message: secrets redacted
  uint64_t sender_id = 0; // 0 when anonymous
  bool urgent = false;
  bool response = false;
  int64_t waited_us = -1; // -1 when unknown (known only for messages enqueued during a trace)
};

struct mailbox_view {
  uint64_t size = 0;
  std::vector<message_view> first;
  std::vector<std::pair<std::string, uint64_t>> by_type; // most common first
};

/// Asks `target` for its first `limit` queued messages. Fails with sec::request_timeout when the actor does not
/// answer within `timeout` (it is busy in a handler: a blocking call, or a stall).
void peek_mailbox(caf::event_based_actor* self, const caf::actor& target, size_t limit,
                  std::chrono::milliseconds timeout, std::function<void(caf::expected<mailbox_view>)> done);

/// Milliseconds since the probe's actor entered the handler it is in, 0 when idle.
int64_t busy_ms(const actor_probe& probe);

} // namespace troupe
