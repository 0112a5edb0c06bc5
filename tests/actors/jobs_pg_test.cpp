// The job queue (actors/jobs.cpp) against a real PostgreSQL, with injected job handlers: retries with exponential
// backoff (read back from job_attempts, so the test asserts what happened rather than sleeping), failures that are
// final at once, priorities, leases taken back from a dead worker, lost leases, and jobs given back on shutdown.
// Also the claim itself (persistence/jobs_sql.cpp): users take turns, priority first, concurrent claimers.

#include "tests/persistence/scratch_database.hpp"

#include "actors/jobs.hpp"
#include "actors/messages.hpp"
#include "config/service_error.hpp"
#include "persistence/database.hpp"
#include "persistence/query_router.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// A runner that answers (job_run_atom, job) with `answer(job)`; a default (empty) result never answers.
job_handler handler_of(std::function<caf::expected<std::string>(const job_record&)> answer) {
  return [answer](caf::local_actor* queue, const job_record&) -> job_runner_actor {
    return queue->spawn<caf::linked>([answer](job_runner_actor::pointer self) -> job_runner_actor::behavior_type {
      return {
        [self, answer](job_run_atom, const job_record& job) -> caf::result<std::string> {
          auto outcome = answer(job);
          if (!outcome && outcome.error() == caf::sec::request_timeout)
            return self->make_response_promise<std::string>(); // never answers: a worker that hangs
          if (!outcome)
            return outcome.error();
          return *outcome;
        },
      };
    });
  };
}

class JobQueue : public ::testing::Test {
protected:
  void SetUp() override {
    if (!db_.available())
      GTEST_SKIP() << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
    cfg_ = std::make_unique<caf::actor_system_config>();
    register_message_types(*cfg_);
    sys_ = std::make_unique<caf::actor_system>(*cfg_);
    connection_ = caf::actor_cast<caf::actor>(spawn_database_connection(*sys_, database_options{db_.url(), 2000ms}));
    auto lookup = [c = connection_](size_t) -> std::optional<db_connection_actor> {
      return caf::actor_cast<db_connection_actor>(c);
    };
    query_ = caf::actor_cast<caf::actor>(spawn_query_router(*sys_, 1, lookup));
    // Connected, and the schema migrated, before a test writes to it directly.
    caf::scoped_actor self{*sys_};
    self->request(connection_, caf::infinite, ping_atom::value)
      .receive([](health_check& h) { ASSERT_EQ(h.status, "healthy") << h.detail; },
               [](caf::error& e) { FAIL() << to_string(e); });
  }

