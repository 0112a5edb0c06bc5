#pragma once
// The runner of "plan" jobs: makes an AI plan for a repository (issue 18), through the gateway's own path.
//
// plan job runner (one per running "plan" job; event-based, linked to the job queue: it never blocks)
//   (job_run_atom, job_record) -> std::string result JSON {"plan_id", "title", "sections"}
//   The job's payload is {"repository_id", "prompt", "title"?, "model"?} (POST /api/repositories/{id}/plans).
//   1. retrieving: the repository's segments most relevant to the prompt, by the full-text search (db.query,
//      repo_search_atom with plans.context_segments hits of plan_search_query(prompt)).
//   2. generating: one chat completion, made as a request of the job's user to the gateway's own route
//      (POST /v1/chat/completions, through the generation gate), signed with a short-lived access token of that
//      user: so it is authenticated, rate-limited, metered (quota, tokens, spend, usage_events), cached and
//      breaker-protected exactly like the user's own calls. Its answer is checked (http/plans.hpp); one that does
//      not fit is asked for once more with what was wrong (that call with X-Troupe-Cache: off, so it reaches the
//      model and its answer is not cached); a second misfit fails the job for good.
//   3. storing: the plan (persistence/plans.hpp; a retried job finds the plan it stored), with metadata: the model,
//      the tokens of every attempt, the retrieved files, the attempts and whether the answer came from the cache.
// Each step is recorded in the job's detail ({"step": ...}), so GET /api/jobs/{id}/events shows it.
// Failures: a repository deleted meanwhile, a refusal of the gateway that another attempt would meet again (400,
// 401, 402, 403, 404, 413), a second misfit and a route handler that throws fail for good; the rest (429, 5xx,
// timeouts, a database restarting, a server starting or draining) retries the job after its backoff.

#include "http/server.hpp"

#include "actors/jobs.hpp"
#include "persistence/queries.hpp"

#include <caf/actor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace troupe::http {

class jwt_codec;

/// What plan jobs need from the HTTP side. The job queue starts before the routes exist, so the runtime is set
/// once they do (set()); a job claimed before that is retried after its backoff.
class plan_jobs {
public:
  struct runtime {
    std::function<void(std::shared_ptr<responder>)> chat; // the gateway's chat completions route, with its gate
    std::shared_ptr<jwt_codec> jwt;                       // signs the job's calls as its user
    std::function<int64_t()> now_unix;                    // for the tokens; the system clock when empty
    std::shared_ptr<tracing::span_queue> spans;           // the calls' spans (tracing.otlp_endpoint; else null)
  };

  struct settings {
    std::string default_model = "gpt-4o-mini";     // plans.model
    int32_t context_segments = 12;                 // plans.context_segments
    std::chrono::milliseconds call_timeout{70000}; // a model call's answer, beyond the gateway's own limit
  };

  plan_jobs(settings s, std::function<std::optional<db_query_actor>()> db_query)
    : settings_(std::move(s)), db_query_(std::move(db_query)) {}

  void set(runtime r) {
    std::lock_guard<std::mutex> guard{mutex_};
    runtime_ = std::move(r);
  }
  /// The HTTP side is going away (shutdown): calls made from now on fail, and their jobs are retried.
  void clear() {
    std::lock_guard<std::mutex> guard{mutex_};
    runtime_.reset();
  }
  std::optional<runtime> get() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return runtime_;
  }
  const settings& options() const { return settings_; }
  std::optional<db_query_actor> db() const { return db_query_ ? db_query_() : std::nullopt; }

private:
  settings settings_;
  std::function<std::optional<db_query_actor>()> db_query_;
  mutable std::mutex mutex_;
  std::optional<runtime> runtime_;
};

/// The job queue's handler for jobs of kind "plan".
job_handler plan_job_handler(std::shared_ptr<plan_jobs> jobs);

} // namespace troupe::http
