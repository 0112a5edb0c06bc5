#pragma once
// Repositories, their files and the files' searchable text segments (tables repositories, files, file_segments)
// behind typed messages. Registered by troupe::register_message_types. Send every message to "db.query";
// conventions as in uploads.hpp. Reads name the user: another user's repository is not_found, never forbidden.

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

struct repository_record {
  std::string id;
  std::string user_id;
  std::string name;
  int64_t created_at_ms = 0;
  // Counts over the repository's files (filled by repo_get_atom; 0 elsewhere).
  int64_t files = 0;
  int64_t bytes = 0;
  int64_t files_done = 0;
  int64_t files_failed = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, repository_record& x) {
  return f(caf::meta::type_name("repository_record"), x.id, x.user_id, x.name, x.created_at_ms, x.files, x.bytes,
           x.files_done, x.files_failed);
}

struct file_record {
  std::string id;
  std::string repository_id;
  std::string path; // relative to the repository, '/'-separated, normalised
  int64_t size = 0;
  std::string sha256; // lower-case hex, "" until processed
  int64_t lines = -1; // -1 until processed, or for a binary file
  std::string language;
  int8_t binary = -1; // -1 unknown, 0 text, 1 binary
  std::string status; // pending, processing, done, failed
  std::string error;
  int64_t updated_at_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_record& x) {
  return f(caf::meta::type_name("file_record"), x.id, x.repository_id, x.path, x.size, x.sha256, x.lines, x.language,
           x.binary, x.status, x.error, x.updated_at_ms);
}

/// One page of a repository's files, by path.
struct file_page {
  std::vector<file_record> files;
  std::string next_after; // pass as `after` for the next page; "" on the last page
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_page& x) {
  return f(caf::meta::type_name("file_page"), x.files, x.next_after);
}

struct search_hit {
  std::string file_id;
  std::string path;
  int32_t start_line = 0;
  int32_t end_line = 0;
  double rank = 0;
  std::string snippet; // the matching words marked with « and »
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, search_hit& x) {
  return f(caf::meta::type_name("search_hit"), x.file_id, x.path, x.start_line, x.end_line, x.rank, x.snippet);
}

/// A file a job put into a repository, to register before it is processed.
struct file_entry {
  std::string path;
  int64_t size = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_entry& x) {
  return f(caf::meta::type_name("file_entry"), x.path, x.size);
}

/// A run of consecutive lines of a file.
struct segment_row {
  std::string file_id;
  int32_t seq = 0; // 0, 1, ... in file order
  int32_t start_line = 1;
  int32_t end_line = 1;
  std::string content; // valid UTF-8, no NUL
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, segment_row& x) {
  return f(caf::meta::type_name("segment_row"), x.file_id, x.seq, x.start_line, x.end_line, x.content);
}

/// What processing found out about a file.
struct file_outcome {
  std::string file_id;
  int64_t size = 0;
  std::string sha256;
  int64_t lines = 0;
  std::string language; // "" = unknown
  bool binary = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_outcome& x) {
  return f(caf::meta::type_name("file_outcome"), x.file_id, x.size, x.sha256, x.lines, x.language, x.binary);
}

/// Work of a running job committed together: segments, finished files and the job's progress.
struct file_batch {
  std::string job_id;
  std::string owner; // the job's lease owner: nothing is written once the lease is lost
  double progress = 0;
  std::string detail; // the job's detail (jobs.hpp), a JSON object; "" = {}
  std::vector<segment_row> segments;
  std::vector<file_outcome> finished; // marked done; a binary one loses any segments it had
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_batch& x) {
  return f(caf::meta::type_name("file_batch"), x.job_id, x.owner, x.progress, x.detail, x.segments, x.finished);
}

/// (repo_create_atom, user_id, name) -> repository_record; conflict if the user has one of that name.
using repo_create_atom = caf::atom_constant<caf::atom("repocreate")>;
/// (repo_list_atom, user_id) -> std::vector<repository_record>, by name.
using repo_list_atom = caf::atom_constant<caf::atom("repolist")>;
/// (repo_get_atom, user_id, repository_id) -> repository_record with its file counts.
using repo_get_atom = caf::atom_constant<caf::atom("repoget")>;
/// (repo_files_atom, user_id, repository_id, after, int32_t limit) -> file_page: files with path > after, by path.
using repo_files_atom = caf::atom_constant<caf::atom("repofiles")>;
/// (repo_search_atom, user_id, repository_id, query, int32_t limit) -> std::vector<search_hit>: full-text search
/// (websearch syntax, 'simple' configuration) over the segments of processed files, best ranked first.
using repo_search_atom = caf::atom_constant<caf::atom("reposearch")>;
/// (files_register_atom, job_id, repository_id, std::vector<file_entry>) -> std::vector<file_record>: upserts the
/// files (same path: replaced) as processing by this job and drops their old segments.
using files_register_atom = caf::atom_constant<caf::atom("filesreg")>;
/// (files_resume_atom, job_id) -> std::vector<file_record>: the files this job registered, by path; drops the
/// segments of those not done yet (a retried attempt writes them again).
using files_resume_atom = caf::atom_constant<caf::atom("filesresum")>;
/// (files_commit_atom, file_batch) -> bool: commits the batch; conflict when the job's lease was lost.
using files_commit_atom = caf::atom_constant<caf::atom("filescmt")>;

} // namespace troupe