  void TearDown() override {
    if (!sys_)
      return;
    for (auto& a : {caf::actor_cast<caf::actor>(queue_), query_, connection_})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::kill);
  }

  job_queue_options options(std::map<std::string, job_handler> handlers) {
    job_queue_options opts;
    opts.owner = "test-node";
    // Renewed every second: a loaded machine stalling the renewal for a moment does not let a lease lapse (which
    // would make a test's job run twice). LapsedLeaseIsTakenBack sets its own short lease in the row.
    opts.lease = 3000ms;
    opts.poll = 100ms;
    opts.concurrency = 1;
    opts.backoff_base_ms = 200;
    opts.handlers = std::move(handlers);
    opts.db_query = [q = query_]() -> std::optional<db_query_actor> { return caf::actor_cast<db_query_actor>(q); };
    opts.counters = counters_;
    return opts;
  }

  std::string enqueue(const std::string& kind, int32_t priority = 0, int32_t max_attempts = 3,
                      const std::string& user_id = "") {
    caf::scoped_actor self{*sys_};
    std::string id;
    job_draft draft;
    draft.kind = kind;
    draft.priority = priority;
    draft.max_attempts = max_attempts;
    self->request(query_, caf::infinite, job_enqueue_atom::value, user_id, draft)
      .receive([&](job_record& job) { id = job.id; }, [](caf::error& e) { FAIL() << to_string(e); });
    return id;
  }

  /// One claim of up to `max` jobs, as a job queue makes it; the jobs in dispatch order.
  std::vector<job_record> claim(int32_t max) {
    caf::scoped_actor self{*sys_};
    std::vector<job_record> jobs;
    self->request(query_, caf::infinite, job_claim_atom::value, std::string{"test-node"}, int64_t{60000}, max)
      .receive([&](std::vector<job_record>& claimed) { jobs = std::move(claimed); },
               [](caf::error& e) { FAIL() << to_string(e); });
    return jobs;
  }

  /// Waits (bounded: the queue runs on its own threads) until the job's state is `state`.
  bool wait_state(const std::string& id, const std::string& state, std::chrono::seconds limit = 20s) {
    for (auto deadline = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < deadline;) {
      if (db_.scalar("SELECT state FROM jobs WHERE id = '" + id + "'") == state)
        return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  /// Milliseconds between the end of attempt `a` and the start of attempt `a + 1`, by the database's clock.
  double gap_ms(const std::string& id, int a) {
    return std::stod(db_.scalar("SELECT extract(epoch FROM (n.started_at - p.finished_at)) * 1000 FROM job_attempts p "
                                "JOIN job_attempts n ON n.job_id = p.job_id AND n.attempt = p.attempt + 1 "
                                "WHERE p.job_id = '"
                                + id + "' AND p.attempt = " + std::to_string(a)));
  }

  troupe::testing::scratch_database db_;
  std::unique_ptr<caf::actor_system_config> cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::actor connection_, query_;
  job_queue_actor queue_;
  std::shared_ptr<job_counters> counters_ = std::make_shared<job_counters>();
};

/// A user (jobs.user_id references users).
std::string make_user(troupe::testing::scratch_database& db, const std::string& email) {
  return db.scalar("INSERT INTO users (email, password_hash) VALUES ('" + email + "', 'x') RETURNING id");
}

// Fair dispatch: user A enqueues 20 jobs, then user B one; B's job is among the first two claims, although all of
// A's are older. Then the claims alternate between the two while both have jobs.
TEST_F(JobQueue, ClaimsTakeTurnsBetweenUsers) {
  auto a = make_user(db_, "a@example.com");
  auto b = make_user(db_, "b@example.com");
  std::vector<std::string> a_jobs;
  for (int i = 0; i < 20; ++i)
    a_jobs.push_back(enqueue("test.fair", 0, 3, a));
  auto b_job = enqueue("test.fair", 0, 3, b);
  auto first = claim(1);
  auto second = claim(1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(first[0].id, a_jobs[0]); // the oldest job of the first user served: nobody was served before
  EXPECT_EQ(second[0].id, b_job);    // B's turn, ahead of A's nineteen older jobs
  EXPECT_EQ(claim(1)[0].id, a_jobs[1]);
  // B has nothing runnable now: A's jobs follow one another, in order.
  EXPECT_EQ(claim(1)[0].id, a_jobs[2]);
  auto b_again = enqueue("test.fair", 0, 3, b);
  EXPECT_EQ(claim(1)[0].id, b_again); // B was served longest ago
  EXPECT_EQ(claim(1)[0].id, a_jobs[3]);
}

// One claim of several jobs interleaves the users (each one's next job first), and within a user keeps the order of
// enqueueing; a job of nobody (user_id NULL) takes turns like one more user.
TEST_F(JobQueue, OneClaimInterleavesUsers) {
  auto a = make_user(db_, "a@example.com");
  auto b = make_user(db_, "b@example.com");
  std::vector<std::string> a_jobs, b_jobs;
  for (int i = 0; i < 5; ++i)
    a_jobs.push_back(enqueue("test.fair", 0, 3, a));
  for (int i = 0; i < 5; ++i)
    b_jobs.push_back(enqueue("test.fair", 0, 3, b));
  auto system = enqueue("test.fair");
  std::vector<std::string> ids;
  for (const auto& job : claim(5))
    ids.push_back(job.id);
  EXPECT_EQ(ids, (std::vector<std::string>{a_jobs[0], b_jobs[0], system, a_jobs[1], b_jobs[1]}));
}

// Priority comes first: a higher-priority job runs before any lower one, whoever's turn it is; users take turns
// within a priority.
TEST_F(JobQueue, PriorityComesBeforeTurns) {
  auto a = make_user(db_, "a@example.com");
  auto b = make_user(db_, "b@example.com");
  auto a_low = enqueue("test.fair", 0, 3, a);
  auto b_low = enqueue("test.fair", 0, 3, b);
  auto a_high_1 = enqueue("test.fair", 5, 3, a);
  auto a_high_2 = enqueue("test.fair", 5, 3, a);
  auto b_high = enqueue("test.fair", 5, 3, b);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(claim(1).at(0).id);
  // Then the low ones: B was served longer ago than A (whose second high job ran last).
  EXPECT_EQ(ids, (std::vector<std::string>{a_high_1, b_high, a_high_2, b_low, a_low}));
}

// Claimers on several connections (as several nodes) claiming at once never take the same job, and take them all.
TEST_F(JobQueue, ConcurrentClaimersNeverShareAJob) {
  std::vector<std::string> users;
  for (int u = 0; u < 3; ++u)
    users.push_back(make_user(db_, "u" + std::to_string(u) + "@example.com"));
  std::set<std::string> enqueued;
  for (int i = 0; i < 60; ++i)
    enqueued.insert(enqueue("test.fair", i % 2, 3, users[static_cast<size_t>(i % 3)]));
  auto other = caf::actor_cast<caf::actor>(spawn_database_connection(*sys_, database_options{db_.url(), 2000ms}));
  std::mutex mutex;
  std::vector<std::string> claimed;
  auto claimer = [&](caf::actor connection, const std::string& owner) {
    caf::scoped_actor self{*sys_};
    for (bool more = true; more;) {
      self->request(connection, caf::infinite, job_claim_atom::value, owner, int64_t{60000}, int32_t{3})
        .receive(
          [&](std::vector<job_record>& jobs) {
            more = !jobs.empty();
            std::lock_guard<std::mutex> guard{mutex};
            for (auto& job : jobs)
              claimed.push_back(job.id);
          },
          [&](caf::error& e) {
            ADD_FAILURE() << to_string(e);
            more = false;
          });
    }
  };
  std::thread first{claimer, connection_, "node-1"};
  std::thread second{claimer, other, "node-2"};
  first.join();
  second.join();
  caf::anon_send_exit(other, caf::exit_reason::kill);
  EXPECT_EQ(claimed.size(), enqueued.size());
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()), enqueued);
}

