#include "actors/retention.hpp"
#include "introspect/observed_actor.hpp"

#include "config/log.hpp"
#include "config/service_error.hpp"
#include "persistence/retention.hpp"

#include <caf/all.hpp>

namespace troupe {

namespace {

using retention_tick_atom = caf::atom_constant<caf::atom("rettick")>;
using retention_step_atom = caf::atom_constant<caf::atom("retstep")>;

constexpr auto query_timeout = std::chrono::seconds{60};
constexpr const char* auth_tokens = "auth_tokens";

struct retention_state {
  retention_options opts;
  bool sweeping = false;
  size_t table = 0;    // the table being swept
  int64_t deleted = 0; // by the sweep under way
  std::map<std::string, int64_t> deleted_by_table;
  std::vector<caf::response_promise> waiting; // explicit sweep requests, answered when the sweep ends
  uint64_t timer = 0; // the one scheduled tick that counts (an explicit sweep reschedules the timer)
  static inline const char* name = "retention_sweeper";
};

using retention_actor = observed_stateful_actor<retention_state>;

int64_t now_ms(retention_actor* self) {
  auto& opts = self->state.opts;
  if (opts.now_unix_ms)
    return opts.now_unix_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string describe(retention_actor* self, const caf::error& err) {
  auto message = service_message(err);
  return message.empty() ? self->system().render(err) : message;
}

void add_deleted(retention_actor* self, const std::string& table, int64_t rows) {
  auto& st = self->state;
  st.deleted += rows;
  st.deleted_by_table[table] += rows;
  if (st.opts.counters)
    if (auto i = st.opts.counters->deleted.find(table); i != st.opts.counters->deleted.end())
      i->second += static_cast<uint64_t>(rows);
}

void finish(retention_actor* self) {
  auto& st = self->state;
  if (st.deleted > 0) {
    log::fields f;
    f.add("deleted", st.deleted);
    for (const auto& [table, rows] : st.deleted_by_table)
      if (rows > 0)
        f.add(table, rows);
    log::info("retention sweep", f);
  }
  for (auto& promise : st.waiting)
    promise.deliver(st.deleted);
  st.waiting.clear();
  st.sweeping = false;
  self->delayed_send(self, st.opts.interval, retention_tick_atom::value, ++st.timer);
}

void purge_auth_tokens(retention_actor* self, db_query_actor db) {
  self->request(db, caf::duration{query_timeout}, auth_purge_atom::value)
    .then(
      [self](int64_t rows) {
        add_deleted(self, auth_tokens, rows);
        finish(self);
      },
      [self](caf::error& err) {
        log::warn("purging expired tokens failed", log::fields{}.add("error", describe(self, err)));
        finish(self);
      });
}

/// One bounded step of the sweep under way: the next batch of the current table, or the next table.
void step(retention_actor* self) {
  auto& st = self->state;
  while (st.table < st.opts.tables.size() && st.opts.tables[st.table].period_ms <= 0)
    ++st.table;
  auto db = st.opts.db_query ? st.opts.db_query() : std::nullopt;
  if (!db) {
    log::warn("retention sweep skipped: the database is restarting");
    finish(self);
    return;
  }
  if (st.table == st.opts.tables.size()) {
    if (st.opts.purge_auth_tokens)
      purge_auth_tokens(self, *db);
    else
      finish(self);
    return;
  }
  const auto& t = st.opts.tables[st.table];
  auto cutoff = now_ms(self) - t.period_ms;
  self->request(*db, caf::duration{query_timeout}, retention_delete_atom::value, t.table, cutoff, st.opts.batch_rows)
    .then(
      [self, table = t.table](int64_t rows) {
        auto& st = self->state;
        add_deleted(self, table, rows);
        if (rows < st.opts.batch_rows)
          ++st.table; // nothing older left: the next table
        self->send(self, retention_step_atom::value);
      },
      [self, table = t.table](caf::error& err) {
        log::warn("retention sweep failed", log::fields{}.add("table", table).add("error", describe(self, err)));
        ++self->state.table;
        self->send(self, retention_step_atom::value);
      });
}

void start(retention_actor* self) {
  auto& st = self->state;
  if (st.sweeping)
    return;
  st.sweeping = true;
  st.table = 0;
  st.deleted = 0;
  st.deleted_by_table.clear();
  step(self);
}

caf::behavior retention_impl(retention_actor* self, retention_options opts) {
  self->state.opts = std::move(opts);
  self->delayed_send(self, self->state.opts.first_delay, retention_tick_atom::value, self->state.timer);
  return {
    [self](retention_sweep_atom) {
      auto promise = self->make_response_promise();
      self->state.waiting.push_back(promise);
      start(self);
      return promise;
    },
    [self](retention_tick_atom, uint64_t timer) {
      if (timer == self->state.timer)
        start(self);
    },
    [self](retention_step_atom) { step(self); },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

std::shared_ptr<retention_counters> make_retention_counters(const retention_options& options) {
  auto counters = std::make_shared<retention_counters>();
  for (const auto& t : options.tables)
    counters->deleted[t.table] = 0;
  counters->deleted[auth_tokens] = 0;
  return counters;
}

caf::actor spawn_retention_sweeper(caf::actor_system& sys, retention_options options) {
  return sys.spawn(retention_impl, std::move(options));
}

void add_retention_collector(metrics_registry& metrics, std::shared_ptr<retention_counters> retention) {
  metrics.add_collector([retention](prometheus_writer& out) {
    out.family(
      "troupe_retention_deleted_rows_total", "counter",
      "Rows deleted by the retention sweeper, by table (auth_tokens: expired revocations and refresh tokens).");
    for (const auto& [table, rows] : retention->deleted)
      out.sample("troupe_retention_deleted_rows_total", {{"table", table}}, static_cast<double>(rows.load()));
  });
}

} // namespace troupe
