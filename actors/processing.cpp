#include "actors/processing.hpp"

#include "actors/text_analysis.hpp"
#include "actors/uploads.hpp"

#include "config/digest.hpp"
#include "config/json.hpp"
#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

namespace troupe {

namespace fs = std::filesystem;

namespace {

const auto db_timeout = caf::duration{std::chrono::seconds{30}};
const auto chunk_timeout = caf::duration{std::chrono::seconds{60}};
constexpr size_t first_line_bytes = 256; // enough of a file's first line to read a shebang

// --- file system steps (blocking: the runner is detached) ----------------------------------------------------------

caf::error io_failure(const std::string& what, const std::error_code& ec) {
  return make_error(service_error::unavailable, what + ": " + ec.message() + ".");
}

/// Creates the parent directories of `target` inside `root`; a file standing where a directory must be is removed
/// (the new tree replaces it). `relative` is normalised (actors/paths.hpp), so nothing leaves `root`.
caf::error make_parents(const std::string& root, const std::string& relative) {
  auto slash = relative.rfind('/');
  if (slash == std::string::npos)
    return {};
  std::string dir = root;
  std::error_code ec;
  for (size_t pos = 0; pos <= slash;) {
    auto next = relative.find('/', pos);
    dir += "/" + relative.substr(pos, next - pos);
    auto status = fs::symlink_status(dir, ec);
    if (fs::exists(status) && !fs::is_directory(status))
      fs::remove(dir, ec);
    fs::create_directory(dir, ec);
    if (ec)
      return io_failure("Creating " + dir, ec);
    pos = next + 1;
  }
  return {};
}

/// Moves `from` to <root>/<relative>, replacing whatever was there.
caf::error move_into(const std::string& from, const std::string& root, const std::string& relative) {
  if (auto err = make_parents(root, relative))
    return err;
  auto to = root + "/" + relative;
  std::error_code ec;
  if (fs::is_directory(fs::symlink_status(to, ec)))
    fs::remove_all(to, ec);
  fs::rename(from, to, ec);
  if (ec)
    return io_failure("Moving " + relative + " into the repository", ec);
  return {};
}

// --- the runner ------------------------------------------------------------------------------------------------------

/// One file being read and analysed.
struct file_work {
  file_record file;
  std::unique_ptr<digest> sha = std::make_unique<digest>(digest_algorithm::sha256);
  uint32_t sent = 0;                         // chunks sent to processors
  uint32_t next_done = 0;                    // the next chunk to put back in order
  bool eof = false;                          // every chunk is sent
  std::map<uint32_t, chunk_summary> arrived; // out-of-order summaries
  std::map<uint32_t, size_t> sizes;          // chunk sizes by seq
  int64_t next_line = 1;                     // file line of the first byte of chunk next_done
  int64_t bytes = 0;
  bool any_nul = false;
  int64_t first_control = 0;
  size_t first_size = 0;
  char last_byte = '\n';
  std::string first_line;
  std::string sha256;
  int32_t next_segment = 0;
  std::vector<segment_row> held; // segments of this file not in a batch yet
  size_t held_bytes = 0;
};

struct runner_state {
  processing_options opts;
  job_record job;
  caf::typed_response_promise<std::string> promise;
  bool over = false; // answered (done or failed)
  upload_record upload;
  bool archive = false;
  uint64_t skipped = 0;
  // Processing
  std::vector<file_record> files;
  size_t next_file = 0;
  std::map<size_t, file_work> active; // by index in files
  int reading = -1;                   // index of the file being read, -1 = none
  int fd = -1;
  std::string pending; // read but not sent: the tail after the last newline
  size_t in_flight = 0;
  size_t next_processor = 0;
  int64_t total_bytes = 0;
  int64_t done_bytes = 0;
  // Committing
  file_batch batch;
  size_t batch_bytes = 0;
  size_t committing = 0; // batches being committed
  int64_t files_done = 0;
  int64_t binary_files = 0;
  // The step under way and when it began (the slow-operation log)
  const char* step = "loading";
  std::chrono::steady_clock::time_point step_started = std::chrono::steady_clock::now();
  int64_t step_started_unix_ns = 0;
  tracing::context trace; // the attempt's (job_record::traceparent): each step is a span under the attempt's