// A processor that always fails: three attempts, then failed; each retry waits at least base * 2^(attempt-1).
TEST_F(JobQueue, FailingJobRetriesWithExponentialBackoff) {
  std::atomic<int> calls{0};
  auto id = enqueue("test.fail");
  queue_ =
    spawn_job_queue(*sys_, options({{"test.fail", handler_of([&](const job_record& job) -> caf::expected<std::string> {
                                       ++calls;
                                       return make_error(service_error::unavailable,
                                                         "attempt " + std::to_string(job.attempts) + " broke");
                                     })}}));
  ASSERT_TRUE(wait_state(id, "failed"));
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(db_.scalar("SELECT attempts FROM jobs WHERE id = '" + id + "'"), "3");
  EXPECT_EQ(db_.scalar("SELECT error FROM jobs WHERE id = '" + id + "'"), "attempt 3 broke");
  EXPECT_EQ(
    db_.scalar("SELECT string_agg(outcome, ',' ORDER BY attempt) FROM job_attempts WHERE job_id = '" + id + "'"),
    "failed,failed,failed");
  EXPECT_GE(gap_ms(id, 1), 200.0);
  EXPECT_GE(gap_ms(id, 2), 400.0);
  EXPECT_EQ(counters_->retried.load(), 2u);
  EXPECT_EQ(counters_->failed.load(), 1u);
}

