#include "http/load_monitor.hpp"
#include "http/websocket.hpp"
#include "introspect/observed_actor.hpp"

#include "actors/persistence_supervisor.hpp"
#include "actors/rate_limit.hpp"
#include "actors/sessions.hpp"
#include "config/log.hpp"

#include <caf/all.hpp>

namespace troupe::http {

namespace {

using tick_atom = caf::atom_constant<caf::atom("loadtick")>;

struct monitor_state {
  load_monitor_options opts;
  bool sampling = false;  // a mailbox sample is under way
  static inline const char* name = "load_monitor";
};

using monitor_actor = observed_stateful_actor<monitor_state>;

void set(std::atomic<bool>& flag, bool value, const char* what) {
  if (flag.exchange(value) != value)
    log::warn(value ? "shedding load" : "load shedding over", log::fields{}.add("kind", what));
}

/// Asks every critical actor for its mailbox size; sets the flags once all answered (or timed out).
void sample(monitor_actor* self) {
  auto& st = self->state;
  set(st.opts.shedding->all, st.opts.max_rss_bytes > 0 && read_resident_bytes() > st.opts.max_rss_bytes, "all");
  if (st.sampling)
    return;
  struct tally {
    size_t pending = 0;
    bool writes = false;
    bool api = false;
  };
  auto t = std::make_shared<tally>();
  if (st.opts.writer && st.opts.writer_max_rows > 0)
    t->writes = static_cast<size_t>(std::max<int64_t>(0, st.opts.writer->queued_rows.load())) > st.opts.writer_max_rows;
  auto finish = [self, t] {
    if (--t->pending > 0)
      return;
    self->state.sampling = false;
    set(self->state.opts.shedding->writes, t->writes, "writes");
    set(self->state.opts.shedding->api, t->api, "api");
  };
  std::vector<std::pair<caf::actor, bool>> targets;  // (actor, is a write actor)
  for (const auto& name : st.opts.write_actors)
    if (auto a = st.opts.names->get(name))
      targets.emplace_back(*a, true);
  for (const auto& name : st.opts.api_actors)
    if (auto a = st.opts.names->get(name))
      targets.emplace_back(*a, false);
  if (targets.empty()) {
    set(st.opts.shedding->writes, t->writes, "writes");
    return;
  }
  st.sampling = true;
  t->pending = targets.size();
  auto threshold = st.opts.mailbox_threshold;
  for (auto& [actor, is_write] : targets)
    self->request<caf::message_priority::high>(actor, caf::duration{std::chrono::seconds{1}}, mailbox_atom::value)
      .then(
        [t, finish, is_write = is_write, threshold](size_t size) {
          if (size > threshold)
            (is_write ? t->writes : t->api) = true;
          finish();
        },
        [finish](caf::error&) { finish(); });
}

caf::behavior monitor_impl(monitor_actor* self, load_monitor_options opts) {
  self->state.opts = std::move(opts);
  self->send(self, tick_atom::value);
  return {
    [self](tick_atom) {
      for (auto& gate : self->state.opts.gates)
        gate->expire_waiting();
      sample(self);
      self->delayed_send(self, self->state.opts.interval, tick_atom::value);
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

caf::actor spawn_load_monitor(caf::actor_system& sys, load_monitor_options options) {
  return sys.spawn(monitor_impl, std::move(options));
}

health_probe shedding_probe(std::shared_ptr<shed_state> state) {
  return {"load",
          [state](caf::event_based_actor*, std::function<void(health_check)> done) { done(shedding_check(*state)); }};
}

load_control make_load_control(const config::limits_settings& limits) {
  load_control load;
  auto gate = [&limits](const char* name, int64_t max_inflight) -> std::shared_ptr<inflight_gate> {
    if (max_inflight <= 0)
      return nullptr;
    return std::make_shared<inflight_gate>(name, static_cast<size_t>(max_inflight), static_cast<size_t>(limits.queue),
                                           std::chrono::milliseconds{limits.queue_wait_ms});
  };
  load.debug_gate = gate("debug", limits.debug_max_inflight);
  load.generate_gate = gate("generate", limits.generate_max_inflight);
  return load;
}

supervisor_config make_http_supervisor(const config::settings& s, const supervision_context& context,
                                       const load_control& load, std::shared_ptr<writer_counters> writer) {
  auto http = subsystem_supervisor("http", supervision_strategy::one_for_one, context);
  http.children = bridge_children(config::or_cores(s.http.threads));
  load_monitor_options monitor;
  monitor.max_rss_bytes = static_cast<uint64_t>(s.limits.max_rss_bytes);
  monitor.mailbox_threshold = static_cast<size_t>(s.limits.mailbox_threshold);
  monitor.names = context.names;
  monitor.write_actors = {db_writer_name.value};
  monitor.api_actors = {session_manager_name.value};
  for (size_t i = 0; i < limiter_shard_count(s.limits); ++i)
    monitor.api_actors.push_back(limiter_shard_name(i).value);
  monitor.writer = std::move(writer);
  monitor.writer_max_rows = static_cast<size_t>(s.db.max_queue) * 9 / 10;
  monitor.shedding = load.shedding;
  for (const auto& gate : {load.debug_gate, load.generate_gate})
    if (gate)
      monitor.gates.push_back(gate);
  http.children.push_back(worker_child(
    "ops.load", [monitor](caf::actor_system& sys) { return spawn_load_monitor(sys, monitor); },
    std::chrono::milliseconds{1000}));
  if (s.ws.enabled)
    http.children.push_back(ws_hub_child(s.ws.max_connections, s.ws.max_connections_per_user, context.metrics));
  return http;
}

health_check shedding_check(const shed_state& state) {
  std::string shed;
  if (state.all.load())
    shed = "all new work (memory)";
  else if (state.writes.load())
    shed = "writes (DB writer backed up)";
  else if (state.api.load())
    shed = "API work (sessions or limiters backed up)";
  if (shed.empty())
    return {"load", "healthy", 0, "nothing is shed"};
  return {"load", "degraded", 0, "shedding " + shed};
}

} // namespace troupe::http
