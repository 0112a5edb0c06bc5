#include "actors/supervisor.hpp"
#include "introspect/observed_actor.hpp"

#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <set>

namespace troupe {

const char* to_string(restart_type x) {
  switch (x) {
  case restart_type::permanent:
    return "permanent";
  case restart_type::transient:
    return "transient";
  case restart_type::temporary:
    return "temporary";
  }
  return "permanent";
}

const char* to_string(supervision_strategy x) {
  switch (x) {
  case supervision_strategy::one_for_one:
    return "one_for_one";
  case supervision_strategy::one_for_all:
    return "one_for_all";
  case supervision_strategy::rest_for_one:
    return "rest_for_one";
  }
  return "one_for_one";
}

const char* to_string(child_kind x) {
  return x == child_kind::supervisor ? "supervisor" : "worker";
}

std::string describe_exit_reason(caf::actor_system& sys, const caf::error& reason) {
  if (!reason)
    return "normal";
  return sys.render(reason);
}

namespace {

using clock_type = std::chrono::steady_clock;

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
    .count();
}

enum class child_state { stopped, running, stopping };

const char* to_string(child_state x) {
  switch (x) {
  case child_state::stopped:
    return "stopped";
  case child_state::running:
    return "running";
  case child_state::stopping:
    return "stopping";
  }
  return "stopped";
}

struct child_entry {
  child_spec spec;
  caf::actor handle; // the live incarnation while running or stopping
  child_state state = child_state::stopped;
  bool needs_start = false; // (re)start once the current stop sequence is over
  uint64_t incarnation = 0; // starts so far; > 1 means restarted
  uint64_t restarts = 0;
  std::string last_error;
  int64_t last_error_unix_ms = 0;
  int64_t started_unix_ms = 0;
};

struct supervisor_state {
  supervisor_config cfg;
  std::vector<child_entry> children;
  std::deque<clock_type::time_point> restart_times; // restarts inside the intensity window
  std::deque<size_t> stop_queue;                    // children to stop, in order
  // Children alive right now; shared with the functor that takes them down if the supervisor dies abruptly.
  std::shared_ptr<std::vector<caf::actor>> live = std::make_shared<std::vector<caf::actor>>();
  bool stop_in_progress = false; // waiting for one child's exit
  bool quitting = false;         // stop everything, then quit with quit_reason
  caf::error quit_reason;

