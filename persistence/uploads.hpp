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

/// (upload_create_atom, upload_record draft, int64_t expire_ms) -> upload_record: inserts the draft (id, user_id,
/// repository_id, filename, metadata, storage_path, length) expiring expire_ms from now; not_found "No such
/// repository." unless the repository belongs to the user; conflict if the id exists.
using upload_create_atom = caf::atom_constant<caf::atom("upcreate")>;
/// (upload_load_atom, id) -> upload_record (deleted ones included: see deleted_at_ms); not_found if none.
using upload_load_atom = caf::atom_constant<caf::atom("upload")>;
/// (upload_advance_atom, id, int64_t from_offset, int64_t to_offset, int64_t expire_ms) -> upload_record: moves the
/// offset forward and extends the expiry; not_found if the upload is gone (deleted, expired, completed), conflict
/// if its offset is not from_offset.
using upload_advance_atom = caf::atom_constant<caf::atom("upadvance")>;
/// (upload_complete_atom, id, int64_t from_offset, job_draft) -> upload_record: in one transaction, sets the offset
/// to the length, marks the upload completed and enqueues the job (its id in job_id). Fails like advance.
using upload_complete_atom = caf::atom_constant<caf::atom("upcomplete")>;
/// (upload_terminate_atom, id) -> upload_record: marks the upload deleted (termination); not_found if it was.
using upload_terminate_atom = caf::atom_constant<caf::atom("upterm")>;
/// (upload_expire_atom, int32_t max) -> std::vector<upload_record>: marks up to max unfinished uploads whose
/// expiry has passed as deleted and returns them (their bytes are the caller's to remove).
using upload_expire_atom = caf::atom_constant<caf::atom("upexpire")>;

} // namespace troupe
