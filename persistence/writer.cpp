#include "persistence/writer.hpp"
#include "introspect/messages.hpp"
#include "introspect/observed_actor.hpp"

#include "persistence/ids.hpp"

#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <random>
#include <unordered_map>

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;

/// How often a failed batch is retried, and the database probed while it is down.
constexpr std::chrono::milliseconds retry_interval{100};

struct pending_write {
  write_request request;
  caf::typed_response_promise<write_result> promise;
  clock_type::time_point enqueued;
  size_t rows;
  bool background = false; // write_later_atom: nobody awaits it, it may wait background_flush_interval
};

struct batch_in_flight {
  std::vector<pending_write> writes;
  size_t rows = 0;
  clock_type::time_point sent;
};

struct writer_state {
  writer_options opts;
  std::deque<pending_write> queue;
  size_t queued_rows = 0;
  size_t queued_foreground = 0; // queued requests somebody awaits (not background)
  size_t in_flight_rows = 0;
  std::vector<bool> busy; // per connection: a batch is in flight on it
  bool flush_due = false; // the oldest queued request has waited flush_interval (or rows are full)
  bool flush_timer_armed = false;
  bool background_timer_armed = false;
  bool retry_timer_armed = false;
  std::optional<clock_type::time_point> down_since; // the database has failed every attempt since then
  std::optional<caf::error> stopping; // asked to exit: it commits what it holds first, then quits with this reason
  std::mt19937_64 random{std::random_device{}()};

  static inline const char* name = "db_writer";
};

/// The writer's own timers: a batch's flush interval has passed (bool: the background one); retry the batches a lost
/// connection gave back.
using writer_flush_atom = caf::atom_constant<caf::atom("flush")>;
using writer_retry_atom = caf::atom_constant<caf::atom("retry")>;

/// The interface with the writer's own timers, which nobody else sends.
using writer_self_actor =
  db_writer_actor::extend<caf::reacts_to<writer_flush_atom, bool>, caf::reacts_to<writer_retry_atom>>;

using writer_actor = observed_typed_stateful_actor<writer_self_actor, writer_state>;

void update_gauge(writer_actor* self) {
  auto& st = self->state;
  st.opts.counters->queued_rows.store(static_cast<int64_t>(st.queued_rows + st.in_flight_rows));
}

void arm_retry(writer_actor* self) {
  auto& st = self->state;
  if (!st.retry_timer_armed) {
    st.retry_timer_armed = true;
    self->delayed_send(self, retry_interval, writer_retry_atom::value);
  }
}

/// Fails every queued request that has waited longer than max_wait.
void fail_expired(writer_actor* self) {
  auto& st = self->state;
  auto now = clock_type::now();
  for (auto i = st.queue.begin(); i != st.queue.end();) {
    if (now - i->enqueued >= st.opts.max_wait) {
      i->promise.deliver(make_error(service_error::unavailable, "The database is unavailable; retry shortly."));
      st.queued_rows -= i->rows;
      if (!i->background)
        --st.queued_foreground;
      st.opts.counters->rejected.fetch_add(1, std::memory_order_relaxed);
      i = st.queue.erase(i);
    } else {
      ++i;
    }
  }
  update_gauge(self);
}

void dispatch(writer_actor* self, bool probing = false);

/// Once asked to exit, quits when nothing is queued or in flight any more.
void quit_if_drained(writer_actor* self) {
  auto& st = self->state;
  if (st.stopping && st.queue.empty() && std::find(st.busy.begin(), st.busy.end(), true) == st.busy.end())
    self->quit(*st.stopping);
}

