// The job event watcher (actors/job_events.hpp) with a fake db.query whose jobs the test changes, and sinks that
// record what they are told: a watch starts with the job as it is, gets an update for every change a client can
// see (not for lease renewals), ends after a final state, and is bounded per user and per node; a deleted job, a
// departed client and a stopping watcher each end their watches.

#include "actors/job_events.hpp"
#include "actors/messages.hpp"

#include "config/service_error.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// The jobs the fake database holds, and how often the watcher read them.
struct fake_jobs {
  std::mutex mutex;
  std::map<std::string, job_record> jobs;
  std::vector<size_t> reads; // ids asked for by each job_states read

  void put(job_record job) {
    std::lock_guard<std::mutex> guard{mutex};
    jobs[job.id] = std::move(job);
  }
  template <class Change>
  void change(const std::string& id, Change f) {
    std::lock_guard<std::mutex> guard{mutex};
    f(jobs.at(id));
  }
  void erase(const std::string& id) {
    std::lock_guard<std::mutex> guard{mutex};
    jobs.erase(id);
  }
};

caf::behavior fake_db(caf::event_based_actor*, std::shared_ptr<fake_jobs> db) {
  return {
    [db](job_get_atom, const std::string& user_id, const std::string& id) -> caf::result<job_record> {
      std::lock_guard<std::mutex> guard{db->mutex};
      auto found = db->jobs.find(id);
      if (found == db->jobs.end() || found->second.user_id != user_id)
        return make_error(service_error::not_found, "No such job.");
      return found->second;
    },
    [db](job_states_atom, const std::vector<std::string>& ids) {
      std::lock_guard<std::mutex> guard{db->mutex};
      db->reads.push_back(ids.size());
      std::vector<job_record> out;
      for (const auto& id : ids)
        if (auto found = db->jobs.find(id); found != db->jobs.end())
          out.push_back(found->second);
      return out;
    },
  };
}

/// Records what the watcher tells it.
class recording_sink final : public job_event_sink {
public:
  bool update(const job_record& job) override {
    std::lock_guard<std::mutex> guard{mutex_};
    updates_.push_back(job);
    changed_.notify_all();
    return !gone_;
  }
  bool idle() override {
    std::lock_guard<std::mutex> guard{mutex_};
    ++idles_;
    changed_.notify_all();
    return !gone_;
  }
  bool gone() const override {
    std::lock_guard<std::mutex> guard{mutex_};
    return gone_;
  }
  void close(const std::string& why) override {
    std::lock_guard<std::mutex> guard{mutex_};
    ++closes_;
    why_ = why;
    changed_.notify_all();
  }

  void leave() {
    std::lock_guard<std::mutex> guard{mutex_};
    gone_ = true;
  }

  /// Waits (at most 10 s) until `done` holds; true if it did.
  template <class Pred>
  bool wait(Pred done) {
    std::unique_lock<std::mutex> lock{mutex_};
    return changed_.wait_for(lock, 10s, [&] { return done(*this); });
  }

  // Read under the lock: the watcher may be calling in at the same time.
  std::vector<job_record> updates() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return updates_;
  }
  std::string why() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return why_;
  }

  // Only in wait()'s predicate, which runs under the lock.
  std::vector<job_record> updates_;
  int idles_ = 0;
  int closes_ = 0;
  std::string why_;

private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool gone_ = false;
};

job_record running(const std::string& id, const std::string& user, double progress) {
  job_record j;
  j.id = id;
  j.user_id = user;
  j.kind = "upload";
  j.state = "running";
  j.attempts = 1;
  j.max_attempts = 3;
  j.progress = progress;
  j.detail = R"({"step":"processing"})";
  j.updated_at_ms = 1000;
  return j;
}

class JobEvents : public ::testing::Test {
protected:
  JobEvents() {
    register_message_types(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    db_actor_ = sys_->spawn(fake_db, db_);
  }
  ~JobEvents() override {
    for (auto& a : {db_actor_, watcher_})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::kill);
  }

