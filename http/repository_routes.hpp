#pragma once
// Repositories, their processed files, full-text search over them, and background jobs.
//
//   POST /api/repositories {name}            201 the repository                   409 if the caller has that name
//   GET  /api/repositories                   200 {repositories:[...]} by name
//   GET  /api/repositories/{id}              200 the repository with file counts (files, bytes, files_done, ...)
//   GET  /api/repositories/{id}/files        200 {files:[{path,size,sha256,lines,language,binary,status,error}],
//        ?limit=1..1000 (100) &after=<path>      next_after}: by path, one page; pass next_after for the next one
//   GET  /api/repositories/{id}/search       200 {query, results:[{path,start_line,end_line,rank,snippet}]}:
//        ?q=<words, "phrase", -not, or> &limit=1..100 (20)   ranked full-text search over processed text
//   GET  /api/jobs/{id}                      200 {id, kind, state, attempts, max_attempts, progress, error, result,
//                                                 detail:{step, files_done, files_total, bytes_done,
//                                                 bytes_total}, attempt_log:[...], ...}
//   GET  /api/jobs/{id}/events               200 text/event-stream: the job's progress as it happens, each event a
//                                            whole snapshot (the fields above without attempt_log): "progress"
//                                            while queued, running or retrying, then "done" (with result) or
//                                            "failed" (with error), and the stream ends. ": keep-alive" while
//                                            nothing changes; "error" {message} if the job is deleted or the server
//                                            stops watching (reconnect). 429 past jobs.max_event_streams_per_user,
//                                            503 past jobs.max_event_streams (actors/job_events.hpp).
//
// Everything is the caller's: another user's repository or job answers 404. Reads go to "db.query".

#include "actors/persistence_supervisor.hpp"
#include "http/cors.hpp"
#include "http/router.hpp"

#include <memory>
#include <string>

namespace troupe::http {

class authenticator;

struct repository_route_options {
  actor_name<db_query_actor> db_query = db_query_name;
  std::string job_events = "jobs.events";
  std::shared_ptr<cors_policy> cors;
};

void add_repository_routes(router& routes, authenticator& auth, const repository_route_options& options);

} // namespace troupe::http
