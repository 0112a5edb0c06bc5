#include "actors/jobs.hpp"

#include "actors/guards.hpp"
#include "actors/uploads.hpp"

#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <random>
#include <unordered_map>

namespace troupe {

namespace {

const auto db_timeout = caf::duration{std::chrono::seconds{10}};

struct running_job {
  job_record job;
  job_runner_actor runner;
  count_holder counted;              // one of troupe_jobs_running until the attempt is forgotten or the queue ends
  std::optional<tracing::span> span; // the attempt's, while it runs (a sampled trace with an export)
};

struct queue_state {
  job_queue_options opts;
  std::unordered_map<std::string, running_job> running; // job id -> its attempt here
  std::unordered_map<caf::actor_addr, std::string> runners;
  bool claiming = false;    // a claim is under way
  bool claim_again = false; // and another was asked for meanwhile

  static inline const char* name = "job_queue";
};

/// The queue's own timers: claim (also jobs that lapsed elsewhere), and renew the leases of the jobs running here.
using jobs_tick_atom = caf::atom_constant<caf::atom("jobstick")>;
using jobs_renew_tick_atom = caf::atom_constant<caf::atom("jobsrenew")>;

/// The interface with the queue's own timers (claim and renew), which nobody else sends.
using queue_self_actor = job_queue_actor::extend<caf::reacts_to<jobs_tick_atom>, caf::reacts_to<jobs_renew_tick_atom>>;

using queue_actor = queue_self_actor::stateful_base<queue_state>;

std::optional<db_query_actor> database(queue_actor* self) {
  return self->state.opts.db_query ? self->state.opts.db_query() : std::nullopt;
}

/// The sentence stored as the attempt's error.
std::string describe(queue_actor* self, const caf::error& err) {
  auto message = service_message(err);
  if (!message.empty())
    return message;
  if (err == caf::sec::request_receiver_down || err.category() == caf::atom("exit"))
    return "The worker stopped before answering (" + self->system().render(err) + ").";
  return self->system().render(err);
}

/// Forgets a job's attempt here and stops its runner (it has answered, or must not go on). The runner's address
/// stays known until its exit arrives, so that exit is never mistaken for the queue's own shutdown.
bool forget(queue_actor* self, const std::string& id) {
  auto& st = self->state;
  auto i = st.running.find(id);
  if (i == st.running.end())
    return false;
  if (i->second.runner)
    self->send_exit(i->second.runner, caf::exit_reason::user_shutdown);
  st.running.erase(i);
  return true;
}

void claim(queue_actor* self, bool sweep_when_full);

/// The attempt of job `id` running here and the database to record its end in; nullopt (and the job forgotten)
/// when either is gone.
std::optional<std::pair<db_query_actor, int32_t>> ending(queue_actor* self, const std::string& id) {
  auto i = self->state.running.find(id);
  auto db = database(self);
  if (i == self->state.running.end() || !db) {
    forget(self, id);
    return std::nullopt;
  }
  return std::make_pair(*db, i->second.job.attempts);
}

/// What follows recording a job's end, whether it was recorded or not: forget it here, look for more work.
void ended(queue_actor* self, const std::string& id) {
  forget(self, id);
  claim(self, false);
}

/// The error handler of a request that records a job's end: if it failed (lease lost to another node, database
/// gone), the lease decides what happens next.
auto not_recorded(queue_actor* self, const std::string& id, const char* what) {
  return [self, id, what](caf::error& err) {
    log::warn(what, log::fields{}.add("job_id", id).add("error", describe(self, err)));
    ended(self, id);
  };
}

/// Ends the span of job `id`'s attempt with its outcome (done, failed, lease_lost, released; all but done with an
/// error status) and hands it to the export.
void end_span(queue_actor* self, const std::string& id, const char* outcome) {
  auto i = self->state.running.find(id);
  if (i == self->state.running.end() || !i->second.span)
    return;
  auto span = std::move(*i->second.span);
  i->second.span.reset();
  span.end_unix_ns = tracing::unix_now_ns();
  span.error = std::string_view{outcome} != "done";
  span.attributes.emplace_back("troupe.job.outcome", outcome);
  self->state.opts.spans->push(std::move(span));
}

/// The trace id of job `id`'s attempt ("" when unknown), for its log lines.
std::string trace_of(queue_actor* self, const std::string& id) {
  auto i = self->state.running.find(id);
  if (i == self->state.running.end())
    return {};
  auto parent = tracing::parse_traceparent(i->second.job.traceparent);
  return parent ? tracing::hex(parent->trace) : std::string{};
}

void finished(queue_actor* self, const std::string& id, std::string result) {
  end_span(self, id, "done");
  auto end = ending(self, id);
  if (!end)
    return;
  auto& st = self->state;
  self->request(end->first, db_timeout, job_finish_atom::value, id, st.opts.owner, end->second, std::move(result))
    .then(
      [self, id](job_record&) {
        self->state.opts.counters->done++;
        ended(self, id);
      },
      not_recorded(self, id, "could not record a finished job"));
}

void failed(queue_actor* self, const std::string& id, const caf::error& err) {
  end_span(self, id, "failed");
  log::trace_scope in_trace{trace_of(self, id)};
  auto end = ending(self, id);
  if (!end)
    return;
  auto& st = self->state;
  bool permanent = service_code(err) == service_error::invalid_input;
  auto error = describe(self, err);
  log::info("job attempt failed", log::fields{}
                                    .add("job_id", id)
                                    .add("attempt", static_cast<int64_t>(end->second))
                                    .add("permanent", permanent)
                                    .add("error", error));
  self
    ->request(end->first, db_timeout, job_fail_atom::value, id, st.opts.owner, end->second, error, permanent,
              st.opts.backoff_base_ms)
    .then(
      [self, id](job_record& job) {
        auto& st = self->state;
        if (job.state == "retrying") {
          st.opts.counters->retried++;
          // Wake up when the retry is due (the poll would find it too, later).
          auto delay = std::max<int64_t>(0, job.run_at_ms - unix_now_ms()) + 5;
          self->delayed_send(self, std::chrono::milliseconds{delay}, jobs_kick_atom::value);
        } else {
          st.opts.counters->failed++;
        }
        ended(self, id);
      },
      not_recorded(self, id, "could not record a failed job attempt"));
}

void start(queue_actor* self, job_record job) {
  auto& st = self->state;
  auto id = job.id;
  auto handler = st.opts.handlers.find(job.kind);
  // The attempt's trace: its runner's steps and calls join it (their log lines name it); recorded when sampled.
  auto trace = tracing::context_for(std::nullopt, std::nullopt, st.opts.spans ? st.opts.sample_ratio : 0);
  job.traceparent = trace.traceparent_for(trace.span);
  std::optional<tracing::span> span;
  if (trace.sampled) {
    span.emplace();
    span->trace = trace.trace;
    span->id = trace.span;
    span->name = "job " + job.kind;
    span->kind = tracing::span_kind::consumer;
    span->start_unix_ns = tracing::unix_now_ns();
    span->attributes = {{"troupe.job.id", job.id}, {"troupe.job.kind", job.kind}, {"troupe.node", st.opts.owner}};
    span->int_attributes = {{"troupe.job.attempt", job.attempts}};
  }
  job_runner_actor runner;
  if (handler != st.opts.handlers.end())
    runner = handler->second(self, job);
  st.running[id] = running_job{job, runner, hold_count(st.opts.counters, &job_counters::running), std::move(span)};
  st.opts.counters->started++;
  if (!runner) {
    failed(self, id, make_error(service_error::invalid_input, "No worker can run jobs of kind \"" + job.kind + "\"."));
    return;
  }
  st.runners[runner.address()] = id;
  self->request(runner, caf::infinite, job_run_atom::value, std::move(job))
    .then([self, id](std::string& result) { finished(self, id, std::move(result)); },
          [self, id](caf::error& err) { failed(self, id, err); });
}

/// Claims as many jobs as there is room for. `sweep_when_full`: ask anyway (with room for none), so that lapsed
/// leases are taken back even while this node is busy.
void claim(queue_actor* self, bool sweep_when_full) {
  auto& st = self->state;
  if (st.claiming) {
    st.claim_again = true;
    return;
  }
  auto room = st.opts.concurrency > st.running.size() ? st.opts.concurrency - st.running.size() : 0;
  auto db = database(self);
  if ((room == 0 && !sweep_when_full) || !db)
    return;
  st.claiming = true;
  self
    ->request(*db, db_timeout, job_claim_atom::value, st.opts.owner, static_cast<int64_t>(st.opts.lease.count()),
              static_cast<int32_t>(room))
    .then(
      [self](std::vector<job_record>& jobs) {
        auto& st = self->state;
        st.claiming = false;
        for (auto& job : jobs)
          start(self, std::move(job));
        if (std::exchange(st.claim_again, false) || (!jobs.empty() && st.running.size() < st.opts.concurrency))
          claim(self, false);
      },
      [self](caf::error& err) {
        auto& st = self->state;
        st.claiming = false;
        st.claim_again = false;
        if (service_code(err) != service_error::unavailable)
          log::warn("claiming jobs failed", log::fields{}.add("error", describe(self, err)));
      });
}

/// Extends the leases of the jobs running here; a job whose lease could not be extended belongs to another node
/// now, so its runner stops.
void renew(queue_actor* self) {
  auto& st = self->state;
  auto db = database(self);
  if (st.running.empty() || !db)
    return;
  std::vector<std::string> ids;
  for (const auto& [id, job] : st.running)
    ids.push_back(id);
  self->request(*db, db_timeout, job_renew_atom::value, st.opts.owner, ids, static_cast<int64_t>(st.opts.lease.count()))
    .then(
      [self, ids](std::vector<std::string>& renewed) {
        auto& st = self->state;
        for (const auto& id : ids) {
          if (std::find(renewed.begin(), renewed.end(), id) != renewed.end())
            continue;
          auto i = st.running.find(id);
          if (i == st.running.end())
            continue; // it finished meanwhile
          log::warn("job lease lost; stopping its worker", log::fields{}.add("job_id", id));
          st.opts.counters->lost++;
          end_span(self, id, "lease_lost");
          self->send_exit(i->second.runner,
                          caf::exit_reason::user_shutdown); // kill would take the queue (linked) down too
          st.running.erase(i);
        }
      },
      [self](caf::error& err) {
        // Not renewed this time; the lease runs out only if the database stays unreachable for a whole lease.
        log::warn("renewing job leases failed", log::fields{}.add("error", describe(self, err)));
      });
}

queue_self_actor::behavior_type queue_impl(queue_actor* self, job_queue_options opts) {
  self->state.opts = std::move(opts);
  auto renew_every = std::max(std::chrono::milliseconds{1}, self->state.opts.lease / 3);
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    if (auto runner = st.runners.find(msg.source); runner != st.runners.end()) {
      // A runner ended; its answer (or the failed request) decides what happens to its job. A runner that died
      // (an exception, a kill) may have taken its unanswered request with it (CAF 0.17 sends nothing for a promise
      // destroyed undelivered): its attempt fails here, or the job would stay running, its lease renewed, for ever.
      // A normal exit follows the answer, which decides.
      auto id = runner->second;
      st.runners.erase(runner);
      if (msg.reason && st.running.count(id) != 0)
        failed(self, id,
               make_error(service_error::unavailable,
                          "The job's runner stopped without an answer: " + self->system().render(msg.reason)));
      return;
    }
    // Shutdown (or the supervisor's order): give the running jobs back at once rather than after their lease.
    for (auto& [id, job] : st.running)
      end_span(self, id, "released");
    if (!st.running.empty())
      if (auto db = database(self)) {
        std::vector<std::string> ids;
        for (const auto& [id, job] : st.running)
          ids.push_back(id);
        caf::anon_send(*db, job_release_atom::value, st.opts.owner, std::move(ids));
      }
    self->quit(msg.reason);
  });
  self->send(self, jobs_tick_atom::value);
  self->delayed_send(self, renew_every, jobs_renew_tick_atom::value);
  return {
    [self](jobs_kick_atom) { claim(self, false); },
    [self](jobs_tick_atom) {
      claim(self, true);
      self->delayed_send(self, self->state.opts.poll, jobs_tick_atom::value);
    },
    [self, renew_every](jobs_renew_tick_atom) {
      renew(self);
      self->delayed_send(self, renew_every, jobs_renew_tick_atom::value);
    },
    [self](jobs_running_atom) {
      std::vector<std::string> ids;
      for (const auto& [id, job] : self->state.running)
        ids.push_back(id);
      return ids;
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

job_queue_actor spawn_job_queue(caf::actor_system& sys, job_queue_options options) {
  return sys.spawn(queue_impl, std::move(options));
}

std::string make_node_id() {
  char host[256] = "node";
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", rd() & 0xFFFFFF);
  return std::string{host} + ":" + std::to_string(::getpid()) + ":" + suffix;
}

void add_job_collector(metrics_registry& metrics, std::shared_ptr<job_counters> counters) {
  metrics.add_collector([counters](prometheus_writer& out) {
    out.family("troupe_job_attempts_total", "counter", "Job attempts by how they ended on this node.");
    out.sample("troupe_job_attempts_total", {{"outcome", "started"}}, static_cast<double>(counters->started.load()));
    out.sample("troupe_job_attempts_total", {{"outcome", "done"}}, static_cast<double>(counters->done.load()));
    out.sample("troupe_job_attempts_total", {{"outcome", "retrying"}}, static_cast<double>(counters->retried.load()));
    out.sample("troupe_job_attempts_total", {{"outcome", "failed"}}, static_cast<double>(counters->failed.load()));
    out.sample("troupe_job_attempts_total", {{"outcome", "lease_lost"}}, static_cast<double>(counters->lost.load()));
    out.family("troupe_jobs_running", "gauge", "Jobs running on this node.");
    out.sample("troupe_jobs_running", {}, static_cast<double>(counters->running.load()));
  });
}

} // namespace troupe