  void start(std::chrono::milliseconds heartbeat = 1h) {
    opts_.poll = 10ms;
    opts_.heartbeat = heartbeat;
    opts_.db_query = [d = db_actor_]() -> std::optional<db_query_actor> { return caf::actor_cast<db_query_actor>(d); };
    watcher_ = spawn_job_events(*sys_, opts_);
  }

  /// Asks the watcher to watch; the error's code, or none.
  service_error watch(const std::string& user, const std::string& id, std::shared_ptr<recording_sink> sink) {
    caf::scoped_actor self{*sys_};
    service_error code = service_error::internal;
    self->request(watcher_, caf::infinite, job_watch_atom::value, user, id, job_event_sink_ptr{sink})
      .receive([&](bool) { code = service_error::none; }, [&](caf::error& err) { code = service_code(err); });
    return code;
  }

  /// Waits until the watcher has read the jobs `n` more times (each poll is one read).
  void polls(size_t n) {
    size_t start;
    {
      std::lock_guard<std::mutex> guard{db_->mutex};
      start = db_->reads.size();
    }
    for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
      {
        std::lock_guard<std::mutex> guard{db_->mutex};
        if (db_->reads.size() >= start + n)
          return;
      }
      std::this_thread::sleep_for(1ms);
    }
    ADD_FAILURE() << "the watcher stopped polling";
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::shared_ptr<fake_jobs> db_ = std::make_shared<fake_jobs>();
  caf::actor db_actor_, watcher_;
  job_events_options opts_;
};

} // namespace

TEST_F(JobEvents, AWatchFollowsTheJobUntilItsFinalState) {
  start();
  db_->put(running("j1", "u1", 0.1));
  auto sink = std::make_shared<recording_sink>();
  ASSERT_EQ(watch("u1", "j1", sink), service_error::none);
  ASSERT_TRUE(sink->wait([](auto& s) { return s.updates_.size() == 1; }));
  EXPECT_DOUBLE_EQ(sink->updates()[0].progress, 0.1);
  EXPECT_EQ(opts_.counters->watching.load(), 1);

  db_->change("j1", [](job_record& j) { j.progress = 0.5; });
  ASSERT_TRUE(sink->wait([](auto& s) { return s.updates_.size() == 2; }));
  EXPECT_DOUBLE_EQ(sink->updates()[1].progress, 0.5);

  // A lease renewal moves updated_at only: nothing to tell.
  db_->change("j1", [](job_record& j) { j.updated_at_ms += 10000; });
  polls(3);
  EXPECT_EQ(sink->updates().size(), 2u);

  db_->change("j1", [](job_record& j) {
    j.state = "done";
    j.progress = 1;
    j.result = R"({"files":3})";
  });
  ASSERT_TRUE(sink->wait([](auto& s) { return s.closes_ == 1; }));
  EXPECT_EQ(sink->updates().size(), 3u);
  EXPECT_EQ(sink->updates().back().state, "done");
  EXPECT_EQ(sink->why(), "");
  EXPECT_EQ(opts_.counters->watching.load(), 0);
}

TEST_F(JobEvents, AFinishedJobIsOneUpdateAndTheEnd) {
  start();
  auto job = running("j1", "u1", 1);
  job.state = "failed";
  job.error = "The archive is a zip bomb.";
  db_->put(job);
  auto sink = std::make_shared<recording_sink>();
  ASSERT_EQ(watch("u1", "j1", sink), service_error::none);
  EXPECT_TRUE(sink->wait([](auto& s) { return s.closes_ == 1; }));
  EXPECT_EQ(sink->updates().size(), 1u);
  EXPECT_EQ(opts_.counters->watching.load(), 0);
}

