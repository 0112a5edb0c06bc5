#include "actors/job_events.hpp"
#include "introspect/observed_actor.hpp"

#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <map>
#include <set>
#include <vector>

namespace troupe {

namespace {

using job_events_tick_atom = caf::atom_constant<caf::atom("jobevtick")>;

using clock = std::chrono::steady_clock;

struct watch {
  std::string user_id;
  job_event_sink_ptr sink;
  std::string seen;          // what the client saw last (signature())
  clock::time_point written; // the last update or heartbeat
  uint64_t reads_before = 0; // reads started before the watch began: only a later read may judge it
};

struct job_events_state {
  job_events_options opts;
  std::map<std::string, std::vector<watch>> watches; // by job id
  std::map<std::string, size_t> per_user;
  size_t count = 0;
  bool reading = false;   // a poll's read is in flight
  uint64_t reads = 0;     // reads started so far
  bool scheduled = false; // a tick is scheduled

  ~job_events_state() {
    // Stopping (a restart, the node's shutdown): every client is told, and reconnects to the next incarnation.
    if (opts.counters)
      opts.counters->watching -= static_cast<int64_t>(count);
    for (auto& [id, list] : watches)
      for (auto& w : list)
        w.sink->close("The server stopped watching this job; reconnect to go on.");
  }