  static inline const char* name = "supervisor";
};

using supervisor_actor = observed_stateful_actor<supervisor_state>;

clock_type::time_point now(supervisor_actor* self) {
  return self->state.cfg.clock ? self->state.cfg.clock() : clock_type::now();
}

bool is_abnormal(const caf::error& reason) {
  return reason && reason != caf::exit_reason::user_shutdown;
}

void start_pending(supervisor_actor* self);
void handle_failure(supervisor_actor* self, size_t index, const caf::error& reason);

/// Spawns child `index`; on failure records the error and returns false.
bool start_child(supervisor_actor* self, size_t index) {
  auto& st = self->state;
  auto& child = st.children[index];
  caf::actor handle;
  std::string failure;
  try {
    handle = child.spec.start(self->system());
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!handle) {
    child.last_error = "start failed" + (failure.empty() ? std::string{} : ": " + failure);
    child.last_error_unix_ms = unix_ms_now();
    log::error(
      "actor failed to start",
      log::fields{}.add("supervisor", st.cfg.name).add("child", child.spec.name).add("error", child.last_error));
    return false;
  }
  // The monitor reports the child's exit. No link: a child killed with exit_reason::kill would take a linked
  // supervisor with it (kill cannot be trapped), so the supervisor takes its children down itself instead
  // (supervisor_impl's attach_functor) if it ever dies without stopping them.
  self->monitor(handle);
  st.live->push_back(handle);
  child.handle = handle;
  child.state = child_state::running;
  child.started_unix_ms = unix_ms_now();
  if (++child.incarnation > 1) {
    ++child.restarts;
    if (st.cfg.metrics)
      st.cfg.metrics->counter("troupe_actor_restarts_total", "Restarts of supervised actors.", {"supervisor", "child"})
        .inc({st.cfg.name, child.spec.name});
  }
  if (st.cfg.names)
    st.cfg.names->put(child.spec.name, handle);
  log::debug(
    "actor started",
    log::fields{}.add("supervisor", st.cfg.name).add("child", child.spec.name).add("incarnation", child.incarnation));
  return true;
}

/// Runs when no stop is pending: quits, or starts the children marked for (re)start.
void finish_stop_sequence(supervisor_actor* self) {
  auto& st = self->state;
  if (st.quitting)
    self->quit(st.quit_reason);
  else
    start_pending(self);
}

/// Asks the next child in the stop queue to exit, or finishes the sequence.
void stop_next(supervisor_actor* self) {
  auto& st = self->state;
  while (!st.stop_queue.empty()) {
    auto index = st.stop_queue.front();
    st.stop_queue.pop_front();
    auto& child = st.children[index];
    if (child.state != child_state::running)
      continue;
    child.state = child_state::stopping;
    self->send_exit(child.handle, caf::exit_reason::user_shutdown);
    self->delayed_send(self, child.spec.shutdown_timeout, stop_timeout_atom::value, index, child.incarnation);
    st.stop_in_progress = true;
    return;
  }
  st.stop_in_progress = false;
  finish_stop_sequence(self);
}

/// Queues children to stop one after the other (in the given order).
void request_stop(supervisor_actor* self, const std::vector<size_t>& indices) {
  auto& st = self->state;
  st.stop_queue.insert(st.stop_queue.end(), indices.begin(), indices.end());
  if (!st.stop_in_progress)
    stop_next(self);
}

std::vector<size_t> running_in_reverse(supervisor_actor* self, size_t from = 0) {
  std::vector<size_t> result;
  auto& children = self->state.children;
  for (size_t i = children.size(); i > from; --i)
    if (children[i - 1].state == child_state::running)
      result.push_back(i - 1);
  return result;
}

/// Stops every child in reverse start order, then exits with `reason`.
void shut_down(supervisor_actor* self, caf::error reason) {
  auto& st = self->state;
  if (!st.quitting) {
    st.quitting = true;
    st.quit_reason = std::move(reason);
  }
  for (auto& child : st.children)
    child.needs_start = false;
  request_stop(self, running_in_reverse(self));
}

void start_pending(supervisor_actor* self) {
  auto& st = self->state;
  for (size_t i = 0; i < st.children.size() && !st.quitting; ++i) {
    auto& child = st.children[i];
    if (!child.needs_start || child.state != child_state::stopped)
      continue;
    child.needs_start = false;
    if (!start_child(self, i))
      handle_failure(self, i, make_error(service_error::internal, child.last_error));
  }
}

/// Child `index` stopped without being asked to: restart it (and siblings) or escalate.
void handle_failure(supervisor_actor* self, size_t index, const caf::error& reason) {
  auto& st = self->state;
  auto& child = st.children[index];
  bool restart = child.spec.restart == restart_type::permanent
                 || (child.spec.restart == restart_type::transient && is_abnormal(reason));
  if (!restart || st.quitting)
    return;
  // Restart intensity: more than max_restarts within the window fails the supervisor.
  auto t = now(self);
  st.restart_times.push_back(t);
  while (!st.restart_times.empty() && st.restart_times.front() + st.cfg.restart_window < t)
    st.restart_times.pop_front();
  if (st.restart_times.size() > st.cfg.max_restarts) {
    auto text = "restart intensity exceeded: more than " + std::to_string(st.cfg.max_restarts) + " restarts in "
                + std::to_string(st.cfg.restart_window.count()) + " ms (last: " + child.spec.name + ")";
    log::error("supervisor gives up", log::fields{}.add("supervisor", st.cfg.name).add("error", text));
    shut_down(self, make_error(service_error::internal, text));
    return;
  }
  // The strategy picks who restarts with the failed child.
  size_t first = index;
  size_t last = index + 1;
  if (st.cfg.strategy == supervision_strategy::one_for_all) {
    first = 0;
    last = st.children.size();
  } else if (st.cfg.strategy == supervision_strategy::rest_for_one) {
    last = st.children.size();
  }
  std::vector<size_t> to_stop;
  for (size_t i = last; i > first; --i) {
    auto& sibling = st.children[i - 1];
    if (i - 1 != index && sibling.spec.restart == restart_type::temporary) {
      // Temporary siblings are stopped but never restarted.
      to_stop.push_back(i - 1);
      continue;
    }
    sibling.needs_start = true;
    if (sibling.state == child_state::running)
      to_stop.push_back(i - 1);
  }
  request_stop(self, to_stop);
}

/// A child terminated (reported by its monitor).
void on_child_down(supervisor_actor* self, caf::down_msg& msg) {
  auto& st = self->state;
  for (size_t i = 0; i < st.children.size(); ++i) {
    auto& child = st.children[i];
    if (child.state == child_state::stopped || child.handle.address() != msg.source)
      continue;
    if (st.cfg.names)
      st.cfg.names->erase(child.spec.name, child.handle);
    st.live->erase(std::remove(st.live->begin(), st.live->end(), child.handle), st.live->end());
    bool asked = child.state == child_state::stopping;
    child.state = child_state::stopped;
    child.handle = nullptr;
    if (is_abnormal(msg.reason) && msg.reason != caf::exit_reason::kill) {
      child.last_error = describe_exit_reason(self->system(), msg.reason);
      child.last_error_unix_ms = unix_ms_now();
    }
    if (asked) {
      stop_next(self);
    } else {
      if (is_abnormal(msg.reason))
        log::warn("actor failed", log::fields{}
                                    .add("supervisor", st.cfg.name)
                                    .add("child", child.spec.name)
                                    .add("error", describe_exit_reason(self->system(), msg.reason)));
      handle_failure(self, i, msg.reason);
    }
    return;
  }
}

/// Children are monitored, not linked, so an exit_msg comes from the parent (or whoever owns us): shut down.
void on_exit(supervisor_actor* self, caf::exit_msg& msg) {
  shut_down(self, msg.reason ? msg.reason : caf::error{caf::exit_reason::user_shutdown});
}

caf::behavior supervisor_impl(supervisor_actor* self, supervisor_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  for (auto& spec : st.cfg.children) {
    child_entry entry;
    entry.spec = std::move(spec);
    st.children.push_back(std::move(entry));
  }
  st.cfg.children.clear();
  // A supervisor that dies without stopping its children (killed, or a bug) still takes them down.
  self->attach_functor([live = st.live](const caf::error&) {
    for (const auto& child : *live)
      caf::anon_send_exit(child, caf::exit_reason::kill);
  });
  self->set_exit_handler([self](caf::exit_msg& msg) { on_exit(self, msg); });
  self->set_down_handler([self](caf::down_msg& msg) { on_child_down(self, msg); });
  // Ordered start: a failed first start stops what started and fails the supervisor.
  for (size_t i = 0; i < st.children.size(); ++i) {
    if (!start_child(self, i)) {
      shut_down(self, make_error(service_error::internal, "child " + st.children[i].spec.name + " failed to start"));
      break;
    }
  }
  return {
    [self](children_atom) {
      std::vector<child_info> result;
      for (const auto& child : self->state.children)
        result.push_back(child_info{child.spec.name, to_string(child.spec.kind), to_string(child.spec.restart),
                                    to_string(child.state), child.restarts, child.last_error, child.last_error_unix_ms,
                                    child.started_unix_ms, child.handle});
      return result;
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
    [self](stop_timeout_atom, size_t index, uint64_t incarnation) {
      auto& st = self->state;
      if (index >= st.children.size())
        return;
      auto& child = st.children[index];
      if (child.state == child_state::stopping && child.incarnation == incarnation) {
        log::warn("actor did not stop in time; killing it",
                  log::fields{}.add("supervisor", st.cfg.name).add("child", child.spec.name));
        self->send_exit(child.handle, caf::exit_reason::kill);
      }
    },
  };
}

} // namespace

caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_config cfg) {
  return sys.spawn(supervisor_impl, std::move(cfg));
}

child_spec supervisor_child(supervisor_config cfg, restart_type restart, std::chrono::milliseconds shutdown_timeout) {
  auto name = cfg.name;
  auto shared_cfg = std::make_shared<supervisor_config>(std::move(cfg));
  return child_spec{std::move(name),
                    [shared_cfg](caf::actor_system& sys) { return spawn_supervisor(sys, *shared_cfg); }, restart,
                    shutdown_timeout, child_kind::supervisor};
}

child_spec worker_child(std::string name, std::function<caf::actor(caf::actor_system&)> start,
                        std::chrono::milliseconds shutdown_timeout) {
  return child_spec{std::move(name), std::move(start), restart_type::permanent, shutdown_timeout, child_kind::worker};
}

supervisor_config subsystem_supervisor(std::string name, supervision_strategy strategy,
                                       const supervision_context& context) {
  supervisor_config cfg;
  cfg.name = std::move(name);
  cfg.strategy = strategy;
  cfg.max_restarts = subsystem_max_restarts;
  cfg.restart_window = subsystem_restart_window;
  cfg.names = context.names;
  cfg.metrics = context.metrics;
  return cfg;
}

} // namespace troupe
