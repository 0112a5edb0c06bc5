#include "actors/span_export.hpp"

#include "actors/http_post.hpp"
#include "config/log.hpp"

#include <caf/all.hpp>


namespace troupe::tracing {

namespace {

using export_tick_atom = caf::atom_constant<caf::atom("spantick")>;

struct exporter_state {
  exporter_options opts;
  std::chrono::steady_clock::time_point last_warning{};
  static inline const char* name = "tracing.exporter";
};

/// Sends one batch; false when there was nothing to send or the collector refused it.
bool export_batch(exporter_state& st) {
  auto& q = *st.opts.queue;
  auto spans = q.take(st.opts.batch);
  if (spans.empty())
    return false;
  auto problem = post_json(st.opts.url, otlp_json(spans, st.opts.service_version, st.opts.instance ? st.opts.instance() : ""),
                           std::chrono::milliseconds{5000});
  if (problem.empty()) {
    q.exported.fetch_add(spans.size(), std::memory_order_relaxed);
    return true;
  }
  q.failed.fetch_add(spans.size(), std::memory_order_relaxed);
  auto now = std::chrono::steady_clock::now();
  if (now - st.last_warning >= std::chrono::minutes{1}) {
    st.last_warning = now;
    log::warn("span export failed; spans dropped",
              log::fields{}.add("spans", static_cast<int64_t>(spans.size())).add("error", problem));
  }
  return false;
}

caf::behavior exporter(caf::stateful_actor<exporter_state>* self, exporter_options options) {
  self->state.opts = std::move(options);
  self->delayed_send(self, self->state.opts.interval, export_tick_atom::value);
  // On shutdown: one last batch (5 s at most), so that the spans of the last requests are not lost.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    export_batch(self->state);
    self->quit(msg.reason);
  });
  return {
    [self](export_tick_atom) {
      auto& st = self->state;
      // One batch per message: a full queue is sent batch after batch, and an exit is never kept waiting behind
      // more than one POST.
      if (export_batch(st) && st.opts.queue->size() > 0)
        self->send(self, export_tick_atom::value);
      else
        self->delayed_send(self, st.opts.interval, export_tick_atom::value);
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

child_spec exporter_child(exporter_options options) {
  return worker_child(
    "tracing.exporter",
    [options](caf::actor_system& sys) { return sys.spawn<caf::detached>(exporter, options); },
    std::chrono::milliseconds{6000});
}

void add_tracing_collector(metrics_registry& metrics, std::shared_ptr<span_queue> queue) {
  metrics.add_collector([queue](prometheus_writer& out) {
    out.family("troupe_tracing_spans_total", "counter", "Spans by outcome: exported, dropped (queue full), failed "
                                                        "(the collector refused or could not be reached).");
    out.sample("troupe_tracing_spans_total", {{"outcome", "exported"}}, static_cast<double>(queue->exported.load()));
    out.sample("troupe_tracing_spans_total", {{"outcome", "dropped"}}, static_cast<double>(queue->dropped.load()));
    out.sample("troupe_tracing_spans_total", {{"outcome", "failed"}}, static_cast<double>(queue->failed.load()));
    out.family("troupe_tracing_queue_spans", "gauge", "Spans waiting for the exporter.");
    out.sample("troupe_tracing_queue_spans", {}, static_cast<double>(queue->size()));
  });
}

} // namespace troupe::tracing
