#pragma once
// An OTP-style supervisor on CAF 0.17, which has none of its own.
//
// Protocol:
//   (children_atom)  -> std::vector<child_info>   the children in start order, with state and restart counts
//   (mailbox_atom)   -> size_t                    the supervisor's own mailbox size
//   exit from its parent (or anyone not a child)  stops the children in reverse start order, then quits
//
// Children are started in order and monitored, not linked (a child killed with exit_reason::kill would take a linked
// supervisor with it: kill cannot be trapped); a supervisor that dies without stopping its children takes them down
// itself. When a child exits, its restart type decides
// whether it comes back (permanent: always; transient: only after an abnormal exit; temporary: never) and the
// strategy decides which siblings restart with it (one_for_one: none; one_for_all: all; rest_for_one: those
// started after it). Siblings are stopped in reverse start order before the restart, each with its own shutdown
// timeout after which it is killed. More than `max_restarts` restarts within `restart_window` make the
// supervisor stop all children and exit with service_error::internal ("restart intensity exceeded"), so its
// parent decides. A child that fails to start during the first start makes the supervisor exit the same way.
//
// The name directory (if given) always points at the live incarnation of each named child.

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

enum class restart_type { permanent, transient, temporary };
enum class supervision_strategy { one_for_one, one_for_all, rest_for_one };
enum class child_kind { worker, supervisor };

const char* to_string(restart_type x);
const char* to_string(supervision_strategy x);
const char* to_string(child_kind x);

/// How to start and treat one child.
struct child_spec {
  /// Unique among the siblings; also the name in the directory and in metrics.
  std::string name;
  /// Spawns a new incarnation. Returning an invalid handle (or throwing) counts as a failed start.
  std::function<caf::actor(caf::actor_system&)> start;
  restart_type restart = restart_type::permanent;
  /// Time the child gets to exit after a shutdown request before it is killed.
  std::chrono::milliseconds shutdown_timeout{5000};
  child_kind kind = child_kind::worker;
};

using steady_clock_fn = std::function<std::chrono::steady_clock::time_point()>;

struct supervisor_config {
  std::string name;
  supervision_strategy strategy = supervision_strategy::one_for_one;
  /// Restart intensity: at most `max_restarts` restarts within `restart_window`.
  size_t max_restarts = 3;
  std::chrono::milliseconds restart_window{5000};
  std::vector<child_spec> children;
  /// Optional: where named children are published.
  std::shared_ptr<directory> names;
  /// Optional: counts restarts as troupe_actor_restarts_total{supervisor,child}.
  std::shared_ptr<metrics_registry> metrics;
  /// Clock for the restart intensity window; steady_clock::now when empty (tests inject their own).
  steady_clock_fn clock;
};

/// Spawns a supervisor that starts its children in order before handling any message.
caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_config cfg);

/// A child spec that runs a nested supervisor.
child_spec supervisor_child(supervisor_config cfg, restart_type restart = restart_type::permanent,
                            std::chrono::milliseconds shutdown_timeout = std::chrono::milliseconds{30000});

/// A permanent worker child: `start` spawns it, and it gets `shutdown_timeout` to exit before it is killed.
child_spec worker_child(std::string name, std::function<caf::actor(caf::actor_system&)> start,
                        std::chrono::milliseconds shutdown_timeout);

// --- the subsystems' supervisors ---------------------------------------------------------------------------------
//
// Each subsystem offers make_<subsystem>_supervisor(settings, context, ...) next to its code: the children in start
// order, the strategy, and the metric collectors of the counters it owns (registered in `context.metrics`, once per
// call). The root tree (app/application.cpp) lists the subsystems.

/// What every subsystem's supervisor gets: the directory its children are published in, and the registry its
/// restarts and its collectors go to. Either may be null (tests): then nothing is published or collected.
struct supervision_context {
  std::shared_ptr<directory> names;
  std::shared_ptr<metrics_registry> metrics;
};

/// The restart intensity of every subsystem's supervisor: at most 5 restarts within 10 s, then it gives up and its
/// parent decides.
constexpr size_t subsystem_max_restarts = 5;
constexpr std::chrono::milliseconds subsystem_restart_window{10000};

/// A subsystem's supervisor named `name` with `strategy`, the subsystems' restart intensity and `context`; no
/// children yet.
supervisor_config subsystem_supervisor(std::string name, supervision_strategy strategy,
                                       const supervision_context& context);

/// The message text CAF gives an exit reason, for child_info::last_error and logs.
std::string describe_exit_reason(caf::actor_system& sys, const caf::error& reason);

} // namespace troupe