void on_batch_done(writer_actor* self, size_t connection, std::shared_ptr<batch_in_flight> batch,
                   std::vector<write_outcome>& outcomes) {
  auto& st = self->state;
  st.busy[connection] = false;
  st.in_flight_rows -= batch->rows;
  if (st.down_since) {
    log::info("database writes resumed");
    st.down_since.reset();
  }
  auto& counters = *st.opts.counters;
  counters.batches.fetch_add(1, std::memory_order_relaxed);
  auto done = clock_type::now();
  auto commit = std::chrono::duration_cast<std::chrono::microseconds>(done - batch->sent);
  counters.commit_micros.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, commit.count())), std::memory_order_relaxed);
  if (st.opts.slow.count() > 0 && !batch->writes.empty()) {
    // A background write's wait counts from when an awaited one would have gone: its linger is by design.
    auto linger = std::max(st.opts.background_flush_interval - st.opts.flush_interval, std::chrono::milliseconds{0});
    auto start = [linger](const pending_write& w) { return w.background ? w.enqueued + linger : w.enqueued; };
    auto oldest = start(batch->writes.front());
    for (const auto& w : batch->writes)
      oldest = std::min(oldest, start(w));
    auto total = std::chrono::duration_cast<std::chrono::milliseconds>(done - oldest);
    if (total >= st.opts.slow) {
      log::warn("slow operation", log::fields{}
                                    .add("kind", "db_batch")
                                    .add("duration_ms", static_cast<int64_t>(total.count()))
                                    .add("queued_ms", std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                              batch->sent - oldest)
                                                                              .count()))
                                    .add("commit_ms", static_cast<int64_t>(commit.count() / 1000))
                                    .add("writes", static_cast<int64_t>(batch->writes.size()))
                                    .add("rows", static_cast<int64_t>(batch->rows)));
      if (st.opts.on_slow)
        st.opts.on_slow();
    }
  }
  for (size_t i = 0; i < batch->writes.size(); ++i) {
    auto& write = batch->writes[i];
    if (i >= outcomes.size()) {
      write.promise.deliver(make_error(service_error::internal, "The database returned no outcome."));
      continue;
    }
    auto& outcome = outcomes[i];
    if (outcome.error_code == 0) {
      counters.requests.fetch_add(1, std::memory_order_relaxed);
      if (!outcome.committed.replayed)
        counters.rows.fetch_add(write.rows, std::memory_order_relaxed);
      write.promise.deliver(std::move(outcome.committed));
    } else {
      counters.failed.fetch_add(1, std::memory_order_relaxed);
      write.promise.deliver(make_error(static_cast<service_error>(outcome.error_code), std::move(outcome.message)));
    }
  }
  update_gauge(self);
  if (st.queued_foreground > 0 || st.stopping)
    st.flush_due = true; // what is queued and awaited has waited for this batch already
  dispatch(self);
  quit_if_drained(self);
}

void on_batch_failed(writer_actor* self, size_t connection, std::shared_ptr<batch_in_flight> batch,
                     const caf::error& err) {
  auto& st = self->state;
  st.busy[connection] = false;
  st.in_flight_rows -= batch->rows;
  if (!st.down_since) {
    st.down_since = clock_type::now();
    log::warn("database writes failing; retrying", log::fields{}.add("error", self->system().render(err)));
  }
  st.opts.counters->retried_batches.fetch_add(1, std::memory_order_relaxed);
  // Back to the head of the queue, in their original order.
  for (auto i = batch->writes.rbegin(); i != batch->writes.rend(); ++i) {
    st.queued_rows += i->rows;
    if (!i->background)
      ++st.queued_foreground;
    st.queue.push_front(std::move(*i));
  }
  fail_expired(self);
  arm_retry(self);
}

/// Sends batches to free connections while there is something due. While the database is down only the retry
/// timer sends (`probing`), so a dead database is not hammered.
void dispatch(writer_actor* self, bool probing) {
  auto& st = self->state;
  if (!st.flush_due || (st.down_since && !probing))
    return;
  for (size_t c = 0; c < st.busy.size() && !st.queue.empty(); ++c) {
    if (st.busy[c])
      continue;
    auto handle = st.opts.connection(c);
    if (!handle)
      continue;
    auto batch = std::make_shared<batch_in_flight>();
    std::vector<write_request> requests;
    while (!st.queue.empty()
           && (batch->writes.empty() || batch->rows + st.queue.front().rows <= st.opts.batch_max_rows)) {
      auto& front = st.queue.front();
      if (!front.background)
        --st.queued_foreground;
      batch->rows += front.rows;
      requests.push_back(front.request);
      batch->writes.push_back(std::move(front));
      st.queue.pop_front();
    }
    st.queued_rows -= batch->rows;
    st.in_flight_rows += batch->rows;
    st.busy[c] = true;
    batch->sent = clock_type::now();
    self->request(*handle, caf::duration{st.opts.commit_timeout}, commit_atom::value, std::move(requests))
      .then([self, c, batch](std::vector<write_outcome>& outcomes) { on_batch_done(self, c, batch, outcomes); },
            [self, c, batch](caf::error& err) { on_batch_failed(self, c, batch, err); });
  }
  if (st.queue.empty())
    st.flush_due = false;
  update_gauge(self);
}