// A flaky processor succeeds on its third attempt: the job is done with its result and progress 1.
TEST_F(JobQueue, FlakyJobSucceedsOnRetry) {
  auto id = enqueue("test.flaky");
  queue_ =
    spawn_job_queue(*sys_, options({{"test.flaky", handler_of([](const job_record& job) -> caf::expected<std::string> {
                                       if (job.attempts < 3)
                                         return make_error(service_error::unavailable, "not yet");
                                       return std::string{R"({"ok":true})"};
                                     })}}));
  ASSERT_TRUE(wait_state(id, "done"));
  EXPECT_EQ(db_.scalar("SELECT attempts || ' ' || progress || ' ' || result::text FROM jobs WHERE id = '" + id + "'"),
            R"(3 1 {"ok": true})");
  EXPECT_EQ(db_.scalar("SELECT error IS NULL FROM jobs WHERE id = '" + id + "'"), "t");
}

// A runner that dies without answering (an exception, a kill) takes its request with it: its attempt fails, and the
// job is retried, rather than staying running on this node, its lease renewed, for ever.
TEST_F(JobQueue, ARunnerThatDiesUnansweredFailsItsAttempt) {
  auto id = enqueue("test.dies", 0, 2);
  job_handler dies = [](caf::local_actor* queue, const job_record&) -> job_runner_actor {
    return queue->spawn<caf::linked>([](job_runner_actor::pointer self) -> job_runner_actor::behavior_type {
      return {
        [self](job_run_atom, const job_record&) -> caf::result<std::string> {
          auto promise = self->make_response_promise<std::string>();
          self->quit(make_error(service_error::internal, "the runner crashed"));
          return promise;
        },
      };
    });
  };
  queue_ = spawn_job_queue(*sys_, options({{"test.dies", dies}}));
  ASSERT_TRUE(wait_state(id, "failed"));
  EXPECT_EQ(db_.scalar("SELECT attempts FROM jobs WHERE id = '" + id + "'"), "2");
  EXPECT_NE(db_.scalar("SELECT error FROM jobs WHERE id = '" + id + "'").find("stopped without an answer"),
            std::string::npos);
}

// invalid_input means the input can never work: one attempt, then failed; so does a kind nobody handles.
TEST_F(JobQueue, InvalidInputFailsAtOnce) {
  auto bad = enqueue("test.bad");
  auto unknown = enqueue("test.unknown");
  auto opts = options({{"test.bad", handler_of([](const job_record&) -> caf::expected<std::string> {
                          return make_error(service_error::invalid_input, "a zip bomb");
                        })}});
  opts.concurrency = 2;
  queue_ = spawn_job_queue(*sys_, opts);
  ASSERT_TRUE(wait_state(bad, "failed"));
  ASSERT_TRUE(wait_state(unknown, "failed"));
  EXPECT_EQ(db_.scalar("SELECT attempts || ' ' || error FROM jobs WHERE id = '" + bad + "'"), "1 a zip bomb");
  EXPECT_EQ(db_.scalar("SELECT attempts FROM jobs WHERE id = '" + unknown + "'"), "1");
}

// Higher priority runs first.
TEST_F(JobQueue, HigherPriorityRunsFirst) {
  std::mutex mutex;
  std::vector<std::string> order;
  auto low = enqueue("test.order", 0);
  auto high = enqueue("test.order", 10);
  auto middle = enqueue("test.order", 5);
  queue_ =
    spawn_job_queue(*sys_, options({{"test.order", handler_of([&](const job_record& job) -> caf::expected<std::string> {
                                       std::lock_guard<std::mutex> guard{mutex};
                                       order.push_back(job.id);
                                       return std::string{"{}"};
                                     })}}));
  ASSERT_TRUE(wait_state(low, "done"));
  std::lock_guard<std::mutex> guard{mutex};
  EXPECT_EQ(order, (std::vector<std::string>{high, middle, low}));
}

