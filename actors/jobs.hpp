#pragma once
// The job queue: runs durable background jobs (table jobs, persistence/jobs.hpp) at least once.
//
// The job queue ("jobs.queue", job_queue_name) answers job_queue_actor; each job's runner job_runner_actor (below).
//
// The queue claims runnable jobs from PostgreSQL (highest priority first, then users in turn: fair between users,
// persistence/jobs.hpp; SKIP LOCKED: nodes never take the same job) up to `concurrency` at once, each with a lease
// it renews every lease/3 while the job runs. For each job it
// spawns a runner from the handler of the job's kind (linked: runners end with the queue) and asks it
// (job_run_atom, job_record) -> result JSON. Then:
//   * a result: the job is done;
//   * an error: the attempt failed. service_error::invalid_input means the input can never work (a zip bomb): the
//     job fails at once. Anything else (including the runner dying) retries after backoff_base * 2^(attempt-1),
//     until max_attempts, then fails;
//   * a lease that could not be renewed (another node took the job after this one stalled): the runner is stopped
//     and nothing more is written for that attempt.
// A job whose runner or node died without an answer keeps its row "running" until the lease lapses; the next claim
// (on any node, every `poll` at the latest) takes it back. Hence at least once: runners must be idempotent.
// On shutdown the queue gives its running jobs back (not counted as an attempt) so a restarted node resumes them at
// once rather than after the lease.

#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "introspect/messages.hpp"
#include "ops/span_queue.hpp"
#include "persistence/queries.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/typed_actor.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

/// The job queue's interface.
using job_queue_actor = caf::typed_actor<
  /// Runnable jobs may be waiting: claim now (an upload just completed, a plan was asked for).
  caf::reacts_to<jobs_kick_atom>,
  /// The ids of the jobs this node runs now.
  caf::replies_to<jobs_running_atom>::with<std::vector<std::string>>, mailbox_size_request>;

/// A job runner's interface: it answers its one job once, with the result JSON or an error
/// (service_error::invalid_input: the job can never work, it fails at once).
using job_runner_actor = caf::typed_actor<caf::replies_to<job_run_atom, job_record>::with<std::string>>;

/// The queue's name in the directory.
inline const actor_name<job_queue_actor> job_queue_name{"jobs.queue"};

/// Spawns the runner of one job, linked to the queue (`queue->spawn<caf::linked + ...>(...)`).
using job_handler = std::function<job_runner_actor(caf::local_actor* queue, const job_record& job)>;

struct job_counters {
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> retried{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> lost{0};   // leases lost while running
  std::atomic<int64_t> running{0}; // each running job holds one (actors/guards.hpp)
};

struct job_queue_options {
  std::string owner; // this node's id in leases: unique per process
  std::chrono::milliseconds lease{30000};
  std::chrono::milliseconds poll{1000};
  size_t concurrency = 2;
  int64_t backoff_base_ms = 2000;
  std::map<std::string, job_handler> handlers; // by job kind
  std::function<std::optional<db_query_actor>()> db_query;
  std::shared_ptr<job_counters> counters = std::make_shared<job_counters>();
  /// Each attempt is a trace of its own (job_record::traceparent), recorded with probability `sample_ratio`
  /// (tracing.sample_ratio) into `spans` (null: none): a CONSUMER span "job <kind>" for the attempt, with its
  /// runner's steps and calls as children.
  std::shared_ptr<tracing::span_queue> spans;
  double sample_ratio = 1;
};

job_queue_actor spawn_job_queue(caf::actor_system& sys, job_queue_options options);

/// A node id for leases: host name, process id and a random suffix.
std::string make_node_id();

/// Writes troupe_job_attempts_total{outcome} and troupe_jobs_running from the queue's counters.
void add_job_collector(metrics_registry& metrics, std::shared_ptr<job_counters> counters);

} // namespace troupe