  static inline const char* name = "job_events";
};

using job_events_actor = observed_stateful_actor<job_events_state>;

bool final_state(const job_record& job) {
  return job.state == "done" || job.state == "failed";
}

/// What a client sees of a job: lease renewals and their updated_at are not news.
std::string signature(const job_record& job) {
  return job.state + '\n' + std::to_string(job.attempts) + '\n' + std::to_string(job.progress) + '\n' + job.detail
         + '\n' + job.error + '\n' + job.result;
}

void forget(job_events_actor* self, const std::string& user_id) {
  auto& st = self->state;
  if (auto u = st.per_user.find(user_id); u != st.per_user.end() && --u->second == 0)
    st.per_user.erase(u);
  --st.count;
  if (st.opts.counters)
    st.opts.counters->watching--;
}

void schedule(job_events_actor* self) {
  auto& st = self->state;
  if (st.scheduled || st.count == 0)
    return;
  st.scheduled = true;
  self->delayed_send(self, st.opts.poll, job_events_tick_atom::value);
}

/// Applies a poll's read: updates, heartbeats, final states, deleted jobs and departed clients. A watch that ends
/// is counted out before its sink hears of it.
/// Only the watches that existed when the read started (number `read_no`), of the jobs it asked for (`read`), are
/// judged: a watch added while the read was under way waits for the next one (its job is not missing, and its own
/// first read may be newer than this one).
void apply_read(job_events_actor* self, uint64_t read_no, const std::set<std::string>& read,
                const std::vector<job_record>& jobs) {
  auto& st = self->state;
  std::map<std::string, const job_record*> by_id;
  for (const auto& job : jobs)
    by_id.emplace(job.id, &job);
  auto now = clock::now();
  for (auto it = st.watches.begin(); it != st.watches.end();) {
    if (read.count(it->first) == 0) {
      ++it;
      continue;
    }
    auto found = by_id.find(it->first);
    auto& list = it->second;
    for (auto w = list.begin(); w != list.end();) {
      if (w->reads_before >= read_no) {
        ++w;
        continue;
      }
      std::optional<std::string> close; // set: the watch ends with this close
      bool keep = true;
      if (w->sink->gone()) {
        keep = false;
      } else if (found == by_id.end()) {
        close = "The job no longer exists.";
      } else {
        const auto& job = *found->second;
        auto sig = signature(job);
        if (sig != w->seen) {
          keep = w->sink->update(job);
          w->seen = std::move(sig);
          w->written = now;
          if (st.opts.counters)
            st.opts.counters->updates++;
          if (keep && final_state(job))
            close = "";
        } else if (now - w->written >= st.opts.heartbeat) {
          keep = w->sink->idle();
          w->written = now;
        }
      }
      if (keep && !close) {
        ++w;
        continue;
      }
      forget(self, w->user_id);
      if (close)
        w->sink->close(*close);
      w = list.erase(w);
    }
    it = list.empty() ? st.watches.erase(it) : std::next(it);
  }
}

void poll(job_events_actor* self) {
  auto& st = self->state;
  if (st.reading || st.count == 0)
    return;
  auto db = st.opts.db_query ? st.opts.db_query() : std::nullopt;
  if (!db) {
    schedule(self); // the database is restarting: try again at the next tick
    return;
  }
  std::vector<std::string> ids;
  ids.reserve(st.watches.size());
  for (const auto& [id, list] : st.watches)
    ids.push_back(id);
  st.reading = true;
  auto read_no = ++st.reads;
  std::set<std::string> read{ids.begin(), ids.end()};
  self->request(*db, caf::duration{st.opts.read_timeout}, job_states_atom::value, std::move(ids))
    .then(
      [self, read_no, read = std::move(read)](std::vector<job_record>& jobs) {
        self->state.reading = false;
        apply_read(self, read_no, read, jobs);
        schedule(self);
      },
      [self](caf::error& err) {
        self->state.reading = false;
        log::warn("reading watched jobs failed", log::fields{}.add("error", self->system().render(err)));
        schedule(self);
      });
}

caf::behavior job_events_impl(job_events_actor* self, job_events_options opts) {
  self->state.opts = std::move(opts);
  return {
    [self](job_watch_atom, const std::string& user_id, const std::string& job_id,
           job_event_sink_ptr& sink) -> caf::result<bool> {
      auto& st = self->state;
      if (!sink)
        return make_error(service_error::internal, "No sink to watch with.");
      auto refuse = [&](service_error code, std::string message) -> caf::result<bool> {
        if (st.opts.counters)
          st.opts.counters->refused++;
        return make_error(code, std::move(message));
      };
      if (st.count >= st.opts.max_watches)
        return refuse(service_error::overloaded,
                      "This node streams as many jobs as it may (jobs.max_event_streams); retry shortly.");
      if (auto u = st.per_user.find(user_id); u != st.per_user.end() && u->second >= st.opts.max_per_user)
        return refuse(service_error::rate_limited, "At most " + std::to_string(st.opts.max_per_user)
                                                     + " job event streams may be open at once per user.");
      auto db = st.opts.db_query ? st.opts.db_query() : std::nullopt;
      if (!db)
        return make_error(service_error::unavailable, "The database is restarting; retry shortly.");
      // Counted from now, so that concurrent first reads cannot pass the caps together.
      st.per_user[user_id]++;
      st.count++;
      if (st.opts.counters)
        st.opts.counters->watching++;
      auto promise = self->make_response_promise<bool>();
      self->request(*db, caf::duration{st.opts.read_timeout}, job_get_atom::value, user_id, job_id)
        .then(
          [self, promise, user_id, sink](job_record& job) mutable {
            bool alive = sink->update(job);
            if (self->state.opts.counters)
              self->state.opts.counters->updates++;
            if (!alive || final_state(job)) {
              forget(self, user_id);
              if (alive)
                sink->close("");
            } else {
              self->state.watches[job.id].push_back(
                watch{user_id, sink, signature(job), clock::now(), self->state.reads});
              schedule(self);
            }
            promise.deliver(true);
          },
          [self, promise, user_id](caf::error& err) mutable {
            forget(self, user_id);
            promise.deliver(std::move(err));
          });
      return promise;
    },
    [self](job_events_tick_atom) {
      self->state.scheduled = false;
      poll(self);
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

caf::actor spawn_job_events(caf::actor_system& sys, job_events_options options) {
  return sys.spawn(job_events_impl, std::move(options));
}

void add_job_events_collector(metrics_registry& metrics, std::shared_ptr<job_event_counters> counters) {
  metrics.add_collector([counters](prometheus_writer& out) {
    out.family("troupe_job_event_streams", "gauge", "Job event streams (GET /api/jobs/{id}/events) open on this node.");
    out.sample("troupe_job_event_streams", {}, static_cast<double>(counters->watching.load()));
    out.family("troupe_job_event_streams_refused_total", "counter",
               "Job event streams refused by jobs.max_event_streams or jobs.max_event_streams_per_user.");
    out.sample("troupe_job_event_streams_refused_total", {}, static_cast<double>(counters->refused.load()));
  });
}

} // namespace troupe
