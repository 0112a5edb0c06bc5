#include "actors/ops_history.hpp"
#include "actors/http_post.hpp"

#include "config/log.hpp"
#include "ops/prometheus_text.hpp"

#include <caf/all.hpp>

#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace troupe {

namespace {

using std::chrono::milliseconds;

int64_t unix_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int64_t steady_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string read_small_file(const char* path) {
  std::ifstream in{path};
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

using sample_tick_atom = caf::atom_constant<caf::atom("smpltick")>;

struct sampler_state {
  sampler_options opts;
  bool scraping = false;
  std::vector<caf::response_promise> waiting; // sample_now callers, answered after the scrape under way
  static inline const char* name = "ops.sampler";
};

using sampler_actor = caf::stateful_actor<sampler_state>;

/// Takes one reading and, when there is a previous one, adds the sample between them; answers the waiting callers.
void take_sample(sampler_actor* self) {
  auto& st = self->state;
  if (st.scraping)
    return;
  auto metrics = st.opts.names->get(st.opts.metrics_actor);
  auto finish = [self](std::optional<std::string> text) {
    auto& st = self->state;
    st.scraping = false;
    auto proc = st.opts.read_proc ? st.opts.read_proc() : read_proc_figures();
    ops::prom_text parsed;
    if (text)
      parsed = ops::parse_prometheus_text(*text);
    else
      st.opts.store->bad_scrapes.fetch_add(1, std::memory_order_relaxed);
    auto reading = ops::summarize(parsed, proc, unix_ms(), steady_ms());
    int64_t size = 0;
    {
      std::lock_guard<std::mutex> guard{st.opts.store->mutex};
      auto& store = *st.opts.store;
      std::optional<ops::ops_sample> sample;
      // Only a reading with the metrics can be compared: a failed scrape would look like every counter fell to 0.
      if (text && store.last && reading.steady_ms > store.last->steady_ms)
        sample = ops::derive_sample(*store.last, reading);
      if (text)
        store.last = std::move(reading);
      if (sample) {
        store.ring.add(*sample);
        store.ring_size.store(store.ring.size(), std::memory_order_relaxed);
        store.ring_bytes.store(store.ring.memory_bytes(), std::memory_order_relaxed);
        if (auto alerts = st.opts.names->get(st.opts.alerts_actor))
          self->send(*alerts, alert_sample_atom::value, std::move(*sample));
      }
      size = static_cast<int64_t>(store.ring.size());
    }
    for (auto& promise : st.waiting)
      promise.deliver(size);
    st.waiting.clear();
  };
  if (!metrics) {
    finish(std::nullopt);
    return;
  }
  st.scraping = true;
  self->request(*metrics, caf::duration{std::max(milliseconds{1000}, st.opts.interval)}, metrics_atom::value)
    .then([finish](std::string& text) { finish(std::move(text)); },
          [finish](caf::error&) { finish(std::nullopt); });
}

caf::behavior sampler_impl(sampler_actor* self, sampler_options options) {
  self->state.opts = std::move(options);
  self->send(self, sample_tick_atom::value);
  return {
    [self](sample_tick_atom) {
      take_sample(self);
      self->delayed_send(self, self->state.opts.interval, sample_tick_atom::value);
    },
    [self](sample_now_atom) -> caf::result<int64_t> {
      auto promise = self->make_response_promise<int64_t>();
      self->state.waiting.push_back(promise);
      take_sample(self);
      return promise;
    },
    [self](perf_atom, int64_t window_ms, int64_t max_points) -> std::string {
      auto& store = *self->state.opts.store;
      auto now = unix_ms();
      // Copied out under the lock (at most max_points merged samples), rendered without it.
      std::vector<ops::ops_sample> series;
      std::optional<ops::ops_sample> current;
      std::vector<std::pair<std::string, double>> top;
      {
        std::lock_guard<std::mutex> guard{store.mutex};
        series = store.ring.window(now - window_ms, static_cast<size_t>(std::max<int64_t>(1, max_points)));
        if (auto* latest = store.ring.latest())
          current = *latest;
        if (store.last)
          top = store.last->top_mailboxes;
      }
      return ops::performance_json(series, current ? &*current : nullptr, now, window_ms,
                                   self->state.opts.sample_period.count(), top);
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

// ---- alerts --------------------------------------------------------------------------------------------------------

struct alerts_state {
  alerts_options opts;
  std::unique_ptr<ops::alert_evaluator> evaluator;
  std::deque<ops::alert_event> recent;
  static inline const char* name = "ops.alerts";
};

using alerts_actor = caf::stateful_actor<alerts_state>;

constexpr size_t max_recent_alerts = 100;

caf::behavior alerts_impl(alerts_actor* self, alerts_options options) {
  self->state.opts = std::move(options);
  self->state.evaluator = std::make_unique<ops::alert_evaluator>(self->state.opts.rules);
  return {
    [self](alert_sample_atom, const ops::ops_sample& sample) {
      auto& st = self->state;
      auto events = st.evaluator->observe(sample);
      {
        std::lock_guard<std::mutex> guard{st.opts.board->mutex};
        st.opts.board->firing = st.evaluator->active();
      }
      if (events.empty())
        return;
      for (const auto& e : events) {
        auto fields = log::fields{}
                        .add("rule", e.rule)
                        .add("severity", e.severity)
                        .add("value", e.value)
                        .add("threshold", e.threshold)
                        .add("since_ms", e.since_ms);
        if (e.state == "firing") {
          log::warn("alert firing: " + e.message, fields);
          if (st.opts.fired)
            st.opts.fired->inc({e.rule, e.severity});
        } else {
          log::info("alert resolved: " + e.message, fields);
        }
        st.recent.push_back(e);
        while (st.recent.size() > max_recent_alerts)
          st.recent.pop_front();
      }
      if (st.opts.webhook_actor.empty())
        return;
      auto& board = *st.opts.board;
      auto hook = st.opts.names->get(st.opts.webhook_actor);
      if (!hook || board.webhook_waiting.load() >= static_cast<int64_t>(st.opts.max_waiting_webhooks)) {
        board.webhook_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      board.webhook_waiting.fetch_add(1);
      self->send(*hook, webhook_atom::value, ops::webhook_body(events, st.opts.node_id ? st.opts.node_id() : ""),
                 int32_t{0});
    },
    [self](alerts_atom) -> std::string {
      auto& st = self->state;
      return ops::alerts_json(st.evaluator->active(), st.recent, st.evaluator->rules());
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

// ---- webhook -------------------------------------------------------------------------------------------------------

caf::behavior webhook_impl(caf::event_based_actor* self, webhook_options options) {
  return {
    [self, options](webhook_atom, const std::string& body, int32_t attempt) {
      auto& board = *options.board;
      auto problem = post_json(options.url, body, options.attempt_timeout);
      if (problem.empty()) {
        board.webhook_delivered.fetch_add(1, std::memory_order_relaxed);
        board.webhook_waiting.fetch_sub(1);
        return;
      }
      if (static_cast<size_t>(attempt) < options.backoff.size()) {
        self->delayed_send(self, options.backoff[static_cast<size_t>(attempt)], webhook_atom::value, body,
                           attempt + 1);
        return;
      }
      board.webhook_failed.fetch_add(1, std::memory_order_relaxed);
      board.webhook_waiting.fetch_sub(1);
      log::warn("alert webhook failed; events dropped",
                log::fields{}.add("attempts", static_cast<int64_t>(attempt) + 1).add("error", problem));
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

ops::proc_figures read_proc_figures() {
  ops::proc_figures p;
  static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  static const double cores = static_cast<double>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  p.cores = cores;
  p.process_cpu_seconds = ops::parse_proc_self_cpu(read_small_file("/proc/self/stat"), ticks);
  double busy = 0, total = 0;
  if (ops::parse_proc_stat(read_small_file("/proc/stat"), busy, total)) {
    p.machine_busy_ticks = busy;
    p.machine_total_ticks = total;
  }
  double mem_total = 0, mem_available = 0;
  if (ops::parse_meminfo(read_small_file("/proc/meminfo"), mem_total, mem_available)) {
    p.mem_total_bytes = mem_total;
    p.mem_available_bytes = mem_available;
  }
  return p;
}

caf::actor spawn_sampler(caf::actor_system& sys, sampler_options options) {
  return sys.spawn(sampler_impl, std::move(options));
}

caf::actor spawn_alerts(caf::actor_system& sys, alerts_options options) {
  return sys.spawn(alerts_impl, std::move(options));
}

caf::actor spawn_webhook_sender(caf::actor_system& sys, webhook_options options) {
  // What a previous incarnation held (its mailbox and pending retries) died with it: no slot stays taken for ever.
  options.board->webhook_waiting.store(0);
  return sys.spawn<caf::detached>(webhook_impl, std::move(options));
}

void add_ops_history_collector(metrics_registry& metrics, std::shared_ptr<alert_board> board,
                               std::shared_ptr<history_store> store) {
  metrics.add_collector([board, store](prometheus_writer& out) {
    {
      out.family("troupe_alerts_firing", "gauge", "Alerts firing now, by rule and severity.");
      std::lock_guard<std::mutex> guard{board->mutex};
      for (const auto& a : board->firing)
        out.sample("troupe_alerts_firing", {{"rule", a.rule}, {"severity", a.severity}}, 1);
    }
    out.family("troupe_alert_webhook_total", "counter", "Alert webhook posts, by outcome.");
    out.sample("troupe_alert_webhook_total", {{"outcome", "delivered"}},
               static_cast<double>(board->webhook_delivered.load()));
    out.sample("troupe_alert_webhook_total", {{"outcome", "failed"}}, static_cast<double>(board->webhook_failed.load()));
    out.sample("troupe_alert_webhook_total", {{"outcome", "dropped"}},
               static_cast<double>(board->webhook_dropped.load()));
    auto samples = store->ring_size.load(std::memory_order_relaxed);
    auto bytes = store->ring_bytes.load(std::memory_order_relaxed);
    out.family("troupe_ops_history_samples", "gauge", "Samples in the history ring (ops.history_ms / ops.sample_ms at most).");
    out.sample("troupe_ops_history_samples", {}, static_cast<double>(samples));
    out.family("troupe_ops_history_bytes", "gauge", "Approximate memory the history ring holds.");
    out.sample("troupe_ops_history_bytes", {}, static_cast<double>(bytes));
    out.family("troupe_ops_sample_failures_total", "counter",
               "Samples not taken: ops.metrics did not answer the sampler in time.");
    out.sample("troupe_ops_sample_failures_total", {}, static_cast<double>(store->bad_scrapes.load()));
  });
}

} // namespace troupe
