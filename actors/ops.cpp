#include "actors/ops.hpp"
#include "introspect/observed_actor.hpp"

#include "actors/persistence_supervisor.hpp"
#include "actors/retention.hpp"

#include "config/log.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <unordered_map>

namespace troupe {

namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

health_probe ping_probe(std::string check_name, std::shared_ptr<directory> names, std::string actor_name,
                        std::chrono::milliseconds timeout) {
  return {check_name, [=](caf::event_based_actor* self, std::function<void(health_check)> done) {
            auto start = std::chrono::steady_clock::now();
            auto target = names->get(actor_name);
            if (!target) {
              done({check_name, "unhealthy", 0, actor_name + " is not running"});
              return;
            }
            self->request(*target, caf::duration{timeout}, ping_atom::value)
              .then([done](health_check& result) { done(result); },
                    [=](caf::error& err) {
                      done({check_name, "unhealthy", ms_since(start),
                            err == caf::sec::request_timeout ? "timed out" : self->system().render(err)});
                    });
          }};
}

health_probe supervision_probe(std::shared_ptr<directory> names, std::string supervisor_name,
                               std::chrono::milliseconds timeout) {
  return {"actors", [=](caf::event_based_actor* self, std::function<void(health_check)> done) {
            auto start = std::chrono::steady_clock::now();
            auto target = names->get(supervisor_name);
            if (!target) {
              done({"actors", "unhealthy", 0, "the root supervisor is not running"});
              return;
            }
            self->request(*target, caf::duration{timeout}, children_atom::value)
              .then(
                [=](std::vector<child_info>& children) {
                  std::string down;
                  for (const auto& child : children)
                    if (child.restart == "permanent" && child.state != "running")
                      down += (down.empty() ? "" : ", ") + child.name;
                  if (down.empty())
                    done({"actors", "healthy", ms_since(start),
                          std::to_string(children.size()) + " supervised subsystems running"});
                  else
                    done({"actors", "degraded", ms_since(start), "not running: " + down});
                },
                [=](caf::error& err) {
                  done({"actors", "unhealthy", ms_since(start),
                        err == caf::sec::request_timeout ? "timed out" : self->system().render(err)});
                });
          }};
}

caf::actor spawn_health_actor(caf::actor_system& sys, std::vector<health_probe> probes) {
  return sys.spawn([probes = std::move(probes)](observed_actor* self) -> caf::behavior {
    return {
      [self, probes](check_atom) {
        auto promise = self->make_response_promise<std::vector<health_check>>();
        if (probes.empty()) {
          promise.deliver(std::vector<health_check>{});
          return promise;
        }
        // Results arrive in any order; deliver once all are in, in probe order.
        auto results = std::make_shared<std::vector<health_check>>(probes.size());
        auto pending = std::make_shared<size_t>(probes.size());
        for (size_t i = 0; i < probes.size(); ++i)
          probes[i].run(self, [results, pending, promise, i](health_check check) mutable {
            (*results)[i] = std::move(check);
            if (--*pending == 0)
              promise.deliver(std::move(*results));
          });
        return promise;
      },
      [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
    };
  });
}

caf::actor spawn_metrics_actor(caf::actor_system& sys, std::shared_ptr<metrics_registry> metrics,
                               std::shared_ptr<directory> names, std::chrono::milliseconds mailbox_timeout) {
  return sys.spawn([=](observed_actor* self) -> caf::behavior {
    return {
      [=](metrics_atom) {
        auto promise = self->make_response_promise<std::string>();
        auto actors = names->snapshot();
        auto sizes = std::make_shared<std::map<std::string, size_t>>();
        auto pending = std::make_shared<size_t>(actors.size());
        auto finish = [metrics, sizes, promise]() mutable {
          promise.deliver(metrics->render([&](prometheus_writer& out) {
            out.family("troupe_actor_mailbox_size", "gauge", "Messages waiting in the mailbox of each named actor.");
            for (const auto& [name, size] : *sizes)
              out.sample("troupe_actor_mailbox_size", {{"actor", name}}, static_cast<double>(size));
          }));
        };
        if (actors.empty()) {
          finish();
          return promise;
        }
        for (const auto& [name, handle] : actors) {
          if (handle == caf::actor{self}) {
            (*sizes)[name] = self->mailbox().size();
            if (--*pending == 0)
              finish();
            continue;
          }
          // High priority so a backed-up actor still answers; caf::duration keeps the priority (LIBRARY-NOTES).
          self->request<caf::message_priority::high>(handle, caf::duration{mailbox_timeout}, mailbox_atom::value)
            .then(
              [=, name = name](size_t size) mutable {
                (*sizes)[name] = size;
                if (--*pending == 0)
                  finish();
              },
              [=](caf::error&) mutable {
                // Busy in a blocking call (a detached actor) or gone: leave it out of this scrape.
                if (--*pending == 0)
                  finish();
              });
        }
        return promise;
      },
      [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
    };
  });
}

namespace {

using watch_tick_atom = caf::atom_constant<caf::atom("watchtick")>;

struct watched {
  std::optional<std::chrono::steady_clock::time_point> above_since;
  bool warned = false;
  uint64_t peak = 0;
};

struct watch_state {
  mailbox_watch_options opts;
  std::unordered_map<std::string, watched> actors;
  static inline const char* name = "mailbox_watch";
};

using watch_actor = observed_stateful_actor<watch_state>;

void warn_backed_up(watch_actor* self, const std::string& name, const caf::actor& handle, uint64_t size,
                    int64_t above_ms) {
  auto report = [self, name, size, above_ms](std::string type, uint64_t count) {
    mailbox_warning w{name, size, above_ms, std::move(type), count};
    log::warn("mailbox backed up", log::fields{}
                                     .add("actor", w.actor)
                                     .add("mailbox_size", w.size)
                                     .add("above_ms", w.above_ms)
                                     .add("threshold", static_cast<uint64_t>(self->state.opts.threshold))
                                     .add("most_common_type", w.most_common_type.empty() ? "unknown (busy in a handler)"
                                                                                         : w.most_common_type)
                                     .add("most_common_count", w.most_common_count));
    if (self->state.opts.on_warning)
      self->state.opts.on_warning(w);
  };
  // An actor stuck in a handler answers once it is out: wait for that a little, then warn without the type.
  auto timeout = std::max(self->state.opts.interval, std::chrono::milliseconds{1000});
  peek_by_type(self, handle, timeout, [report](caf::expected<mailbox_snapshot> snapshot) {
    if (snapshot && !snapshot->by_type.empty())
      report(snapshot->by_type.front().first, snapshot->by_type.front().second);
    else
      report("", 0);
  });
}

/// One actor's size this tick: starts, continues or ends an episode.
void observe_size(watch_actor* self, const std::string& name, const caf::actor& handle, uint64_t size) {
  auto& st = self->state;
  auto& w = st.actors[name];
  auto now = std::chrono::steady_clock::now();
  if (size <= st.opts.threshold) {
    if (w.warned)
      log::info("mailbox drained", log::fields{}.add("actor", name).add("mailbox_size", size).add("peak", w.peak));
    st.actors.erase(name);
    return;
  }
  if (!w.above_since)
    w.above_since = now;
  w.peak = std::max(w.peak, size);
  auto above = std::chrono::duration_cast<std::chrono::milliseconds>(now - *w.above_since);
  if (!w.warned && above >= st.opts.warn_after) {
    w.warned = true;
    warn_backed_up(self, name, handle, size, above.count());
  }
}

void watch_tick(watch_actor* self) {
  auto& st = self->state;
  for (const auto& [name, handle] : st.opts.names->snapshot()) {
    if (handle == caf::actor{self})
      continue;
    if (st.opts.probes)
      if (auto probe = st.opts.probes->find(handle.id())) {
        observe_size(self, name, handle, static_cast<uint64_t>(probe->queued()));
        continue;
      }
    // Not observed with a probe: ask at high priority; an actor busy in a handler is skipped this tick.
    self->request<caf::message_priority::high>(handle, caf::duration{st.opts.interval}, mailbox_atom::value)
      .then([self, name = name, handle = handle](size_t size) { observe_size(self, name, handle, size); },
            [](caf::error&) {});
  }
}

} // namespace

void peek_by_type(caf::event_based_actor* self, const caf::actor& target, std::chrono::milliseconds timeout,
                  std::function<void(caf::expected<mailbox_snapshot>)> done) {
  self->request<caf::message_priority::high>(target, caf::duration{timeout}, debug_peek_atom::value, uint64_t{0})
    .then([done](mailbox_snapshot& snapshot) { done(std::move(snapshot)); },
          [done](caf::error& err) { done(std::move(err)); });
}

caf::actor spawn_mailbox_watch(caf::actor_system& sys, mailbox_watch_options options) {
  return sys.spawn(
    [](watch_actor* self, mailbox_watch_options opts) -> caf::behavior {
      self->state.opts = std::move(opts);
      if (self->state.opts.threshold > 0 && self->state.opts.names)
        self->send(self, watch_tick_atom::value);
      return {
        [self](watch_tick_atom) {
          watch_tick(self);
          self->delayed_send(self, self->state.opts.interval, watch_tick_atom::value);
        },
        [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
      };
    },
    std::move(options));
}

caf::actor spawn_debug_helper(caf::actor_system& sys) {
  struct sleeper_state {
    uint64_t next_id = 0;
    std::unordered_map<uint64_t, caf::typed_response_promise<int64_t>> waiting;
  };
  return sys.spawn([](observed_stateful_actor<sleeper_state>* self) -> caf::behavior {
    return {
      [self](delay_atom, int64_t ms) {
        auto promise = self->make_response_promise<int64_t>();
        auto id = self->state.next_id++;
        self->state.waiting.emplace(id, promise);
        self->delayed_send(self, std::chrono::milliseconds{ms}, delay_done_atom::value, id, ms);
        return promise;
      },
      [](echo_atom, std::string& text) { return std::move(text); },
      [self](delay_done_atom, uint64_t id, int64_t ms) {
        auto i = self->state.waiting.find(id);
        if (i != self->state.waiting.end()) {
          i->second.deliver(ms);
          self->state.waiting.erase(i);
        }
      },
      [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
    };
  });
}

supervisor_config make_ops_supervisor(const config::settings& s, const supervision_context& context,
                                      ops_inputs inputs) {
  using std::chrono::milliseconds;
  const auto& names = context.names;
  auto ops = subsystem_supervisor("ops", supervision_strategy::one_for_one, context);
  std::vector<health_probe> checks{supervision_probe(names, "root", milliseconds{1000}),
                                   ping_probe("database", names, db_connection_name(0), milliseconds{3000})};
  for (auto& check : inputs.checks)
    checks.push_back(std::move(check));
  ops.children.push_back(worker_child(
    "ops.health", [checks](caf::actor_system& sys) { return spawn_health_actor(sys, checks); }, milliseconds{1000}));
  ops.children.push_back(worker_child(
    "ops.metrics",
    [metrics = context.metrics, names](caf::actor_system& sys) {
      return spawn_metrics_actor(sys, metrics, names, milliseconds{250});
    },
    milliseconds{1000}));
  mailbox_watch_options watch;
  watch.names = names;
  watch.threshold = static_cast<size_t>(s.debug.mailbox_warn);
  watch.warn_after = milliseconds{s.debug.mailbox_warn_ms};
  watch.probes = inputs.probes;
  ops.children.push_back(worker_child(
    "ops.mailboxes", [watch](caf::actor_system& sys) { return spawn_mailbox_watch(sys, watch); }, milliseconds{1000}));
  // Rows of append-only tables older than their retention (config: retention.*_days) are deleted by the sweeper.
  constexpr int64_t day_ms = 24 * 3600 * 1000;
  retention_options retention;
  retention.tables = {{"security_events", s.retention.security_days * day_ms},
                      {"idempotency_keys", s.retention.idempotency_days * day_ms},
                      {"funnel_events", s.retention.events_days * day_ms},
                      {"feedback", s.retention.feedback_days * day_ms}};
  retention.interval = milliseconds{s.retention.sweep_ms};
  retention.first_delay = std::min(retention.interval, milliseconds{10000});
  retention.db_query = db_query_lookup(names);
  retention.counters = make_retention_counters(retention);
  ops.children.push_back(worker_child(
    "ops.retention", [retention](caf::actor_system& sys) { return spawn_retention_sweeper(sys, retention); },
    milliseconds{1000}));
  // The history (GET /api/performance, /dashboard) and the alerts evaluated on it.
  auto capacity = static_cast<size_t>(std::max<int64_t>(1, s.ops.history_ms / std::max<int64_t>(1, s.ops.sample_ms)));
  if (capacity > max_history_samples) {
    log::warn("ops.history_ms / ops.sample_ms asks for more samples than the history holds; keeping the newest",
              log::fields{}
                .add("asked", static_cast<int64_t>(capacity))
                .add("kept", static_cast<int64_t>(max_history_samples)));
    capacity = max_history_samples;
  }
  auto store = inputs.history ? inputs.history : std::make_shared<history_store>(capacity);
  sampler_options sampler;
  sampler.names = names;
  sampler.interval = milliseconds{s.ops.sample_ms};
  sampler.sample_period = sampler.interval;
  sampler.store = store;
  ops.children.push_back(worker_child(
    "ops.sampler", [sampler](caf::actor_system& sys) { return spawn_sampler(sys, sampler); }, milliseconds{1000}));
  alerts_options alerts;
  alerts.rules = alert_rules_from(s.ops);
  alerts.names = names;
  alerts.node_id = inputs.node_id;
  if (s.ops.alert_webhook.empty())
    alerts.webhook_actor.clear();
  if (context.metrics)
    alerts.fired = &context.metrics->counter("troupe_alerts_total", "Alerts fired, by rule and severity.",
                                             {"rule", "severity"});
  ops.children.push_back(worker_child(
    "ops.alerts", [alerts](caf::actor_system& sys) { return spawn_alerts(sys, alerts); }, milliseconds{1000}));
  if (!s.ops.alert_webhook.empty()) {
    webhook_options hook;
    hook.url = s.ops.alert_webhook;
    hook.board = alerts.board;
    ops.children.push_back(worker_child(
      "ops.webhook", [hook](caf::actor_system& sys) { return spawn_webhook_sender(sys, hook); }, milliseconds{6000}));
  }
  if (context.metrics)
    add_ops_history_collector(*context.metrics, alerts.board, store);
  if (s.debug.enabled)
    ops.children.push_back(worker_child(
      "debug.helper", [](caf::actor_system& sys) { return spawn_debug_helper(sys); }, milliseconds{1000}));
  if (context.metrics) {
    add_retention_collector(*context.metrics, retention.counters);
    add_process_collector(*context.metrics);
  }
  return ops;
}

std::vector<ops::alert_rule> alert_rules_from(const config::ops_settings& o) {
  // The default rules (names, figures, units), with the thresholds of the configuration.
  auto rules = ops::default_alert_rules(o.alert_hold_ms);
  auto set = [&rules](const char* name, double warn, double critical) {
    for (auto& r : rules)
      if (r.name == name) {
        r.warn = warn;
        r.critical = critical;
      }
  };
  set("cpu", o.cpu_warn_pct, o.cpu_critical_pct);
  set("memory", o.memory_warn_pct, o.memory_critical_pct);
  set("cache_hit_rate", o.cache_hit_warn_pct, o.cache_hit_critical_pct);
  set("response_time", static_cast<double>(o.latency_warn_ms), static_cast<double>(o.latency_critical_ms));
  set("db_latency", static_cast<double>(o.db_latency_warn_ms), static_cast<double>(o.db_latency_critical_ms));
  set("error_rate", o.error_warn_pct, o.error_critical_pct);
  return rules;
}

void add_process_collector(metrics_registry& metrics) {
  metrics.add_collector([](prometheus_writer& out) {
    auto stats = read_process_stats();
    out.family("troupe_process_resident_memory_bytes", "gauge", "Resident set size of the process.");
    out.sample("troupe_process_resident_memory_bytes", {}, static_cast<double>(stats.resident_bytes));
    out.family("troupe_process_cpu_seconds_total", "counter", "CPU time (user and system) of the process.");
    out.sample("troupe_process_cpu_seconds_total", {}, stats.cpu_seconds);
    out.family("troupe_process_open_fds", "gauge", "Open file descriptors of the process.");
    out.sample("troupe_process_open_fds", {}, static_cast<double>(stats.open_fds));
  });
}

} // namespace troupe
