#pragma once
// Processing of completed uploads: the pool of file-chunk processors and the runner of "upload" jobs.
//
// file-chunk processor ("jobs.processor.<i>", detached: CPU-bound)
//   (chunk_atom, std::string bytes) -> chunk_summary       actors/text_analysis.hpp: newlines, NUL and control
//                                                          bytes, ~2 KiB text segments cut at line boundaries
//
// upload job runner (one per running "upload" job, detached: it blocks on files and libarchive; linked to the queue)
//   (job_run_atom, job_record) -> std::string result JSON  {"files","bytes","binary_files","archive","skipped"}
//   1. Loads the upload (payload {"upload_id"}). Its bytes are at <dir>/incoming/<upload id>.
//   2. An archive (.tar, .tar.gz/.tgz, .zip) is expanded into <dir>/staging/<job id> under the limits of
//      actors/archive.hpp; a refused archive fails the job for good (invalid_input) and its bytes are removed.
//      Any other file is the repository's file named by the upload's (sanitised) filename.
//   3. The files are registered (PostgreSQL: status processing, owned by this job), then moved into
//      <dir>/repositories/<repository id>/<path> (same path: replaced), and the upload's bytes are removed.
//   4. Every file is read in chunks of 64 KiB cut after a newline; its SHA-256 and size are computed while reading,
//      and its chunks are analysed in parallel by the processors (a window of chunks in flight across files).
//      Results are put back in file order: line numbers, segments, line count, binary detection, language.
//   5. Segments, finished files and the job's progress are committed in batches (one transaction each, guarded by
//      the job's lease), two at a time: PostgreSQL's to_tsvector, in the committing backend, is the slowest step.
// Idempotent, as the queue's at-least-once execution requires: a retry finds the upload's bytes and starts over, or
// (once they were moved) finds its files by job id, drops their segments and processes those not done again.

#include "actors/archive.hpp"
#include "actors/jobs.hpp"
#include "persistence/queries.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace troupe {

struct processing_options {
  std::string dir; // uploads.dir, absolute
  archive_limits limits;
  size_t processors = 1;
  std::function<std::optional<caf::actor>(size_t)> processor; // live incarnation of processor i
  std::function<std::optional<db_query_actor>()> db_query;
  size_t window = 0;                    // chunks in flight; 0 = 4 x processors
  size_t batch_files = 500;             // finished files per commit
  size_t batch_bytes = 4 * 1024 * 1024; // segment text per commit
  size_t commits_in_flight = 2;         // batches committing at once, each on its own connection
  /// A job step (loading, expanding, processing) longer than this is logged once ("slow operation", kind
  /// job_step) and `on_slow` is called (ops.slow_ms); 0 = never.
  std::chrono::milliseconds slow{0};
  std::function<void()> on_slow;
  std::shared_ptr<tracing::span_queue> spans; // each step a span of the attempt's trace (actors/jobs.hpp); null: none
};

caf::actor spawn_chunk_processor(caf::actor_system& sys);

/// The job queue's handler for jobs of kind "upload".
job_handler upload_job_handler(processing_options options);

} // namespace troupe
