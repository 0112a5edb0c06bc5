#pragma once
// Resumable uploads (table uploads) behind typed messages. Registered by troupe::register_message_types.
//
// Send every message below to "db.query" (persistence/query_router.hpp). Conventions as in accounts.hpp: ids are
// UUID text (a malformed id is an unknown one: not_found), "" means absent, times are unix milliseconds (0 =
// absent) and every message may also fail with unavailable (retry later), invalid_input (refused by the schema) or
// internal. Expiry times are computed by the database clock (now() + a duration), so nodes never disagree on them.
//
// An upload's offset only moves forward: every change names the offset it expects (compare-and-set), and a
// completed, deleted or expired upload never changes again.
//
// Storage quota. Each user's storage use is its uploads' reservations plus the sizes of its repositories' files
// (table storage_usage, kept exact by triggers: migrations/0005_quotas.sql). An upload reserves its Upload-Length
// when it is created, and gives it back when it is deleted or expires unfinished, when its job registers its
// files (which count instead), or when its job fails for good. The statements that add bytes (creating an upload,
// registering files) check the owner's plan limit in their transaction, with the owner's storage_usage row
// locked, so concurrent requests near the limit cannot both pass; over it they fail with storage_quota_exceeded
// and write nothing.

#include "persistence/jobs.hpp"

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

struct upload_record {
  std::string id;
  std::string user_id;
  std::string repository_id;
  std::string filename;     // sanitised, never a path
  std::string metadata;     // the client's Upload-Metadata header, verbatim
  std::string storage_path; // where the bytes are appended until the upload completes
  int64_t length = 0;       // Upload-Length
  int64_t offset = 0;       // bytes stored (fsynced) and acknowledged
  int64_t created_at_ms = 0;
  int64_t expires_at_ms = 0;
  int64_t completed_at_ms = 0; // 0 while in progress
  int64_t deleted_at_ms = 0;   // 0 while live; set by termination or expiry
  std::string job_id;          // the processing job, once completed
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, upload_record& x) {
  return f(caf::meta::type_name("upload_record"), x.id, x.user_id, x.repository_id, x.filename, x.metadata,
           x.storage_path, x.length, x.offset, x.created_at_ms, x.expires_at_ms, x.completed_at_ms, x.deleted_at_ms,
           x.job_id);
}

/// The storage quota of each plan, in bytes (quota.free_storage_bytes, quota.pro_storage_bytes).
struct storage_limits {
  int64_t free_bytes = int64_t{10} << 30;
  int64_t pro_bytes = int64_t{100} << 30;

  /// The limit of a plan: "pro" has its own, any other plan the free one.
  int64_t of(const std::string& plan) const { return plan == "pro" ? pro_bytes : free_bytes; }
};

/// A user's storage: what is used and what the user's plan allows.
struct storage_status {
  int64_t used_bytes = 0;
  int64_t limit_bytes = 0;
  std::string plan;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, storage_status& x) {
  return f(caf::meta::type_name("storage_status"), x.used_bytes, x.limit_bytes, x.plan);
}

/// (upload_create_atom, upload_record draft, int64_t expire_ms) -> upload_record: inserts the draft (id, user_id,
/// repository_id, filename, metadata, storage_path, length) expiring expire_ms from now, reserving its length
/// against the user's storage quota; not_found "No such repository." unless the repository belongs to the user;
/// storage_quota_exceeded (naming the limit and the use) if the reservation would take the user over the limit;
/// conflict if the id exists.
using upload_create_atom = caf::atom_constant<caf::atom("upcreate")>;
/// (upload_load_atom, id) -> upload_record (deleted ones included: see deleted_at_ms); not_found if none.
using upload_load_atom = caf::atom_constant<caf::atom("upload")>;
/// (upload_advance_atom, id, int64_t from_offset, int64_t to_offset, int64_t expire_ms) -> upload_record: moves the
/// offset forward and extends the expiry; not_found if the upload is gone (deleted, expired, completed), conflict
/// if its offset is not from_offset.
using upload_advance_atom = caf::atom_constant<caf::atom("upadvance")>;
/// (upload_complete_atom, id, int64_t from_offset, job_draft) -> upload_record: in one transaction, sets the offset
/// to the length, marks the upload completed and enqueues the job (its id in job_id). An empty upload gets no job
/// (see upload_empty_atom). Fails like advance.
using upload_complete_atom = caf::atom_constant<caf::atom("upcomplete")>;
/// (upload_empty_atom, id, bool as_file, language) -> upload_record: completes an empty upload (length 0) without
/// a job: there is nothing to process. With as_file, its repository gets the empty file in the same transaction
/// (done: size 0, the SHA-256 of nothing, 0 lines, text, `language` or none), replacing a file of that path; without,
/// nothing (an empty "archive" holds no files). Fails like advance; invalid_input if the upload is not empty.
using upload_empty_atom = caf::atom_constant<caf::atom("upempty")>;
/// (upload_terminate_atom, id) -> upload_record: marks the upload deleted (termination) and, unless it was
/// completed (its bytes are its job's now), gives its reservation back; not_found if it was deleted already.
using upload_terminate_atom = caf::atom_constant<caf::atom("upterm")>;
/// (upload_expire_atom, int32_t max) -> std::vector<upload_record>: marks up to max unfinished uploads whose
/// expiry has passed as deleted, gives their reservations back and returns them (their bytes are the caller's to
/// remove).
using upload_expire_atom = caf::atom_constant<caf::atom("upexpire")>;
/// (storage_get_atom, user_id) -> storage_status; not_found if no such user.
using storage_get_atom = caf::atom_constant<caf::atom("storageget")>;
/// (storage_room_atom, upload_id) -> int64_t: the most bytes of files the upload's job may register without taking
/// its owner over the limit, whatever they replace: the limit, minus the use, plus the upload's own reservation
/// (given back when its files are registered), plus the bytes of the files already in its repository (the most
/// that replacing files could give back); never negative. A bound to stop expanding an archive early; the exact
/// check is made when the files are registered. not_found if no such upload.
using storage_room_atom = caf::atom_constant<caf::atom("storeroom")>;

} // namespace troupe
