#include "actors/security_events.hpp"
#include "introspect/observed_actor.hpp"

#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <unordered_map>

namespace troupe {

namespace {

using security_tick_atom = caf::atom_constant<caf::atom("sectick")>;

constexpr int64_t minute_ms = 60000;
constexpr auto writer_timeout = std::chrono::seconds{30};

/// One (type, user, address, minute) and what was counted for it since the last flush.
struct aggregate {
  security_event_row first; // the first event of the minute seen here: severity, request and detail of the row
  int64_t minute = 0;       // unix ms of the minute's start
  int64_t unflushed = 0;    // events counted since the last flush
  int64_t unflushed_since = 0;
  int64_t last = 0;
};

struct security_events_state {
  security_event_options opts;
  std::unordered_map<std::string, aggregate> aggregates;
  int64_t last_warning_ms = 0;
  static inline const char* name = "security_events";
};

using security_events_actor = observed_stateful_actor<security_events_state>;

int64_t now_ms(security_events_actor* self) {
  auto& opts = self->state.opts;
  if (opts.now_unix_ms)
    return opts.now_unix_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
    .count();
}

void warn_dropped(security_events_actor* self, int64_t events, const std::string& why) {
  auto& st = self->state;
  st.opts.counters->dropped += static_cast<uint64_t>(events);
  auto t = now_ms(self);
  if (t - st.last_warning_ms < st.opts.flush_interval.count())
    return;
  st.last_warning_ms = t;
  log::warn("security events dropped", log::fields{}.add("events", events).add("error", why));
}

/// Hands every unflushed count to the writer; forgets aggregates of past minutes (or all of them, with `forget_all`).
/// Returns the number of events handed over.
int64_t flush(security_events_actor* self, bool forget_all) {
  auto& st = self->state;
  auto current_minute = now_ms(self) / minute_ms * minute_ms;
  write_request w;
  w.result = "{}";
  int64_t events = 0;
  for (auto i = st.aggregates.begin(); i != st.aggregates.end();) {
    auto& a = i->second;
    if (a.unflushed > 0) {
      auto row = a.first;
      row.count = a.unflushed;
      row.first_at_ms = a.unflushed_since;
      row.last_at_ms = a.last;
      w.security_events.push_back(std::move(row));
      events += a.unflushed;
      a.unflushed = 0;
    }
    if (forget_all || a.minute < current_minute)
      i = st.aggregates.erase(i);
    else
      ++i;
  }
  if (events == 0)
    return 0;
  auto writer = st.opts.writer ? st.opts.writer() : std::nullopt;
  if (!writer) {
    warn_dropped(self, events, "the DB writer is restarting");
    return events;
  }
  self->request(*writer, caf::duration{writer_timeout}, write_atom::value, std::move(w))
    .then([self, events](write_result&) { self->state.opts.counters->written += static_cast<uint64_t>(events); },
          [self, events](caf::error& err) {
            auto message = service_message(err);
            warn_dropped(self, events, message.empty() ? self->system().render(err) : message);
          });
  return events;
}

void record(security_events_actor* self, security_event_row& event) {
  auto& st = self->state;
  auto t = event.first_at_ms > 0 ? event.first_at_ms : now_ms(self);
  auto minute = t / minute_ms * minute_ms;
  auto key = event.type;
  for (const auto* part : {&event.user_id, &event.ip}) {
    key += '\0';
    key += *part;
  }
  key += '\0' + std::to_string(minute);
  auto i = st.aggregates.find(key);
  if (i == st.aggregates.end()) {
    if (st.aggregates.size() >= st.opts.max_aggregates)
      flush(self, true);
    log::info("security event", log::fields{}
                                  .add("type", event.type)
                                  .add("severity", event.severity)
                                  .add("request_id", event.request_id)
                                  .add("user_id", event.user_id)
                                  .add("ip", event.ip));
    aggregate a;
    a.minute = minute;
    a.first = std::move(event);
    i = st.aggregates.emplace(std::move(key), std::move(a)).first;
  }
  auto& a = i->second;
  if (a.unflushed++ == 0)
    a.unflushed_since = t;
  a.last = std::max(a.last, t);
  st.opts.counters->recorded++;
  if (a.first.severity == "critical")
    flush(self, false);
}

caf::behavior security_events_impl(security_events_actor* self, security_event_options opts) {
  self->state.opts = std::move(opts);
  if (!self->state.opts.counters)
    self->state.opts.counters = std::make_shared<security_event_counters>();
  self->delayed_send(self, self->state.opts.flush_interval, security_tick_atom::value);
  // Stopping (the supervisor's shutdown, or a restart): what was counted goes to the writer first, which stops after
  // this actor (the persistence supervisor starts first and stops last).
  self->set_exit_handler([self](caf::exit_msg& msg) {
    flush(self, true);
    self->quit(msg.reason);
  });
  return {
    [self](security_event_atom, security_event_row& event) { record(self, event); },
    [self](security_flush_atom) { return flush(self, false); },
    [self](security_tick_atom) {
      flush(self, false);
      self->delayed_send(self, self->state.opts.flush_interval, security_tick_atom::value);
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

caf::actor spawn_security_events(caf::actor_system& sys, security_event_options options) {
  return sys.spawn(security_events_impl, std::move(options));
}

void add_security_event_collector(metrics_registry& metrics, std::shared_ptr<security_event_counters> events) {
  metrics.add_collector([events](prometheus_writer& out) {
    out.family("troupe_security_events_total", "counter",
               "Security events by outcome: recorded (counted), written (committed within their minute's row), "
               "dropped (the writer refused them).");
    out.sample("troupe_security_events_total", {{"outcome", "recorded"}}, static_cast<double>(events->recorded.load()));
    out.sample("troupe_security_events_total", {{"outcome", "written"}}, static_cast<double>(events->written.load()));
    out.sample("troupe_security_events_total", {{"outcome", "dropped"}}, static_cast<double>(events->dropped.load()));
  });
}

} // namespace troupe
