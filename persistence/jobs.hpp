#pragma once
// The durable job queue (tables jobs and job_attempts) behind typed messages. Registered by
// troupe::register_message_types. Send every message to "db.query"; conventions as in uploads.hpp.
//
// Life of a job: queued -> running (claimed by a node with a lease) -> done | retrying (run_at later, backoff) |
// failed. A running job whose lease lapses (its worker or node died) goes back to retrying, or to failed when it
// had its last attempt. Every transition of a running job names the lease owner and the attempt it expects, so a
// node that lost its lease can never overwrite the work of the node that took over.

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

/// A job to enqueue.
struct job_draft {
  std::string kind;           // selects the handler, e.g. "upload"
  std::string payload = "{}"; // a JSON object
  int32_t priority = 0;       // higher runs first
  int32_t max_attempts = 3;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_draft& x) {
  return f(caf::meta::type_name("job_draft"), x.kind, x.payload, x.priority, x.max_attempts);
}

struct job_record {
  std::string id;
  std::string user_id;
  std::string kind;
  std::string payload;
  std::string state; // queued, running, retrying, done, failed
  int32_t priority = 0;
  int32_t attempts = 0; // attempts started, the running one included
  int32_t max_attempts = 0;
  int64_t run_at_ms = 0;
  std::string lease_owner;
  int64_t lease_until_ms = 0;
  double progress = 0; // 0..1
  std::string error;   // why the last attempt failed
  std::string result;  // a JSON document once done ("" before)
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  int64_t finished_at_ms = 0;
  // What the runner is doing (a JSON object: step, files and bytes done and in all); kept when the job ends (done,
  // or failed for good: where it stopped), reset to {} when an attempt ends and another will follow.
  std::string detail = "{}";
  // The W3C traceparent of the attempt under way (actors/jobs.hpp: the queue starts a trace per attempt; its steps
  // and calls join it). Not stored: set by the queue when it hands the job to its runner.
  std::string traceparent{};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_record& x) {
  return f(caf::meta::type_name("job_record"), x.id, x.user_id, x.kind, x.payload, x.state, x.priority, x.attempts,
           x.max_attempts, x.run_at_ms, x.lease_owner, x.lease_until_ms, x.progress, x.error, x.result, x.created_at_ms,
           x.updated_at_ms, x.finished_at_ms, x.detail, x.traceparent);
}

/// One attempt of a job.
struct job_attempt {
  int32_t attempt = 0;
  std::string owner;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0; // 0 while running
  std::string outcome;        // "", done, failed, lease_expired, released
  std::string error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_attempt& x) {
  return f(caf::meta::type_name("job_attempt"), x.attempt, x.owner, x.started_at_ms, x.finished_at_ms, x.outcome,
           x.error);
}

/// (job_enqueue_atom, user_id, job_draft) -> job_record; user_id "" = nobody's.
using job_enqueue_atom = caf::atom_constant<caf::atom("jobenq")>;
/// (job_claim_atom, owner, int64_t lease_ms, int32_t max) -> std::vector<job_record>: first takes back running jobs
/// whose lease lapsed (retrying, or failed after their last attempt), then claims up to max runnable jobs (queued or
/// retrying with run_at passed), with SKIP LOCKED so concurrent claimers (nodes) never take the same job. A claimed
/// job is running, owned by `owner` until now + lease_ms, with its attempts counted up; it is returned in dispatch
/// order, which is fair between users:
///   1. higher priority first: a job of a higher priority runs before any job of a lower one (priorities are set
///      by Troupe, never by clients, so they cannot be used to jump the queue);
///   2. within a priority, users take turns: every user's next job before anyone's second, and between users, the
///      one whose jobs were claimed longest ago (or never) first (table job_turns, shared by all nodes); jobs of
///      nobody (user "") take turns as one more user;
///   3. within a user and a priority, earliest run_at first (enqueueing order, retries at their backoff).
/// So one user's thousand queued archives delay another user's single upload by one job at most per free worker.
using job_claim_atom = caf::atom_constant<caf::atom("jobclaim")>;
/// (job_renew_atom, owner, std::vector<std::string> ids, int64_t lease_ms) -> std::vector<std::string>: extends
/// the leases `owner` still holds; the ids renewed (a missing one was lost).
using job_renew_atom = caf::atom_constant<caf::atom("jobrenew")>;
/// (job_finish_atom, id, owner, int32_t attempt, result_json) -> job_record (done); conflict if the lease was lost.
using job_finish_atom = caf::atom_constant<caf::atom("jobfinish")>;
/// (job_fail_atom, id, owner, int32_t attempt, error, bool permanent, int64_t backoff_base_ms) -> job_record: failed
/// when `permanent` or out of attempts (its files not done yet are marked failed too), else retrying with run_at =
/// now + backoff_base_ms * 2^(attempts - 1); conflict if the lease was lost.
using job_fail_atom = caf::atom_constant<caf::atom("jobfail")>;
/// (job_release_atom, owner, std::vector<std::string> ids) -> int64_t: gives running jobs back without counting
/// the attempt (a node shutting down); the number released.
using job_release_atom = caf::atom_constant<caf::atom("jobrelease")>;
/// (job_get_atom, user_id, id) -> job_record; not_found unless the job is the user's.
using job_get_atom = caf::atom_constant<caf::atom("jobget")>;
/// (job_progress_atom, id, owner, double progress, detail_json) -> bool: records what a running job is doing (its
/// progress 0..1 and a JSON object such as {"step":"expanding"}); conflict if the lease was lost.
using job_progress_atom = caf::atom_constant<caf::atom("jobprogres")>;
/// (job_states_atom, std::vector<std::string> ids) -> std::vector<job_record>: the jobs that exist among `ids`, of
/// any user (callers check ownership first), in no particular order. One statement for every job a node watches.
using job_states_atom = caf::atom_constant<caf::atom("jobstates")>;
/// (job_attempts_atom, id) -> std::vector<job_attempt>, in order.
using job_attempts_atom = caf::atom_constant<caf::atom("jobattempt")>;

} // namespace troupe
