#pragma once
// Resumable uploads (tus 1.0.0 semantics; http/upload_routes.hpp speaks the protocol): one session actor per upload,
// reached through the upload router; a pool of detached I/O actors that append bytes to disk; an expiry sweeper.
//
// upload router ("uploads.router", upload_router_actor below): creates an upload (PostgreSQL row, expiry, its length
//   reserved against the user's storage quota: storage_quota_exceeded over it) and its session; an empty upload
//   completes at once, without a job (an empty file is registered as it completes). PATCH, HEAD and DELETE go to the
//   upload's session (upload_session_actor), loaded from PostgreSQL first if needed; "forget" stops the session of
//   an expired upload.
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
// upload I/O actors ("uploads.io.<i>", detached: they block on the disk; upload_io_actor below)
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

#include "actors/directory.hpp"
#include "actors/jobs.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/supervisor.hpp"
#include "config/options.hpp"
#include "persistence/queries.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace troupe {

/// An upload session's interface: (id, user_id, ...) as the router is asked, so the router hands requests over as is.
using upload_session_actor = caf::typed_actor<
  /// (id, user_id, chunk): stores the chunk at the upload's offset; answered once it is fsynced and committed.
  caf::replies_to<upload_patch_atom, std::string, std::string, upload_chunk>::with<upload_status>,
  /// (id, user_id): where the upload stands.
  caf::replies_to<upload_head_atom, std::string, std::string>::with<upload_status>,
  /// (id, user_id): marks it deleted (an unfinished one gives its storage back) and removes unfinished bytes.
  caf::replies_to<upload_delete_atom, std::string, std::string>::with<bool>,
  /// (id): the upload expired: the session ends (after the request under way, if any).
  caf::reacts_to<upload_forget_atom, std::string>, mailbox_size_request>;

/// The upload router's interface: a session's, plus creating uploads.
using upload_router_actor = upload_session_actor::extend<
  /// (user_id, spec): the new upload's status.
  caf::replies_to<upload_new_atom, std::string, upload_spec>::with<upload_status>>;

/// An upload I/O actor's interface.
using upload_io_actor = caf::typed_actor<
  /// (path, chunk): the file's new size, once written and fsynced (bytes beyond chunk.offset are dropped first).
  caf::replies_to<upload_write_atom, std::string, upload_chunk>::with<int64_t>,
  /// (path): false if there was nothing to remove.
  caf::replies_to<upload_remove_atom, std::string>::with<bool>, mailbox_size_request>;

/// The sweeper answers nothing but its mailbox size: it works on its own timer.
using upload_sweeper_actor = caf::typed_actor<mailbox_size_request>;

/// Names in the directory.
inline const actor_name<upload_router_actor> upload_router_name{"uploads.router"};
actor_name<upload_io_actor> upload_io_name(size_t i); // "uploads.io.<i>"

/// Counters for metrics, readable from any thread.
struct upload_counters {
  std::atomic<uint64_t> created{0};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> expired{0};
  std::atomic<uint64_t> terminated{0};
  std::atomic<uint64_t> bytes{0};   // bytes stored (fsynced and committed)
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
  std::function<std::optional<upload_io_actor>(size_t)> io;
  std::function<std::optional<db_query_actor>()> db_query;
  std::function<std::optional<upload_router_actor>()> router;
  std::function<std::optional<job_queue_actor>()> job_queue;
  /// Wall clock in unix milliseconds (expiry); the system clock when empty.
  std::function<int64_t()> now_ms;
  std::shared_ptr<upload_counters> counters = std::make_shared<upload_counters>();
};

upload_router_actor spawn_upload_router(caf::actor_system& sys, upload_options options);
upload_io_actor spawn_upload_io(caf::actor_system& sys);
upload_sweeper_actor spawn_upload_sweeper(caf::actor_system& sys, upload_options options);

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