/// While the database is down: send one batch (or a probe, if nothing waits) to find out whether it is back.
void retry(writer_actor* self) {
  auto& st = self->state;
  st.retry_timer_armed = false;
  if (!st.down_since)
    return;
  fail_expired(self);
  if (!st.queue.empty()) {
    st.flush_due = true;
    dispatch(self, true);
    if (std::find(st.busy.begin(), st.busy.end(), true) == st.busy.end())
      arm_retry(self); // no connection could take it: try again later
    return;
  }
  // Nothing waits: probe with an empty batch.
  auto handle = st.opts.connection(0);
  if (!handle || st.busy[0]) {
    arm_retry(self);
    return;
  }
  st.busy[0] = true;
  self->request(*handle, caf::duration{st.opts.commit_timeout}, commit_atom::value, std::vector<write_request>{})
    .then(
      [self](std::vector<write_outcome>&) {
        self->state.busy[0] = false;
        if (self->state.down_since) {
          log::info("database writes resumed");
          self->state.down_since.reset();
        }
        dispatch(self);
      },
      [self](caf::error&) {
        self->state.busy[0] = false;
        arm_retry(self);
      });
}

/// Queues a write and sends what is due, or refuses it (through its promise), changing nothing.
void enqueue(writer_actor* self, write_request request, caf::typed_response_promise<write_result> promise,
             bool background) {
  auto& st = self->state;
  auto rows = std::max<size_t>(1, request.rows());
  if (st.queued_rows + st.in_flight_rows + rows > st.opts.max_queue_rows) {
    st.opts.counters->rejected.fetch_add(1, std::memory_order_relaxed);
    promise.deliver(make_error(service_error::overloaded, "Too many writes are waiting; retry shortly."));
    return;
  }
  if (st.down_since && clock_type::now() - *st.down_since >= st.opts.max_wait) {
    st.opts.counters->rejected.fetch_add(1, std::memory_order_relaxed);
    promise.deliver(make_error(service_error::unavailable, "The database is unavailable; retry shortly."));
    return;
  }
  for (auto& e : request.events)
    e.id = random_uuid(st.random);
  for (auto& f : request.feedback)
    f.id = random_uuid(st.random);
  st.queue.push_back(pending_write{std::move(request), std::move(promise), clock_type::now(), rows, background});
  st.queued_rows += rows;
  if (!background)
    ++st.queued_foreground;
  if (st.queued_rows >= st.opts.batch_max_rows || st.stopping) {
    st.flush_due = true;
  } else if (!st.flush_due) {
    // Each kind has its own deadline; the earlier timer sends everything queued, of either kind.
    auto& armed = background ? st.background_timer_armed : st.flush_timer_armed;
    if (!armed) {
      armed = true;
      self->delayed_send(self, background ? st.opts.background_flush_interval : st.opts.flush_interval,
                         writer_flush_atom::value, background);
    }
  }
  dispatch(self);
  if (st.down_since)
    arm_retry(self);
}

writer_self_actor::behavior_type writer_impl(writer_actor* self, writer_options options) {
  auto& st = self->state;
  st.opts = std::move(options);
  st.busy.assign(std::max<size_t>(1, st.opts.connections), false);
  // Stopped (the supervisor's user_shutdown, after the HTTP side has drained): background writes may still wait for
  // their batch, so commit everything first. The connections stop after the writer (reverse start order); a
  // database that is down keeps it retrying until the supervisor's stop timeout kills it.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    if (msg.reason == caf::exit_reason::kill) {
      self->quit(std::move(msg.reason));
      return;
    }
    st.stopping = std::move(msg.reason);
    st.flush_due = !st.queue.empty();
    dispatch(self);
    quit_if_drained(self);
  });
  return {
    [self](write_atom, write_request& request) -> caf::result<write_result> {
      auto promise = self->make_response_promise<write_result>();
      enqueue(self, std::move(request), promise, false);
      return promise;
    },
    [self](write_later_atom, write_request& request) {
      // Nobody awaits an answer: an empty promise drops it (one made from this message would answer its sender with
      // a response nobody asked for); the counters tell.
      enqueue(self, std::move(request), caf::typed_response_promise<write_result>{}, true);
    },
    [self](writer_flush_atom, bool background) {
      (background ? self->state.background_timer_armed : self->state.flush_timer_armed) = false;
      if (!self->state.queue.empty()) {
        self->state.flush_due = true;
        dispatch(self);
      }
    },
    [self](writer_retry_atom) { retry(self); },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

db_writer_actor spawn_db_writer(caf::actor_system& sys, writer_options options) {
  return sys.spawn(writer_impl, std::move(options));
}

} // namespace troupe