  ~runner_state() {
    if (fd >= 0)
      ::close(fd);
  }

  static inline const char* name = "upload_job";
};

using runner_actor = job_runner_actor::stateful_base<runner_state>;

void pump(runner_actor* self);
void end_step(runner_state& st, const char* next, bool failed = false);

/// Ends the job with an error (the queue decides: retry, or fail for good on invalid_input). Over the owner's
/// storage quota fails for good too: another attempt would be over it again. When this was the job's last chance,
/// the upload's bytes (and any staging) go now: nothing will use them, and the failure gives their storage back.
void fail(runner_actor* self, caf::error err) {
  auto& st = self->state;
  if (st.over)
    return;
  st.over = true;
  end_step(st, nullptr, true);
  if (service_code(err) == service_error::storage_quota_exceeded)
    err = make_error(service_error::invalid_input, service_message(err));
  if (service_code(err) == service_error::invalid_input || st.job.attempts >= st.job.max_attempts) {
    std::error_code ec;
    if (!st.upload.storage_path.empty())
      fs::remove(st.upload.storage_path, ec);
    if (!st.job.id.empty())
      fs::remove_all(staging_dir(st.opts.dir) + "/" + st.job.id, ec);
  }
  st.promise.deliver(std::move(err));
  self->quit();
}

std::optional<db_query_actor> database(runner_actor* self) {
  return self->state.opts.db_query ? self->state.opts.db_query() : std::nullopt;
}

std::string result_json(const runner_state& st) {
  return R"({"files":)" + std::to_string(st.files.size()) + R"(,"bytes":)" + std::to_string(st.total_bytes)
         + R"(,"binary_files":)" + std::to_string(st.binary_files) + R"(,"archive":)" + (st.archive ? "true" : "false")
         + R"(,"skipped":)" + std::to_string(st.skipped) + "}";
}

/// The job's detail (persistence/jobs.hpp) at `step`: files and bytes done out of those this attempt processes.
std::string detail_json(const runner_state& st, const char* step) {
  return std::string(R"({"step":")") + step + R"(","files_done":)" + std::to_string(st.files_done)
         + R"(,"files_total":)" + std::to_string(st.files.size()) + R"(,"bytes_done":)" + std::to_string(st.done_bytes)
         + R"(,"bytes_total":)" + std::to_string(st.total_bytes) + "}";
}

/// Ends the step under way (logged when slower than opts.slow; a span of the attempt's trace when it is recorded)
/// and begins `next` (nullptr: the job ends; `failed`: with an error).
void end_step(runner_state& st, const char* next, bool failed) {
  auto now = std::chrono::steady_clock::now();
  auto now_ns = tracing::unix_now_ns();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(now - st.step_started);
  log::trace_scope in_trace{st.trace.trace_hex()};
  if (st.opts.spans && st.trace.sampled) {
    tracing::span s;
    s.trace = st.trace.trace;
    s.id = tracing::new_span_id();
    s.parent = st.trace.parent;
    s.name = std::string{"upload "} + st.step;
    s.start_unix_ns = st.step_started_unix_ns;
    s.end_unix_ns = now_ns;
    s.error = failed;
    s.int_attributes = {{"troupe.files_done", st.files_done}, {"troupe.bytes_done", st.done_bytes}};
    st.opts.spans->push(std::move(s));
  }
  if (st.opts.slow.count() > 0 && took >= st.opts.slow) {
    log::warn("slow operation", log::fields{}
                                  .add("kind", "job_step")
                                  .add("job_id", st.job.id)
                                  .add("job_kind", st.job.kind)
                                  .add("step", st.step)
                                  .add("duration_ms", static_cast<int64_t>(took.count()))
                                  .add("files_done", st.files_done)
                                  .add("files_total", static_cast<int64_t>(st.files.size()))
                                  .add("bytes_done", st.done_bytes));
    if (st.opts.on_slow)
      st.opts.on_slow();
  }
  if (next) {
    st.step = next;
    st.step_started = now;
    st.step_started_unix_ns = now_ns;
  }
}

/// Records a new step and its progress outside a batch, then goes on with `then` (after the write, so that it cannot
/// overtake a later one on another connection). A failed write only costs the step's display: a lost lease shows at
/// the next batch.
template <class Then>
void report_step(runner_actor* self, const char* step, double progress, Then then) {
  end_step(self->state, step);
  auto db = self->state.opts.db_query ? self->state.opts.db_query() : std::nullopt;
  if (!db) {
    then();
    return;
  }
  self
    ->request(*db, db_timeout, job_progress_atom::value, self->state.job.id, self->state.job.lease_owner, progress,
              detail_json(self->state, step))
    .then([then](bool) mutable { then(); }, [then](caf::error&) mutable { then(); });
}

bool all_processed(const runner_state& st) {
  return st.next_file == st.files.size() && st.active.empty() && st.reading < 0 && st.in_flight == 0;
}

/// Whether the batch should be committed now (when a commit slot is free).
bool batch_full(const runner_state& st) {
  return st.batch.finished.size() >= st.opts.batch_files || st.batch_bytes >= st.opts.batch_bytes;
}

/// The job is done once every file is processed and every batch committed.
void finish_when_done(runner_actor* self) {
  auto& st = self->state;
  if (st.over || !all_processed(st) || st.committing > 0 || !st.batch.segments.empty() || !st.batch.finished.empty())
    return;
  st.over = true;
  end_step(st, nullptr);
  st.promise.deliver(result_json(st));
  self->quit();
}

/// Commits the current batch (segments, finished files, progress) if a commit slot is free: up to
/// `commits_in_flight` batches commit at once, on different connections (PostgreSQL's to_tsvector is the slow part
/// of processing, and it runs in the committing backend).
void commit(runner_actor* self) {
  auto& st = self->state;
  if (st.over || st.committing >= std::max<size_t>(1, st.opts.commits_in_flight))
    return;
  if (st.batch.segments.empty() && st.batch.finished.empty()) {
    finish_when_done(self);
    return;
  }
  auto db = database(self);
  if (!db) {
    fail(self, make_error(service_error::unavailable, "The database is restarting."));
    return;
  }
  st.batch.job_id = st.job.id;
  st.batch.owner = st.job.lease_owner;
  st.batch.progress = st.total_bytes > 0 ? static_cast<double>(st.done_bytes) / static_cast<double>(st.total_bytes)
                                         : static_cast<double>(st.files_done) / std::max<double>(1, st.files.size());
  st.batch.detail = detail_json(st, "processing");
  st.committing++;
  auto batch = std::move(st.batch);
  st.batch = file_batch{};
  st.batch_bytes = 0;
  self->request(*db, db_timeout, files_commit_atom::value, std::move(batch))
    .then(
      [self](bool) {
        auto& st = self->state;
        st.committing--;
        if (batch_full(st) || all_processed(st))
          commit(self); // the next batch, or the rest, or the end
        pump(self);
      },
      [self](caf::error& err) { fail(self, std::move(err)); });
}

/// Moves a file's held segments into the batch.
void release_segments(runner_state& st, file_work& work) {
  for (auto& s : work.held) {
    st.batch_bytes += s.content.size();
    st.batch.segments.push_back(std::move(s));
  }
  work.held.clear();
  work.held_bytes = 0;
}

void finish_file(runner_actor* self, size_t index) {
  auto& st = self->state;
  auto& work = st.active.at(index);
  bool binary = looks_binary(work.any_nul, work.first_control, work.first_size);
  file_outcome outcome;
  outcome.file_id = work.file.id;
  outcome.size = work.bytes;
  outcome.sha256 = work.sha256;
  outcome.binary = binary;
  outcome.lines = binary ? 0 : (work.next_line - 1) + (work.bytes > 0 && work.last_byte != '\n' ? 1 : 0);
  outcome.language = detect_language(work.file.path, work.first_line);
  if (binary) {
    work.held.clear(); // and any segments committed earlier are dropped with the outcome
    st.binary_files++;
  } else {
    release_segments(st, work);
  }
  st.batch.finished.push_back(std::move(outcome));
  st.files_done++;
  st.active.erase(index);
}

/// A processor's summary of chunk `seq` of file `index`: put back in file order.
void on_chunk(runner_actor* self, size_t index, uint32_t seq, chunk_summary summary) {
  auto& st = self->state;
  st.in_flight--;
  auto found = st.active.find(index);
  if (found == st.active.end())
    return;
  auto& work = found->second;
  work.arrived.emplace(seq, std::move(summary));
  for (auto next = work.arrived.find(work.next_done); next != work.arrived.end();
       next = work.arrived.find(work.next_done)) {
    auto& s = next->second;
    auto size = work.sizes[work.next_done];
    if (work.next_done == 0) {
      work.first_control = s.control_bytes;
      work.first_size = size;
    }
    work.any_nul |= s.has_nul;
    if (!work.any_nul)
      for (auto& seg : s.segments) {
        work.held_bytes += seg.text.size();
        work.held.push_back({work.file.id, work.next_segment++, static_cast<int32_t>(work.next_line + seg.first_line),
                             static_cast<int32_t>(work.next_line + seg.last_line), std::move(seg.text)});
      }
    work.next_line += s.newlines;
    st.done_bytes += static_cast<int64_t>(size);
    work.sizes.erase(work.next_done);
    work.arrived.erase(next);
    work.next_done++;
  }
  // A big text file does not wait for its end to have its segments committed.
  if (work.held_bytes >= st.opts.batch_bytes && !work.any_nul)
    release_segments(st, work);
  if (work.eof && work.next_done == work.sent)
    finish_file(self, index);
  if (batch_full(st) || all_processed(st))
    commit(self);
  pump(self);
}

std::optional<caf::actor> next_processor(runner_state& st) {
  for (size_t tried = 0; tried < st.opts.processors; ++tried)
    if (auto p = st.opts.processor(st.next_processor++ % st.opts.processors))
      return p;
  return std::nullopt;
}

void send_chunk(runner_actor* self, size_t index, std::string chunk) {
  auto& st = self->state;
  auto& work = st.active.at(index);
  auto processor = next_processor(st);
  if (!processor) {
    fail(self, make_error(service_error::unavailable, "No file-chunk processor is running."));
    return;
  }
  auto seq = work.sent++;
  work.sizes[seq] = chunk.size();
  st.in_flight++;
  self->request(*processor, chunk_timeout, chunk_atom::value, std::move(chunk))
    .then([self, index, seq](chunk_summary& s) { on_chunk(self, index, seq, std::move(s)); },
          [self](caf::error& err) { fail(self, std::move(err)); });
}

/// Opens the next file to read; false (and the job failed) if it cannot be read.
bool open_next(runner_actor* self) {
  auto& st = self->state;
  auto index = st.next_file++;
  auto path = repositories_dir(st.opts.dir) + "/" + st.upload.repository_id + "/" + st.files[index].path;
  st.fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (st.fd < 0) {
    fail(self, make_error(service_error::unavailable,
                          "Reading " + st.files[index].path + " failed: " + std::strerror(errno) + "."));
    return false;
  }
  st.reading = static_cast<int>(index);
  st.pending.clear();
  st.active[index].file = st.files[index];
  return true;
}

/// Reads the file being read up to one chunk and sends it; at its end, closes it.
void read_some(runner_actor* self) {
  auto& st = self->state;
  auto index = static_cast<size_t>(st.reading);
  auto& work = st.active.at(index);
  bool at_end = false;
  while (st.pending.size() < chunk_bytes) {
    auto before = st.pending.size();
    st.pending.resize(chunk_bytes);
    auto n = ::read(st.fd, st.pending.data() + before, chunk_bytes - before);
    if (n < 0 && errno == EINTR) {
      st.pending.resize(before);
      continue;
    }
    if (n < 0) {
      fail(self, make_error(service_error::unavailable,
                            "Reading " + work.file.path + " failed: " + std::strerror(errno) + "."));
      return;
    }
    st.pending.resize(before + static_cast<size_t>(n));
    std::string_view fresh{st.pending.data() + before, static_cast<size_t>(n)};
    work.sha->update(fresh);
    work.bytes += n;
    if (n > 0)
      work.last_byte = fresh.back();
    if (n == 0) {
      at_end = true;
      break;
    }
  }
  if (work.sent == 0 && work.first_line.empty())
    work.first_line = st.pending.substr(0, std::min(st.pending.find('\n'), first_line_bytes));
  auto cut = chunk_cut(st.pending, at_end);
  if (cut > 0) {
    std::string chunk = st.pending.substr(0, cut);
    st.pending.erase(0, cut);
    send_chunk(self, index, std::move(chunk));
  }
  if (at_end && st.pending.empty()) {
    ::close(st.fd);
    st.fd = -1;
    st.reading = -1;
    work.eof = true;
    work.sha256 = to_hex(work.sha->finish());
    if (work.next_done == work.sent) // empty file, or every chunk already back
      finish_file(self, index);
  }
}

/// Keeps the processors busy: reads and sends chunks while fewer than `window` are in flight and the batch is not
/// backed up behind a commit.
void pump(runner_actor* self) {
  auto& st = self->state;
  auto window = st.opts.window > 0 ? st.opts.window : 4 * std::max<size_t>(1, st.opts.processors);
  auto commits = std::max<size_t>(1, st.opts.commits_in_flight);
  while (!st.over && st.in_flight < window
         && !(st.committing >= commits && st.batch_bytes >= 2 * st.opts.batch_bytes)) {
    if (st.reading < 0) {
      if (st.next_file == st.files.size())
        break;
      if (!open_next(self))
        return;
    }
    read_some(self);
  }
  if (!st.over && all_processed(st))
    commit(self);
}

void start_processing(runner_actor* self, std::vector<file_record> files) {
  auto& st = self->state;
  for (auto& f : files)
    if (f.status != "done") {
      st.total_bytes += f.size;
      st.files.push_back(std::move(f));
    }
  report_step(self, "processing", 0, [self] { pump(self); });
}

/// Step 3 for bytes that are still at the upload's path: register the files, move them in, drop the upload's bytes.
void register_and_move(runner_actor* self, std::vector<file_entry> entries, std::string staging) {
  auto& st = self->state;
  auto db = database(self);
  if (!db) {
    fail(self, make_error(service_error::unavailable, "The database is restarting."));
    return;
  }
  self->request(*db, db_timeout, files_register_atom::value, st.job.id, st.upload.repository_id, std::move(entries))
    .then(
      [self, staging](std::vector<file_record>& files) {
        auto& st = self->state;
        auto root = repositories_dir(st.opts.dir) + "/" + st.upload.repository_id;
        std::error_code ec;
        fs::create_directories(root, ec);
        for (const auto& f : files) {
          auto from = st.archive ? staging + "/" + f.path : st.upload.storage_path;
          if (auto err = move_into(from, root, f.path)) {
            fail(self, std::move(err));
            return;
          }
        }
        fs::remove(st.upload.storage_path, ec);
        if (!staging.empty())
          fs::remove_all(staging, ec);
        start_processing(self, std::move(files));
      },
      [self](caf::error& err) { fail(self, std::move(err)); });
}

void expand(runner_actor* self, archive_kind kind, uint64_t room);

/// Steps 2 and 3, or their retry once the bytes were moved.
void prepare(runner_actor* self) {
  auto& st = self->state;
  if (st.upload.repository_id.empty()) {
    fail(self, make_error(service_error::invalid_input, "The upload's repository was deleted."));
    return;
  }
  std::error_code ec;
  if (!fs::exists(st.upload.storage_path, ec)) {
    // Moved by an earlier attempt: resume with the files it registered.
    auto db = database(self);
    if (!db) {
      fail(self, make_error(service_error::unavailable, "The database is restarting."));
      return;
    }
    self->request(*db, db_timeout, files_resume_atom::value, st.job.id)
      .then(
        [self](std::vector<file_record>& files) {
          if (files.empty()) {
            fail(self, make_error(service_error::invalid_input, "The upload's bytes are gone (deleted or expired)."));
            return;
          }
          start_processing(self, std::move(files));
        },
        [self](caf::error& err) { fail(self, std::move(err)); });
    return;
  }
  auto kind = archive_kind_of(st.upload.filename);
  st.archive = kind != archive_kind::none;
  if (!st.archive) {
    auto size = static_cast<int64_t>(fs::file_size(st.upload.storage_path, ec));
    register_and_move(self, {{st.upload.filename, size}}, "");
    return;
  }
  // The storage the files may take at most bounds the expansion, so an archive over the quota stops early.
  auto db = database(self);
  if (!db) {
    fail(self, make_error(service_error::unavailable, "The database is restarting."));
    return;
  }
  self->request(*db, db_timeout, storage_room_atom::value, st.upload.id)
    .then(
      [self, kind](int64_t room) {
        report_step(self, "expanding", 0,
                    [self, kind, room] { expand(self, kind, static_cast<uint64_t>(std::max<int64_t>(0, room))); });
      },
      [self](caf::error& err) { fail(self, std::move(err)); });
}

/// Step 2 for an archive: expands it into staging (at most `room` bytes of files), then step 3.
void expand(runner_actor* self, archive_kind kind, uint64_t room) {
  auto& st = self->state;
  std::error_code ec;
  auto staging = staging_dir(st.opts.dir) + "/" + st.job.id;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) {
    fail(self, io_failure("Creating " + staging, ec));
    return;
  }
  auto limits = st.opts.limits;
  limits.max_stored_bytes = std::min(limits.max_stored_bytes, room);
  auto expanded = expand_archive(st.upload.storage_path, kind, staging, limits);
  if (!expanded) {
    fs::remove_all(staging, ec);
    fail(self, expanded.error()); // a refused archive fails for good, and its bytes go
    return;
  }
  st.skipped = expanded->skipped;
  log::info("archive expanded", log::fields{}
                                  .add("job_id", st.job.id)
                                  .add("files", static_cast<int64_t>(expanded->files.size()))
                                  .add("bytes", static_cast<int64_t>(expanded->bytes)));
  register_and_move(self, std::move(expanded->files), staging);
}

std::string upload_id_of(const std::string& payload) {
  auto parsed = json::parse(payload);
  const auto& doc = parsed.document();
  if (!parsed || !doc.IsObject() || !doc.HasMember("upload_id") || !doc["upload_id"].IsString())
    return "";
  return doc["upload_id"].GetString();
}

job_runner_actor::behavior_type runner_impl(runner_actor* self, processing_options opts) {
  self->state.opts = std::move(opts);
  return {
    [self](job_run_atom, job_record& job) {
      auto& st = self->state;
      st.promise = self->make_response_promise<std::string>();
      st.job = std::move(job);
      st.step_started = std::chrono::steady_clock::now();
      st.step_started_unix_ns = tracing::unix_now_ns();
      st.trace = tracing::context_for(st.job.traceparent, std::nullopt, 0);
      auto upload_id = upload_id_of(st.job.payload);
      auto db = database(self);
      if (upload_id.empty())
        fail(self, make_error(service_error::invalid_input, "The job's payload names no upload_id."));
      else if (!db)
        fail(self, make_error(service_error::unavailable, "The database is restarting."));
      else
        self->request(*db, db_timeout, upload_load_atom::value, upload_id)
          .then(
            [self](upload_record& upload) {
              self->state.upload = std::move(upload);
              prepare(self);
            },
            [self](caf::error& err) {
              fail(self, service_code(err) == service_error::not_found
                           ? make_error(service_error::invalid_input, "The job's upload does not exist.")
                           : std::move(err));
            });
      return st.promise;
    },
  };
}

caf::behavior processor_impl(caf::event_based_actor* self) {
  return {
    [](chunk_atom, const std::string& bytes) { return analyse_chunk(bytes); },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

caf::actor spawn_chunk_processor(caf::actor_system& sys) {
  return sys.spawn<caf::detached>(processor_impl);
}

job_handler upload_job_handler(processing_options options) {
  return [options](caf::local_actor* queue, const job_record&) -> job_runner_actor {
    return queue->spawn<caf::detached + caf::linked>(runner_impl, options);
  };
}

} // namespace troupe