TEST_F(JobEvents, AnotherUsersJobIsNotFound) {
  start();
  db_->put(running("j1", "u1", 0));
  auto sink = std::make_shared<recording_sink>();
  EXPECT_EQ(watch("u2", "j1", sink), service_error::not_found);
  EXPECT_EQ(watch("u1", "nope", sink), service_error::not_found);
  EXPECT_TRUE(sink->updates().empty());
  EXPECT_EQ(opts_.counters->watching.load(), 0);
}

TEST_F(JobEvents, WatchesAreBoundedPerUserAndPerNode) {
  opts_.max_per_user = 2;
  opts_.max_watches = 3;
  start();
  db_->put(running("j1", "u1", 0));
  db_->put(running("j2", "u2", 0));
  std::vector<std::shared_ptr<recording_sink>> sinks;
  auto add = [&](const std::string& user, const std::string& id) {
    sinks.push_back(std::make_shared<recording_sink>());
    return watch(user, id, sinks.back());
  };
  EXPECT_EQ(add("u1", "j1"), service_error::none);
  EXPECT_EQ(add("u1", "j1"), service_error::none);
  EXPECT_EQ(add("u1", "j1"), service_error::rate_limited);
  EXPECT_EQ(add("u2", "j2"), service_error::none);
  EXPECT_EQ(add("u2", "j2"), service_error::overloaded);
  EXPECT_EQ(opts_.counters->refused.load(), 2u);
  // A client that leaves gives its place back at the next poll.
  sinks[0]->leave();
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       opts_.counters->watching.load() != 2 && std::chrono::steady_clock::now() < deadline;)
    polls(1);
  EXPECT_EQ(opts_.counters->watching.load(), 2);
  EXPECT_EQ(add("u1", "j1"), service_error::none);
}

TEST_F(JobEvents, OneReadPerPollWhateverTheNumberOfWatches) {
  start();
  for (int i = 0; i < 20; ++i) {
    auto id = "j" + std::to_string(i);
    db_->put(running(id, "u" + std::to_string(i), 0));
    ASSERT_EQ(watch("u" + std::to_string(i), id, std::make_shared<recording_sink>()), service_error::none);
  }
  polls(3);
  std::lock_guard<std::mutex> guard{db_->mutex};
  EXPECT_EQ(db_->reads.back(), 20u);
}

TEST_F(JobEvents, ADeletedJobEndsItsWatchesWithAReason) {
  start();
  db_->put(running("j1", "u1", 0));
  auto sink = std::make_shared<recording_sink>();
  ASSERT_EQ(watch("u1", "j1", sink), service_error::none);
  db_->erase("j1");
  ASSERT_TRUE(sink->wait([](auto& s) { return s.closes_ == 1; }));
  EXPECT_EQ(sink->why(), "The job no longer exists.");
  EXPECT_EQ(opts_.counters->watching.load(), 0);
}

TEST_F(JobEvents, AQuietJobGetsHeartbeats) {
  start(30ms);
  db_->put(running("j1", "u1", 0));
  auto sink = std::make_shared<recording_sink>();
  ASSERT_EQ(watch("u1", "j1", sink), service_error::none);
  EXPECT_TRUE(sink->wait([](auto& s) { return s.idles_ >= 2; }));
  EXPECT_EQ(sink->updates().size(), 1u);
}

TEST_F(JobEvents, AStoppingWatcherTellsEveryClient) {
  start();
  db_->put(running("j1", "u1", 0));
  auto a = std::make_shared<recording_sink>();
  auto b = std::make_shared<recording_sink>();
  ASSERT_EQ(watch("u1", "j1", a), service_error::none);
  ASSERT_EQ(watch("u1", "j1", b), service_error::none);
  caf::anon_send_exit(watcher_, caf::exit_reason::user_shutdown);
  for (auto* s : {a.get(), b.get()}) {
    ASSERT_TRUE(s->wait([](auto& x) { return x.closes_ == 1; }));
    EXPECT_NE(s->why().find("reconnect"), std::string::npos) << s->why();
  }
  EXPECT_EQ(opts_.counters->watching.load(), 0);
}
