#pragma once
// AI plans for repositories (issue 18): asked for, read, listed and deleted. The work is a "plan" job
// (http/plan_job.hpp); its progress streams from GET /api/jobs/{id}/events.
//
//   POST   /api/repositories/{id}/plans {prompt, title?, model?}
//          202 {object:"job", job_id, state:"queued", events:"/api/jobs/<job>/events"}, Location: /api/jobs/<job>;
//          404 unless the repository is the caller's; 400 naming the field; 429 when the caller has
//          plans.max_active_per_user plan jobs queued or running. The job's result names the plan: {plan_id, title,
//          sections}. Plan jobs have priority -1: an upload's processing waiting for a slot goes first.
//   GET    /api/plans/{id}                      200 {id, repository_id, job_id, title, overview, sections:[{title,
//                                               files, steps}], metadata:{model, prompt_tokens, completion_tokens,
//                                               total_tokens, model_calls, cached, retrieved:[{path, start_line,
//                                               end_line}]}, prompt, created_at}
//   GET    /api/repositories/{id}/plans         200 {object:"list", data:[plans as above]}: the latest 50 (?limit=
//                                               1..50), newest first
//   DELETE /api/plans/{id}                      204
//
// Everything is the caller's: another user's plan or repository answers 404.

#include "http/cors.hpp"
#include "http/router.hpp"

#include "actors/jobs.hpp"
#include "actors/persistence_supervisor.hpp"

#include <memory>
#include <string>

namespace troupe::http {

class authenticator;

struct plan_route_options {
  actor_name<db_query_actor> db_query = db_query_name;
  actor_name<job_queue_actor> job_queue = job_queue_name;
  int32_t max_attempts = 3; // jobs.max_attempts
  int32_t max_active = 4;   // plans.max_active_per_user
  std::shared_ptr<cors_policy> cors;
};

void add_plan_routes(router& routes, authenticator& auth, const plan_route_options& options);

} // namespace troupe::http
