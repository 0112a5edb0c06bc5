#pragma once
// Resumable uploads (tus 1.0.0 semantics; http/upload_routes.hpp speaks the protocol): one session actor per upload,
// reached through the upload router; a pool of detached I/O actors that append bytes to disk; an expiry sweeper.
//
// upload router ("uploads.router")
//   (upload_new_atom, user_id, upload_spec) -> upload_status       creates the upload (PostgreSQL row, expiry,
//                                                                  its length reserved against the user's storage
//                                                                  quota: storage_quota_exceeded over it) and its
//                                                                  session; an empty upload completes at once,
//                                                                  without a job (an empty file is registered as
//                                                                  it completes)
//   (upload_patch_atom, id, user_id, upload_chunk) -> upload_status
//   (upload_head_atom, id, user_id) -> upload_status
//   (upload_delete_atom, id, user_id) -> bool                      all three: to the upload's session, loaded from
//                                                                  PostgreSQL first if needed
//   (upload_forget_atom, id)                                       stops the session of an expired upload
//   (mailbox_atom) -> size_t
//
// upload session (one per live upload, passivated when idle; it serialises everything that happens to its upload)
//   PATCH: not the caller's / deleted / expired -> not_found; another PATCH running -> locked; offset other than the
//   upload's -> conflict; past Upload-Length -> payload_too_large. Otherwise an I/O actor verifies the checksum
//   (checksum_mismatch: nothing stored), drops any bytes beyond the acknowledged offset, writes and fsyncs; then the
//   new offset is committed in PostgreSQL, and only then answered. The last chunk commits the offset, the completion
//   and the processing job in one transaction (persistence/uploads.hpp) before the answer, then kicks the job queue.
//   DELETE: marks the upload deleted in PostgreSQL (an unfinished one gives its storage reservation back), removes
//   unfinished bytes, stops the session.
//
// upload I/O actors ("uploads.io.<i>", detached: they block on the disk)
//   (upload_write_atom, path, upload_chunk) -> int64_t new size
//   (upload_remove_atom, path) -> bool (false if there was nothing)
//
// upload sweeper ("uploads.sweeper")
//   every sweep interval: marks expired unfinished uploads deleted (PostgreSQL), removes their bytes and stops their
//   sessions, 100 at a time.
//
// The bytes of an upload in progress live at <dir>/incoming/<upload id>; PostgreSQL's offset is the truth of what
// is stored (a crash between fsync and COMMIT leaves bytes past it, which the next write drops).
//
// The "uploads" supervisor (one_for_one) holds the upload subsystem and the background jobs that process uploads, in
// start order: uploads.io.<i>, uploads.router, uploads.sweeper, the file-chunk processors jobs.processor.<i>
// (actors/processing.hpp), then jobs.queue (actors/jobs.hpp), which runs upload jobs on them.

#include "actors/jobs.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace troupe {

/// Counters for metrics, readable from any thread.
struct upload_counters {
  std::atomic<uint64_t> created{0};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> expired{0};
  std::atomic<uint64_t> terminated{0};
  std::atomic<uint64_t> bytes{0}; // bytes stored (fsynced and committed)
  std::atomic<int64_t> sessions{0}; // each live upload session holds one (actors/guards.hpp)
};

struct upload_options {
  std::string dir; // uploads.dir, absolute
  int64_t expire_ms = 86400000;
  std::chrono::milliseconds session_idle{60000};
  std::chrono::milliseconds sweep_interval{60000};
  int32_t job_max_attempts = 3;
  /// Live incarnations of the I/O actors (count `io_actors`), "db.query", the router, the job queue.
  size_t io_actors = 1;
  std::function<std::optional<caf::actor>(size_t)> io;
  std::function<std::optional<caf::actor>()> db_query;
  std::function<std::optional<caf::actor>()> router;
  std::function<std::optional<job_queue_actor>()> job_queue;
  /// Wall clock in unix milliseconds (expiry); the system clock when empty.
  std::function<int64_t()> now_ms;
  std::shared_ptr<upload_counters> counters = std::make_shared<upload_counters>();
};

caf::actor spawn_upload_router(caf::actor_system& sys, upload_options options);
caf::actor spawn_upload_io(caf::actor_system& sys);
caf::actor spawn_upload_sweeper(caf::actor_system& sys, upload_options options);

/// Where bytes live under uploads.dir.
std::string incoming_dir(const std::string& dir);
std::string staging_dir(const std::string& dir);
std::string repositories_dir(const std::string& dir);

/// Creates uploads.dir and its three subdirectories (blocking; at start-up). Returns "" or why it failed.
std::string prepare_upload_dirs(const std::string& dir);

/// uploads.dir made absolute (the working directory may change), without a trailing slash.
std::string absolute_uploads_dir(const std::string& configured);

/// The "uploads" supervisor above, from the uploads.*, jobs.* and http.threads (I/O actors) settings, storing bytes
/// under `dir` (absolute_uploads_dir, prepared). Its actors reach db.query and each other by name in context.names;
/// the collectors of the upload and job counters go into context.metrics; with `spans` (tracing.otlp_endpoint) jobs
/// are traced (actors/jobs.hpp). `more_handlers` are the job kinds other
/// layers run (the "plan" jobs of http/plan_job.hpp), beside the "upload" jobs of actors/processing.hpp.
supervisor_config make_uploads_supervisor(const config::settings& settings, const supervision_context& context,
                                          const std::string& dir,
                                          const std::map<std::string, job_handler>& more_handlers = {},
                                          std::shared_ptr<tracing::span_queue> spans = nullptr);

/// Writes the troupe_upload* families from the uploads' counters.
void add_upload_collector(metrics_registry& metrics, std::shared_ptr<upload_counters> counters);

/// The current time in unix milliseconds.
int64_t unix_now_ms();

} // namespace troupe
