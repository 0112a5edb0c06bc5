#pragma once
// Every atom and message type exchanged between Troupe's actors, with its inspect function.
// register_message_types() adds them all to an actor_system_config; call it on every node before the
// actor_system is constructed (an unregistered type fails silently in CAF 0.17: see LIBRARY-NOTES.md).

#include "persistence/messages.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

// --- Supervision -------------------------------------------------------------------------------------------------
/// (children_atom) -> std::vector<child_info>: a supervisor's children, in start order.
using children_atom = caf::atom_constant<caf::atom("children")>;
/// Internal to supervisors: a child's shutdown timeout expired.
using stop_timeout_atom = caf::atom_constant<caf::atom("stoptmo")>;

/// What a supervisor says about one child.
struct child_info {
  std::string name;
  std::string kind;       // "worker" or "supervisor"
  std::string restart;    // "permanent", "transient" or "temporary"
  std::string state;      // "running", "stopping" or "stopped"
  uint64_t restarts = 0;  // restarts of this child since the supervisor started
  std::string last_error; // exit reason of the last abnormal exit, "" if none
  int64_t last_error_unix_ms = 0;
  int64_t started_unix_ms = 0; // start of the live incarnation
  caf::actor handle;           // the live incarnation, or invalid when stopped
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_info& x) {
  return f(caf::meta::type_name("child_info"), x.name, x.kind, x.restart, x.state, x.restarts, x.last_error,
           x.last_error_unix_ms, x.started_unix_ms, x.handle);
}

// --- Health ------------------------------------------------------------------------------------------------------
/// (check_atom) -> health_check: a subsystem's readiness check.
using check_atom = caf::atom_constant<caf::atom("check")>;

// --- Metrics ------------------------------------------------------------------------------------------------------
/// (metrics_atom) -> std::string: the Prometheus text exposition, mailbox sizes included.
using metrics_atom = caf::atom_constant<caf::atom("metrics")>;

// --- Test and debug helpers ---------------------------------------------------------------------------------------
/// (delay_atom, milliseconds) -> int64_t: answers after the given time without blocking a thread.
using delay_atom = caf::atom_constant<caf::atom("delay")>;
/// (echo_atom, std::string) -> std::string: answers with its argument (one actor round trip).
using echo_atom = caf::atom_constant<caf::atom("echo")>;
/// Internal to the debug helper: a delay is over.
using delay_done_atom = caf::atom_constant<caf::atom("delaydone")>;

/// Registers every message type above (and persistence's) with the config.
void register_message_types(caf::actor_system_config& cfg);

} // namespace troupe