// A job whose worker (or node) died without answering is taken back once its lease lapses, and runs again.
TEST_F(JobQueue, LapsedLeaseIsTakenBack) {
  auto id = enqueue("test.ok");
  // As if another node had claimed it and died: running, leased until a moment from now.
  db_.execute("UPDATE jobs SET state = 'running', attempts = 1, lease_owner = 'dead-node', "
              "lease_until = now() + interval '300 milliseconds' WHERE id = '"
              + id + "'");
  db_.execute("INSERT INTO job_attempts (job_id, attempt, owner) VALUES ('" + id + "', 1, 'dead-node')");
  queue_ = spawn_job_queue(*sys_, options({{"test.ok", handler_of([](const job_record&) -> caf::expected<std::string> {
                                              return std::string{"{}"};
                                            })}}));
  ASSERT_TRUE(wait_state(id, "done"));
  EXPECT_EQ(db_.scalar("SELECT attempts FROM jobs WHERE id = '" + id + "'"), "2");
  EXPECT_EQ(db_.scalar("SELECT outcome || ' ' || owner FROM job_attempts WHERE job_id = '" + id + "' AND attempt = 1"),
            "lease_expired dead-node");
  EXPECT_EQ(db_.scalar("SELECT outcome || ' ' || owner FROM job_attempts WHERE job_id = '" + id + "' AND attempt = 2"),
            "done test-node");
}

// A lease that cannot be renewed (another node took the job) stops the worker; nothing more is recorded by it.
TEST_F(JobQueue, LostLeaseStopsTheWorker) {
  auto id = enqueue("test.hang");
  queue_ =
    spawn_job_queue(*sys_, options({{"test.hang", handler_of([](const job_record&) -> caf::expected<std::string> {
                                       return caf::make_error(caf::sec::request_timeout); // hangs
                                     })}}));
  ASSERT_TRUE(wait_state(id, "running"));
  db_.execute("UPDATE jobs SET lease_owner = 'thief' WHERE id = '" + id + "'");
  for (int i = 0; i < 500 && counters_->lost.load() == 0; ++i) // noticed at the next renewal (every lease / 3)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(counters_->lost.load(), 1u);
  caf::scoped_actor self{*sys_};
  self->request(queue_, caf::infinite, jobs_running_atom::value)
    .receive([](std::vector<std::string>& ids) { EXPECT_TRUE(ids.empty()); },
             [](caf::error& e) { FAIL() << to_string(e); });
  EXPECT_EQ(db_.scalar("SELECT state || ' ' || lease_owner FROM jobs WHERE id = '" + id + "'"), "running thief");
}

// On shutdown the queue gives its running jobs back without counting the attempt, so they run again at once.
TEST_F(JobQueue, ShutdownReleasesRunningJobs) {
  auto id = enqueue("test.hang");
  queue_ =
    spawn_job_queue(*sys_, options({{"test.hang", handler_of([](const job_record&) -> caf::expected<std::string> {
                                       return caf::make_error(caf::sec::request_timeout);
                                     })}}));
  ASSERT_TRUE(wait_state(id, "running"));
  caf::anon_send_exit(queue_, caf::exit_reason::user_shutdown);
  ASSERT_TRUE(wait_state(id, "retrying"));
  EXPECT_EQ(db_.scalar("SELECT attempts FROM jobs WHERE id = '" + id + "'"), "0");
  EXPECT_EQ(db_.scalar("SELECT outcome FROM job_attempts WHERE job_id = '" + id + "'"), "released");
}

} // namespace
